//! kvnet's changes in other firewalls, added and removed with each network: accepts
//! in iptables' tables where a drop there would hit the network's traffic
//! (`kvnet_foreign::iptables`: Docker's `DOCKER-USER`, else the top of `FORWARD`,
//! `INPUT`, `OUTPUT`), and its bridge in a firewalld zone when firewalld runs
//! (`<bridge zone>`, else kvnet's zones, created once through firewalld's config
//! API). Every change is logged and listed by `kvnet doctor`; nothing is added
//! that no drop calls for, and a rule no drop calls for any more is removed.
//!
//! `lifecycle::foreignwatch` calls [`Foreign::recheck`] when another process changes
//! the ruleset or firewalld reloads (firewalld before 2.0 flushes iptables' tables on
//! start and reload; every reload drops runtime zone bindings). The other tables are
//! read only when they changed: the watcher invalidates a cached copy.

use anyhow::{Result, anyhow, bail};
use kvnet_firewall::FwNetwork;
use kvnet_foreign::iptables::{self, IptRule};
use kvnet_foreign::{BridgeNf, Context, Hit, Ruleset, TableId, analyse, firewalld, legacy};
use kvnet_host::firewalld::{Firewalld, Setting};
use kvnet_host::{iptables as ipt, sysctl};
use kvnet_model::Network;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::{info, warn};

pub use kvnet_daemon::ForeignFirewalls as Mode;

/// A handle; clones share the state.
#[derive(Clone)]
pub struct Foreign {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    own_tables: Vec<TableId>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The networks whose traffic must pass, by name.
    nets: BTreeMap<String, Wanted>,
    /// Other tables as last read; None once something changed them.
    cache: Option<Ruleset>,
    /// The watcher runs, so the cache is invalidated when it must be.
    watched: bool,
    fwd: Option<Firewalld>,
    /// Bridges kvnet put in a firewalld zone, and the zone.
    bound: BTreeMap<String, String>,
    /// kvnet's rules in iptables' tables, as last seen.
    kept: Vec<IptRule>,
}

#[derive(Clone)]
struct Wanted {
    fw: Option<FwNetwork>,
    /// Bridge and firewalld zone.
    zone: Option<(String, String)>,
}

/// br_netfilter's sysctls (absent when the module is not loaded).
pub fn bridge_nf() -> BridgeNf {
    let on = |k: &str| sysctl::read(k).is_ok_and(|v| v.trim() == "1");
    BridgeNf {
        call_iptables: on("net/bridge/bridge-nf-call-iptables"),
        call_ip6tables: on("net/bridge/bridge-nf-call-ip6tables"),
    }
}

/// Every table but `own`, and iptables-legacy's filter tables.
pub fn read_ruleset(own: &[TableId]) -> Result<Ruleset> {
    let mut rs = read_nft(own)?;
    add_legacy(&mut rs);
    Ok(rs)
}

/// nftables' tables but `own`, read table by table so that kvnet's own (large) table
/// is never listed. The list of tables is read as text: nft 1.0.6's JSON of an owned
/// table's flags (kvnet's guard table) is garbage and sometimes crashes nft.
fn read_nft(own: &[TableId]) -> Result<Ruleset> {
    let tables = kvnet_foreign::ruleset::parse_table_list(&ipt::nft_output(&["list", "tables"])?);
    let mut rs = Ruleset::default();
    for id in tables.iter().filter(|t| !own.contains(t)) {
        // A table deleted since the listing is simply gone.
        if let Ok(json) = ipt::nft_output(&["-j", "list", "table", &id.family, &id.name]) {
            rs.tables.extend(Ruleset::parse(&json)?.tables);
        }
    }
    Ok(rs)
}

/// iptables-legacy's filter tables, read each time: x_tables sends no change
/// notifications, so they are never cached. Only when one exists: running
/// iptables-legacy would load the x_tables modules.
fn add_legacy(rs: &mut Ruleset) {
    for v6 in [false, true] {
        let names = if v6 {
            "ip6_tables_names"
        } else {
            "ip_tables_names"
        };
        let exists = std::fs::read_to_string(format!("/proc/net/{names}"))
            .is_ok_and(|t| t.lines().any(|l| l == "filter"));
        let save = if v6 {
            "ip6tables-legacy-save"
        } else {
            "iptables-legacy-save"
        };
        if exists
            && let Ok(text) = ipt::output(save, &["-t", "filter"])
            && let Some(t) = legacy::parse_save(&text, v6)
        {
            rs.tables.insert(legacy::table_id(v6), t);
        }
    }
}

