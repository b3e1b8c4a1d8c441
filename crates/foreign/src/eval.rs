//! A probe through one base chain: each rule's matches are true, false or unknown
//! for the probe ([`Tri`]); jumps and gotos are followed. A drop after only true
//! matches is certain; one behind an unknown match (an xtables match whose arguments
//! nft does not show, a named set, a rate limit) is possible, and the walk goes on as
//! if the rule did not match.

use crate::ruleset::{Chain, Table};
use crate::traffic::{Addr, AddrType, CtState, Iface, Probe, TCP, UDP};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// Where a drop is: a rule (by handle) or the base chain's policy (None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropAt {
    pub chain: String,
    pub handle: Option<u64>,
    /// "drop", "reject" or "policy drop".
    pub verdict: String,
    /// The matches that could not be decided, for a possible drop.
    pub unknown: Vec<String>,
}

/// What a base chain does with a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Dropped(DropAt),
    /// Accepted unless the unknown matches of this drop match.
    MaybeDropped(DropAt),
}

/// Rules to pass over as if absent (kvnet's own accepts, to judge what they must cover).
pub type Skip = BTreeSet<(String, u64)>;

enum Flow {
    Continue,
    Accept,
    Drop(DropAt),
}

struct Walk<'a> {
    table: &'a Table,
    probe: &'a Probe,
    skip: &'a Skip,
    maybe: Option<DropAt>,
    /// The undecided matches of accepts passed over: a drop after them is possible.
    passed: Vec<String>,
}

const MAX_DEPTH: usize = 16;

/// Runs `probe` through base chain `chain` of `table`.
pub fn run(table: &Table, chain: &Chain, probe: &Probe, skip: &Skip) -> Outcome {
    let mut w = Walk {
        table,
        probe,
        skip,
        maybe: None,
        passed: Vec::new(),
    };
    match w.chain(chain, 0, &[]) {
        Flow::Accept => w.accepted(),
        Flow::Drop(d) => w.dropped(d),
        Flow::Continue if chain.hook.as_ref().is_some_and(|h| h.drops) => {
            let d = DropAt {
                chain: chain.name.clone(),
                handle: None,
                verdict: "policy drop".into(),
                unknown: Vec::new(),
            };
            w.dropped(d)
        }
        Flow::Continue => w.accepted(),
    }
}

impl Walk<'_> {
    fn dropped(self, mut d: DropAt) -> Outcome {
        if self.passed.is_empty() {
            return Outcome::Dropped(d);
        }
        d.unknown = self.passed;
        Outcome::MaybeDropped(d)
    }

    fn accepted(self) -> Outcome {
        match self.maybe {
            Some(d) => Outcome::MaybeDropped(d),
            None => Outcome::Accepted,
        }
    }

    /// Walks `chain`; `doubt` holds the unknown matches on the way here: a drop
    /// reached through them is only possible, and an accept ends only that path.
    fn chain(&mut self, chain: &Chain, depth: usize, doubt: &[String]) -> Flow {
        if depth > MAX_DEPTH {
            return Flow::Continue;
        }
        'rules: for rule in &chain.rules {
            if self.skip.contains(&(chain.name.clone(), rule.handle)) {
                continue;
            }
            let mut unknown = doubt.to_vec();
            for e in &rule.expr {
                let verdict = match statement(e, self.probe) {
                    Stmt::Match(Tri::No, _) => continue 'rules,
                    Stmt::Match(Tri::Unknown, what) => {
                        unknown.push(what);
                        continue;
                    }
                    Stmt::Match(Tri::Yes, _) | Stmt::Other => continue,
                    Stmt::Verdict(v) => v,
                };
                let certain = unknown.is_empty();
                // The rule's own matches are all true, on a path that may be doubtful.
                let own = unknown.len() == doubt.len();
                match verdict {
                    Verdict::Accept if certain => return Flow::Accept,
                    Verdict::Drop(v) => {
                        let at = DropAt {
                            chain: chain.name.clone(),
                            handle: Some(rule.handle),
                            verdict: v.into(),
                            unknown,
                        };
                        if certain {
                            return Flow::Drop(at);
                        }
                        self.maybe.get_or_insert(at);
                        if own {
                            return Flow::Continue;
                        }
                    }
                    Verdict::Accept | Verdict::Return if own => return Flow::Continue,
                    Verdict::Accept => {
                        for u in &unknown[doubt.len()..] {
                            if !self.passed.contains(u) {
                                self.passed.push(u.clone());
                            }
                        }
                    }
                    Verdict::Return => {}
                    Verdict::Jump(target) | Verdict::Goto(target) => {
                        let goto = matches!(verdict, Verdict::Goto(_));
                        if let Some(sub) = self.table.chains.get(target) {
                            match self.chain(sub, depth + 1, &unknown) {
                                Flow::Continue if goto && own => return Flow::Continue,
                                Flow::Continue => {}
                                // Only a certain path comes back with a verdict.
                                flow => return flow,
                            }
                        }
                    }
                }
                continue 'rules;
            }
        }
        Flow::Continue
    }
}

