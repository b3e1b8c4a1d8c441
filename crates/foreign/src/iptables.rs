//! kvnet's accepts in iptables' tables: for each drop an iptables-nft table
//! (Docker, ufw, any `FORWARD`/`INPUT` policy drop) puts on a network's traffic, the
//! one rule that lets exactly that traffic of that network through, as libvirt's
//! iptables backend does: in `DOCKER-USER` when it exists (Docker keeps its jump
//! first in `FORWARD` and never touches its rules), else at the top of `FORWARD`,
//! `INPUT` or `OUTPUT`. Each carries the comment `kvnet: NETWORK KIND`.
//!
//! They only stop *another* table from dropping: what kvnet's traffic may do is still
//! decided by kvnet's own table (NAT networks only admit replies), so the forward
//! rules need no connection tracking.
//!
//! The rules are found again in `nft -j list ruleset` by their matches (nft shows
//! an xtables comment as an opaque `xt` match), so the plan needs no record of its
//! own: [`plan`] compares what the drops call for with what is there.

use crate::analyse::{Hit, is_iptables_table};
use crate::eval::Skip;
use crate::ruleset::{Ruleset, TableId};
use crate::traffic::Traffic;
use ipnet::IpNet;
use kvnet_firewall::{FwMode, FwNetwork};
use serde_json::Value;
use std::collections::BTreeMap;

/// Docker's chain for its users' rules.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// One of kvnet's accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IptRule {
    pub v6: bool,
    /// In iptables-legacy's tables rather than iptables-nft's.
    pub legacy: bool,
    pub chain: String,
    pub network: String,
    pub traffic: Traffic,
    /// The match arguments, e.g. `-i virbr0 -s 192.168.122.0/24`.
    pub matches: Vec<String>,
    /// What the rule matches, in the form read back from nft's JSON.
    sig: Vec<(String, String)>,
}

impl IptRule {
    /// The binary of the table the drop was seen in.
    pub fn binary(&self) -> &'static str {
        match (self.v6, self.legacy) {
            (false, false) => "iptables-nft",
            (true, false) => "ip6tables-nft",
            (false, true) => "iptables-legacy",
            (true, true) => "ip6tables-legacy",
        }
    }

    pub fn comment(&self) -> String {
        format!("kvnet: {} {}", self.network, self.traffic.word())
    }

    fn spec(&self) -> Vec<String> {
        let mut a = self.matches.clone();
        a.extend(["-m", "comment", "--comment"].map(String::from));
        a.push(self.comment());
        a.extend(["-j", "ACCEPT"].map(String::from));
        a
    }

    /// Arguments that insert it at the top of its chain.
    pub fn insert_args(&self) -> Vec<String> {
        let mut a = vec![
            "-w".to_string(),
            "5".into(),
            "-I".into(),
            self.chain.clone(),
        ];
        a.extend(self.spec());
        a
    }

    /// Arguments that delete it.
    pub fn delete_args(&self) -> Vec<String> {
        let mut a = vec![
            "-w".to_string(),
            "5".into(),
            "-D".into(),
            self.chain.clone(),
        ];
        a.extend(self.spec());
        a
    }

    /// As `iptables -S` would show it, for logs and the doctor.
    pub fn display(&self) -> String {
        format!("{} {}: {}", self.table(), self.chain, self.spec().join(" "))
    }

    fn table(&self) -> TableId {
        if self.legacy {
            return crate::legacy::table_id(self.v6);
        }
        TableId::new(if self.v6 { "ip6" } else { "ip" }, "filter")
    }
}

/// The chain kvnet's rule for `traffic` goes into, in a table with or without
/// `DOCKER-USER`.
fn chain_for(traffic: Traffic, docker_user: bool) -> &'static str {
    match traffic {
        Traffic::ForwardOut | Traffic::ForwardIn | Traffic::Cross if docker_user => DOCKER_USER,
        Traffic::ForwardOut | Traffic::ForwardIn | Traffic::Cross => "FORWARD",
        Traffic::DhcpReply => "OUTPUT",
        Traffic::Dhcp | Traffic::Dhcp6 | Traffic::Dns | Traffic::DnsTcp | Traffic::Tftp => "INPUT",
    }
}

struct Builder<'a> {
    fw: &'a FwNetwork,
    v6: bool,
    legacy: bool,
    chain: &'static str,
    traffic: Traffic,
    matches: Vec<String>,
    sig: Vec<(String, String)>,
}

impl Builder<'_> {
    fn m(mut self, flag: &str, value: &str, key: &str) -> Self {
        self.matches.extend([flag.to_string(), value.to_string()]);
        if !key.is_empty() {
            self.sig.push((key.to_string(), value.to_string()));
        }
        self
    }

    fn net(self, flag: &str, net: IpNet, key: &str) -> Self {
        let n = net.trunc().to_string();
        self.m(flag, &n, key)
    }

    fn port(self, proto: &str, port: u16) -> Self {
        self.m("-p", proto, "")
            .m("--dport", &port.to_string(), &format!("{proto} dport"))
    }

    fn done(mut self) -> IptRule {
        self.sig.sort();
        IptRule {
            v6: self.v6,
            legacy: self.legacy,
            chain: self.chain.to_string(),
            network: self.fw.name.clone(),
            traffic: self.traffic,
            matches: self.matches,
            sig: self.sig,
        }
    }
}