fn settings(d: &firewalld::Definition) -> Vec<(&'static str, Setting<'static>)> {
    d.settings
        .iter()
        .map(|(k, v)| {
            let v = match v {
                firewalld::Value::Str(s) => Setting::Str(s),
                firewalld::Value::Strs(a) => Setting::Strs(a),
                firewalld::Value::Int(i) => Setting::Int(*i),
            };
            (*k, v)
        })
        .collect()
}

impl Foreign {
    /// `kvnet_table` and its guard table are kvnet's own, never judged.
    pub fn new(mode: Mode, kvnet_table: &str) -> Foreign {
        Foreign {
            inner: Arc::new(Inner {
                mode,
                own_tables: vec![
                    TableId::new("inet", kvnet_table),
                    TableId::new("inet", &kvnet_firewall::guard_table(kvnet_table)),
                ],
                state: tokio::sync::Mutex::new(State::default()),
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn own_tables(&self) -> &[TableId] {
        &self.inner.own_tables
    }

    /// Other tables may have changed.
    pub async fn invalidate(&self) {
        self.inner.state.lock().await.cache = None;
    }

    /// The watcher now invalidates the cache when other tables change.
    pub async fn set_watched(&self) {
        self.inner.state.lock().await.watched = true;
    }

    /// Makes `net`'s traffic pass the other firewalls; returns warnings about the
    /// drops kvnet cannot or may not lift. On error nothing of `net`'s is left in
    /// them.
    pub async fn start(&self, net: &Network) -> Result<Vec<String>> {
        let want = Wanted {
            fw: FwNetwork::from_network(net),
            zone: firewalld::zone_for(net),
        };
        let mut st = self.inner.state.lock().await;
        st.nets.insert(net.name.clone(), want.clone());
        let mut warnings = Vec::new();
        if self.inner.mode == Mode::Fix {
            let res = match self.sync(&mut st, Some(&net.name)).await {
                Ok(()) => self.bind(&mut st, &net.name, &want, &mut warnings).await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                st.nets.remove(&net.name);
                for u in self.unapply(&mut st, net).await {
                    warn!(network = %net.name, "rollback: {u}");
                }
                return Err(e);
            }
        }
        if let Some(fw) = &want.fw {
            let rs = self.ruleset(&mut st)?;
            let cx = self.context(BTreeMap::new());
            for h in analyse(&rs, std::slice::from_ref(fw), &cx) {
                warnings.push(format!(
                    "network '{}': {} drops its {} traffic{} (see kvnet doctor)",
                    net.name,
                    describe(&h),
                    h.traffic,
                    if h.certain { "" } else { " possibly" }
                ));
            }
        }
        Ok(warnings)
    }

    /// Takes `net`'s rules out of the other firewalls; returns what failed.
    pub async fn stop(&self, net: &Network) -> Vec<String> {
        let mut st = self.inner.state.lock().await;
        st.nets.remove(&net.name);
        if self.inner.mode == Mode::Report {
            return Vec::new();
        }
        self.unapply(&mut st, net).await
    }

    /// At daemon start: `active` are the running networks; bring the other firewalls
    /// in line with them.
    pub async fn adopt(&self, active: &[&Network]) {
        {
            let mut st = self.inner.state.lock().await;
            for net in active {
                st.nets.insert(
                    net.name.clone(),
                    Wanted {
                        fw: FwNetwork::from_network(net),
                        zone: firewalld::zone_for(net),
                    },
                );
            }
        }
        self.recheck("kvnetd started", true).await;
    }

    /// Re-applies what the networks need after others changed their firewalls;
    /// `rebind` also checks the firewalld zone of every bridge.
    pub async fn recheck(&self, why: &str, rebind: bool) {
        if self.inner.mode == Mode::Report {
            return;
        }
        let mut st = self.inner.state.lock().await;
        if st.nets.is_empty() && st.kept.is_empty() {
            return;
        }
        st.cache = None;
        if let Err(e) = self.sync(&mut st, None).await {
            warn!("other firewalls, after {why}: {e:#}");
        }
        if rebind {
            let nets: Vec<(String, Wanted)> = st
                .nets
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, want) in nets {
                let mut w = Vec::new();
                if let Err(e) = self.bind(&mut st, &name, &want, &mut w).await {
                    warn!(network = %name, "firewalld, after {why}: {e:#}");
                }
            }
        }
    }

    /// firewalld stopped: its runtime bindings went with it.
    pub async fn firewalld_stopped(&self) {
        self.inner.state.lock().await.bound.clear();
    }

    /// A firewalld connection for the watcher, if there is a system bus.
    pub async fn firewalld(&self) -> Option<Firewalld> {
        let mut st = self.inner.state.lock().await;
        Self::connect(&mut st).await
    }

    /// What kvnet keeps in other firewalls, for the doctor.
    pub async fn changes(&self) -> Vec<String> {
        let st = self.inner.state.lock().await;
        let mut out: Vec<String> = st.kept.iter().map(IptRule::display).collect();
        out.extend(
            st.bound
                .iter()
                .map(|(br, z)| format!("firewalld: interface {br} in zone {z} (runtime)")),
        );
        out
    }

    fn context(&self, skip: BTreeMap<TableId, kvnet_foreign::eval::Skip>) -> Context {
        Context {
            own_tables: self.inner.own_tables.clone(),
            bridge_nf: bridge_nf(),
            skip,
        }
    }

    /// The other tables: nftables' from the cache while the watcher keeps it valid.
    fn ruleset(&self, st: &mut State) -> Result<Ruleset> {
        let mut rs = match &st.cache {
            Some(rs) if st.watched => rs.clone(),
            _ => {
                let rs = read_nft(&self.inner.own_tables)?;
                st.cache = Some(rs.clone());
                rs
            }
        };
        add_legacy(&mut rs);
        Ok(rs)
    }

    /// Brings kvnet's iptables rules in line with the drops. When `starting` is a
    /// network, failing to add one of its rules is an error; other failures are
    /// logged.
    async fn sync(&self, st: &mut State, starting: Option<&str>) -> Result<()> {
        let rs = self.ruleset(st)?;
        // A start changes what its own network needs, and nothing of the others' (a
        // change of the other tables brings a full recheck): judging only it keeps the
        // start's cost flat however many networks run.
        let nets: Vec<FwNetwork> = st
            .nets
            .iter()
            .filter(|(name, _)| starting.is_none_or(|s| s == name.as_str()))
            .filter_map(|(_, w)| w.fw.clone())
            .collect();
        let found = iptables::present(&rs, &nets);
        let hits = analyse(&rs, &nets, &self.context(iptables::skip(&found)));
        let plan = iptables::plan(&rs, &nets, &hits, &found);
        // The other networks' rules stay as they are, and listed.
        let others: Vec<IptRule> = match starting {
            Some(s) => st.kept.iter().filter(|r| r.network != s).cloned().collect(),
            None => Vec::new(),
        };
        if plan.add.is_empty() && plan.remove.is_empty() {
            st.kept = others.into_iter().chain(plan.keep).collect();
            return Ok(());
        }
        st.cache = None;
        let why = |r: &IptRule| {
            hits.iter()
                .find(|h| h.network == r.network && h.traffic == r.traffic && h.v6 == r.v6)
                .map(describe)
                .unwrap_or_default()
        };
        let mut kept: Vec<IptRule> = others.into_iter().chain(plan.keep).collect();
        for r in &plan.add {
            match ipt::iptables(r.binary(), &r.insert_args()) {
                Ok(()) => {
                    info!(network = %r.network, "added {} (against {})", r.display(), why(r));
                    kept.push(r.clone());
                }
                Err(e) if starting == Some(r.network.as_str()) => {
                    st.kept = kept;
                    bail!("cannot let network '{}' past {}: {e}", r.network, why(r));
                }
                Err(e) => warn!(network = %r.network, "cannot add {}: {e}", r.display()),
            }
        }
        for r in &plan.remove {
            match ipt::iptables(r.binary(), &r.delete_args()) {
                Ok(()) => {
                    info!(network = %r.network, "removed {} (no drop calls for it)", r.display())
                }
                Err(e) => warn!(network = %r.network, "cannot remove {}: {e}", r.display()),
            }
        }
        st.kept = kept;
        Ok(())
    }

    async fn connect(st: &mut State) -> Option<Firewalld> {
        if st.fwd.is_none() {
            st.fwd = Firewalld::connect().await;
        }
        st.fwd.clone()
    }

    /// Puts the network's bridge in its firewalld zone, when firewalld runs.
    async fn bind(
        &self,
        st: &mut State,
        name: &str,
        want: &Wanted,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let Some((bridge, zone)) = &want.zone else {
            return Ok(());
        };
        let fwd = match Self::connect(st).await {
            Some(f) if f.running().await => f,
            _ => {
                if !kvnet_foreign::firewalld::is_kvnets(zone) {
                    warnings.push(format!(
                        "network '{name}': firewalld is not running, <bridge zone='{zone}'> not applied"
                    ));
                }
                return Ok(());
            }
        };
        if fwd.zone_of_interface(bridge).await? == *zone {
            st.bound.insert(bridge.clone(), zone.clone());
            return Ok(());
        }
        // firewalld's table changes: what was read of it is stale.
        st.cache = None;
        ensure_zone(&fwd, zone, name).await?;
        fwd.change_zone_of_interface(zone, bridge).await?;
        info!(network = %name, "firewalld: interface {bridge} put in zone {zone}");
        st.bound.insert(bridge.clone(), zone.clone());
        Ok(())
    }

    /// Takes everything of `net`'s out of the other firewalls.
    async fn unapply(&self, st: &mut State, net: &Network) -> Vec<String> {
        let mut errors = Vec::new();
        // With the watcher running, `kept` is current: a network without rules there
        // costs the stop nothing.
        let has_rules = !st.watched || st.kept.iter().any(|r| r.network == net.name);
        if let Some(fw) = FwNetwork::from_network(net).filter(|_| has_rules) {
            st.cache = None;
            match read_ruleset(&self.inner.own_tables) {
                Ok(rs) => {
                    for p in iptables::present(&rs, std::slice::from_ref(&fw)) {
                        match ipt::iptables(p.rule.binary(), &p.rule.delete_args()) {
                            Ok(()) => info!(network = %net.name, "removed {}", p.rule.display()),
                            Err(e) => errors.push(format!("remove {}: {e}", p.rule.display())),
                        }
                    }
                }
                Err(e) => errors.push(format!("read the ruleset: {e:#}")),
            }
            st.kept.retain(|r| r.network != net.name);
        }
        if let Some((bridge, _)) = firewalld::zone_for(net)
            && let Some(zone) = st.bound.remove(&bridge)
            && let Some(fwd) = Self::connect(st).await
            && fwd.running().await
        {
            // firewalld remembers a deleted interface's binding: unset it, as libvirt does.
            match fwd.remove_interface(&zone, &bridge).await {
                Ok(()) => {
                    info!(network = %net.name, "firewalld: interface {bridge} taken out of zone {zone}")
                }
                Err(e) => errors.push(format!("firewalld: {e}")),
            }
        }
        errors
    }
}

/// Creates kvnet's zone (and the routed zone's policies) when missing, then reloads
/// firewalld so that they are live; a zone named by `<bridge zone>` must exist.
async fn ensure_zone(fwd: &Firewalld, zone: &str, network: &str) -> Result<()> {
    let zones = fwd.zone_names().await?;
    if zones.iter().any(|z| z == zone) {
        return Ok(());
    }
    let (new_zones, new_policies) = firewalld::needs(zone);
    if new_zones.is_empty() {
        return Err(anyhow!(
            "network '{network}': firewalld has no zone '{zone}' (<bridge zone='{zone}'>)"
        ));
    }
    for z in new_zones {
        fwd.add_zone(z.name, &settings(z)).await?;
        info!("firewalld: created zone {} (permanent)", z.name);
    }
    let policies = fwd.policy_names().await?;
    for p in new_policies
        .iter()
        .filter(|p| !policies.iter().any(|x| x == p.name))
    {
        fwd.add_policy(p.name, &settings(p)).await?;
        info!("firewalld: created policy {} (permanent)", p.name);
    }
    fwd.reload().await?;
    Ok(())
}

/// `ip filter FORWARD policy drop (docker)`.
pub fn describe(h: &Hit) -> String {
    format!("{} ({})", h.location(), h.owner)
}