enum Verdict<'a> {
    Accept,
    Drop(&'static str),
    Return,
    Jump(&'a str),
    Goto(&'a str),
}

enum Stmt<'a> {
    Match(Tri, String),
    Verdict(Verdict<'a>),
    Other,
}

/// Targets of xtables rules that do not end the chain.
const XT_NONTERMINAL: &[&str] = &[
    "LOG", "NFLOG", "ULOG", "CHECKSUM", "MARK", "CONNMARK", "TCPMSS", "CT", "TRACE", "AUDIT",
];

fn statement<'a>(e: &'a Value, p: &Probe) -> Stmt<'a> {
    let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
        return Stmt::Other;
    };
    match key.as_str() {
        "match" => match decide(e, p) {
            Some((t, what)) => Stmt::Match(t, what),
            None => Stmt::Other,
        },
        "accept" => Stmt::Verdict(Verdict::Accept),
        "drop" => Stmt::Verdict(Verdict::Drop("drop")),
        "reject" => Stmt::Verdict(Verdict::Drop("reject")),
        "return" => Stmt::Verdict(Verdict::Return),
        "jump" | "goto" => match body.get("target").and_then(Value::as_str) {
            Some(t) if key == "jump" => Stmt::Verdict(Verdict::Jump(t)),
            Some(t) => Stmt::Verdict(Verdict::Goto(t)),
            None => Stmt::Other,
        },
        // NAT and queueing take the packet on: not a drop.
        "masquerade" | "snat" | "dnat" | "redirect" | "queue" => Stmt::Verdict(Verdict::Accept),
        "limit" => Stmt::Match(Tri::Unknown, "limit".into()),
        "xt" => {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("?");
            match body.get("type").and_then(Value::as_str) {
                Some("match") if name == "comment" => Stmt::Other,
                Some("match") => Stmt::Match(Tri::Unknown, format!("xt match {name}")),
                Some("target") if XT_NONTERMINAL.contains(&name) => Stmt::Other,
                Some("target") if name == "REJECT" || name == "DROP" => {
                    Stmt::Verdict(Verdict::Drop("reject"))
                }
                Some("target") => Stmt::Verdict(Verdict::Accept),
                _ => Stmt::Other,
            }
        }
        _ => Stmt::Other,
    }
}

/// Decides one `match` expression for a probe, with a description of it.
fn decide(e: &Value, p: &Probe) -> Option<(Tri, String)> {
    let m = e.get("match")?;
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let left = m.get("left")?;
    let right = m.get("right")?;
    let what = describe(left, op, right);
    let t = match op {
        "==" | "in" => left_is(left, right, p),
        "!=" => left_is(left, right, p).not(),
        _ => Tri::Unknown,
    };
    Some((t, what))
}

