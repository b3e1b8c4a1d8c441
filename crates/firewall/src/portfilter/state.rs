//! What the port filter's sets hold, derived from the filtered ports and the address
//! bindings the daemon knows.

use ipnet::Ipv6Net;
use kvnet_model::MacAddr;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A port whose frames are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPort {
    pub ifname: String,
    /// The guest's MAC; `None`: the port's first frame tells it, and it is locked then.
    pub mac: Option<MacAddr>,
}

/// Everything the filter is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput {
    pub ports: Vec<FilterPort>,
    /// MACs of registered ports, filtered or not: a learning port may not take one
    /// (nor one another port learned). A lease's or static host's MAC is not one: the
    /// guest behind it may come back on a new device that must learn it again.
    pub known_macs: Vec<MacAddr>,
    /// The addresses each guest (by MAC) may send from.
    pub bindings: Vec<(MacAddr, IpAddr)>,
}

/// The elements of the filter's sets (`na6` mirrors `addr6`; `drops` and the counters
/// follow `filtered`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterState {
    pub filtered: BTreeSet<String>,
    pub learn: BTreeSet<String>,
    pub mac: BTreeSet<(String, MacAddr)>,
    pub macs: BTreeSet<MacAddr>,
    pub addr4: BTreeSet<(MacAddr, Ipv4Addr)>,
    pub addr6: BTreeSet<(MacAddr, Ipv6Addr)>,
}

/// Why a port cannot be filtered by name: nft must be able to quote it.
fn unquotable(ifname: &str) -> Option<&'static str> {
    if ifname.is_empty() || ifname.len() > 15 {
        Some("is not an interface name of 1 to 15 bytes")
    } else if ifname
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control() || c.is_whitespace())
    {
        Some("has characters nft cannot quote")
    } else {
        None
    }
}

impl FilterState {
    /// The elements for `input`; ports that cannot be named in a rule are left out,
    /// each with a message saying why.
    pub fn from_input(input: &FilterInput) -> (FilterState, Vec<String>) {
        let mut s = FilterState::default();
        let mut refused = Vec::new();
        for p in &input.ports {
            if let Some(why) = unquotable(&p.ifname) {
                refused.push(format!(
                    "port '{}' is not filtered: its name {why}",
                    p.ifname
                ));
                continue;
            }
            s.filtered.insert(p.ifname.clone());
            match p.mac {
                Some(m) => {
                    s.mac.insert((p.ifname.clone(), m));
                    s.macs.insert(m);
                }
                None => {
                    s.learn.insert(p.ifname.clone());
                }
            }
        }
        s.macs.extend(input.known_macs.iter().copied());
        for &(m, a) in &input.bindings {
            match a {
                IpAddr::V4(a) => {
                    s.addr4.insert((m, a));
                }
                IpAddr::V6(a) => {
                    s.addr6.insert((m, a));
                }
            }
        }
        (s, refused)
    }
}

/// The SLAAC address a guest with `mac` forms in `prefix` (a /64) from its modified
/// EUI-64 interface identifier (RFC 4291 appendix A); `None` for other prefix lengths.
pub fn eui64(mac: MacAddr, prefix: Ipv6Net) -> Option<Ipv6Addr> {
    if prefix.prefix_len() != 64 {
        return None;
    }
    let m = mac.0;
    let iid = [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
    let mut o = prefix.network().octets();
    o[8..].copy_from_slice(&iid);
    Some(Ipv6Addr::from(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ports_bindings_and_known_macs_become_elements() {
        let (a, b) = (mac("52:54:00:00:00:0a"), mac("52:54:00:00:00:0b"));
        let other = mac("52:54:00:00:00:0c");
        let input = FilterInput {
            ports: vec![
                FilterPort {
                    ifname: "vnet0".into(),
                    mac: Some(a),
                },
                FilterPort {
                    ifname: "tap1".into(),
                    mac: None,
                },
                FilterPort {
                    ifname: "bad\"name".into(),
                    mac: None,
                },
            ],
            known_macs: vec![other],
            bindings: vec![
                (a, "10.0.0.10".parse().unwrap()),
                (b, "10.0.0.11".parse().unwrap()),
                (a, "fd00::a".parse().unwrap()),
            ],
        };
        let (s, refused) = FilterState::from_input(&input);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("bad\"name"), "{refused:?}");
        assert_eq!(
            s.filtered,
            ["tap1", "vnet0"].map(String::from).into_iter().collect()
        );
        assert_eq!(s.learn, ["tap1".to_string()].into_iter().collect());
        assert_eq!(s.mac, [("vnet0".to_string(), a)].into_iter().collect());
        assert_eq!(s.macs, [a, other].into_iter().collect());
        assert_eq!(s.addr4.len(), 2);
        assert_eq!(
            s.addr6,
            [(a, "fd00::a".parse().unwrap())].into_iter().collect()
        );
    }

    #[test]
    fn names_nft_cannot_quote_are_refused() {
        assert!(unquotable("vnet0").is_none());
        assert!(unquotable("veth.a-b@x").is_none());
        for bad in ["", "a b", "a\\b", "0123456789abcdef", "a\tb"] {
            assert!(unquotable(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn eui64_addresses() {
        let p: Ipv6Net = "fd00:1::/64".parse().unwrap();
        assert_eq!(
            eui64(mac("52:54:00:12:34:56"), p),
            Some("fd00:1::5054:ff:fe12:3456".parse().unwrap())
        );
        // The universal/local bit flips both ways.
        assert_eq!(
            eui64(mac("00:16:3e:00:00:01"), p),
            Some("fd00:1::216:3eff:fe00:1".parse().unwrap())
        );
        assert_eq!(
            eui64(mac("52:54:00:12:34:56"), "fd00::/48".parse().unwrap()),
            None
        );
    }
}
