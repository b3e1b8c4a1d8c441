//! The port filter as nft scripts: the whole table, and the changes from one state to
//! another (elements and counters only, one transaction).

use super::state::FilterState;
use kvnet_model::MacAddr;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The port filter's table (family `bridge`) when none is given.
pub const PORT_FILTER_TABLE: &str = "kvnet";

/// Told apart from a table of another layout, which is rebuilt, by this empty set (nft
/// 1.0.6's JSON listing leaves out table comments).
pub(super) const LAYOUT_MARK: &str = "layout_1";

/// The fixed part: sets and chains, the same whatever the ports.
fn skeleton(table: &str) -> String {
    format!(
        r#"table bridge {table} {{
	set {LAYOUT_MARK} {{ type ifname; }}
	set filtered {{ type ifname; }}
	set learn {{ type ifname; }}
	set learned {{ type ifname; flags dynamic; }}
	set mac {{ type ifname . ether_addr; flags dynamic; }}
	set macs {{ type ether_addr; flags dynamic; }}
	set addr4 {{ type ether_addr . ipv4_addr; }}
	set addr6 {{ type ether_addr . ipv6_addr; }}
	set na6 {{ typeof ether saddr . @th,64,128; }}
	map drops {{ type ifname : counter; }}
	chain prerouting {{
		type filter hook prerouting priority -300; policy accept;
		iifname @filtered jump guest
	}}
	chain guest {{
		iifname @learn iifname != @learned ether saddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 ether saddr != 00:00:00:00:00:00 ether saddr != @macs add @learned {{ iifname }} add @mac {{ iifname . ether saddr }} add @macs {{ ether saddr }}
		iifname . ether saddr != @mac goto spoofed
		ether type vmap {{ arp : goto arp_from, ip : goto v4_from, ip6 : goto v6_from, 0x8035 : accept }}
		goto spoofed
	}}
	chain arp_from {{
		arp htype != 1 goto spoofed
		arp ptype != ip goto spoofed
		arp hlen != 6 goto spoofed
		arp plen != 4 goto spoofed
		iifname . arp saddr ether != @mac goto spoofed
		arp saddr ip 0.0.0.0 accept
		arp saddr ether . arp saddr ip != @addr4 goto spoofed
	}}
	chain v4_from {{
		udp sport 67 goto spoofed
		ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
		ether saddr . ip saddr != @addr4 goto spoofed
	}}
	chain v6_from {{
		icmpv6 type {{ nd-router-advert, nd-redirect }} goto spoofed
		udp sport 547 goto spoofed
		icmpv6 type nd-neighbor-advert ether saddr . @th,64,128 != @na6 @th,64,16 & 0xffc0 != 0xfe80 goto spoofed
		ip6 saddr :: icmpv6 type {{ nd-neighbor-solicit, mld-listener-report, mld2-listener-report }} accept
		ip6 saddr fe80::/10 accept
		ether saddr . ip6 saddr != @addr6 goto spoofed
	}}
	chain spoofed {{
		counter name iifname map @drops
		drop
	}}
}}
"#
    )
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// `add`/`delete` lines for the elements of one set, in batches nft takes at once.
fn elements<T>(
    out: &mut String,
    verb: &str,
    table: &str,
    set: &str,
    items: &[T],
    f: impl Fn(&T) -> String,
) {
    for chunk in items.chunks(512) {
        let list: Vec<String> = chunk.iter().map(&f).collect();
        let _ = writeln!(
            out,
            "{verb} element bridge {table} {set} {{ {} }}",
            list.join(", ")
        );
    }
}

fn v6_int(a: &std::net::Ipv6Addr) -> String {
    format!("0x{:032x}", u128::from(*a))
}

