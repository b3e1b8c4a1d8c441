//! kvnet's nftables table: one network's rules added or removed, the whole table rebuilt
//! in one transaction, and its state compared with what a previous kvnetd left
//! (`RUN_DIR/firewall-snapshot.json`), so a restart that finds it unchanged touches
//! nothing. The rules themselves are rendered by the pure `kvnet_firewall` crate.
//!
//! [`Firewall`] keeps the firewall input of every network whose rules belong in the
//! table, so that whatever finds the table damaged (a start whose fast path fails, the
//! repair in `lifecycle::fwrepair`) rebuilds it whole: never with only one network.
//! It is a cheap handle: clones share the table's state.

use super::fence::Fence;
use crate::paths::Paths;
use crate::store::{self, Durability};
use anyhow::{Context, Result, anyhow};
use kvnet_firewall::{
    FwForward, FwNetwork, encode_add_new, encode_forwards, encode_guard, encode_remove,
    guard_table, render_rebuild, render_remove,
};
use kvnet_host::nft;
use kvnet_model::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use tracing::{debug, error, info, warn};

fn inputs<'a>(active: impl IntoIterator<Item = &'a Network>) -> Vec<FwNetwork> {
    active
        .into_iter()
        .filter_map(FwNetwork::from_network)
        .collect()
}

/// The table as one kvnetd left it at shutdown.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    networks: Vec<String>,
    listing: String,
    /// Each network's port forwards as resolved then (guest addresses come from leases,
    /// which the next kvnetd has not read yet when it adopts the table).
    #[serde(default)]
    forwards: BTreeMap<String, Vec<FwForward>>,
}

/// A handle on kvnet's table; clones share its state.
#[derive(Clone)]
pub struct Firewall {
    table: String,
    state: Arc<State>,
    /// The overlay networks' DHCP fence, a bridge table repaired with this one.
    fence: Fence,
}

struct State {
    /// kvnet's table has its sets and base chains, so a new network's rules can go in
    /// with additions only (no RCU grace period, see render_add_new).
    skeleton: AtomicBool,
    /// Sequence numbers of native nf_tables batches.
    nl_seq: AtomicU32,
    /// The networks whose rules belong in the table, by name: what a rebuild restores.
    wanted: Mutex<BTreeMap<String, FwNetwork>>,
    guard: Mutex<Guard>,
    /// Port forward changes, applied in order by a thread of their own.
    forward_jobs: Mutex<Option<mpsc::Sender<ForwardJob>>>,
    /// Each network's figures as last read (metrics), and when.
    counters: Mutex<
        Option<(
            std::time::Instant,
            BTreeMap<String, kvnet_firewall::FwCounters>,
        )>,
    >,
}

/// One forward change for the forward thread; `done` hears how it went (a change
/// that deletes nothing is waited for, so its failure reaches the caller).
struct ForwardJob {
    network: String,
    batch: Vec<u8>,
    done: Option<mpsc::Sender<Result<(), String>>>,
}

