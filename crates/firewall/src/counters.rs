//! Each network's firewall figures, from the counters of its elements in the table's
//! counted sets (`nft -j list table inet NAME`): what its guests sent out (src*), what
//! came in to them (est*, rt*), what was rejected (rej*), and the connections NAT
//! rewrote (nat*: the NAT chain sees a connection's first packet only).

use crate::model::FwNetwork;
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeMap;

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, c: Count) {
        self.packets += c.packets;
        self.bytes += c.bytes;
    }
}

/// One network's firewall figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwCounters {
    pub forwarded_out: Count,
    pub forwarded_in: Count,
    pub rejected: Count,
    /// New connections masqueraded (and their first packets' bytes).
    pub nat: Count,
}

/// The first component of an element's key: the string itself, or a concatenation's
/// first part.
fn first(v: &Value) -> Option<&Value> {
    match v.get("concat").and_then(Value::as_array) {
        Some(parts) => parts.first(),
        None => Some(v),
    }
}

/// A subnet as nft's JSON writes an interval element: `{"prefix": {"addr", "len"}}`,
/// or a plain address for a /32 or /128.
fn subnet(v: &Value) -> Option<IpNet> {
    if let Some(p) = v.get("prefix") {
        let addr = p.get("addr")?.as_str()?;
        let len = p.get("len")?.as_u64()?;
        return format!("{addr}/{len}").parse().ok();
    }
    let a: std::net::IpAddr = v.as_str()?.parse().ok()?;
    Some(IpNet::from(a))
}

/// Each network's figures (by name) from the table's listing.
pub fn counters_by_network(
    json: &str,
    nets: &[FwNetwork],
) -> Result<BTreeMap<String, FwCounters>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no 'nftables' array")?;
    let mut out: BTreeMap<String, FwCounters> = nets
        .iter()
        .map(|n| (n.name.clone(), FwCounters::default()))
        .collect();
    let by_bridge = |b: &str| nets.iter().find(|n| n.bridge == b).map(|n| n.name.clone());
    let by_subnet = |s: &IpNet| {
        nets.iter()
            .find(|n| n.subnets.iter().any(|x| x.trunc() == s.trunc()))
            .map(|n| n.name.clone())
    };
    for item in items {
        let Some(set) = item.get("set") else { continue };
        let name = set.get("name").and_then(Value::as_str).unwrap_or_default();
        let kind = match name.split('_').next().unwrap_or_default() {
            "src4" | "src6" => 0,
            "est4" | "est6" | "rt4" | "rt6" => 1,
            "rej4" | "rej6" => 2,
            "nat4" | "nat6" if !name.ends_with("custom") && !name.ends_with("skip") => 3,
            _ => continue,
        };
        for e in set
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(inner) = e.get("elem") else { continue };
            let (Some(key), Some(c)) = (inner.get("val"), inner.get("counter")) else {
                continue;
            };
            let count = Count {
                packets: c.get("packets").and_then(Value::as_u64).unwrap_or(0),
                bytes: c.get("bytes").and_then(Value::as_u64).unwrap_or(0),
            };
            let Some(k) = first(key) else { continue };
            let net = if kind == 3 {
                subnet(k).and_then(|s| by_subnet(&s))
            } else {
                k.as_str().and_then(by_bridge)
            };
            let Some(f) = net.and_then(|n| out.get_mut(&n)) else {
                continue;
            };
            match kind {
                0 => f.forwarded_out.add(count),
                1 => f.forwarded_in.add(count),
                2 => f.rejected.add(count),
                _ => f.nat.add(count),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_net;

    fn net(name: &str, bridge: &str, subnet: &str) -> FwNetwork {
        FwNetwork {
            name: name.into(),
            subnets: vec![subnet.parse().unwrap()],
            ..test_net(bridge)
        }
    }

    #[test]
    fn elements_are_summed_per_network() {
        let a = net("a", "virbr0", "192.168.122.0/24");
        let b = net("b", "virbr1", "10.1.0.0/16");
        let json = r#"{"nftables": [{"metainfo": {}},
 {"set": {"name": "src4", "elem": [
   {"elem": {"val": {"concat": ["virbr0", {"prefix": {"addr": "192.168.122.0", "len": 24}}]}, "counter": {"packets": 10, "bytes": 1000}}},
   {"elem": {"val": {"concat": ["virbr1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}, "counter": {"packets": 1, "bytes": 60}}}]}},
 {"set": {"name": "est4", "elem": [
   {"elem": {"val": {"concat": ["virbr0", {"prefix": {"addr": "192.168.122.0", "len": 24}}]}, "counter": {"packets": 7, "bytes": 700}}}]}},
 {"set": {"name": "rej4", "elem": [{"elem": {"val": "virbr0", "counter": {"packets": 2, "bytes": 120}}}]}},
 {"set": {"name": "nat4", "elem": [{"elem": {"val": {"prefix": {"addr": "192.168.122.0", "len": 24}}, "counter": {"packets": 3, "bytes": 180}}}]}},
 {"set": {"name": "nat4_skip", "elem": [{"elem": {"val": {"prefix": {"addr": "192.168.122.0", "len": 24}}, "counter": {"packets": 99, "bytes": 99}}}]}},
 {"set": {"name": "cross", "elem": [{"concat": ["virbr0", "virbr0"]}]}}
]}"#;
        let c = counters_by_network(json, &[a, b]).unwrap();
        let a = c["a"];
        assert_eq!(
            a.forwarded_out,
            Count {
                packets: 10,
                bytes: 1000
            }
        );
        assert_eq!(
            a.forwarded_in,
            Count {
                packets: 7,
                bytes: 700
            }
        );
        assert_eq!(
            a.rejected,
            Count {
                packets: 2,
                bytes: 120
            }
        );
        assert_eq!(
            a.nat,
            Count {
                packets: 3,
                bytes: 180
            }
        );
        assert_eq!(c["b"].forwarded_out.packets, 1);
        assert_eq!(c["b"].nat, Count::default());
        assert!(counters_by_network("[]", &[]).is_err());
    }
}
