//! The traffic a kvnet network needs to pass, as one representative packet per kind
//! ([`Probe`]): what the analysis sends through other tables' chains.
//!
//! A probe names what it knows: the bridge, the network's subnets, the protocol and
//! ports of the service. What it does not know is modelled as "somewhere else": the
//! uplink is an interface no rule names ([`Iface::Other`]), an outside address is one
//! no rule names but `0.0.0.0/0` ([`Addr::Outside`]). So rules about other interfaces
//! and destinations (Docker's `oifname "docker0"`, firewalld's IPv6 reject of
//! 6to4 prefixes) are taken as not applying to kvnet's traffic.

use ipnet::IpNet;
use kvnet_firewall::{FwMode, FwNetwork};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a probe stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// A guest opens a connection to the outside (nat, route).
    ForwardOut,
    /// The outside answers (nat) or connects (route) to a guest.
    ForwardIn,
    /// Guest to guest on one bridge: crosses the IP hooks only with br_netfilter's
    /// `bridge-nf-call-iptables`/`-ip6tables` = 1.
    Cross,
    /// A DHCPv4 request to kvnetd.
    Dhcp,
    /// kvnetd's DHCPv4 reply.
    DhcpReply,
    /// A DHCPv6 request to kvnetd.
    Dhcp6,
    /// A DNS query to kvnetd, over UDP.
    Dns,
    /// A DNS query to kvnetd, over TCP.
    DnsTcp,
    /// A TFTP read request to kvnetd (port 69; the transfer itself runs from a port
    /// kvnetd opened, so its ACKs come back as established traffic).
    Tftp,
}

impl Traffic {
    pub fn name(self) -> &'static str {
        match self {
            Traffic::ForwardOut => "forwarded guest->outside",
            Traffic::ForwardIn => "forwarded outside->guest",
            Traffic::Cross => "guest<->guest (bridged, br_netfilter)",
            Traffic::Dhcp => "DHCP requests",
            Traffic::DhcpReply => "DHCP replies",
            Traffic::Dhcp6 => "DHCPv6 requests",
            Traffic::Dns => "DNS (udp)",
            Traffic::DnsTcp => "DNS (tcp)",
            Traffic::Tftp => "TFTP requests",
        }
    }

    /// A short word for rule comments and JSON.
    pub fn word(self) -> &'static str {
        match self {
            Traffic::ForwardOut => "out",
            Traffic::ForwardIn => "in",
            Traffic::Cross => "cross",
            Traffic::Dhcp => "dhcp",
            Traffic::DhcpReply => "dhcp-reply",
            Traffic::Dhcp6 => "dhcpv6",
            Traffic::Dns => "dns",
            Traffic::DnsTcp => "dns-tcp",
            Traffic::Tftp => "tftp",
        }
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iface {
    Named(String),
    /// An uplink no rule names.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    Exact(IpAddr),
    /// Some address of this subnet.
    In(IpNet),
    /// An outside address no rule names.
    Outside,
}

/// What `fib daddr type` says of the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Local,
    Unicast,
    Broadcast,
    Multicast,
}

impl AddrType {
    pub fn name(self) -> &'static str {
        match self {
            AddrType::Local => "local",
            AddrType::Unicast => "unicast",
            AddrType::Broadcast => "broadcast",
            AddrType::Multicast => "multicast",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    New,
    Established,
}

/// Which hooks a probe crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Input,
    Forward,
    Output,
}

impl Path {
    /// The netfilter hooks of the path, in order.
    pub fn hooks(self) -> &'static [&'static str] {
        match self {
            Path::Input => &["prerouting", "input"],
            Path::Forward => &["prerouting", "forward", "postrouting"],
            Path::Output => &["output", "postrouting"],
        }
    }
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// One representative packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub network: String,
    pub bridge: String,
    pub traffic: Traffic,
    pub v6: bool,
    pub path: Path,
    pub iif: Option<Iface>,
    pub oif: Option<Iface>,
    pub saddr: Addr,
    pub daddr: Addr,
    pub daddr_type: AddrType,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ct: CtState,
}

/// What the host says about bridged traffic: br_netfilter's sysctls (false when the
/// module is not loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgeNf {
    pub call_iptables: bool,
    pub call_ip6tables: bool,
}