/// The guard table ([`kvnet_firewall::encode_guard`]), held while kvnet's table exists:
/// when someone else deletes that table, established NAT flows go on until the rebuild.
enum Guard {
    Off,
    /// The socket that owns it: closing it deletes the table.
    On(#[allow(dead_code)] std::os::fd::OwnedFd),
    /// The kernel refused it (before Linux 5.12, no owned tables): not tried again.
    Refused,
}

impl Firewall {
    pub fn new(table: String) -> Firewall {
        Firewall {
            fence: Fence::new(&table),
            table,
            state: Arc::new(State {
                skeleton: AtomicBool::new(false),
                nl_seq: AtomicU32::new(1),
                wanted: Mutex::new(BTreeMap::new()),
                guard: Mutex::new(Guard::Off),
                forward_jobs: Mutex::new(None),
                counters: Mutex::new(None),
            }),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    fn wanted(&self) -> MutexGuard<'_, BTreeMap<String, FwNetwork>> {
        self.state.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rules of `active`, and only theirs, belong in the table.
    fn want_exactly(&self, active: &[&Network]) {
        *self.wanted() = inputs(active.iter().copied())
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
    }

    /// Network `name`'s rules as they belong in the table (None: they do not); returns
    /// what was there before.
    fn want(&self, name: &str, fw: Option<FwNetwork>) -> Option<FwNetwork> {
        let mut wanted = self.wanted();
        match fw {
            Some(fw) => wanted.insert(name.to_string(), fw),
            None => wanted.remove(name),
        }
    }

    /// Each network's firewall figures (forwarded, rejected, NAT), from its elements'
    /// counters; read at most once a second, as listing the table is an `nft` process.
    pub fn counters(&self) -> BTreeMap<String, kvnet_firewall::FwCounters> {
        let mut c = self
            .state
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((t, v)) = c.as_ref()
            && t.elapsed() < std::time::Duration::from_secs(1)
        {
            return v.clone();
        }
        let nets: Vec<FwNetwork> = self.wanted().values().cloned().collect();
        let v = match nft::list_table_json("inet", &self.table) {
            Ok(Some(json)) => kvnet_firewall::counters_by_network(&json, &nets).unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        *c = Some((std::time::Instant::now(), v.clone()));
        v
    }

    /// The names of the networks whose rules belong in the table.
    pub fn wanted_names(&self) -> Vec<String> {
        self.wanted().keys().cloned().collect()
    }

    /// Install a starting network's rules; returns what was installed, for a rollback.
    /// When the skeleton is known to be there, the additions go straight to the kernel
    /// as one netlink batch: no nft process, and no dump of the whole table into nft's
    /// cache, which would make the 200th start slower than the 1st. Otherwise, or if
    /// that assumption fails (the table was deleted or flushed meanwhile: the batch is
    /// atomic, a failure changes nothing), the whole table is rebuilt for every network
    /// that belongs in it, this one included.
    pub fn add(&self, net: &Network) -> Result<Option<FwNetwork>> {
        let Some(fw) = FwNetwork::from_network(net) else {
            return Ok(None);
        };
        // The renderer refuses names that could escape nft's quoting; check first.
        fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
        let before = self.want(&fw.name, Some(fw.clone()));
        if self.state.skeleton.load(Relaxed) {
            let seq = self.state.nl_seq.fetch_add(1024, Relaxed);
            match nft::apply_batch(&encode_add_new(&self.table, &fw, seq)) {
                Ok(()) => {
                    self.hold_guard(true);
                    return Ok(Some(fw));
                }
                Err(e) => debug!(network = %fw.name, "fast firewall add failed, rebuilding: {e}"),
            }
        }
        if let Err(e) = self.rebuild() {
            self.want(&fw.name, before);
            return Err(e);
        }
        Ok(Some(fw))
    }

    /// Remove one network's rules now.
    pub fn remove(&self, fw: &FwNetwork) -> Result<()> {
        self.forget(&fw.name);
        remove_rules(&self.table, fw)
    }

    /// Network `name`'s rules no longer belong in the table (they are being removed in
    /// the background), so a rebuild leaves them out.
    /// The guard stays while the table does ([`Firewall::drop_if_unused`]): releasing it
    /// waits for an RCU grace period (about 20 ms), not for a destroy to pay.
    pub fn forget(&self, name: &str) {
        self.want(name, None);
    }

    /// With no network left in it (a while after the last teardown), kvnet's table goes
    /// (`render_full` of none), so a host without kvnet networks keeps no NAT hooks or
    /// connection tracking for kvnet. Decided and done under the lock of `wanted`: a
    /// start meanwhile either comes first (the table stays) or finds the skeleton gone
    /// and rebuilds. Returns whether the table was deleted.
    pub fn drop_if_unused(&self) -> Result<bool> {
        let wanted = self.wanted();
        if !wanted.is_empty() {
            return Ok(false);
        }
        self.state.skeleton.store(false, Relaxed);
        nft::apply(&kvnet_firewall::render_full(&self.table, &[]))
            .with_context(|| format!("delete table inet {}", self.table))?;
        self.hold_guard(false);
        drop(wanted);
        Ok(true)
    }

    /// Re-apply one running network's rules after a live update (e.g. forward-interface):
    /// the whole table in one transaction, so no moment lacks the network's rules. Its
    /// port forwards stay as resolved; the caller re-resolves them afterwards.
    pub fn refresh(&self, old: &Network, new: &Network) -> Result<()> {
        let mut new = FwNetwork::from_network(new);
        if let Some(fw) = &mut new {
            fw.forwards = self.forwards(&old.name);
            if fw.validate().is_err() {
                fw.forwards.clear();
            }
            fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
        }
        let before = self.want(&old.name, new);
        if let Err(e) = self.rebuild() {
            self.want(&old.name, before);
            return Err(e);
        }
        Ok(())
    }

    /// Network `name`'s rules as they are in the table (with its port forwards), or as
    /// `net` renders them when the table holds none of its: what a removal must name.
    pub fn installed(&self, net: &Network) -> Option<FwNetwork> {
        self.wanted()
            .get(&net.name)
            .cloned()
            .or_else(|| FwNetwork::from_network(net))
    }

    /// Network `name`'s port forwards as installed.
    pub fn forwards(&self, name: &str) -> Vec<FwForward> {
        self.wanted()
            .get(name)
            .map(|f| f.forwards.clone())
            .unwrap_or_default()
    }

    /// Network `name`'s port forwards become `fwds` (guests resolved): the map elements
    /// that change, and only those, in one batch; the whole table if that fails. A
    /// network without rules (not active, or not NAT) takes none: Ok(false).
    ///
    /// Deleting an element makes the kernel wait for an RCU grace period (15–30 ms
    /// here) before the transaction returns, so the batches go to a thread of their
    /// own, in order: a change that only removes forwards returns at once (the ports
    /// stop forwarding a grace period later), one that adds is waited for.
    pub fn set_forwards(&self, name: &str, fwds: Vec<FwForward>) -> Result<bool> {
        let mut wanted = self.wanted();
        let Some(cur) = wanted.get(name) else {
            return Ok(false);
        };
        if cur.forwards == fwds {
            return Ok(true);
        }
        let mut next = cur.clone();
        next.forwards = fwds;
        let mut all: Vec<FwNetwork> = wanted
            .values()
            .filter(|f| f.name != name)
            .cloned()
            .collect();
        all.push(next.clone());
        kvnet_firewall::validate_all(&all).map_err(|e| anyhow!("firewall: {e}"))?;
        let had: std::collections::HashSet<&FwForward> = cur.forwards.iter().collect();
        let adds = next.forwards.iter().any(|f| !had.contains(f));
        let old = wanted
            .insert(name.to_string(), next.clone())
            .expect("present");
        if !self.state.skeleton.load(Relaxed) {
            drop(wanted);
            if let Err(e) = self.rebuild() {
                self.want(name, Some(old));
                return Err(e);
            }
            return Ok(true);
        }
        let seq = self.state.nl_seq.fetch_add(1024, Relaxed);
        let Some(batch) = encode_forwards(
            &self.table,
            &next.bridge,
            &old.forwards,
            &next.forwards,
            seq,
        ) else {
            return Ok(true);
        };
        // Queued under the lock of `wanted`: batches go in the order of the states.
        let (done, result) = if adds {
            let (tx, rx) = mpsc::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.forward_jobs().send(ForwardJob {
            network: name.to_string(),
            batch,
            done,
        })?;
        drop(wanted);
        match result.map(|r| r.recv()) {
            None | Some(Ok(Ok(()))) => Ok(true),
            Some(Ok(Err(e))) => {
                self.want(name, Some(old));
                Err(anyhow!("{e}"))
            }
            Some(Err(_)) => Err(anyhow!("the firewall's forward thread is gone")),
        }
    }

    /// The forward thread's queue, the thread started at first use. A batch that
    /// fails (someone changed the table meanwhile) is followed by a rebuild.
    fn forward_jobs(&self) -> mpsc::Sender<ForwardJob> {
        let mut q = self
            .state
            .forward_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = q.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel::<ForwardJob>();
        let fw = self.clone();
        std::thread::Builder::new()
            .name("kvnet-forwards".into())
            .spawn(move || {
                for job in rx {
                    let mut res = nft::apply_batch(&job.batch).map_err(|e| e.to_string());
                    if let Err(e) = &res {
                        debug!(network = %job.network, "forward change failed, rebuilding: {e}");
                        res = fw.rebuild().map(|_| ()).map_err(|e| format!("{e:#}"));
                    }
                    match (job.done, res) {
                        (Some(done), res) => {
                            let _ = done.send(res);
                        }
                        (None, Err(e)) => {
                            error!(network = %job.network, "port forwards not removed: {e}")
                        }
                        (None, Ok(())) => {}
                    }
                }
            })
            .expect("spawn the forward thread");
        *q = Some(tx.clone());
        tx
    }

    /// Rebuild the whole table, in one transaction, for the networks whose rules belong
    /// in it; returns how many. Connection tracking is untouched, so established flows
    /// (and their NAT) go on.
    pub fn rebuild(&self) -> Result<usize> {
        let fws: Vec<FwNetwork> = self.wanted().values().cloned().collect();
        kvnet_firewall::validate_all(&fws).map_err(|e| anyhow!("firewall: {e}"))?;
        // In two steps, so no guest packet is rejected while the table is replaced (see
        // render_rebuild).
        let [table, rejects] = render_rebuild(&self.table, &fws);
        nft::apply(&table).context("apply firewall ruleset")?;
        if !rejects.is_empty()
            && let Err(e) = nft::apply(&rejects)
            // Deleted again in between: the watcher sees that and rebuilds once more.
            && nft::list_table("inet", &self.table)?.is_some()
        {
            return Err(e).context("apply firewall ruleset (rejects)");
        }
        // render_full drops the table when no network needs it.
        self.state.skeleton.store(!fws.is_empty(), Relaxed);
        self.hold_guard(!fws.is_empty());
        Ok(fws.len())
    }

    /// Holds the guard table while kvnet's table exists (`on`), and only then: a host
    /// without kvnet networks keeps no NAT hooks or connection tracking for kvnet.
    fn hold_guard(&self, on: bool) {
        let mut guard = self.state.guard.lock().unwrap_or_else(|p| p.into_inner());
        match (&*guard, on) {
            (Guard::Off, true) => {
                let seq = self.state.nl_seq.fetch_add(1024, Relaxed);
                *guard = match nft::apply_batch_owned(&encode_guard(&self.table, seq)) {
                    Ok(fd) => Guard::On(fd),
                    Err(e) => {
                        warn!(
                            "cannot hold table inet {} ({e}): if someone else deletes \
                             kvnet's table, established NAT connections may be reset \
                             before it is rebuilt",
                            guard_table(&self.table)
                        );
                        Guard::Refused
                    }
                };
            }
            (Guard::On(_), false) => *guard = Guard::Off,
            _ => {}
        }
    }

    /// The table may have been changed by someone else: the next start rebuilds it.
    pub fn invalidate(&self) {
        self.state.skeleton.store(false, Relaxed);
        self.fence.invalidate();
    }

    /// Whether the live table is exactly what [`Firewall::rebuild`] would make.
    pub fn is_intact(&self) -> Result<bool> {
        let fws: Vec<FwNetwork> = self.wanted().values().cloned().collect();
        let expected = self.expected_listing(&fws);
        let table = match self.listing()? {
            None => fws.is_empty(),
            Some(live) => expected.is_some_and(|e| e == live),
        };
        Ok(table && self.fence.is_intact()?)
    }

    /// The comparable form of the table rebuilt for `fws`; None when they cannot be
    /// rendered.
    fn expected_listing(&self, fws: &[FwNetwork]) -> Option<String> {
        kvnet_firewall::validate_all(fws).ok()?;
        Some(kvnet_firewall::expected_listing(&self.table, fws))
    }

    /// kvnet's table in comparable form, None when it does not exist.
    fn listing(&self) -> Result<Option<String>> {
        Ok(nft::list_table("inet", &self.table)?.map(|l| kvnet_firewall::normalize_listing(&l)))
    }

    /// At daemon start: leave the rules alone when they are exactly what the previous
    /// kvnetd left for these networks (so a restart changes nothing in the kernel);
    /// otherwise one transaction brings the table to the active networks' rules,
    /// repairing anything changed meanwhile.
    pub fn reconcile_at_start(&self, paths: &Paths, active: &[&Network]) {
        let snapshot: Option<Snapshot> = std::fs::read(paths.firewall_snapshot())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = store::remove_if_exists(&paths.firewall_snapshot());
        let names: Vec<String> = active.iter().map(|n| n.name.clone()).collect();
        self.want_exactly(active);
        let fenced = active
            .iter()
            .filter_map(|n| super::overlay::of(n))
            .map(|o| o.device())
            .collect();
        if let Err(e) = self.fence.reconcile_at_start(fenced) {
            error!("overlay networks' DHCP fence not applied, DHCP may cross hosts: {e:#}");
        }
        // The forwards the previous kvnetd had resolved, until they are resolved anew.
        if let Some(s) = &snapshot {
            let mut wanted = self.wanted();
            for (name, fwds) in &s.forwards {
                if let Some(fw) = wanted.get_mut(name) {
                    let mut with = fw.clone();
                    with.forwards = fwds.clone();
                    if with.validate().is_ok() {
                        *fw = with;
                    }
                }
            }
        }
        let current = self.listing().unwrap_or_else(|e| {
            error!("cannot read the firewall: {e:#}");
            None
        });
        // Exactly the table this kvnetd renders (one left by a kvnet with another layout
        // would break the fast start path).
        let expected = || {
            let fws: Vec<FwNetwork> = self.wanted().values().cloned().collect();
            self.expected_listing(&fws)
        };
        let unchanged = match (&snapshot, &current) {
            (_, None) => names.is_empty(),
            (Some(s), Some(c)) => {
                s.networks == names && &s.listing == c && expected().as_ref() == Some(c)
            }
            // After a crash (no snapshot): kept when it is exactly what these networks
            // need, so a kill -9 and restart rewrites nothing under the guests' traffic.
            (None, Some(c)) => expected().as_ref() == Some(c),
        };
        if unchanged {
            self.state.skeleton.store(current.is_some(), Relaxed);
            self.hold_guard(current.is_some());
            return;
        }
        match self.rebuild() {
            Ok(n) => info!("firewall rules rebuilt for {n} active networks"),
            Err(e) => error!("firewall rules could not be applied, guests may be cut off: {e:#}"),
        }
    }

    /// At daemon shutdown: record the table as this kvnetd leaves it, for the next one.
    pub fn save_snapshot(&self, paths: &Paths, active: &[&Network]) {
        let networks = active.iter().map(|n| n.name.clone()).collect();
        let res = self.listing().and_then(|listing| {
            let forwards = self
                .wanted()
                .iter()
                .filter(|(_, f)| !f.forwards.is_empty())
                .map(|(n, f)| (n.clone(), f.forwards.clone()))
                .collect();
            let snap = Snapshot {
                networks,
                listing: listing.unwrap_or_default(),
                forwards,
            };
            store::write_atomic(
                &paths.firewall_snapshot(),
                &serde_json::to_vec(&snap)?,
                0o600,
                Durability::Runtime,
            )
        });
        if let Err(e) = res {
            warn!(
                "cannot save the firewall snapshot (the next kvnetd will rebuild the rules): {e:#}"
            );
        }
    }
}

/// Remove network `fw`'s rules from kvnet table `table`. Natively first: no `nft`
/// process and no dump of the whole table into its cache, which at a thousand networks
/// costs ~200 ms of CPU. That batch fails as a whole when something of it is already
/// gone (someone deleted an element, or the table); then the idempotent script, unless
/// the table itself is gone: the script would recreate it without its base chains.
pub fn remove_rules(table: &str, fw: &FwNetwork) -> Result<()> {
    if nft::apply_batch(&encode_remove(table, fw, 1)).is_ok() {
        return Ok(());
    }
    if nft::list_table("inet", table)?.is_some() {
        nft::apply(&render_remove(table, fw))?;
    }
    Ok(())
}
