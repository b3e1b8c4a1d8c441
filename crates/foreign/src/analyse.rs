//! Which base chain's drop would hit which network's traffic, and who owns it: every
//! probe of every network ([`crate::traffic::probes`]) through every base chain on its
//! hooks, in every table but kvnet's own.

use crate::eval::{self, DropAt, Outcome, Skip};
use crate::ruleset::{Ruleset, TableId};
use crate::traffic::{BridgeNf, Probe, Traffic, probes};
use kvnet_firewall::FwNetwork;
use std::collections::BTreeMap;
use std::fmt;

/// Who wrote a table or chain, judged by its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// Docker's iptables rules (`DOCKER-*` chains) or its nftables backend.
    Docker,
    /// ufw's iptables rules (`ufw-*` chains).
    Ufw,
    Firewalld,
    /// libvirt's iptables rules (`LIBVIRT_*` chains) or its nftables table.
    Libvirt,
    /// Other iptables(-nft) rules.
    Iptables,
    /// Any other nftables table.
    Unknown,
}

impl Owner {
    pub fn name(self) -> &'static str {
        match self {
            Owner::Docker => "docker",
            Owner::Ufw => "ufw",
            Owner::Firewalld => "firewalld",
            Owner::Libvirt => "libvirt",
            Owner::Iptables => "iptables",
            Owner::Unknown => "unknown",
        }
    }

    /// Rules kvnet can add through the iptables CLI fix it (an `ip`/`ip6` `filter`
    /// table of iptables-nft).
    pub fn iptables(self) -> bool {
        matches!(
            self,
            Owner::Docker | Owner::Ufw | Owner::Libvirt | Owner::Iptables
        )
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The filter tables of iptables-nft and iptables-legacy, where kvnet's accepts go
/// through the iptables CLI.
pub fn is_iptables_table(t: &TableId) -> bool {
    matches!(t.family.as_str(), "ip" | "ip6")
        && (t.name == "filter" || t.name == crate::legacy::LEGACY_FILTER)
}

/// The owner of a drop in `chain` of table `t`.
pub fn owner(rs: &Ruleset, t: &TableId, chain: &str) -> Owner {
    let by_chain = |c: &str| {
        if c.starts_with("DOCKER") {
            Some(Owner::Docker)
        } else if c.starts_with("ufw-") || c.starts_with("ufw6-") {
            Some(Owner::Ufw)
        } else if c.starts_with("LIBVIRT_") {
            Some(Owner::Libvirt)
        } else {
            None
        }
    };
    match t.name.as_str() {
        n if n.starts_with("firewalld") => return Owner::Firewalld,
        "docker-bridges" => return Owner::Docker,
        "libvirt_network" => return Owner::Libvirt,
        _ => {}
    }
    if !matches!(t.family.as_str(), "ip" | "ip6")
        || ![
            "filter",
            "nat",
            "mangle",
            "raw",
            "security",
            crate::legacy::LEGACY_FILTER,
        ]
        .contains(&t.name.as_str())
    {
        return Owner::Unknown;
    }
    if let Some(o) = by_chain(chain) {
        return o;
    }
    // A built-in chain's policy or rule: whoever made the table's other chains.
    rs.tables
        .get(t)
        .and_then(|tab| tab.chains.keys().find_map(|c| by_chain(c)))
        .unwrap_or(Owner::Iptables)
}

/// A drop that would hit a network's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub network: String,
    pub bridge: String,
    pub traffic: Traffic,
    pub v6: bool,
    pub table: TableId,
    /// The base chain the probe went through.
    pub base_chain: String,
    pub hook: String,
    pub prio: i64,
    /// Where the drop is (the base chain for a policy drop).
    pub at: DropAt,
    /// False when the drop depends on matches the analysis cannot decide.
    pub certain: bool,
    pub owner: Owner,
}

impl Hit {
    /// `ip filter FORWARD policy drop` or `inet firewalld filter_IN_public handle 12 (reject)`.
    pub fn location(&self) -> String {
        match self.at.handle {
            None => format!("{} {} policy drop", self.table, self.at.chain),
            Some(h) => format!(
                "{} {} handle {h} ({})",
                self.table, self.at.chain, self.at.verdict
            ),
        }
    }
}

/// What to analyse besides the rulesets.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// kvnet's own tables: never judged.
    pub own_tables: Vec<TableId>,
    pub bridge_nf: BridgeNf,
    /// Rules to pass over, by table: kvnet's accepts in other tables (see
    /// [`crate::iptables::present`]), to find what they must cover.
    pub skip: BTreeMap<TableId, Skip>,
}

/// Every drop in `rs` that would hit the traffic of `nets`: per network, traffic kind
/// and table, the first base chain (in priority order) that drops it.
pub fn analyse(rs: &Ruleset, nets: &[FwNetwork], cx: &Context) -> Vec<Hit> {
    let mut hits = Vec::new();
    for fw in nets {
        for p in probes(fw, cx.bridge_nf) {
            hits.extend(probe_hits(rs, &p, cx));
        }
    }
    hits
}

fn probe_hits(rs: &Ruleset, p: &Probe, cx: &Context) -> Vec<Hit> {
    let empty = Skip::new();
    let mut out = Vec::new();
    for (id, table) in &rs.tables {
        if cx.own_tables.contains(id) {
            continue;
        }
        let skip = cx.skip.get(id).unwrap_or(&empty);
        let mut chains: Vec<_> = table
            .chains
            .values()
            .filter(|c| eval::applies(&id.family, c, p))
            .collect();
        let hook_order = |h: &str| p.path.hooks().iter().position(|x| *x == h);
        chains.sort_by_key(|c| {
            let h = c.hook.as_ref().expect("base chain");
            (hook_order(&h.hook), h.prio)
        });
        for c in chains {
            let (at, certain) = match eval::run(table, c, p, skip) {
                Outcome::Accepted => continue,
                Outcome::Dropped(at) => (at, true),
                Outcome::MaybeDropped(at) => (at, false),
            };
            let h = c.hook.as_ref().expect("base chain");
            out.push(Hit {
                network: p.network.clone(),
                bridge: p.bridge.clone(),
                traffic: p.traffic,
                v6: p.v6,
                owner: owner(rs, id, &at.chain),
                table: id.clone(),
                base_chain: c.name.clone(),
                hook: h.hook.clone(),
                prio: h.prio,
                at,
                certain,
            });
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