fn describe(left: &Value, op: &str, right: &Value) -> String {
    let l = left
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| {
            let key = v
                .get("key")
                .or_else(|| v.get("field"))
                .or_else(|| v.get("result"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let proto = v.get("protocol").and_then(Value::as_str).unwrap_or(k);
            format!("{proto} {key}")
        })
        .unwrap_or_else(|| left.to_string());
    let r = match right.as_str() {
        Some(s) => s.to_string(),
        None => right.to_string(),
    };
    format!("{l} {op} {r}")
}

/// The values of a match's right side: one value, an anonymous set or a list.
fn values(right: &Value) -> Option<Vec<&Value>> {
    if let Some(s) = right.get("set").and_then(Value::as_array) {
        return Some(s.iter().collect());
    }
    if let Some(a) = right.as_array() {
        return Some(a.iter().collect());
    }
    match right.as_str() {
        // A named set or a map: not resolved.
        Some(s) if s.starts_with('@') => None,
        _ => Some(vec![right]),
    }
}

fn any(right: &Value, f: impl Fn(&Value) -> Tri) -> Tri {
    let Some(vals) = values(right) else {
        return Tri::Unknown;
    };
    let mut out = Tri::No;
    for v in vals {
        match f(v) {
            Tri::Yes => return Tri::Yes,
            Tri::Unknown => out = Tri::Unknown,
            Tri::No => {}
        }
    }
    out
}

fn left_is(left: &Value, right: &Value, p: &Probe) -> Tri {
    if let Some(meta) = left.get("meta") {
        let key = meta.get("key").and_then(Value::as_str).unwrap_or("");
        return match key {
            "iifname" => iface(p.iif.as_ref(), right),
            "oifname" => iface(p.oif.as_ref(), right),
            "nfproto" => any(right, |v| {
                Tri::from(v.as_str() == Some(if p.v6 { "ipv6" } else { "ipv4" }))
            }),
            "protocol" => any(right, |v| {
                Tri::from(v.as_str() == Some(if p.v6 { "ip6" } else { "ip" }))
            }),
            "l4proto" => any(right, |v| proto(v, p.proto)),
            "pkttype" => any(right, |v| {
                let t = match p.daddr_type {
                    AddrType::Broadcast => "broadcast",
                    AddrType::Multicast => "multicast",
                    _ => "host",
                };
                Tri::from(v.as_str() == Some(t))
            }),
            _ => Tri::Unknown,
        };
    }
    if let Some(pl) = left.get("payload") {
        let proto_name = pl.get("protocol").and_then(Value::as_str).unwrap_or("");
        let field = pl.get("field").and_then(Value::as_str).unwrap_or("");
        return match (proto_name, field) {
            ("ip", _) if p.v6 => Tri::No,
            ("ip6", _) if !p.v6 => Tri::No,
            ("ip" | "ip6", "saddr") => any(right, |v| addr(p.saddr, v)),
            ("ip" | "ip6", "daddr") => any(right, |v| addr(p.daddr, v)),
            ("ip", "protocol") | ("ip6", "nexthdr") => any(right, |v| proto(v, p.proto)),
            ("udp", _) if p.proto != UDP => Tri::No,
            ("tcp", _) if p.proto != TCP => Tri::No,
            ("udp" | "tcp" | "th", "sport") => any(right, |v| port(v, p.sport)),
            ("udp" | "tcp" | "th", "dport") => any(right, |v| port(v, p.dport)),
            // Headers of protocols the probes are not (icmp, sctp, ...).
            ("icmp" | "icmpv6" | "sctp" | "dccp" | "esp" | "ah" | "igmp", _) => Tri::No,
            _ => Tri::Unknown,
        };
    }
    if let Some(ct) = left.get("ct") {
        return match ct.get("key").and_then(Value::as_str) {
            Some("state") => any(right, |v| {
                let s = match p.ct {
                    CtState::New => "new",
                    CtState::Established => "established",
                };
                Tri::from(v.as_str() == Some(s))
            }),
            // kvnet's traffic is not DNATed.
            Some("status") => any(right, |v| Tri::from(v.as_str() != Some("dnat"))),
            _ => Tri::Unknown,
        };
    }
    if let Some(fib) = left.get("fib") {
        return match fib.get("result").and_then(Value::as_str) {
            Some("type") if fib_on_daddr(fib) => any(right, |v| {
                Tri::from(v.as_str() == Some(p.daddr_type.name()))
            }),
            // Reverse-path checks (`fib saddr . iif oif missing`): kvnet's traffic
            // has its route.
            Some("oif") if right.as_bool() == Some(false) => Tri::No,
            _ => Tri::Unknown,
        };
    }
    Tri::Unknown
}

fn fib_on_daddr(fib: &Value) -> bool {
    fib.get("flags")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("daddr")))
}