/// The probes of network `fw`: forwarded traffic for nat and route networks, the
/// services kvnetd runs on the bridge, and bridged guest-to-guest traffic in the
/// families br_netfilter sends through the IP hooks.
pub fn probes(fw: &FwNetwork, brnf: BridgeNf) -> Vec<Probe> {
    let br = || Some(Iface::Named(fw.bridge.clone()));
    let uplink = || Some(fw.forward_dev.clone().map_or(Iface::Other, Iface::Named));
    let mut out = Vec::new();
    for v6 in [false, true] {
        let Some(&net) = fw.subnets.iter().find(|n| n.addr().is_ipv6() == v6) else {
            continue;
        };
        let base = Probe {
            network: fw.name.clone(),
            bridge: fw.bridge.clone(),
            traffic: Traffic::ForwardOut,
            v6,
            path: Path::Forward,
            iif: br(),
            oif: uplink(),
            saddr: Addr::In(net),
            daddr: Addr::Outside,
            daddr_type: AddrType::Unicast,
            proto: TCP,
            sport: 40000,
            dport: 443,
            ct: CtState::New,
        };
        if fw.mode != FwMode::Isolated {
            out.push(base.clone());
            out.push(Probe {
                traffic: Traffic::ForwardIn,
                iif: uplink(),
                oif: br(),
                saddr: Addr::Outside,
                daddr: Addr::In(net),
                sport: 443,
                dport: 40000,
                // A NAT network admits replies only; a routed one new connections too.
                ct: if fw.mode == FwMode::Nat && (!v6 || fw.nat_ipv6) {
                    CtState::Established
                } else {
                    CtState::New
                },
                ..base.clone()
            });
        }
        if (!v6 && brnf.call_iptables) || (v6 && brnf.call_ip6tables) {
            out.push(Probe {
                traffic: Traffic::Cross,
                oif: br(),
                daddr: Addr::In(net),
                ..base.clone()
            });
        }
        let service = |traffic, proto, sport, dport| Probe {
            traffic,
            path: Path::Input,
            oif: None,
            daddr: Addr::In(net),
            daddr_type: AddrType::Local,
            proto,
            sport,
            dport,
            ..base.clone()
        };
        if fw.dns {
            out.push(service(Traffic::Dns, UDP, 40000, 53));
            out.push(service(Traffic::DnsTcp, TCP, 40000, 53));
        }
        if !v6 && fw.tftp {
            out.push(service(Traffic::Tftp, UDP, 40000, 69));
        }
        if !v6 && fw.dhcpv4 {
            out.push(Probe {
                saddr: Addr::Exact(Ipv4Addr::UNSPECIFIED.into()),
                daddr: Addr::Exact(Ipv4Addr::BROADCAST.into()),
                daddr_type: AddrType::Broadcast,
                ..service(Traffic::Dhcp, UDP, 68, 67)
            });
            out.push(Probe {
                traffic: Traffic::DhcpReply,
                path: Path::Output,
                iif: None,
                oif: br(),
                saddr: Addr::In(net),
                daddr: Addr::Exact(Ipv4Addr::BROADCAST.into()),
                daddr_type: AddrType::Broadcast,
                proto: UDP,
                sport: 67,
                dport: 68,
                ..base.clone()
            });
        }
        if v6 && fw.dhcpv6 {
            out.push(Probe {
                saddr: Addr::In("fe80::/64".parse().expect("prefix")),
                daddr: Addr::Exact(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2).into()),
                daddr_type: AddrType::Multicast,
                ..service(Traffic::Dhcp6, UDP, 546, 547)
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn nat(name: &str, bridge: &str, subnets: &[&str]) -> FwNetwork {
        FwNetwork {
            name: name.into(),
            bridge: bridge.into(),
            mode: FwMode::Nat,
            forward_dev: None,
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            nat_ipv6: false,
            nat_addresses: None,
            nat_ports: None,
            ipv6: subnets.iter().any(|s| s.contains(':')),
            dhcpv4: true,
            dhcpv6: false,
            dns: true,
            tftp: false,
            forwards: Vec::new(),
        }
    }

    fn kinds(p: &[Probe]) -> Vec<(bool, Traffic)> {
        p.iter().map(|p| (p.v6, p.traffic)).collect()
    }

    #[test]
    fn a_nat_network_needs_forwarding_and_its_services() {
        let fw = nat("default", "virbr0", &["192.168.122.0/24"]);
        let p = probes(&fw, BridgeNf::default());
        use Traffic::*;
        assert_eq!(
            kinds(&p),
            [
                (false, ForwardOut),
                (false, ForwardIn),
                (false, Dns),
                (false, DnsTcp),
                (false, Dhcp),
                (false, DhcpReply)
            ]
        );
        assert_eq!(p[1].ct, CtState::Established, "NAT admits replies only");
        let with_brnf = probes(
            &fw,
            BridgeNf {
                call_iptables: true,
                call_ip6tables: true,
            },
        );
        assert!(kinds(&with_brnf).contains(&(false, Cross)));
    }

    #[test]
    fn an_isolated_network_forwards_nothing() {
        let mut fw = nat("iso", "br1", &["10.0.0.0/24", "fd00::/64"]);
        fw.mode = FwMode::Isolated;
        fw.dhcpv6 = true;
        let p = probes(&fw, BridgeNf::default());
        assert!(
            p.iter()
                .all(|p| !matches!(p.traffic, Traffic::ForwardIn | Traffic::ForwardOut))
        );
        assert!(kinds(&p).contains(&(true, Traffic::Dhcp6)));
    }
}
