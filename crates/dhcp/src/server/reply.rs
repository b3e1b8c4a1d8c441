//! Replies: the options every reply carries, an address reply, where it goes.

use super::*;

impl Server {
    /// Options every configured reply carries (RFC 2132), lease options aside.
    pub(super) fn common_options(&self) -> Vec<DhcpOption> {
        let cfg = &self.cfg;
        let mut opts = vec![
            DhcpOption::ServerIdentifier(cfg.server_ip),
            DhcpOption::SubnetMask(cfg.subnet.netmask()),
            DhcpOption::BroadcastAddr(cfg.subnet.broadcast()),
        ];
        if let Some(r) = cfg.router {
            opts.push(DhcpOption::Router(vec![r]));
        }
        if let Some(d) = cfg.dns_server {
            opts.push(DhcpOption::DomainNameServer(vec![d]));
        }
        if let Some(d) = &cfg.domain {
            opts.push(DhcpOption::DomainName(d.clone()));
        }
        if let Some(m) = cfg.mtu {
            opts.push(DhcpOption::InterfaceMtu(m));
        }
        opts
    }

    /// The `dhcp-option`s for this client (`known`: it has a `<host>` entry) applied to
    /// `opts`.
    pub(super) fn with_extras(
        &self,
        req: &Request,
        known: bool,
        mut opts: Vec<DhcpOption>,
    ) -> Vec<DhcpOption> {
        let prl = wire::requested(&req.msg);
        crate::extra::apply(&mut opts, &self.cfg.extra_options, known, prl.as_deref());
        opts
    }

    /// BOOTP `siaddr`, `file` and `sname`: a `dhcp-boot` that applies, else `<bootp>`
    /// and `<tftp>`'s.
    pub(super) fn boot_fields(&self, known: bool) -> (Ipv4Addr, Option<String>, Option<String>) {
        match crate::extra::boot(&self.cfg.boot_rules, known) {
            Some(b) => (b.next_server, Some(b.file.clone()), b.server_name.clone()),
            None => (
                self.cfg.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
                self.cfg.boot_file.clone(),
                None,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn address_reply(
        &self,
        req: &Request,
        kind: MessageType,
        ip: Ipv4Addr,
        lease: Option<LeaseTime>,
        c: &Client,
        names: Vec<DhcpOption>,
        known: bool,
    ) -> Vec<u8> {
        let mut opts = self.common_options();
        opts.extend(names);
        match lease {
            Some(LeaseTime::Finite(s)) => {
                opts.push(DhcpOption::AddressLeaseTime(s));
                opts.push(DhcpOption::Renewal(s / 2));
                opts.push(DhcpOption::Rebinding((u64::from(s) * 7 / 8) as u32));
            }
            // RFC 2131: 0xffffffff is infinity; T1/T2 make no sense then.
            Some(LeaseTime::Infinite) => opts.push(DhcpOption::AddressLeaseTime(u32::MAX)),
            None => {}
        }
        // RFC 6842: echo the client identifier.
        if let Some(id) = &c.id_raw {
            opts.push(DhcpOption::ClientIdentifier(id.clone()));
        }
        let ciaddr = if kind == MessageType::Ack {
            req.msg.ciaddr()
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let (siaddr, file, sname) = self.boot_fields(known);
        wire::encode_reply(
            &req.msg,
            Reply {
                msg_type: kind,
                yiaddr: ip,
                ciaddr,
                siaddr,
                file,
                sname,
                broadcast: false,
                opts: self.with_extras(req, known, opts),
            },
        )
    }
}

/// RFC 2131 §4.1: relay agent first; NAKs broadcast; a configured client by unicast;
/// otherwise broadcast if asked, else to the MAC without ARP.
pub(super) fn destination(req: &Request, yiaddr: Ipv4Addr, nak: bool) -> Destination {
    let giaddr = req.msg.giaddr();
    let ciaddr = req.msg.ciaddr();
    if !giaddr.is_unspecified() {
        Destination::Relay(giaddr)
    } else if nak {
        Destination::Broadcast
    } else if !ciaddr.is_unspecified() {
        Destination::Unicast(ciaddr)
    } else if req.msg.flags().broadcast() {
        Destination::Broadcast
    } else {
        Destination::Hardware {
            ip: yiaddr,
            mac: req.mac,
        }
    }
}
