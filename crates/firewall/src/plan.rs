//! The planner: what one network adds to the table. A [`Plan`] is set
//! elements grouped by set, plus a chain for custom NAT, kept as data so that
//! the nft script ([`crate::render`]) and the netlink batch ([`crate::nl`])
//! are derived from the same description and cannot drift apart.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use crate::model::{FwNetwork, SubnetKind, maximal};
use crate::schema::*;

/// A custom-NAT network's own chain.
pub(crate) struct Chain {
    pub(crate) name: String,
    pub(crate) rules: Vec<Rule>,
}

/// One rule of a custom-NAT chain. Every rule counts, then takes its action.
pub(crate) struct Rule {
    pub(crate) matches: Vec<Match>,
    pub(crate) action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub(crate) fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Saddr,
    Daddr,
}

pub(crate) enum Match {
    Oifname(String),
    /// `ip|ip6 saddr|daddr [!=] NET`; `host` writes a full-length prefix as
    /// a bare address (the listing is the same either way).
    Addr {
        dir: Dir,
        negate: bool,
        net: IpNet,
        host: bool,
    },
    L4proto(Proto),
}

pub(crate) enum Action {
    Return,
    Masquerade {
        ports: Option<(u16, u16)>,
    },
    Snat {
        addrs: (Ipv4Addr, Ipv4Addr),
        ports: Option<(u16, u16)>,
    },
}

/// One field of a set element's key.
#[derive(Clone)]
pub(crate) enum Field {
    Ifname(String),
    /// A subnet: an interval in interval sets, shown as a bare address when
    /// it is a single one (as nft lists it).
    Net(IpNet),
    Proto(Proto),
    Port(u16),
}

pub(crate) struct Element {
    pub(crate) key: Vec<Field>,
    /// The chain a custom-NAT map element jumps to.
    pub(crate) jump: Option<String>,
}

/// Elements added to one set in one `add element` statement (one netlink
/// message). Plain interval sets get one group per element, the way the
/// per-element NAT map statements always went through nft.
pub(crate) struct Group {
    pub(crate) set: &'static SetDef,
    pub(crate) elements: Vec<Element>,
}

/// Everything one network contributes to the table: set elements, grouped
/// by set in [`SETS`] order (so `cross` first), and a chain only for
/// custom NAT.
pub(crate) struct Plan {
    /// Names the network in script comments.
    pub(crate) header: String,
    pub(crate) groups: Vec<Group>,
    pub(crate) chain: Option<Chain>,
}