/// Lines that take `state`'s elements in (`add`) or out (`delete`).
fn state_lines(out: &mut String, verb: &str, table: &str, s: &FilterState) {
    let v = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    elements(out, verb, table, "filtered", &v(&s.filtered), |n| q(n));
    elements(out, verb, table, "learn", &v(&s.learn), |n| q(n));
    let mac: Vec<_> = s.mac.iter().collect();
    elements(out, verb, table, "mac", &mac, |(n, m)| {
        format!("{} . {m}", q(n))
    });
    let macs: Vec<_> = s.macs.iter().collect();
    elements(out, verb, table, "macs", &macs, |m| m.to_string());
    let a4: Vec<_> = s.addr4.iter().collect();
    elements(out, verb, table, "addr4", &a4, |(m, a)| {
        format!("{m} . {a}")
    });
    let a6: Vec<_> = s.addr6.iter().collect();
    elements(out, verb, table, "addr6", &a6, |(m, a)| {
        format!("{m} . {a}")
    });
    elements(out, verb, table, "na6", &a6, |(m, a)| {
        format!("{m} . {}", v6_int(a))
    });
    elements(out, verb, table, "drops", &v(&s.filtered), |n| {
        format!("{} : {}", q(n), q(&counter_name(n)))
    });
}

/// The name of a port's counter: nft takes only identifiers there, so characters
/// other than letters and digits are written `_XX` (hex), which keeps names distinct.
pub fn counter_name(ifname: &str) -> String {
    let mut out = String::from("port_");
    for b in ifname.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

fn counters(out: &mut String, verb: &str, table: &str, names: &BTreeSet<String>) {
    for n in names {
        let _ = writeln!(out, "{verb} counter bridge {table} {}", counter_name(n));
    }
}

/// The whole table with `state` in it, replacing any table of that name (one
/// transaction: frames are checked by the old rules or the new ones, never neither).
/// MACs ports had learned are lost: they learn again.
pub fn render_table(table: &str, state: &FilterState) -> String {
    let mut out = format!("table bridge {table} {{}}\ndelete table bridge {table}\n");
    out += &skeleton(table);
    counters(&mut out, "add", table, &state.filtered);
    state_lines(&mut out, "add", table, state);
    out
}

fn minus<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
    a.difference(b).cloned().collect()
}

