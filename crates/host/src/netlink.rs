//! Links, bridges, addresses and routes over one rtnetlink connection.

use std::collections::HashMap;
use std::net::IpAddr;

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload, Nla,
};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::HostError;

/// Kernel bounds for a bridge's forward delay while STP runs
/// (`BR_MIN_FORWARD_DELAY`/`BR_MAX_FORWARD_DELAY`, in centiseconds).
pub const STP_MIN_FORWARD_DELAY_CS: u32 = 200;
pub const STP_MAX_FORWARD_DELAY_CS: u32 = 3000;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "bridge", "veth", "tun", ...; `None` for physical devices and lo.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`), not carrier.
    pub up: bool,
    pub master: Option<u32>,
    /// A loopback device (`IFF_LOOPBACK`).
    pub loopback: bool,
}

/// What the kernel reports about a tun/tap device (`IFLA_TUN_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunInfo {
    /// A TAP (ethernet frames), not a TUN (IP packets).
    pub tap: bool,
    /// Outlives its files (`TUNSETPERSIST`).
    pub persist: bool,
    pub multi_queue: bool,
    /// Files attached to it (one per queue).
    pub queues: u16,
    pub vnet_hdr: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// A bridge forwarding entry for a MAC behind one of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// Index of the port the MAC is behind.
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BridgeSpec {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub stp: bool,
    /// Centiseconds, as the kernel takes it. With STP on the kernel keeps it
    /// within 200..=3000; [`BridgeSpec::effective_forward_delay_cs`] says what it will show.
    pub forward_delay_cs: u32,
}

impl BridgeSpec {
    /// The forward delay the kernel will report for this spec.
    pub fn effective_forward_delay_cs(&self) -> u32 {
        if self.stp {
            self.forward_delay_cs
                .clamp(STP_MIN_FORWARD_DELAY_CS, STP_MAX_FORWARD_DELAY_CS)
        } else {
            self.forward_delay_cs
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub table: u32,
    /// `RTPROT_*`: 2 kernel, 3 boot (what `ip route add` uses), 4 static.
    pub proto: u8,
}

impl Route {
    /// A main-table route as `ip route add DEST [via GW] [dev OIF]` would make it.
    pub fn new(dest: IpNet, gateway: Option<IpAddr>, oif: Option<u32>) -> Route {
        Route {
            dest,
            gateway,
            oif,
            metric: None,
            table: TABLE_MAIN,
            proto: 3,
        }
    }
}

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

/// A main-table unicast route through one link, with everything that tells it
/// apart from others (the link itself is implied).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkRoute {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    pub metric: Option<u32>,
    /// `RT_SCOPE_*`: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// `RTPROT_*`: 2 kernel, 3 boot, 4 static, 9 ra, 16 dhcp.
    pub proto: u8,
    pub prefsrc: Option<IpAddr>,
    pub onlink: bool,
}

impl LinkRoute {
    /// What `ip route` would print for it (without the device).
    pub fn describe(&self) -> String {
        let mut s = if self.dest.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.dest.to_string()
        };
        if let Some(gw) = self.gateway {
            s += &format!(" via {gw}");
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        s
    }
}

/// Formats a MAC as `52:54:00:09:33:55`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One rtnetlink socket; the connection task lives on the tokio runtime that
/// called [`Netlink::connect`] and is stopped when this is dropped.
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kernel NACK before it is given its context.
struct Nack {
    errno: i32,
    ext_ack: Option<String>,
}

impl Nack {
    fn into_error(self, context: impl Into<String>) -> HostError {
        HostError::netlink(context, self.errno, self.ext_ack)
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from an error payload. With `NETLINK_CAP_ACK`
/// the payload is the 16-byte original header followed by the ext-ack TLVs.
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut tlvs = payload.get(16..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

fn link_from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn tun_info_from_message(msg: &LinkMessage) -> Option<TunInfo> {
    const IFLA_TUN_OWNER: u16 = 1;
    const IFLA_TUN_GROUP: u16 = 2;
    const IFLA_TUN_TYPE: u16 = 3;
    const IFLA_TUN_VNET_HDR: u16 = 5;
    const IFLA_TUN_PERSIST: u16 = 6;
    const IFLA_TUN_MULTI_QUEUE: u16 = 7;
    const IFLA_TUN_NUM_QUEUES: u16 = 8;
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    })?;
    if !infos.contains(&LinkInfo::Kind(InfoKind::Tun)) {
        return None;
    }
    let mut info = TunInfo::default();
    for i in infos {
        let LinkInfo::Data(InfoData::Tun(nlas)) = i else {
            continue;
        };
        for nla in nlas {
            let mut v = vec![0u8; nla.value_len()];
            nla.emit_value(&mut v);
            let u8v = v.first().copied().unwrap_or(0);
            let u32v = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_ne_bytes)
                .ok();
            match nla.kind() {
                IFLA_TUN_TYPE => info.tap = u8v == libc::IFF_TAP as u8,
                IFLA_TUN_PERSIST => info.persist = u8v != 0,
                IFLA_TUN_MULTI_QUEUE => info.multi_queue = u8v != 0,
                IFLA_TUN_VNET_HDR => info.vnet_hdr = u8v != 0,
                IFLA_TUN_OWNER => info.owner = u32v,
                IFLA_TUN_GROUP => info.group = u32v,
                IFLA_TUN_NUM_QUEUES => {
                    info.queues = u32v.map_or(0, |q| u16::try_from(q).unwrap_or(u16::MAX))
                }
                _ => {}
            }
        }
    }
    Some(info)
}

fn bridge_settings_from_message(msg: &LinkMessage) -> Option<(bool, u32)> {
    let mut stp = None;
    let mut delay = None;
    for attr in &msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = attr {
            for info in infos {
                if let LinkInfo::Data(InfoData::Bridge(opts)) = info {
                    for opt in opts {
                        match opt {
                            InfoBridge::StpState(s) => stp = Some(*s != BridgeStpState::Disabled),
                            InfoBridge::ForwardDelay(d) => delay = Some(*d),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Some((stp?, delay?))
}

fn address_from_message(msg: &AddressMessage) -> Option<IpNet> {
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

fn route_from_message(msg: &RouteMessage) -> Option<Route> {
    let mut dest = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dest = route_addr(a),
            RouteAttribute::Gateway(a) => gateway = route_addr(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dest = match (dest, msg.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u16; 8]),
        _ => return None,
    };
    Some(Route {
        dest: IpNet::new(dest, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        metric,
        table,
        proto: msg.header.protocol.into(),
    })
}

fn link_route_from_message(msg: &RouteMessage) -> Option<(u32, LinkRoute)> {
    let r = route_from_message(msg)?;
    let prefsrc = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::PrefSource(a) => route_addr(a),
        _ => None,
    });
    Some((
        r.oif?,
        LinkRoute {
            dest: r.dest,
            gateway: r.gateway,
            metric: r.metric,
            scope: msg.header.scope.into(),
            proto: r.proto,
            prefsrc,
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
        },
    ))
}

fn link_route_message(index: u32, r: &LinkRoute) -> RouteMessage {
    let dest = r.dest.trunc();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest.addr(), dest.prefix_len())
        .expect("IpNet prefix length is valid for its family")
        .output_interface(index);
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).expect("address family checked by the kernel");
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    if r.onlink {
        b = b.onlink();
    }
    let mut msg = b
        .table_id(TABLE_MAIN)
        .protocol(RouteProtocol::from(r.proto))
        .scope(RouteScope::from(r.scope))
        .build();
    if let Some(src) = r.prefsrc {
        msg.attributes.push(RouteAttribute::PrefSource(match src {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
    }
    msg
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn address_message(index: u32, addr: IpNet) -> AddressMessage {
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

fn route_message(r: &Route) -> RouteMessage {
    let dest = r.dest.trunc();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest.addr(), dest.prefix_len())
        .expect("IpNet prefix length is valid for its family");
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).expect("address family checked by the kernel");
    }
    if let Some(oif) = r.oif {
        b = b.output_interface(oif);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    // `ip route add PREFIX dev X` makes IPv4 device routes link-scoped; keep the same shape.
    if r.gateway.is_none() && r.dest.addr().is_ipv4() {
        b = b.scope(RouteScope::Link);
    }
    b.table_id(r.table)
        .protocol(RouteProtocol::from(r.proto))
        .build()
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace and
    /// spawns its connection task on the current tokio runtime.
    pub async fn connect() -> Result<Netlink, HostError> {
        let (mut conn, handle, _) = rtnetlink::new_connection_with_strict_check()
            .map_err(|e| HostError::new("open rtnetlink socket", e))?;
        let sock = conn.socket_mut().socket_mut();
        // Ext-ack gives the kernel's reason text; cap-ack keeps NACKs small.
        sock.set_ext_ack(true)
            .and_then(|_| sock.set_cap_ack(true))
            .map_err(|e| HostError::new("configure rtnetlink socket", e))?;
        let task = tokio::spawn(conn);
        Ok(Netlink { handle, task })
    }

    /// Sends one request and collects the messages answering it.
    async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Nack> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut responses = self.handle.clone().request(req).map_err(|_| Nack {
            errno: libc::EPIPE,
            ext_ack: Some("rtnetlink connection closed".into()),
        })?;
        let mut out = Vec::new();
        while let Some(m) = responses.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(Nack {
                        errno: -e.raw_code(),
                        ext_ack: ext_ack_message(&e.header),
                    });
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(Nack {
                        errno: libc::ENOBUFS,
                        ext_ack: Some("netlink overrun".into()),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    async fn ack(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), Nack> {
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .await
            .map(|_| ())
    }

    async fn get_link_message(&self, msg: LinkMessage) -> Result<Option<LinkMessage>, Nack> {
        match self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(n) if n.errno == libc::ENODEV => Ok(None),
            Err(n) => Err(n),
        }
    }

    async fn link_message_by_index(&self, index: u32) -> Result<LinkMessage, HostError> {
        let ctx = || format!("get link #{index}");
        self.get_link_message(LinkUnspec::new_with_index(index).build())
            .await
            .map_err(|n| n.into_error(ctx()))?
            .ok_or_else(|| HostError::netlink(ctx(), libc::ENODEV, None))
    }

    /// The link called `name`, or `None`.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, HostError> {
        Ok(self
            .link_message(name)
            .await?
            .as_ref()
            .map(link_from_message))
    }

    async fn link_message(&self, name: &str) -> Result<Option<LinkMessage>, HostError> {
        self.get_link_message(LinkUnspec::new_with_name(name).build())
            .await
            .map_err(|n| n.into_error(format!("get link {name}")))
    }

    /// The link with this index, or `None`.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, HostError> {
        let msg = self
            .get_link_message(LinkUnspec::new_with_index(index).build())
            .await
            .map_err(|n| n.into_error(format!("get link #{index}")))?;
        Ok(msg.as_ref().map(link_from_message))
    }

    pub async fn links(&self) -> Result<Vec<Link>, HostError> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error("list links"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Every link's traffic counters by name: `(rx bytes, rx packets, tx bytes, tx
    /// packets)` (IFLA_STATS64).
    pub async fn link_traffic(&self) -> Result<HashMap<String, [u64; 4]>, HostError> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error("list link statistics"))?;
        let mut out = HashMap::new();
        for m in &msgs {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            let mut name = None;
            let mut stats = None;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Stats64(s) => {
                        stats = Some([s.rx_bytes, s.rx_packets, s.tx_bytes, s.tx_packets]);
                    }
                    _ => {}
                }
            }
            if let (Some(n), Some(s)) = (name, stats) {
                out.insert(n, s);
            }
        }
        Ok(out)
    }

    /// Creates the bridge DOWN in one RTM_NEWLINK carrying its MAC, MTU, STP
    /// state and forward delay; returns its index.
    pub async fn create_bridge(&self, spec: &BridgeSpec) -> Result<u32, HostError> {
        let ctx = || format!("create bridge {}", spec.name);
        // The kernel applies IFLA_BR_FORWARD_DELAY before IFLA_BR_STP_STATE, and
        // starting STP raises the delay to its minimum, so this matches what
        // libvirt gets by writing forward_delay and then stp_state in sysfs.
        let mut b = LinkBridge::new(&spec.name)
            .down()
            .forward_delay(spec.forward_delay_cs)
            .stp_state(if spec.stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            });
        if let Some(mac) = spec.mac {
            // An explicit address also stops the bridge adopting its ports' MACs.
            b = b.address(mac.to_vec());
        }
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        // NLM_F_ECHO (kernel >= 6.3) returns the new link, saving a lookup.
        let echoed = self
            .request(
                RouteNetlinkMessage::NewLink(b.build()),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            )
            .await
            .map_err(|n| n.into_error(ctx()))?;
        let echoed = echoed.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) if l.header.index != 0 => {
                let link = link_from_message(l);
                (link.name == spec.name).then_some(link.index)
            }
            _ => None,
        });
        if let Some(index) = echoed {
            return Ok(index);
        }
        match self.link(&spec.name).await? {
            Some(l) => Ok(l.index),
            None => Err(HostError::netlink(
                ctx(),
                libc::ENODEV,
                Some("vanished after creation".into()),
            )),
        }
    }

    /// Creates a veth pair (both ends DOWN); returns the index of `name`.
    pub async fn create_veth(&self, name: &str, peer: &str) -> Result<u32, HostError> {
        let ctx = || format!("create veth {name} peer {peer}");
        let msg = LinkVeth::new(name, peer).down().build();
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|n| n.into_error(ctx()))?;
        match self.link(name).await? {
            Some(l) => Ok(l.index),
            None => Err(HostError::netlink(
                ctx(),
                libc::ENODEV,
                Some("vanished after creation".into()),
            )),
        }
    }

    /// Brings an existing bridge's MAC, MTU, STP and forward delay in line with
    /// `spec`; returns a description of each correction (empty: nothing changed).
    pub async fn reconcile_bridge(&self, spec: &BridgeSpec) -> Result<Vec<String>, HostError> {
        let ctx = || format!("reconcile bridge {}", spec.name);
        let msg = self
            .get_link_message(LinkUnspec::new_with_name(&spec.name).build())
            .await
            .map_err(|n| n.into_error(ctx()))?
            .ok_or_else(|| HostError::netlink(ctx(), libc::ENODEV, None))?;
        let link = link_from_message(&msg);
        if link.kind.as_deref() != Some("bridge") {
            return Err(HostError::invalid(
                ctx(),
                format!(
                    "exists as {} link, not a bridge",
                    link.kind.as_deref().unwrap_or("a plain")
                ),
            ));
        }
        let (stp, delay) = bridge_settings_from_message(&msg)
            .ok_or_else(|| HostError::invalid(ctx(), "kernel reported no bridge settings"))?;

        let mut changes = Vec::new();
        let mut b = LinkUnspec::new_with_index(link.index);
        let mut touched = false;
        if let Some(mac) = spec.mac
            && link.mac != Some(mac)
        {
            let old = link.mac.as_ref().map(format_mac).unwrap_or_default();
            changes.push(format!("mac {old} -> {}", format_mac(&mac)));
            b = b.address(mac.to_vec());
            touched = true;
        }
        if let Some(mtu) = spec.mtu
            && link.mtu != mtu
        {
            changes.push(format!("mtu {} -> {mtu}", link.mtu));
            b = b.mtu(mtu);
            touched = true;
        }
        if touched {
            self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
                .await
                .map_err(|n| n.into_error(ctx()))?;
        }

        let want_delay = spec.effective_forward_delay_cs();
        if stp != spec.stp || delay != want_delay {
            if stp != spec.stp {
                changes.push(format!("stp {} -> {}", on_off(stp), on_off(spec.stp)));
            }
            if delay != want_delay {
                changes.push(format!("forward_delay {delay} -> {want_delay}"));
            }
            // The kernel checks the delay against STP's bounds before it
            // applies a new STP state, so when STP goes off a short delay has
            // to follow in a second message.
            let state = if spec.stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            };
            if stp && !spec.stp && want_delay < STP_MIN_FORWARD_DELAY_CS {
                self.change_bridge(&link, vec![InfoBridge::StpState(state)])
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
                self.change_bridge(&link, vec![InfoBridge::ForwardDelay(want_delay)])
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
            } else {
                self.change_bridge(
                    &link,
                    vec![
                        InfoBridge::ForwardDelay(want_delay),
                        InfoBridge::StpState(state),
                    ],
                )
                .await
                .map_err(|n| n.into_error(ctx()))?;
            }
        }
        Ok(changes)
    }

    async fn change_bridge(&self, link: &Link, opts: Vec<InfoBridge>) -> Result<(), Nack> {
        let mut msg = LinkUnspec::new_with_index(link.index).build();
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(opts)),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0).await
    }

    /// `(stp_enabled, forward_delay_cs)` of a bridge.
    pub async fn bridge_settings(&self, index: u32) -> Result<(bool, u32), HostError> {
        let msg = self.link_message_by_index(index).await?;
        bridge_settings_from_message(&msg).ok_or_else(|| {
            HostError::invalid(
                format!("get bridge settings of link #{index}"),
                "not a bridge",
            )
        })
    }

    pub async fn set_up(&self, index: u32, up: bool) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index);
        let b = if up { b.up() } else { b.down() };
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| {
                n.into_error(format!(
                    "set link #{index} {}",
                    if up { "up" } else { "down" }
                ))
            })
    }

    /// Sets the bridge port flag `isolated` of the link: isolated ports reach the bridge's
    /// other ports and the host, but not each other.
    pub async fn set_port_isolated(&self, index: u32, isolated: bool) -> Result<(), HostError> {
        let b = LinkBridgePort::new(index).append_info_data(InfoBridgePort::Isolated(isolated));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set port isolation of link #{index}")))
    }

    /// Enslaves the link to `master`, or releases it with `None`.
    pub async fn set_master(&self, index: u32, master: Option<u32>) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).controller(master.unwrap_or(0));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| {
                n.into_error(match master {
                    Some(m) => format!("set master of link #{index} to #{m}"),
                    None => format!("release link #{index} from its master"),
                })
            })
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).mtu(mtu);
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set mtu of link #{index} to {mtu}")))
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).address(mac.to_vec());
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set MAC of link #{index} to {}", format_mac(&mac))))
    }

    /// The tun/tap facts of the link called `name`; `None` when there is no such
    /// link or it is not a tun/tap device.
    pub async fn tun_info(&self, name: &str) -> Result<Option<TunInfo>, HostError> {
        Ok(self
            .link_message(name)
            .await?
            .as_ref()
            .and_then(tun_info_from_message))
    }

    /// The MACs a bridge forwards to its ports: learned and static entries, not
    /// the bridge's and its ports' own (local) addresses.
    pub async fn bridge_fdb(&self, bridge: u32) -> Result<Vec<FdbEntry>, HostError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        // With strict checking the kernel filters the dump by master.
        req.attributes.push(NeighbourAttribute::Controller(bridge));
        let msgs = self
            .request(
                RouteNetlinkMessage::GetNeighbour(req),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error(format!("list forwarding entries of bridge #{bridge}")))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.state != NeighbourState::Permanent
                        && n.header.ifindex != bridge =>
                {
                    let mac = n.attributes.iter().find_map(|a| match a {
                        NeighbourAttribute::LinkLayerAddress(a) => {
                            <[u8; 6]>::try_from(a.as_slice()).ok()
                        }
                        _ => None,
                    })?;
                    Some(FdbEntry {
                        mac,
                        port: n.header.ifindex,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Deletes a link; one that is already gone is not an error.
    pub async fn delete_link(&self, index: u32) -> Result<(), HostError> {
        let msg = LinkUnspec::new_with_index(index).build();
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0).await {
            Err(n) if n.errno != libc::ENODEV => Err(n.into_error(format!("delete link #{index}"))),
            _ => Ok(()),
        }
    }

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

    /// The main table's unicast route messages, IPv4 and IPv6.
    async fn main_route_messages(&self) -> Result<Vec<RouteMessage>, HostError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            req.header.table = RouteHeader::RT_TABLE_MAIN;
            let msgs = self
                .request(
                    RouteNetlinkMessage::GetRoute(req),
                    NLM_F_REQUEST | NLM_F_DUMP,
                )
                .await
                .map_err(|n| n.into_error("list routes"))?;
            out.extend(msgs.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.kind == RouteType::Unicast
                        && route_from_message(&r).is_some_and(|x| x.table == TABLE_MAIN) =>
                {
                    Some(r)
                }
                _ => None,
            }));
        }
        Ok(out)
    }

    /// The main table's unicast routes whose single nexthop is the link (not
    /// multipath, no nexthop object).
    pub async fn link_routes(&self, index: u32) -> Result<Vec<LinkRoute>, HostError> {
        Ok(self
            .main_route_messages()
            .await?
            .iter()
            .filter(|r| {
                !r.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::NhId(_)))
            })
            .filter_map(link_route_from_message)
            .filter_map(|(oif, r)| (oif == index).then_some(r))
            .collect())
    }

    /// The main table's routes through the link that [`Netlink::link_routes`] leaves
    /// out, described: multipath routes with a nexthop on it and routes using a
    /// nexthop object.
    pub async fn other_link_routes(&self, index: u32) -> Result<Vec<String>, HostError> {
        let mut out = Vec::new();
        for msg in self.main_route_messages().await? {
            let Some(r) = route_from_message(&msg) else {
                continue;
            };
            let multipath = msg.attributes.iter().any(|a| {
                matches!(a, RouteAttribute::MultiPath(hops)
                    if hops.iter().any(|h| h.interface_index == index))
            });
            let nhid = r.oif == Some(index)
                && msg
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::NhId(_)));
            if multipath || nhid {
                out.push(format!(
                    "{} ({})",
                    r.dest,
                    if multipath {
                        "multipath"
                    } else {
                        "nexthop object"
                    }
                ));
            }
        }
        Ok(out)
    }

    /// Adds a route through the link; an identical one already present is not an error.
    pub async fn add_link_route(&self, index: u32, r: &LinkRoute) -> Result<(), HostError> {
        match self
            .ack(
                RouteNetlinkMessage::NewRoute(link_route_message(index, r)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add route {} dev #{index}", r.describe())))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a route through the link; one that is not there is not an error.
    pub async fn del_link_route(&self, index: u32, r: &LinkRoute) -> Result<(), HostError> {
        let mut msg = link_route_message(index, r);
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes
            .retain(|a| !matches!(a, RouteAttribute::PrefSource(_)));
        match self.ack(RouteNetlinkMessage::DelRoute(msg), 0).await {
            Err(n) if n.errno != libc::ESRCH => {
                Err(n.into_error(format!("delete route {} dev #{index}", r.describe())))
            }
            _ => Ok(()),
        }
    }

    /// Unicast routes of the main table, IPv4 and IPv6.
    pub async fn routes(&self) -> Result<Vec<Route>, HostError> {
        let msgs = self.main_route_messages().await?;
        Ok(msgs.iter().filter_map(route_from_message).collect())
    }

    /// Adds a route; an identical one already present is not an error.
    pub async fn add_route(&self, r: &Route) -> Result<(), HostError> {
        match self
            .ack(
                RouteNetlinkMessage::NewRoute(route_message(r)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add route {}", describe(r))))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a route; one that is not there is not an error. Matches like
    /// `ip route del`: any scope, and any protocol when `r.proto` is 0 (the
    /// kernel only compares protocols when one is given).
    pub async fn del_route(&self, r: &Route) -> Result<(), HostError> {
        let mut msg = route_message(r);
        msg.header.scope = RouteScope::NoWhere;
        match self.ack(RouteNetlinkMessage::DelRoute(msg), 0).await {
            Err(n) if n.errno != libc::ESRCH => {
                Err(n.into_error(format!("delete route {}", describe(r))))
            }
            _ => Ok(()),
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn describe(r: &Route) -> String {
    let mut s = r.dest.to_string();
    if let Some(gw) = r.gateway {
        s += &format!(" via {gw}");
    }
    if let Some(oif) = r.oif {
        s += &format!(" dev #{oif}");
    }
    if let Some(m) = r.metric {
        s += &format!(" metric {m}");
    }
    if r.table != TABLE_MAIN {
        s += &format!(" table {}", r.table);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_found() {
        let mut payload = vec![0u8; 16];
        let text = b"tun/tap creation via rtnetlink is not supported.\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(&payload).as_deref(),
            Some("tun/tap creation via rtnetlink is not supported.")
        );
        assert_eq!(ext_ack_message(&payload[..16]), None);
    }

    #[test]
    fn effective_delay_follows_kernel_bounds() {
        let mut s = BridgeSpec {
            name: "virbr0".into(),
            mac: None,
            mtu: None,
            stp: true,
            forward_delay_cs: 0,
        };
        assert_eq!(s.effective_forward_delay_cs(), 200);
        s.forward_delay_cs = 5000;
        assert_eq!(s.effective_forward_delay_cs(), 3000);
        s.stp = false;
        assert_eq!(s.effective_forward_delay_cs(), 5000);
    }

    #[test]
    fn mac_format() {
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 9, 0x33, 0x55]),
            "52:54:00:09:33:55"
        );
    }
}
