//! Anti-spoofing for guest ports (`<kvnet:filterref filter='clean-traffic'/>`,
//! `port-create --filter`): kvnet-firewall's port filter table, kept in step with the
//! active networks, their ports, the links on their bridges and the leases.
//!
//! One task owns the table. It changes only the elements that differ (one `nft -f`
//! transaction), at once for a verb (which waits for it, so a port is filtered before
//! the verb returns), and by itself when a lease is recorded, when a link appears on or
//! leaves a filtered bridge (a guest attached without kvnet: its first frame locks its
//! MAC), and every few seconds (expired leases). With nothing to filter the table is
//! deleted, so hosts that do not use the filter pay nothing per frame.
//!
//! Another process that deletes or edits the table (`nft flush ruleset`) gets it
//! rebuilt at once (ports learn their MACs again). A restarted kvnetd reads the live
//! table and carries on from it: the MACs ports learned are kept. A port whose device is re-created (a new qemu, same TAP name)
//! forgets the MAC it had learned.

pub mod plan;

use crate::ports::PortRec;
use crate::services::{LeaseNames, any_recorded};
use anyhow::{Context, Result, anyhow};
use kvnet_firewall::portfilter::{
    FilterState, Installed, parse_listing, render_changes, render_table,
};
use kvnet_host::linkwatch::LinkEvents;
use kvnet_host::nftwatch::{self, NFPROTO_BRIDGE, NftWatcher, Notice};
use kvnet_host::{Netlink, nft};
use kvnet_model::{MacAddr, Network};
use plan::NetView;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// A burst of lease or link changes within this time is applied once.
const COALESCE: Duration = Duration::from_millis(10);
/// Also applied this often, so that an expired lease stops binding its address.
const REFRESH: Duration = Duration::from_secs(5);

struct NetSrc {
    net: Network,
    ports: Vec<PortRec>,
    leases: Option<LeaseNames>,
}

impl NetSrc {
    fn may_filter(&self) -> bool {
        plan::may_filter(&self.net, &self.ports)
    }
}

/// A change that filters nothing before or after leaves the table as it is: answered at
/// once, with no sync (a sync reads every network, milliseconds at 1,000 of them).
/// Otherwise whom to tell the outcome of the sync.
fn unless_quiet(
    matters: bool,
    done: oneshot::Sender<Result<()>>,
) -> Option<oneshot::Sender<Result<()>>> {
    if matters {
        return Some(done);
    }
    let _ = done.send(Ok(()));
    None
}

enum Msg {
    /// A network is active (started, adopted, updated); `ports` None keeps its ports.
    Set {
        net: Box<Network>,
        ports: Option<Vec<PortRec>>,
        leases: Option<LeaseNames>,
        done: oneshot::Sender<Result<()>>,
    },
    /// A network's ports changed.
    Ports {
        network: String,
        ports: Vec<PortRec>,
        done: oneshot::Sender<Result<()>>,
    },
    Remove {
        network: String,
        done: oneshot::Sender<Result<()>>,
    },
    /// What the table holds now, for port-list.
    Installed(oneshot::Sender<Option<Installed>>),
    /// Every adopted network is known: the table may be changed from now on.
    Ready(oneshot::Sender<Result<()>>),
}

/// The lifecycle's handle on the port filter; dropping it ends the task.
pub struct PortFilter {
    tx: mpsc::UnboundedSender<Msg>,
}

impl PortFilter {
    /// Start the task on the current tokio runtime, for table `table` (family bridge).
    pub fn spawn(table: String) -> PortFilter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(table, rx));
        PortFilter { tx }
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Msg) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(make(done))
            .map_err(|_| anyhow!("the port filter task has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the port filter task has stopped"))?
    }

    /// `net` is active with these ports (None: as before) and leases.
    pub async fn set(
        &self,
        net: &Network,
        ports: Option<Vec<PortRec>>,
        leases: Option<LeaseNames>,
    ) -> Result<()> {
        let net = Box::new(net.clone());
        self.ask(|done| Msg::Set {
            net,
            ports,
            leases,
            done,
        })
        .await
    }

    /// Active network `network`'s registered ports are now `ports`.
    pub async fn ports(&self, network: &str, ports: Vec<PortRec>) -> Result<()> {
        let network = network.to_string();
        self.ask(|done| Msg::Ports {
            network,
            ports,
            done,
        })
        .await
    }

    /// Network `network` stopped.
    pub async fn remove(&self, network: &str) -> Result<()> {
        let network = network.to_string();
        self.ask(|done| Msg::Remove { network, done }).await
    }

    /// At daemon start, once every adopted network is [`PortFilter::set`]: until then
    /// nothing is changed, so a network not yet adopted does not lose its elements (nor
    /// its ports their learned MACs).
    pub async fn ready(&self) -> Result<()> {
        self.ask(Msg::Ready).await
    }

    /// The live table (learned MACs, counters), None when there is none.
    pub async fn installed(&self) -> Option<Installed> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Installed(tx)).ok()?;
        rx.await.ok().flatten()
    }
}