/// The changes from `old` to `new`, `None` when there are none. `forget` are MACs ports
/// learned that go too (a port no longer filtered, or no longer learning, or whose
/// device was re-created): its `learned` mark, its `mac` element and the MAC in `macs`,
/// so that the guest can learn it again on its next device.
pub fn render_changes(
    table: &str,
    old: &FilterState,
    new: &FilterState,
    forget: &[(String, MacAddr)],
) -> Option<String> {
    let gone = FilterState {
        filtered: minus(&old.filtered, &new.filtered),
        learn: minus(&old.learn, &new.learn),
        mac: minus(&old.mac, &new.mac),
        macs: minus(&old.macs, &new.macs),
        addr4: minus(&old.addr4, &new.addr4),
        addr6: minus(&old.addr6, &new.addr6),
    };
    let came = FilterState {
        filtered: minus(&new.filtered, &old.filtered),
        learn: minus(&new.learn, &old.learn),
        mac: minus(&new.mac, &old.mac),
        macs: minus(&new.macs, &old.macs),
        addr4: minus(&new.addr4, &old.addr4),
        addr6: minus(&new.addr6, &old.addr6),
    };
    let mut out = String::new();
    // Learned elements are not in `old`: deleted unless a static one replaces them.
    let forget_mac: Vec<_> = forget.iter().filter(|e| !gone.mac.contains(*e)).collect();
    let mut forget_ports: Vec<&String> = forget.iter().map(|(n, _)| n).collect();
    forget_ports.dedup();
    elements(&mut out, "delete", table, "learned", &forget_ports, |n| {
        q(n)
    });
    elements(&mut out, "delete", table, "mac", &forget_mac, |(n, m)| {
        format!("{} . {m}", q(n))
    });
    let mut forget_macs: Vec<&MacAddr> = forget
        .iter()
        .map(|(_, m)| m)
        .filter(|m| !new.macs.contains(*m) && !gone.macs.contains(*m))
        .collect();
    forget_macs.sort();
    forget_macs.dedup();
    elements(&mut out, "delete", table, "macs", &forget_macs, |m| {
        m.to_string()
    });
    state_lines(&mut out, "delete", table, &gone);
    counters(&mut out, "delete", table, &gone.filtered);
    counters(&mut out, "add", table, &came.filtered);
    state_lines(&mut out, "add", table, &came);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portfilter::state::{FilterInput, FilterPort};

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn state(ports: &[(&str, Option<&str>)], bind: &[(&str, &str)]) -> FilterState {
        let input = FilterInput {
            ports: ports
                .iter()
                .map(|(n, m)| FilterPort {
                    ifname: n.to_string(),
                    mac: m.map(mac),
                })
                .collect(),
            known_macs: Vec::new(),
            bindings: bind
                .iter()
                .map(|(m, a)| (mac(m), a.parse().unwrap()))
                .collect(),
        };
        FilterState::from_input(&input).0
    }

    const A: &str = "52:54:00:00:00:0a";

    #[test]
    fn the_table_holds_every_element() {
        let s = state(
            &[("vnet0", Some(A)), ("tap1", None)],
            &[(A, "10.0.0.10"), (A, "fd00::a")],
        );
        let t = render_table("kvnet", &s);
        assert!(
            t.starts_with("table bridge kvnet {}\ndelete table bridge kvnet\n"),
            "{t}"
        );
        for line in [
            "add counter bridge kvnet port_tap1",
            "add element bridge kvnet filtered { \"tap1\", \"vnet0\" }",
            "add element bridge kvnet learn { \"tap1\" }",
            "add element bridge kvnet mac { \"vnet0\" . 52:54:00:00:00:0a }",
            "add element bridge kvnet addr4 { 52:54:00:00:00:0a . 10.0.0.10 }",
            "add element bridge kvnet addr6 { 52:54:00:00:00:0a . fd00::a }",
            "add element bridge kvnet na6 { 52:54:00:00:00:0a . 0xfd00000000000000000000000000000a }",
            "add element bridge kvnet drops { \"tap1\" : \"port_tap1\", \"vnet0\" : \"port_vnet0\" }",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line}:\n{t}");
        }
    }

    #[test]
    fn changes_touch_only_what_differs_and_counters_follow_ports() {
        let old = state(&[("vnet0", Some(A))], &[(A, "10.0.0.10")]);
        assert_eq!(render_changes("kvnet", &old, &old, &[]), None);
        let new = state(&[("vnet1", None)], &[(A, "10.0.0.11")]);
        let c = render_changes("kvnet", &old, &new, &[]).unwrap();
        let want = "\
delete element bridge kvnet filtered { \"vnet0\" }
delete element bridge kvnet mac { \"vnet0\" . 52:54:00:00:00:0a }
delete element bridge kvnet macs { 52:54:00:00:00:0a }
delete element bridge kvnet addr4 { 52:54:00:00:00:0a . 10.0.0.10 }
delete element bridge kvnet drops { \"vnet0\" : \"port_vnet0\" }
delete counter bridge kvnet port_vnet0
add counter bridge kvnet port_vnet1
add element bridge kvnet filtered { \"vnet1\" }
add element bridge kvnet learn { \"vnet1\" }
add element bridge kvnet addr4 { 52:54:00:00:00:0a . 10.0.0.11 }
add element bridge kvnet drops { \"vnet1\" : \"port_vnet1\" }
";
        assert_eq!(c, want);
    }

    #[test]
    fn counter_names_are_identifiers_and_distinct() {
        assert_eq!(counter_name("vnet0"), "port_vnet0");
        assert_eq!(counter_name("veth.a-b_c"), "port_veth_2ea_2db_5fc");
        assert_ne!(counter_name("a_2e"), counter_name("a."));
    }

    #[test]
    fn forgotten_learned_macs_go_first() {
        let s = state(&[("tap1", None)], &[]);
        let c = render_changes("kvnet", &s, &s, &[("tap1".into(), mac(A))]).unwrap();
        assert_eq!(
            c,
            "delete element bridge kvnet learned { \"tap1\" }\n\
             delete element bridge kvnet mac { \"tap1\" . 52:54:00:00:00:0a }\n\
             delete element bridge kvnet macs { 52:54:00:00:00:0a }\n"
        );
    }
}
