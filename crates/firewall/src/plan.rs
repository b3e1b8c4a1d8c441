//! The planner: what one network adds to the table. A [`Plan`] is set
//! elements grouped by set, plus a chain for custom NAT, kept as data so that
//! the nft script ([`crate::render`]) and the netlink batch ([`crate::nl`])
//! are derived from the same description and cannot drift apart.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

pub(crate) use crate::model::Proto;
use crate::model::{FwForward, FwNetwork, SubnetKind, maximal};
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
    /// A forward map element's value (guest address . guest port).
    pub(crate) data: Vec<Field>,
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
        elems.push((
            set,
            Element {
                key,
                jump,
                data: Vec::new(),
            },
        ));
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

    elems.extend(forward_elements(&fw.bridge, &fw.forwards));

    let header = format!(
        "network \"{}\": bridge {}, {}",
        comment_text(&fw.name),
        fw.bridge,
        fw.mode.name()
    );
    Plan {
        header,
        groups: group(elems),
        chain,
    }
}

/// Elements in groups, by set in [`SETS`] order.
fn group(mut elems: Vec<(&'static SetDef, Element)>) -> Vec<Group> {
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
        } else {
            // A netlink attribute holds at most 64 KiB: thousands of forwards take
            // several messages (still one transaction).
            let mut mine = mine.peekable();
            while mine.peek().is_some() {
                groups.push(Group {
                    set,
                    elements: mine.by_ref().take(MAX_GROUP).collect(),
                });
            }
        }
    }
    groups
}

/// The most elements one `add element` statement (one netlink message) carries.
const MAX_GROUP: usize = 256;

/// The map elements of port forwards into `bridge`'s network, a host port
/// each, and the guest destinations the forward chain admits (each once).
fn forward_elements(bridge: &str, fwds: &[FwForward]) -> Vec<(&'static SetDef, Element)> {
    let mut out = map_elements(fwds);
    out.extend(dest_elements(bridge, &destinations(fwds)));
    out
}

type Dest = (IpAddr, Proto, u16);

/// The guest ports `fwds` reach, each once.
fn destinations(fwds: &[FwForward]) -> BTreeSet<Dest> {
    fwds.iter()
        .flat_map(|f| f.port_pairs().map(move |(_, gp)| (f.guest, f.proto, gp)))
        .collect()
}

fn map_elements(fwds: &[FwForward]) -> Vec<(&'static SetDef, Element)> {
    let mut out = Vec::new();
    for f in fwds {
        for (port, guest_port) in f.port_pairs() {
            let (set, key) = match (f.address, f.guest.is_ipv4()) {
                (Some(a), true) => (
                    &FWD4,
                    vec![Field::Proto(f.proto), host(a), Field::Port(port)],
                ),
                (Some(a), false) => (
                    &FWD6,
                    vec![Field::Proto(f.proto), host(a), Field::Port(port)],
                ),
                (None, true) => (&FWD4_ANY, vec![Field::Proto(f.proto), Field::Port(port)]),
                (None, false) => (&FWD6_ANY, vec![Field::Proto(f.proto), Field::Port(port)]),
            };
            let data = vec![host(f.guest), Field::Port(guest_port)];
            out.push((
                set,
                Element {
                    key,
                    jump: None,
                    data,
                },
            ));
        }
    }
    out
}

fn dest_elements<'a>(
    bridge: &str,
    dests: impl IntoIterator<Item = &'a Dest>,
) -> Vec<(&'static SetDef, Element)> {
    dests
        .into_iter()
        .map(|&(guest, proto, port)| {
            let key = vec![
                Field::Ifname(bridge.to_string()),
                host(guest),
                Field::Proto(proto),
                Field::Port(port),
            ];
            let set = if guest.is_ipv4() { &FWDST4 } else { &FWDST6 };
            (
                set,
                Element {
                    key,
                    jump: None,
                    data: Vec::new(),
                },
            )
        })
        .collect()
}

fn host(a: IpAddr) -> Field {
    Field::Net(IpNet::from(a))
}