/// The table, as far as the task knows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Live {
    /// Read it first (at start, after another process changed it).
    Unknown,
    Absent,
    /// Not kvnet's current layout, or changed by another process: replaced whole.
    Foreign,
    /// kvnet's, with these elements (learned ones aside).
    Present(FilterState),
}

/// The task's state: the sources, and what the table holds as far as it knows.
struct Task {
    table: String,
    nl: Option<Netlink>,
    nets: BTreeMap<String, NetSrc>,
    /// What the table holds, as far as the task knows.
    live: Live,
    /// Learning ports' device indexes at the last sync: a new index is a new device.
    learning: HashMap<String, u32>,
    /// Every adopted network is known ([`PortFilter::ready`]).
    ready: bool,
    /// Another process changed the table: the next sync rebuilds it whole.
    tampered: Option<String>,
    /// The last sync left nothing filtered and no network may filter since: link and
    /// lease changes cannot change the table (a sync reads every network, milliseconds
    /// at 1,000 of them, and a start would wait behind it).
    idle: bool,
    /// How many networks may filter ([`NetSrc::may_filter`]), counted at each verb.
    filtering: usize,
}

/// What another process's nftables commit did to table `table` (family bridge), if
/// anything.
fn tampering(n: &Notice, table: &str) -> Option<String> {
    let c = match n {
        Notice::Lost => return Some("nftables notifications lost".into()),
        Notice::Commit(c) if !nftwatch::is_own(c) => c,
        Notice::Commit(_) => return None,
    };
    c.changes
        .iter()
        .any(|ch| ch.family == NFPROTO_BRIDGE && ch.table.as_deref().is_none_or(|t| t == table))
        .then(|| format!("changed by pid {} ({})", c.pid, c.comm))
}

fn read_installed(table: &str) -> Result<Option<Installed>> {
    match nft::list_table_json("bridge", table)? {
        None => Ok(None),
        Some(json) => Ok(Some(parse_listing(&json)?)),
    }
}

impl Task {
    /// Takes a verb's message in; returns whom to tell the outcome of the sync it calls
    /// for, None when it needs none.
    fn take(&mut self, m: Msg) -> Option<oneshot::Sender<Result<()>>> {
        let done = self.take_msg(m);
        self.filtering = self.nets.values().filter(|n| n.may_filter()).count();
        done
    }

    fn take_msg(&mut self, m: Msg) -> Option<oneshot::Sender<Result<()>>> {
        match m {
            Msg::Set {
                net,
                ports,
                leases,
                done,
            } => {
                let name = net.name.clone();
                let old = self.nets.remove(&name);
                let mattered = old.as_ref().is_some_and(NetSrc::may_filter);
                let ports = ports.or(old.map(|s| s.ports)).unwrap_or_default();
                let src = NetSrc {
                    net: *net,
                    ports,
                    leases,
                };
                let matters = src.may_filter();
                self.nets.insert(name, src);
                unless_quiet(mattered || matters, done)
            }
            Msg::Ports {
                network,
                ports,
                done,
            } => {
                let mut matters = false;
                if let Some(s) = self.nets.get_mut(&network) {
                    matters = s.may_filter();
                    s.ports = ports;
                    matters |= s.may_filter();
                }
                unless_quiet(matters, done)
            }
            Msg::Remove { network, done } => {
                let old = self.nets.remove(&network);
                unless_quiet(old.as_ref().is_some_and(NetSrc::may_filter), done)
            }
            Msg::Installed(reply) => {
                // No process spawned for a table known to be absent (every scrape asks).
                let live = match self.live {
                    Live::Absent => None,
                    _ => read_installed(&self.table).ok().flatten(),
                };
                let _ = reply.send(live);
                None
            }
            Msg::Ready(done) => {
                self.ready = true;
                Some(done)
            }
        }
    }

