//! A live port filter table, read from `nft -j list table bridge NAME`: the elements
//! kvnet put in, the MACs ports learned, each port's dropped-frame counter.

use super::render::{LAYOUT_MARK, counter_name};
use super::state::FilterState;
use kvnet_model::MacAddr;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// What the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// The table has this kvnet's layout (its mark), so its rules are known.
    pub current: bool,
    /// The elements, learned ones excluded: `mac` holds only non-learning ports'.
    pub state: FilterState,
    /// The MACs learning ports took: `(port, MAC)`.
    pub learned: Vec<(String, MacAddr)>,
    /// Dropped frames per port: `(packets, bytes)`.
    pub drops: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingError(String);

impl fmt::Display for ListingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable port filter listing: {}", self.0)
    }
}

impl std::error::Error for ListingError {}

/// An element's value: plain, or wrapped as `{"elem": {"val": …}}` when it has
/// attributes (a timeout, a comment).
fn value(e: &Value) -> &Value {
    e.get("elem").and_then(|x| x.get("val")).unwrap_or(e)
}

fn text(v: &Value) -> Result<&str, ListingError> {
    v.as_str()
        .ok_or_else(|| ListingError(format!("expected a string, got {v}")))
}

fn pair(v: &Value) -> Result<(&str, &str), ListingError> {
    match value(v)
        .get("concat")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([a, b]) => Ok((text(a)?, text(b)?)),
        _ => Err(ListingError(format!("expected a pair, got {v}"))),
    }
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, ListingError> {
    s.parse()
        .map_err(|_| ListingError(format!("'{s}' is not {what}")))
}

/// Reads `json` (nft's listing of the table).
pub fn parse_listing(json: &str) -> Result<Installed, ListingError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| ListingError(e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| ListingError("no 'nftables' array".into()))?;
    let mut out = Installed::default();
    let mut macs = Vec::new();
    let mut counters = BTreeMap::new();
    for item in items {
        if let Some(c) = item.get("counter") {
            let name = text(&c["name"])?.to_string();
            let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
            counters.insert(name, (n("packets"), n("bytes")));
            continue;
        }
        let Some(set) = item.get("set") else { continue };
        let name = set.get("name").and_then(Value::as_str).unwrap_or_default();
        if name == LAYOUT_MARK {
            out.current = true;
        }
        let empty = Vec::new();
        let elems = set.get("elem").and_then(Value::as_array).unwrap_or(&empty);
        let s = &mut out.state;
        for e in elems {
            match name {
                "filtered" => {
                    s.filtered.insert(text(value(e))?.to_string());
                }
                "learn" => {
                    s.learn.insert(text(value(e))?.to_string());
                }
                "mac" => {
                    let (p, m) = pair(e)?;
                    macs.push((p.to_string(), parse::<MacAddr>(m, "a MAC address")?));
                }
                "macs" => {
                    s.macs.insert(parse(text(value(e))?, "a MAC address")?);
                }
                "addr4" => {
                    let (m, a) = pair(e)?;
                    s.addr4
                        .insert((parse(m, "a MAC address")?, parse(a, "an IPv4 address")?));
                }
                "addr6" => {
                    let (m, a) = pair(e)?;
                    s.addr6
                        .insert((parse(m, "a MAC address")?, parse(a, "an IPv6 address")?));
                }
                _ => {}
            }
        }
    }
    // A learning port's MAC is one it learned; the others' are kvnet's.
    for (p, m) in macs {
        if out.state.learn.contains(&p) {
            out.learned.push((p, m));
        } else {
            out.state.mac.insert((p, m));
        }
    }
    // Counters are named after their ports.
    out.drops = out
        .state
        .filtered
        .iter()
        .filter_map(|p| counters.get(&counter_name(p)).map(|c| (p.clone(), *c)))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "bridge", "name": "kvnet", "handle": 2}},
 {"set": {"family": "bridge", "name": "layout_1", "table": "kvnet", "type": "ifname"}},
 {"counter": {"family": "bridge", "name": "port_vnet0", "table": "kvnet", "handle": 7, "packets": 3, "bytes": 180}},
 {"counter": {"family": "bridge", "name": "port_tap1", "table": "kvnet", "handle": 8, "packets": 0, "bytes": 0}},
 {"set": {"family": "bridge", "name": "filtered", "table": "kvnet", "type": "ifname", "elem": ["vnet0", "tap1"]}},
 {"set": {"family": "bridge", "name": "learn", "table": "kvnet", "type": "ifname", "elem": ["tap1"]}},
 {"set": {"family": "bridge", "name": "mac", "table": "kvnet", "type": ["ifname", "ether_addr"],
   "elem": [{"concat": ["vnet0", "52:54:00:00:00:0a"]}, {"elem": {"val": {"concat": ["tap1", "52:54:00:00:00:0b"]}}}]}},
 {"set": {"family": "bridge", "name": "macs", "table": "kvnet", "type": "ether_addr", "elem": ["52:54:00:00:00:0a"]}},
 {"set": {"family": "bridge", "name": "addr4", "table": "kvnet", "type": ["ether_addr", "ipv4_addr"],
   "elem": [{"concat": ["52:54:00:00:00:0a", "10.0.0.5"]}]}},
 {"set": {"family": "bridge", "name": "addr6", "table": "kvnet", "type": ["ether_addr", "ipv6_addr"]}},
 {"map": {"family": "bridge", "name": "drops", "table": "kvnet", "type": "ifname", "map": "counter", "elem": [["vnet0", "port_vnet0"]]}}
]}"#;

    #[test]
    fn reads_elements_learned_macs_and_counters() {
        let i = parse_listing(LISTING).unwrap();
        assert!(i.current);
        assert_eq!(i.state.filtered.len(), 2);
        assert_eq!(
            i.learned,
            [("tap1".to_string(), "52:54:00:00:00:0b".parse().unwrap())]
        );
        assert_eq!(
            i.state.mac.iter().next().unwrap(),
            &("vnet0".to_string(), "52:54:00:00:00:0a".parse().unwrap())
        );
        assert_eq!(i.state.addr4.len(), 1);
        assert!(i.state.addr6.is_empty());
        assert_eq!(i.drops["vnet0"], (3, 180));
    }

    #[test]
    fn an_old_table_and_garbage() {
        let old = LISTING.replace("layout_1", "layout_0");
        assert!(!parse_listing(&old).unwrap().current);
        assert!(parse_listing("").is_err());
        assert!(parse_listing("{}").is_err());
        let bad = LISTING.replace("10.0.0.5", "10.0.0.500");
        assert!(
            parse_listing(&bad)
                .unwrap_err()
                .to_string()
                .contains("10.0.0.500")
        );
    }
}