/// What changes in the table when `bridge`'s forwards go from `old` to `new`:
/// the elements to delete, then those to add, grouped by set. Only the forwards
/// that changed are rendered, so the cost follows the change, not the table; what
/// both lists have stays, so a forward that did not change is never interrupted.
pub(crate) fn forward_delta(
    bridge: &str,
    old: &[FwForward],
    new: &[FwForward],
) -> (Vec<Group>, Vec<Group>) {
    let old_set: HashSet<&FwForward> = old.iter().collect();
    let new_set: HashSet<&FwForward> = new.iter().collect();
    let gone: Vec<FwForward> = old
        .iter()
        .filter(|f| !new_set.contains(f))
        .cloned()
        .collect();
    let added: Vec<FwForward> = new
        .iter()
        .filter(|f| !old_set.contains(f))
        .cloned()
        .collect();
    let mut del = map_elements(&gone);
    let mut add = map_elements(&added);
    // A host port whose guest changed is deleted, then added with its new value.
    if !gone.is_empty() || !added.is_empty() {
        let (was, now) = (destinations(old), destinations(new));
        del.extend(dest_elements(bridge, was.difference(&now)));
        add.extend(dest_elements(bridge, now.difference(&was)));
    }
    (group(del), group(add))
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
    use crate::model::{FwMode, test_forward, test_net};
    use crate::{render_add, render_forwards};

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

    #[test]
    fn forwards_are_one_map_element_per_host_port() {
        let mut n = test_net("virbr0");
        n.forwards = vec![
            test_forward((8080, 8081), "192.168.122.10", 80),
            test_forward((2222, 2222), "192.168.122.10", 22),
        ];
        n.forwards[1].address = Some("198.51.100.1".parse().unwrap());
        n.forwards[1].proto = Proto::Udp;
        let s = render_add("kvnet", &n);
        assert!(
            s.contains(
                "add element inet kvnet fwd4 { udp . 198.51.100.1 . 2222 : 192.168.122.10 . 22 }\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "add element inet kvnet fwd4_any { tcp . 8080 : 192.168.122.10 . 80, \
                 tcp . 8081 : 192.168.122.10 . 81 }\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "add element inet kvnet fwdst4 { \"virbr0\" . 192.168.122.10 . tcp . 80, \
                 \"virbr0\" . 192.168.122.10 . tcp . 81, \"virbr0\" . 192.168.122.10 . udp . 22 }\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn a_guest_port_two_forwards_reach_is_admitted_once() {
        let fwds = [
            test_forward((80, 80), "192.168.122.10", 80),
            test_forward((8080, 8080), "192.168.122.10", 80),
        ];
        let elems = forward_elements("virbr0", &fwds);
        let dests = elems.iter().filter(|(s, _)| s.name == "fwdst4").count();
        assert_eq!(dests, 1);
    }

    #[test]
    fn forward_changes_touch_only_what_changed() {
        let a = test_forward((8080, 8080), "192.168.122.10", 80);
        let b = test_forward((2222, 2222), "192.168.122.10", 22);
        let mut moved = b.clone();
        moved.guest = "192.168.122.11".parse().unwrap();
        let s = render_forwards("kvnet", "virbr0", &[a.clone(), b], &[a, moved]);
        assert_eq!(
            s,
            "delete element inet kvnet fwd4_any { tcp . 2222 }\n\
             delete element inet kvnet fwdst4 { \"virbr0\" . 192.168.122.10 . tcp . 22 }\n\
             add element inet kvnet fwd4_any { tcp . 2222 : 192.168.122.11 . 22 }\n\
             add element inet kvnet fwdst4 { \"virbr0\" . 192.168.122.11 . tcp . 22 }\n"
        );
        assert_eq!(render_forwards("kvnet", "virbr0", &[], &[]), "");
    }

    #[test]
    fn ipv6_forwards_go_to_the_ipv6_maps() {
        let mut n = test_net("virbr0");
        n.subnets.push("fd00:1::/64".parse().unwrap());
        n.nat_ipv6 = true;
        let mut f = test_forward((443, 443), "fd00:1::5", 8443);
        f.address = Some("2001:db8::1".parse().unwrap());
        n.forwards = vec![f];
        let s = render_add("kvnet", &n);
        assert!(
            s.contains("fwd6 { tcp . 2001:db8::1 . 443 : fd00:1::5 . 8443 }"),
            "{s}"
        );
        assert!(
            s.contains("fwdst6 { \"virbr0\" . fd00:1::5 . tcp . 8443 }"),
            "{s}"
        );
    }

    #[test]
    fn ten_thousand_forwards_fit_in_netlink_messages() {
        let mut n = test_net("virbr0");
        n.subnets = vec!["10.0.0.0/16".parse().unwrap()];
        n.forwards = (0..10_000u16)
            .map(|i| {
                let g = format!("10.0.{}.{}", i / 250, i % 250 + 1);
                test_forward((20_000 + i, 20_000 + i), &g, 80)
            })
            .collect();
        let p = plan(&n);
        let fwd: usize = p
            .groups
            .iter()
            .filter(|g| g.set.name == "fwd4_any")
            .map(|g| g.elements.len())
            .sum();
        assert_eq!(fwd, 10_000);
        assert!(p.groups.iter().all(|g| g.elements.len() <= MAX_GROUP));
        // Encodes without an attribute overflowing (the encoder panics if one does).
        let batch = crate::encode_add_new("kvnet", &n, 1);
        assert!(batch.len() > 10_000 * 16);
    }
}
