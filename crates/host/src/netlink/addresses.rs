//! Interface addresses.

use super::*;

/// An address as a link carries it, with what it takes to put it on another link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkAddress {
    pub addr: IpNet,
    /// `RT_SCOPE_*`: 0 global, 200 site, 253 link, 254 host.
    pub scope: u8,
    /// The `IFA_F_*` flags one may set: nodad, homeaddress, managetempaddr,
    /// noprefixroute, mcautojoin.
    pub flags: u32,
    /// IPv4 broadcast (`ip addr add ... brd`), if the address has one.
    pub broadcast: Option<std::net::Ipv4Addr>,
}

impl LinkAddress {
    /// The `IFA_F_*` flags an `RTM_NEWADDR` may carry.
    pub const SETTABLE_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;

    pub fn new(addr: IpNet) -> LinkAddress {
        LinkAddress {
            addr,
            scope: 0,
            flags: 0,
            broadcast: None,
        }
    }

    /// An IPv6 link-local address (fe80::/10), which the kernel gives every link itself.
    pub fn is_ipv6_link_local(&self) -> bool {
        matches!(self.addr, IpNet::V6(n) if n.addr().segments()[0] & 0xffc0 == 0xfe80)
    }
}

pub(super) fn address_from_message(msg: &AddressMessage) -> Option<IpNet> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

pub(super) fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    match addr {
        // The builder adds IFA_BROADCAST for prefixes < 31, as `ip addr add ... brd +` does.
        IpNet::V4(n) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(n.addr(), n.prefix_len())
            .build(),
        IpNet::V6(n) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(n.addr(), n.prefix_len())
            .build(),
    }
}

impl Netlink {
    /// Addresses on the link, with their prefix length (e.g. 192.168.122.1/24).
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>, HostError> {
        let addrs = self.link_addresses(index).await?;
        Ok(addrs.into_iter().map(|a| a.addr).collect())
    }

    /// Adds an address (IPv4 with its broadcast); one already present is not an error.
    pub async fn add_address(&self, index: u32, addr: IpNet) -> Result<(), HostError> {
        let msg = address_message(index, addr);
        match self
            .ack(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add address {addr} to link #{index}")))
            }
            _ => Ok(()),
        }
    }

    /// Removes an address; one that is not there is not an error.
    pub async fn del_address(&self, index: u32, addr: IpNet) -> Result<(), HostError> {
        let msg = address_message(index, addr);
        match self.ack(RouteNetlinkMessage::DelAddress(msg), 0).await {
            Err(n) if n.errno != libc::EADDRNOTAVAIL => {
                Err(n.into_error(format!("delete address {addr} from link #{index}")))
            }
            _ => Ok(()),
        }
    }

    /// The link that carries address `addr`, if one does: one dump of the host's
    /// addresses, whatever the number of links.
    pub async fn link_with_address(
        &self,
        addr: std::net::IpAddr,
    ) -> Result<Option<u32>, HostError> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error(format!("find the link with address {addr}")))?;
        Ok(msgs.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if address_from_message(a)?.addr() == addr => {
                Some(a.header.index)
            }
            _ => None,
        }))
    }

    /// Addresses on the link with their scope and settable flags, in the kernel's
    /// order (an IPv4 primary before its secondaries).
    pub async fn link_addresses(&self, index: u32) -> Result<Vec<LinkAddress>, HostError> {
        let mut req = AddressMessage::default();
        req.header.index = index;
        let msgs = self
            .request(
                RouteNetlinkMessage::GetAddress(req),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error(format!("list addresses of link #{index}")))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let flags = a
                        .attributes
                        .iter()
                        .find_map(|x| match x {
                            AddressAttribute::Flags(f) => Some(f.bits()),
                            _ => None,
                        })
                        .unwrap_or(u32::from(a.header.flags.bits()));
                    Some(LinkAddress {
                        addr: address_from_message(a)?,
                        scope: a.header.scope.into(),
                        flags: flags & LinkAddress::SETTABLE_FLAGS,
                        broadcast: a.attributes.iter().find_map(|x| match x {
                            AddressAttribute::Broadcast(b) => Some(*b),
                            _ => None,
                        }),
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds an address with its scope and flags; one already present is not an error.
    pub async fn add_link_address(&self, index: u32, a: &LinkAddress) -> Result<(), HostError> {
        let mut msg = address_message(index, a.addr);
        msg.header.scope = AddressScope::from(a.scope);
        msg.attributes
            .retain(|x| !matches!(x, AddressAttribute::Broadcast(_)));
        if let Some(b) = a.broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(b));
        }
        if a.flags != 0 {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                    a.flags,
                )));
        }
        match self
            .ack(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add address {} to link #{index}", a.addr)))
            }
            _ => Ok(()),
        }
    }
}