    /// Links on each network's bridge that kvnet did not register, and every link's
    /// index by name.
    async fn links(&self) -> Result<(BTreeMap<String, Vec<String>>, HashMap<String, u32>)> {
        let Some(nl) = &self.nl else {
            return Ok(Default::default());
        };
        // Links matter for networks filtering links they did not register, and for
        // ports that learn (a re-created device forgets): without either, no dump.
        let wanted = self.nets.values().any(|s| {
            crate::ports::PortDefaults::of(&s.net).filter != kvnet_model::TrafficFilter::None
                || s.ports.iter().any(|p| p.mac.is_none())
        });
        if !wanted {
            return Ok(Default::default());
        }
        let links = nl.links().await?;
        let index: HashMap<String, u32> = links.iter().map(|l| (l.name.clone(), l.index)).collect();
        let by_index: HashMap<u32, &str> =
            links.iter().map(|l| (l.index, l.name.as_str())).collect();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, src) in &self.nets {
            let Some(br) = src.net.bridge_name() else {
                continue;
            };
            let registered: Vec<&str> = src.ports.iter().map(|p| p.ifname.as_str()).collect();
            let on: Vec<String> = links
                .iter()
                .filter(|l| l.master.and_then(|m| by_index.get(&m)) == Some(&br))
                .filter(|l| !registered.contains(&l.name.as_str()))
                .map(|l| l.name.clone())
                .collect();
            out.insert(name.clone(), on);
        }
        Ok((out, index))
    }

    /// Bring the table to what the sources call for.
    async fn sync(&mut self) -> Result<()> {
        let t0 = std::time::Instant::now();
        let (unregistered, index) = self.links().await?;
        let t_links = t0.elapsed();
        let views: Vec<NetView> = self
            .nets
            .iter()
            .map(|(name, s)| NetView {
                net: &s.net,
                ports: &s.ports,
                unregistered: unregistered.get(name).cloned().unwrap_or_default(),
                leases: s
                    .leases
                    .as_ref()
                    .map(LeaseNames::bindings)
                    .unwrap_or_default(),
            })
            .collect();
        let (want, refused) = FilterState::from_input(&plan::input(&views));
        for r in refused {
            warn!("{r}");
        }
        // A learning port whose device is new, or that stops learning, forgets its MAC.
        let renewed: Vec<&String> = want
            .learn
            .iter()
            .filter(|p| {
                let was = self.learning.get(*p);
                was.is_some() && was != index.get(*p)
            })
            .collect();
        let stops = self.learning.keys().any(|p| !want.learn.contains(p));
        let res = self.apply(&want, !renewed.is_empty() || stops, &renewed);
        debug!(
            "port filter: {} ports in {:.1} ms (links {:.1} ms)",
            want.filtered.len(),
            t0.elapsed().as_secs_f64() * 1e3,
            t_links.as_secs_f64() * 1e3
        );
        self.learning = want
            .learn
            .iter()
            .filter_map(|p| index.get(p).map(|i| (p.clone(), *i)))
            .collect();
        res
    }

    fn apply(&mut self, want: &FilterState, forget_some: bool, renewed: &[&String]) -> Result<()> {
        let tampered = self.tampered.take();
        if tampered.is_some() {
            self.live = Live::Unknown;
        }
        // What is there, read when not known, or when learned MACs are to be forgotten.
        let installed = if self.live == Live::Unknown || forget_some {
            read_installed(&self.table)?
        } else {
            None
        };
        if self.live == Live::Unknown {
            self.live = match &installed {
                None => Live::Absent,
                Some(i) if i.current && tampered.is_none() => Live::Present(i.state.clone()),
                // Another layout, or edited by someone: replaced whole.
                Some(_) => Live::Foreign,
            };
        }
        if want.filtered.is_empty() {
            if self.live != Live::Absent {
                let res = nft::apply(&format!("delete table bridge {}\n", self.table));
                // Already gone (someone flushed the ruleset) is as good.
                if res.is_err() && read_installed(&self.table)?.is_some() {
                    res.context("remove the port filter table")?;
                }
                info!("port filter: no port is filtered, table removed");
            }
            self.live = Live::Absent;
            return Ok(());
        }
        let old = match std::mem::replace(&mut self.live, Live::Unknown) {
            Live::Present(old) => old,
            _ => {
                nft::apply(&render_table(&self.table, want))
                    .context("install the port filter table")?;
                match tampered {
                    Some(why) => warn!(
                        "port filter table bridge {} {why}: rebuilt ({} ports; learned MACs are learned again)",
                        self.table,
                        want.filtered.len()
                    ),
                    None => info!(
                        "port filter: table installed ({} ports)",
                        want.filtered.len()
                    ),
                }
                self.live = Live::Present(want.clone());
                return Ok(());
            }
        };
        let forget: Vec<(String, MacAddr)> = installed
            .map(|i| i.learned)
            .unwrap_or_default()
            .into_iter()
            .filter(|(p, _)| !want.learn.contains(p) || renewed.contains(&p))
            .collect();
        if let Some(script) = render_changes(&self.table, &old, want, &forget) {
            if let Err(e) = nft::apply(&script) {
                // Someone else changed the table (or it is gone): rebuild it whole.
                warn!("port filter: changes refused ({e}); rebuilding the table");
                nft::apply(&render_table(&self.table, want))
                    .context("rebuild the port filter table")?;
            }
            debug!("port filter: applied\n{script}");
        }
        self.live = Live::Present(want.clone());
        Ok(())
    }
}