/// Where kvnet's rules for a table go: its family, whether it is iptables-legacy's,
/// and whether it has Docker's `DOCKER-USER`.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub v6: bool,
    pub legacy: bool,
    pub docker_user: bool,
}

/// Every rule kvnet could need for `fw` in table `to`, `traffic` kind by kind.
pub fn candidates(fw: &FwNetwork, to: Target, traffic: Traffic) -> Vec<IptRule> {
    let Target {
        v6,
        legacy,
        docker_user,
    } = to;
    let br = fw.bridge.as_str();
    let b = || Builder {
        fw,
        v6,
        legacy,
        chain: chain_for(traffic, docker_user),
        traffic,
        matches: Vec::new(),
        sig: Vec::new(),
    };
    let subnets = fw.subnets.iter().filter(|n| n.addr().is_ipv6() == v6);
    let forwarding = fw.mode != FwMode::Isolated;
    let dev = fw.forward_dev.as_deref();
    match traffic {
        Traffic::ForwardOut if forwarding => subnets
            .map(|&n| {
                let r = b().m("-i", br, "iifname").net("-s", n, "saddr");
                match dev {
                    Some(d) => r.m("-o", d, "oifname").done(),
                    None => r.done(),
                }
            })
            .collect(),
        Traffic::ForwardIn if forwarding => subnets
            .map(|&n| {
                let r = b().m("-o", br, "oifname").net("-d", n, "daddr");
                match dev {
                    Some(d) => r.m("-i", d, "iifname").done(),
                    None => r.done(),
                }
            })
            .collect(),
        Traffic::ForwardOut | Traffic::ForwardIn => Vec::new(),
        Traffic::Cross => vec![b().m("-i", br, "iifname").m("-o", br, "oifname").done()],
        Traffic::Dhcp if !v6 => vec![b().m("-i", br, "iifname").port("udp", 67).done()],
        Traffic::DhcpReply if !v6 => vec![b().m("-o", br, "oifname").port("udp", 68).done()],
        Traffic::Dhcp6 if v6 => vec![b().m("-i", br, "iifname").port("udp", 547).done()],
        Traffic::Dns => vec![b().m("-i", br, "iifname").port("udp", 53).done()],
        Traffic::DnsTcp => vec![b().m("-i", br, "iifname").port("tcp", 53).done()],
        Traffic::Tftp if !v6 => vec![b().m("-i", br, "iifname").port("udp", 69).done()],
        Traffic::Tftp | Traffic::Dhcp | Traffic::DhcpReply | Traffic::Dhcp6 => Vec::new(),
    }
}

const ALL: [Traffic; 9] = [
    Traffic::ForwardOut,
    Traffic::ForwardIn,
    Traffic::Cross,
    Traffic::Dhcp,
    Traffic::DhcpReply,
    Traffic::Dhcp6,
    Traffic::Dns,
    Traffic::DnsTcp,
    Traffic::Tftp,
];

/// What an iptables-nft rule matches, when it has the shape of kvnet's: only
/// interface, address and port matches, a comment, and accept.
fn signature(expr: &[Value]) -> Option<Vec<(String, String)>> {
    let mut sig = Vec::new();
    let mut comment = false;
    let mut accept = false;
    for e in expr {
        let (k, body) = e.as_object()?.iter().next()?;
        match k.as_str() {
            "counter" => {}
            "accept" => accept = true,
            "xt" if body.get("name").and_then(Value::as_str) == Some("comment") => comment = true,
            "match" if body.get("op").and_then(Value::as_str) == Some("==") => {
                let left = body.get("left")?;
                let right = body.get("right")?;
                let key = if let Some(m) = left.get("meta") {
                    m.get("key")?.as_str()?.to_string()
                } else {
                    let pl = left.get("payload")?;
                    let proto = pl.get("protocol")?.as_str()?;
                    let field = pl.get("field")?.as_str()?;
                    match proto {
                        "ip" | "ip6" => field.to_string(),
                        _ => format!("{proto} {field}"),
                    }
                };
                let value = if let Some(s) = right.as_str() {
                    match s.parse::<std::net::IpAddr>() {
                        Ok(a) => IpNet::from(a).to_string(),
                        Err(_) => s.to_string(),
                    }
                } else if let Some(n) = right.as_u64() {
                    n.to_string()
                } else {
                    let p = right.get("prefix")?;
                    let addr: std::net::IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                    IpNet::new(addr, u8::try_from(p.get("len")?.as_u64()?).ok()?)
                        .ok()?
                        .trunc()
                        .to_string()
                };
                sig.push((key, value));
            }
            _ => return None,
        }
    }
    sig.sort();
    (comment && accept).then_some(sig)
}

/// A rule of kvnet's found in the ruleset: which one, and its handle there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub rule: IptRule,
    pub handle: u64,
}

