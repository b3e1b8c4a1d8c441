//! `iface-bridge` / `iface-unbridge`, like virsh's: turn a host NIC into a port of a
//! new bridge that takes over the NIC's MAC, MTU, addresses and routes, and back. The
//! [`plan`] is pure; the executor here runs its steps over netlink and, when a step
//! fails or the host has lost a default route it had, undoes the steps done so far in
//! reverse order. The plan and its progress are recorded ([`journal`]) before the first
//! step and after each, so that a kvnetd killed midway is followed by one that puts the
//! host's NIC back ([`recover`]).

mod journal;
mod plan;

use crate::paths::Paths;
use crate::store;
use anyhow::{Context, Result, anyhow, bail};
use journal::{Record, Recovery};
use kvnet_api::request::IfaceBridge;
use kvnet_api::{Bridged, Unbridged};
use kvnet_host::{Link, LinkRoute, Netlink};
use plan::{BridgeInput, Defaults, Step, UnbridgeInput, check_name, plan_bridge, plan_unbridge};
use std::path::PathBuf;
use tracing::{error, info, warn};

/// Runs the steps over netlink.
pub struct Executor<'a> {
    pub nl: &'a Netlink,
    /// Where the plan and its progress are recorded.
    pub journal: PathBuf,
    /// Test hook: fail instead of running this step (1-based).
    pub fail_at: Option<usize>,
    /// Test hook: kill kvnetd (SIGKILL) right after this step (1-based) ran, before its
    /// progress is recorded.
    pub kill_after: Option<usize>,
}

/// Routes are told apart by what `ip route` shows of them.
fn same_route(a: &LinkRoute, b: &LinkRoute) -> bool {
    (a.dest, a.gateway, a.metric) == (b.dest, b.gateway, b.metric)
}