/// Makes arbitrary text safe for a `#` script comment.
fn comment_text(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c == '"' {
                '\''
            } else if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A subnet match written as a prefix.
pub(crate) fn addr(dir: Dir, negate: bool, net: IpNet) -> Match {
    Match::Addr {
        dir,
        negate,
        net,
        host: false,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("valid constant subnet")
}

/// What `fw` adds to the table.
///
/// # Panics
/// If `fw` fails [`FwNetwork::validate`]: its names would reach nft unchecked.
pub(crate) fn plan(fw: &FwNetwork) -> Plan {
    if let Err(e) = fw.validate() {
        panic!("kvnet-firewall: render called on an invalid network: {e}");
    }
    let br = || Field::Ifname(fw.bridge.clone());
    let dev = fw.forward_dev.as_ref();
    let mut elems: Vec<(&'static SetDef, Element)> = Vec::new();
    let mut add = |set: &'static SetDef, key: Vec<Field>, jump: Option<String>| {
        elems.push((set, Element { key, jump }));
    };

    add(&CROSS, vec![br(), br()], None);
    // Contained subnets add nothing to a union of accepts.
    let accepted = maximal(
        fw.subnets
            .iter()
            .map(IpNet::trunc)
            .filter(|n| fw.subnet_kind(n) != SubnetKind::None),
    );
    for subnet in accepted {
        let v4 = matches!(subnet, IpNet::V4(_));
        let to = match (fw.subnet_kind(&subnet), v4, dev.is_some()) {
            (SubnetKind::Natted, true, false) => &EST4,
            (SubnetKind::Natted, true, true) => &EST4_DEV,
            (SubnetKind::Natted, false, false) => &EST6,
            (SubnetKind::Natted, false, true) => &EST6_DEV,
            (_, true, false) => &RT4,
            (_, true, true) => &RT4_DEV,
            (_, false, false) => &RT6,
            (_, false, true) => &RT6_DEV,
        };
        let from = match (v4, dev.is_some()) {
            (true, false) => &SRC4,
            (true, true) => &SRC4_DEV,
            (false, false) => &SRC6,
            (false, true) => &SRC6_DEV,
        };
        for set in [to, from] {
            let mut key = vec![br()];
            key.extend(dev.map(|d| Field::Ifname(d.clone())));
            key.push(Field::Net(subnet));
            add(set, key, None);
        }
    }
    // libvirt only adds the ip6 rejects when the network has IPv6.
    add(&REJ4, vec![br()], None);
    if fw.has_ipv6() {
        add(&REJ6, vec![br()], None);
    }

    let mut svc = |on: bool, protos: &[Proto], port_in: u16, port_out: u16| {
        if on {
            for &p in protos {
                for (set, port) in [(&SVC_IN, port_in), (&SVC_OUT, port_out)] {
                    add(set, vec![br(), Field::Proto(p), Field::Port(port)], None);
                }
            }
        }
    };
    svc(fw.dns, &[Proto::Udp, Proto::Tcp], 53, 53);
    svc(fw.dhcpv4, &[Proto::Udp, Proto::Tcp], 67, 68);
    svc(fw.tftp, &[Proto::Udp], 69, 69);
    svc(fw.dhcpv6, &[Proto::Udp], 547, 546);

    let nat_keys = fw.nat_keys();
    let custom = fw.nat_addresses.is_some() || fw.nat_ports.is_some();
    let chain = (custom && !nat_keys.is_empty()).then(|| Chain {
        name: nat_chain(&fw.bridge),
        rules: nat_keys.iter().flat_map(|s| nat_rules(fw, s)).collect(),
    });
    for subnet in &nat_keys {
        let v4 = matches!(subnet, IpNet::V4(_));
        if let Some(chain) = &chain {
            let map = if v4 { &NAT4_CUSTOM } else { &NAT6_CUSTOM };
            add(map, vec![Field::Net(*subnet)], Some(chain.name.clone()));
            continue;
        }
        let (skip, nat) = match (v4, dev) {
            (true, None) => (&NAT4_SKIP, &NAT4),
            (true, Some(_)) => (&NAT4_SKIP, &NAT4_DEV),
            (false, None) => (&NAT6_SKIP, &NAT6),
            (false, Some(_)) => (&NAT6_SKIP, &NAT6_DEV),
        };
        // Overlapping destinations (a subnet holding the broadcast address)
        // would be refused; all three only skip NAT, so the largest suffices.
        let dests = if v4 {
            vec![net("224.0.0.0/24"), net("255.255.255.255/32"), *subnet]
        } else {
            vec![net("ff02::/16"), *subnet]
        };
        for d in maximal(dests.into_iter()) {
            add(skip, vec![Field::Net(*subnet), Field::Net(d)], None);
        }
        let mut key = vec![Field::Net(*subnet)];
        key.extend(dev.map(|d| Field::Ifname(d.clone())));
        add(nat, key, None);
    }

    let mut groups: Vec<Group> = Vec::new();
    for set in SETS {
        let (mine, rest): (Vec<_>, Vec<_>) =
            elems.into_iter().partition(|(s, _)| s.name == set.name);
        elems = rest;
        let mine = mine.into_iter().map(|(_, e)| e);
        if set.interval && !set.concat() {
            groups.extend(mine.map(|e| Group {
                set,
                elements: vec![e],
            }));
        } else if mine.len() > 0 {
            groups.push(Group {
                set,
                elements: mine.collect(),
            });
        }
    }

    let header = format!(
        "network \"{}\": bridge {}, {}",
        comment_text(&fw.name),
        fw.bridge,
        fw.mode.name()
    );
    Plan {
        header,
        groups,
        chain,
    }
}

/// libvirt's five NAT rules for one subnet, in its order (four for IPv6,
/// which has no broadcast), for a custom-NAT network's chain.
/// `<nat><address>` only applies to IPv4.
fn nat_rules(fw: &FwNetwork, subnet: &IpNet) -> Vec<Rule> {
    let (multicast, broadcast) = match subnet {
        IpNet::V4(_) => (net("224.0.0.0/24"), Some(net("255.255.255.255/32"))),
        IpNet::V6(_) => (net("ff02::/16"), None),
    };
    let ports = fw.nat_ports.unwrap_or((1024, 65535));
    let snat = match subnet {
        IpNet::V4(_) => fw.nat_addresses,
        IpNet::V6(_) => None,
    };
    let action = |with_ports: bool| {
        let ports = with_ports.then_some(ports);
        match snat {
            Some(addrs) => Action::Snat { addrs, ports },
            None => Action::Masquerade { ports },
        }
    };
    let oif_dev = || fw.forward_dev.clone().map(Match::Oifname);
    let local = |dst: IpNet, host: bool| {
        let mut m: Vec<Match> = oif_dev().into_iter().collect();
        m.push(addr(Dir::Saddr, false, *subnet));
        m.push(Match::Addr {
            dir: Dir::Daddr,
            negate: false,
            net: dst,
            host,
        });
        Rule {
            matches: m,
            action: Action::Return,
        }
    };
    let outbound = |proto: Option<Proto>, with_ports: bool| {
        let mut m: Vec<Match> = proto.map(Match::L4proto).into_iter().collect();
        m.push(addr(Dir::Saddr, false, *subnet));
        m.push(addr(Dir::Daddr, true, *subnet));
        m.extend(oif_dev());
        Rule {
            matches: m,
            action: action(with_ports),
        }
    };
    let mut rules = vec![local(multicast, false)];
    if let Some(bc) = broadcast {
        rules.push(local(bc, true));
    }
    rules.push(outbound(Some(Proto::Tcp), true));
    rules.push(outbound(Some(Proto::Udp), true));
    rules.push(outbound(None, false));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FwMode, test_net};
    use crate::render_add;

    #[test]
    fn nested_routed_subnets_are_merged() {
        let mut n = test_net("a");
        n.mode = FwMode::Route;
        n.subnets = ["10.0.0.0/24", "10.1.0.0/24", "10.0.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let s = render_add("kvnet", &n);
        assert!(
            s.contains(r#"rt4 { "a" . 10.1.0.0/24, "a" . 10.0.0.0/16 }"#),
            "{s}"
        );
    }

    #[test]
    fn ipv6_flag_alone_adds_the_ipv6_reject() {
        let rejects = |n: &FwNetwork| -> Vec<&str> {
            plan(n)
                .groups
                .iter()
                .filter(|g| g.set.name.starts_with("rej"))
                .map(|g| g.set.name)
                .collect()
        };
        let mut n = test_net("virbr0");
        assert_eq!(rejects(&n), ["rej4"]);
        // <network ipv6='yes'> without an IPv6 address.
        n.ipv6 = true;
        assert_eq!(rejects(&n), ["rej4", "rej6"]);
    }

    #[test]
    fn skip_elements_never_overlap() {
        let mut n = test_net("virbr0");
        n.subnets = vec!["255.255.255.0/24".parse().unwrap()];
        let s = render_add("kvnet", &n);
        assert!(
            s.contains(
                "nat4_skip { 255.255.255.0/24 . 224.0.0.0/24, 255.255.255.0/24 . 255.255.255.0/24 }"
            ),
            "{s}"
        );
    }

    #[test]
    fn host_bits_are_cleared() {
        let mut n = test_net("virbr0");
        n.subnets = vec!["192.168.122.1/24".parse().unwrap()];
        let s = render_add("kvnet", &n);
        assert!(s.contains(r#""virbr0" . 192.168.122.0/24"#));
        assert!(!s.contains("192.168.122.1/24"));
    }

    #[test]
    fn network_names_cannot_break_out_of_a_comment() {
        let mut n = test_net("virbr0");
        n.name = "odd \"name\"\nline é".into();
        assert_eq!(
            plan(&n).header,
            "network \"odd 'name'?line ?\": bridge virbr0, nat"
        );
    }
}