/// kvnet's rules for `nets` in the ruleset, in whichever chain they are.
pub fn present(rs: &Ruleset, nets: &[FwNetwork]) -> Vec<Present> {
    let mut out = Vec::new();
    for (v6, legacy) in [(false, false), (true, false), (false, true), (true, true)] {
        let id = if legacy {
            crate::legacy::table_id(v6)
        } else {
            TableId::new(if v6 { "ip6" } else { "ip" }, "filter")
        };
        let Some(table) = rs.tables.get(&id) else {
            continue;
        };
        for chain in ["FORWARD", DOCKER_USER, "INPUT", "OUTPUT"] {
            let Some(c) = table.chains.get(chain) else {
                continue;
            };
            let want: Vec<IptRule> = nets
                .iter()
                .flat_map(|fw| {
                    let to = Target {
                        v6,
                        legacy,
                        docker_user: chain == DOCKER_USER,
                    };
                    ALL.iter().flat_map(move |&t| candidates(fw, to, t))
                })
                .filter(|r| r.chain == chain)
                .collect();
            for rule in &c.rules {
                let Some(sig) = signature(&rule.expr) else {
                    continue;
                };
                if let Some(r) = want.iter().find(|r| r.sig == sig) {
                    out.push(Present {
                        rule: r.clone(),
                        handle: rule.handle,
                    });
                }
            }
        }
    }
    out
}

/// The rules to pass over when judging what kvnet's rules must cover.
pub fn skip(found: &[Present]) -> BTreeMap<TableId, Skip> {
    let mut m: BTreeMap<TableId, Skip> = BTreeMap::new();
    for p in found {
        m.entry(p.rule.table())
            .or_default()
            .insert((p.rule.chain.clone(), p.handle));
    }
    m
}

/// What to change in iptables' tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<IptRule>,
    /// Rules no drop calls for any more, or in a chain that is no longer the right one.
    pub remove: Vec<IptRule>,
    /// The rules that stay: what kvnet keeps in others' tables.
    pub keep: Vec<IptRule>,
}

/// The rules `hits` call for (judged with kvnet's rules passed over, see [`skip`]),
/// against those `found`.
pub fn plan(rs: &Ruleset, nets: &[FwNetwork], hits: &[Hit], found: &[Present]) -> Plan {
    let mut want: Vec<IptRule> = Vec::new();
    for h in hits
        .iter()
        .filter(|h| h.owner.iptables() && is_iptables_table(&h.table))
    {
        let Some(fw) = nets.iter().find(|n| n.name == h.network) else {
            continue;
        };
        let to = Target {
            v6: h.v6,
            legacy: h.table.name == crate::legacy::LEGACY_FILTER,
            docker_user: rs.has_chain(&h.table.family, &h.table.name, DOCKER_USER),
        };
        for r in candidates(fw, to, h.traffic) {
            if !want.contains(&r) {
                want.push(r);
            }
        }
    }
    let mut p = Plan::default();
    for f in found {
        if want.contains(&f.rule) {
            if !p.keep.contains(&f.rule) {
                p.keep.push(f.rule.clone());
            }
        } else {
            p.remove.push(f.rule.clone());
        }
    }
    p.add = want.into_iter().filter(|r| !p.keep.contains(r)).collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvnets_rules_are_recognised_by_their_matches() {
        let fw = crate::traffic::tests::nat("default", "kvbr0", &["192.168.150.0/24"]);
        let rs = Ruleset::parse(include_str!("../tests/rulesets/docker-kvnet.json")).unwrap();
        let found = present(&rs, std::slice::from_ref(&fw));
        let mut kinds: Vec<(String, Traffic)> = found
            .iter()
            .map(|p| (p.rule.chain.clone(), p.rule.traffic))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                (DOCKER_USER.to_string(), Traffic::ForwardOut),
                (DOCKER_USER.to_string(), Traffic::ForwardIn),
                (DOCKER_USER.to_string(), Traffic::Cross),
            ]
        );
    }

    #[test]
    fn rules_read_as_iptables_would_take_them() {
        let mut fw = crate::traffic::tests::nat("n", "br0", &["10.0.0.0/24"]);
        fw.forward_dev = Some("eth1".into());
        let to = |docker_user| Target {
            v6: false,
            legacy: false,
            docker_user,
        };
        let r = &candidates(&fw, to(true), Traffic::ForwardOut)[0];
        assert_eq!(
            r.insert_args().join(" "),
            "-w 5 -I DOCKER-USER -i br0 -s 10.0.0.0/24 -o eth1 -m comment --comment kvnet: n out -j ACCEPT"
        );
        assert_eq!(r.binary(), "iptables-nft");
        let dns = &candidates(&fw, to(true), Traffic::DnsTcp)[0];
        assert_eq!(
            dns.delete_args().join(" "),
            "-w 5 -D INPUT -i br0 -p tcp --dport 53 -m comment --comment kvnet: n dns-tcp -j ACCEPT"
        );
        fw.mode = FwMode::Isolated;
        assert!(candidates(&fw, to(false), Traffic::ForwardOut).is_empty());
        assert_eq!(
            candidates(&fw, to(false), Traffic::Cross)[0].chain,
            "FORWARD"
        );
    }
}