/// A name match: exact, or a prefix with a trailing `*`.
fn iface(i: Option<&Iface>, right: &Value) -> Tri {
    match i {
        // The hook has no such interface (e.g. oifname in input): the match fails.
        None => Tri::No,
        Some(Iface::Other) => any(right, |v| Tri::from(v.as_str() == Some("*"))),
        Some(Iface::Named(n)) => any(right, |v| match v.as_str() {
            Some(pat) => Tri::from(match pat.strip_suffix('*') {
                Some(prefix) if !pat.ends_with("\\*") => n.starts_with(prefix),
                _ => n == pat,
            }),
            None => Tri::Unknown,
        }),
    }
}

fn proto(v: &Value, p: u8) -> Tri {
    match (v.as_str(), v.as_u64()) {
        (Some("tcp"), _) => Tri::from(p == TCP),
        (Some("udp"), _) => Tri::from(p == UDP),
        (Some(_), _) => Tri::No,
        (None, Some(n)) => Tri::from(n == u64::from(p)),
        _ => Tri::Unknown,
    }
}

fn port(v: &Value, p: u16) -> Tri {
    if let Some(n) = v.as_u64() {
        return Tri::from(n == u64::from(p));
    }
    if let Some([a, b]) = v
        .get("range")
        .and_then(Value::as_array)
        .map(|r| r.as_slice())
        && let (Some(a), Some(b)) = (a.as_u64(), b.as_u64())
    {
        return Tri::from((a..=b).contains(&u64::from(p)));
    }
    Tri::Unknown
}

/// The right side as an inclusive address range.
fn range(v: &Value) -> Option<(IpAddr, IpAddr)> {
    if let Some(s) = v.as_str() {
        let a: IpAddr = s.parse().ok()?;
        return Some((a, a));
    }
    if let Some(p) = v.get("prefix") {
        let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
        let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
        let net = IpNet::new(addr, len).ok()?.trunc();
        return Some((net.network(), net.broadcast()));
    }
    if let Some([a, b]) = v
        .get("range")
        .and_then(Value::as_array)
        .map(|r| r.as_slice())
    {
        return Some((a.as_str()?.parse().ok()?, b.as_str()?.parse().ok()?));
    }
    None
}

fn addr(a: Addr, v: &Value) -> Tri {
    let Some((lo, hi)) = range(v) else {
        return Tri::Unknown;
    };
    let family_ok = |x: &IpAddr| x.is_ipv6() == lo.is_ipv6();
    match a {
        Addr::Exact(x) => Tri::from(family_ok(&x) && lo <= x && x <= hi),
        Addr::In(net) => {
            let (first, last) = (net.network(), net.broadcast());
            if !family_ok(&first) || last < lo || hi < first {
                Tri::No
            } else if lo <= first && last <= hi {
                Tri::Yes
            } else {
                Tri::Unknown
            }
        }
        Addr::Outside => Tri::from(lo.is_unspecified() && range_is_all(lo, hi)),
    }
}

fn range_is_all(lo: IpAddr, hi: IpAddr) -> bool {
    match hi {
        IpAddr::V4(h) => lo.is_unspecified() && h == std::net::Ipv4Addr::BROADCAST,
        IpAddr::V6(h) => lo.is_unspecified() && h == std::net::Ipv6Addr::from(u128::MAX),
    }
}

/// The hooks a probe's path crosses that `chain` sits on, in the probe's family.
pub fn applies(family: &str, chain: &Chain, p: &Probe) -> bool {
    let Some(h) = &chain.hook else {
        return false;
    };
    let family_ok = match family {
        "inet" => true,
        "ip" => !p.v6,
        "ip6" => p.v6,
        _ => false,
    };
    family_ok && p.path.hooks().contains(&h.hook.as_str())
}