enum Wake {
    Msg(Msg),
    Changed,
    LinksLost(kvnet_host::HostError),
    Tampered(String),
    WatchLost(kvnet_host::HostError),
    Refresh,
}

async fn lease_recorded(nets: &mut BTreeMap<String, NetSrc>) {
    any_recorded(nets.values_mut().filter_map(|n| n.leases.as_mut())).await
}

async fn nft_changed(
    w: &mut Option<NftWatcher>,
    table: &str,
) -> Result<String, kvnet_host::HostError> {
    let Some(w) = w else {
        return std::future::pending().await;
    };
    loop {
        let n = w.next().await?;
        if let Some(why) = tampering(&n, table) {
            // The rest of a burst goes into the same rebuild.
            while let Ok(Some(_)) = w.try_next() {}
            return Ok(why);
        }
    }
}

async fn link_changed(links: &mut Option<LinkEvents>) -> Result<(), kvnet_host::HostError> {
    match links {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

async fn run(table: String, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let nl = Netlink::connect()
        .await
        .inspect_err(|e| warn!("port filter: {e}: links attached without kvnet are not filtered"))
        .ok();
    let mut links = LinkEvents::open()
        .inspect_err(|e| warn!("port filter: {e}: links attached without kvnet are not followed"))
        .ok();
    let mut t = Task {
        table,
        nl,
        nets: BTreeMap::new(),
        live: Live::Unknown,
        learning: HashMap::new(),
        ready: false,
        tampered: None,
        idle: false,
        filtering: 0,
    };
    let mut nft_watch = NftWatcher::open()
        .inspect_err(|e| warn!("port filter: {e}: the table is not repaired when others change it"))
        .ok();
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let woke = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Wake::Msg(m),
                None => return,
            },
            // Leases only matter to filtered networks (and waiting on them is a future
            // per network).
            () = lease_recorded(&mut t.nets), if t.filtering > 0 || !t.idle => Wake::Changed,
            r = link_changed(&mut links) => match r {
                Ok(()) => Wake::Changed,
                Err(e) => Wake::LinksLost(e),
            },
            r = nft_changed(&mut nft_watch, &t.table) => match r {
                Ok(why) => Wake::Tampered(why),
                Err(e) => Wake::WatchLost(e),
            },
            _ = refresh.tick() => Wake::Refresh,
        };
        let done = match woke {
            Wake::Msg(m) => match t.take(m) {
                Some(done) => Some(done),
                None => continue,
            },
            Wake::LinksLost(e) => {
                warn!("port filter: {e}: links attached without kvnet are not followed");
                links = None;
                None
            }
            // A burst of changes is applied once; a verb arriving meanwhile ends the wait
            // (its sync covers the changes too), so a network's start never waits out
            // the burst its own new bridge set off.
            Wake::Changed => tokio::select! {
                () = tokio::time::sleep(COALESCE) => None,
                m = rx.recv() => match m {
                    Some(m) => t.take(m),
                    None => return,
                },
            },
            Wake::Tampered(why) => {
                t.tampered = Some(why);
                None
            }
            Wake::WatchLost(e) => {
                warn!("port filter: {e}: the table is no longer repaired when others change it");
                nft_watch = None;
                None
            }
            Wake::Refresh => None,
        };
        if !t.ready {
            if let Some(d) = done {
                let _ = d.send(Ok(()));
            }
            continue;
        }
        let may_filter = t.filtering > 0;
        if done.is_none() && t.idle && !may_filter && t.tampered.is_none() {
            continue;
        }
        // Leases recorded meanwhile are in this sync.
        for n in t.nets.values_mut() {
            if let Some(l) = n.leases.as_mut() {
                l.changed();
            }
        }
        let res = t.sync().await;
        t.idle = res.is_ok() && !may_filter;
        match done {
            Some(d) => {
                let _ = d.send(res);
            }
            None => {
                if let Err(e) = res {
                    warn!("port filter: {e:#}");
                }
            }
        }
    }
}