impl Executor<'_> {
    async fn index(&self, name: &str) -> Result<u32> {
        Ok(self
            .nl
            .link(name)
            .await?
            .ok_or_else(|| anyhow!("interface {name} vanished"))?
            .index)
    }

    async fn step(&self, s: &Step) -> Result<()> {
        match s {
            Step::CreateBridge(spec) => {
                self.nl.create_bridge(spec).await?;
            }
            Step::DeleteLink(l) => {
                if let Some(link) = self.nl.link(l).await? {
                    self.nl.delete_link(link.index).await?;
                }
            }
            Step::Attach { port, bridge } => {
                let m = self.index(bridge).await?;
                self.nl.set_master(self.index(port).await?, Some(m)).await?;
            }
            Step::Detach { port, .. } => {
                self.nl.set_master(self.index(port).await?, None).await?;
            }
            Step::SetUp { link, up } => self.nl.set_up(self.index(link).await?, *up).await?,
            Step::AddAddr { link, addr } => {
                self.nl
                    .add_link_address(self.index(link).await?, addr)
                    .await?
            }
            Step::DelAddr { link, addr } => {
                self.nl
                    .del_address(self.index(link).await?, addr.addr)
                    .await?
            }
            Step::AddRoute { link, route } => {
                self.nl
                    .add_link_route(self.index(link).await?, route)
                    .await?
            }
            Step::DelRoute { link, route } => {
                self.nl
                    .del_link_route(self.index(link).await?, route)
                    .await?
            }
            Step::CheckDefaults(want) => {
                let now = Defaults::of(&self.nl.routes().await?);
                if (want.v4 && !now.v4) || (want.v6 && !now.v6) {
                    bail!(
                        "the host lost its default route{}",
                        match (want.v4 && !now.v4, want.v6 && !now.v6) {
                            (true, false) => " (IPv4)",
                            (false, true) => " (IPv6)",
                            _ => "s",
                        }
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether `s` has nothing left to do: what makes a recovery (which does not know
    /// whether the last unrecorded step ran) safe to run again.
    async fn in_effect(&self, s: &Step) -> Result<bool> {
        Ok(match s {
            Step::CreateBridge(spec) => self.nl.link(&spec.name).await?.is_some(),
            Step::DeleteLink(l) => self.nl.link(l).await?.is_none(),
            Step::Attach { port, bridge } | Step::Detach { port, bridge } => {
                let attached = match (self.nl.link(port).await?, self.nl.link(bridge).await?) {
                    (Some(p), Some(b)) => p.master == Some(b.index),
                    _ => false,
                };
                attached == matches!(s, Step::Attach { .. })
            }
            Step::SetUp { link: l, up } => self.nl.link(l).await?.map_or(!up, |x| x.up == *up),
            Step::AddAddr { link: l, addr } | Step::DelAddr { link: l, addr } => {
                let has = match self.nl.link(l).await? {
                    Some(x) => self
                        .nl
                        .link_addresses(x.index)
                        .await?
                        .iter()
                        .any(|a| a.addr == addr.addr),
                    None => false,
                };
                has == matches!(s, Step::AddAddr { .. })
            }
            Step::AddRoute { link: l, route } | Step::DelRoute { link: l, route } => {
                let has = match self.nl.link(l).await? {
                    Some(x) => self
                        .nl
                        .link_routes(x.index)
                        .await?
                        .iter()
                        .any(|r| same_route(r, route)),
                    None => false,
                };
                has == matches!(s, Step::AddRoute { .. })
            }
            Step::CheckDefaults(_) => true,
        })
    }

    /// Run `s` unless it is in effect already.
    async fn ensure(&self, s: &Step) -> Result<()> {
        if !self.in_effect(s).await? {
            self.step(s).await?;
            info!("iface: {s}");
        }
        Ok(())
    }

    /// Undo `done` (latest first); the undo steps that failed.
    async fn undo(&self, done: &[Step]) -> Vec<String> {
        let mut failed = Vec::new();
        for u in done.iter().rev().filter_map(Step::undo) {
            if let Err(e) = self.ensure(&u).await {
                warn!("iface: rollback: {u} failed: {e:#}");
                failed.push(format!("{u}: {e:#}"));
            }
        }
        failed
    }

    /// Runs every step, recording the progress; on a failure undoes the done ones in
    /// reverse and returns the failure (with the undo steps that failed too, if any).
    pub async fn run(&self, what: &str, steps: &[Step]) -> Result<()> {
        let mut rec = Record {
            what: what.to_string(),
            steps: steps.to_vec(),
            done: 0,
        };
        journal::save(&self.journal, &rec)?;
        for (n, s) in steps.iter().enumerate() {
            let ran = if self.fail_at == Some(n + 1) {
                Err(anyhow!("injected failure (test hook, step {})", n + 1))
            } else {
                self.step(s).await
            };
            if self.kill_after == Some(n + 1) {
                warn!("iface: {s} done; killing kvnetd (test hook)");
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
            let res = ran.and_then(|()| {
                rec.done = n + 1;
                journal::save(&self.journal, &rec)
            });
            match res {
                Ok(()) => info!("iface: {s}"),
                Err(e) => {
                    warn!("iface: {s} failed: {e:#}; rolling back");
                    let failed = self.undo(&steps[..rec.done]).await;
                    if let Err(e) = store::remove_if_exists(&self.journal) {
                        warn!("iface: {e:#}");
                    }
                    let mut msg = format!("cannot {s}: {e:#}; rolled back");
                    if !failed.is_empty() {
                        msg += &format!(" except: {}", failed.join("; "));
                    }
                    bail!(msg);
                }
            }
        }
        if let Err(e) = store::remove_if_exists(&self.journal) {
            warn!("iface: {e:#}");
        }
        Ok(())
    }
}

/// At kvnetd's start: finish or undo the `iface-bridge`/`-unbridge` a kill interrupted,
/// so that the host's NIC has its addresses and routes. A record that cannot be read or
/// fully acted on is kept aside and logged.
pub async fn recover(nl: &Netlink, paths: &Paths) {
    let path = paths.iface_journal();
    let rec = match journal::load(&path) {
        Ok(Some(rec)) => rec,
        Ok(None) => return,
        Err(e) => {
            let why = format!("{e:#}; an interrupted iface change could not be undone");
            store::quarantine(&path, &why);
            return;
        }
    };
    let ex = Executor {
        nl,
        journal: path.clone(),
        fail_at: None,
        kill_after: None,
    };
    let (verb, steps) = match journal::recovery(&rec) {
        Recovery::Finish(s) => ("finished", s),
        Recovery::Undo(s) => ("undid", s),
    };
    let mut failed = Vec::new();
    for s in &steps {
        if let Err(e) = ex.ensure(s).await {
            failed.push(format!("{s}: {e:#}"));
        }
    }
    let progress = format!("{} of {} steps recorded done", rec.done, rec.steps.len());
    if failed.is_empty() {
        info!("{verb} the interrupted {} ({progress})", rec.what);
        if let Err(e) = store::remove_if_exists(&path) {
            error!("{e:#}");
        }
    } else {
        let why = format!(
            "the interrupted {} ({progress}) was not fully {verb}: {}",
            rec.what,
            failed.join("; ")
        );
        store::quarantine(&path, &why);
    }
}

/// The test hooks: `KVNET_TEST_IFACE_FAIL_AT=OP:N` (OP `bridge` or `unbridge`) makes
/// step N (1-based) of that operation's plans fail; `KVNET_TEST_IFACE_KILL_AFTER=OP:N`
/// kills kvnetd right after step N ran.
fn hook(var: &str, op: &str) -> Option<usize> {
    let v = std::env::var(var).ok()?;
    let (o, n) = v.split_once(':')?;
    (o == op).then(|| n.parse().ok()).flatten()
}

fn executor<'a>(nl: &'a Netlink, paths: &Paths, op: &str) -> Executor<'a> {
    Executor {
        nl,
        journal: paths.iface_journal(),
        fail_at: hook("KVNET_TEST_IFACE_FAIL_AT", op),
        kill_after: hook("KVNET_TEST_IFACE_KILL_AFTER", op),
    }
}

/// `iface-bridge` (see docs/api.md).
pub async fn bridge(nl: &Netlink, paths: &Paths, req: &IfaceBridge) -> Result<Bridged> {
    let IfaceBridge {
        iface,
        bridge,
        stp,
        delay,
        start,
    } = req;
    let (iface, bridge, stp, delay, start) =
        (iface.as_str(), bridge.as_str(), *stp, *delay, *start);
    let link = nl
        .link(iface)
        .await?
        .ok_or_else(|| anyhow!("no such interface '{iface}'"))?;
    let iface_master = match link.master {
        Some(m) => Some(
            nl.link_by_index(m)
                .await?
                .map_or_else(|| format!("#{m}"), |l| l.name),
        ),
        None => None,
    };
    let bridge_taken = check_name(bridge).is_ok() && nl.link(bridge).await?.is_some();
    let input = BridgeInput {
        addrs: nl.link_addresses(link.index).await?,
        routes: nl.link_routes(link.index).await?,
        unmovable: nl.other_link_routes(link.index).await?,
        iface: link,
        iface_master,
        bridge: bridge.to_string(),
        bridge_taken,
        stp,
        delay,
        start,
        defaults: Defaults::of(&nl.routes().await?),
    };
    let steps = plan_bridge(&input)?;
    executor(nl, paths, "bridge")
        .run(&format!("iface-bridge {iface} {bridge}"), &steps)
        .await
        .with_context(|| format!("cannot bridge {iface} into {bridge}"))?;
    info!(iface, bridge, "bridged");
    Ok(Bridged {
        bridge: bridge.into(),
        iface: iface.into(),
        started: start,
    })
}

/// `iface-unbridge`; `used_by` is the active network on `bridge`, if any.
pub async fn unbridge(
    nl: &Netlink,
    paths: &Paths,
    bridge: &str,
    used_by: Option<String>,
) -> Result<Unbridged> {
    let br = nl
        .link(bridge)
        .await?
        .ok_or_else(|| anyhow!("no such interface '{bridge}'"))?;
    let ports: Vec<Link> = nl
        .links()
        .await?
        .into_iter()
        .filter(|l| l.master == Some(br.index))
        .collect();
    let mut taps = Vec::new();
    for p in &ports {
        if nl.tun_info(&p.name).await?.is_some() {
            taps.push(p.name.clone());
        }
    }
    let input = UnbridgeInput {
        addrs: nl.link_addresses(br.index).await?,
        routes: nl.link_routes(br.index).await?,
        unmovable: nl.other_link_routes(br.index).await?,
        bridge: br,
        ports,
        taps,
        used_by,
        defaults: Defaults::of(&nl.routes().await?),
    };
    let steps = plan_unbridge(&input)?;
    let iface = steps
        .iter()
        .find_map(|s| match s {
            Step::Detach { port, .. } => Some(port.clone()),
            _ => None,
        })
        .expect("an unbridge plan detaches the NIC");
    executor(nl, paths, "unbridge")
        .run(&format!("iface-unbridge {bridge}"), &steps)
        .await
        .with_context(|| format!("cannot unbridge {bridge}"))?;
    info!(bridge, iface, "unbridged");
    Ok(Unbridged {
        bridge: bridge.into(),
        iface,
    })
}
