//! Background teardown of stopped networks.
//!
//! Deleting a bridge makes the kernel wait for RCU callbacks (about 40 ms here), and
//! every nftables transaction that deletes something waits for a grace period (15–30 ms).
//! None of that is needed for traffic to stop: net-destroy takes the bridge down at once
//! and hands the deletions to this worker, which has its own thread and netlink socket
//! so the daemon keeps serving. Jobs run in order. A network's status file stays (marked
//! `stopping`) until its job is done, so a daemon killed meanwhile finishes the job at
//! its next start. A later start that needs the same bridge name or subnets first waits
//! for the job ([`Teardown::settle`]).
//!
//! When the last network with rules is gone, kvnet's table stays for
//! [`idle_table`] (a minute by default), so that a network stopped and started again
//! takes the fast start path; then it is deleted, and an idle host keeps no NAT hooks or
//! connection tracking for kvnet.

use crate::dataplane::firewall::Firewall;
use anyhow::{Context, Result};
use ipnet::IpNet;
use kvnet_firewall::FwNetwork;
use kvnet_host::Netlink;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{error, info};

/// What is left to remove of a stopped network.
pub struct Job {
    pub network: String,
    pub firewall: Option<FwNetwork>,
    /// The bridge to delete, when kvnet created it.
    pub bridge: Option<String>,
    /// The network's subnets (a new start may not reuse them before the job is done).
    pub subnets: Vec<IpNet>,
    /// The status record, removed last.
    pub status: PathBuf,
}

/// A job handed to the worker and not known to be finished.
struct Pending {
    bridge: Option<String>,
    subnets: Vec<IpNet>,
    done: oneshot::Receiver<()>,
}

pub struct Teardown {
    tx: Option<mpsc::Sender<(Job, oneshot::Sender<()>)>>,
    thread: Option<JoinHandle<()>>,
    pending: Vec<Pending>,
}

impl Teardown {
    pub fn spawn(fw: Firewall) -> Result<Teardown> {
        let (tx, rx) = mpsc::channel::<(Job, oneshot::Sender<()>)>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kvnet-teardown".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                let nl = match rt.block_on(Netlink::connect()) {
                    Ok(nl) => nl,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let idle = idle_table();
                // When kvnet's table, left without networks, is to be deleted.
                let mut drop_at: Option<Instant> = None;
                loop {
                    let next = match drop_at {
                        Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok((job, done)) => {
                            let had_rules = job.firewall.is_some();
                            run(&rt, &nl, &fw, job);
                            let _ = done.send(());
                            if had_rules && fw.wanted_names().is_empty() {
                                drop_at = Some(Instant::now() + idle);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            drop_at = None;
                            drop_idle_table(&fw);
                        }
                        // At shutdown a pending deletion is left to the next kvnetd,
                        // which deletes a table no active network needs.
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .context("spawn teardown thread")?;
        ready_rx.recv().context("teardown thread died")??;
        Ok(Teardown {
            tx: Some(tx),
            thread: Some(thread),
            pending: Vec::new(),
        })
    }

    pub fn submit(&mut self, job: Job) {
        let (done, rx) = oneshot::channel();
        self.pending.push(Pending {
            bridge: job.bridge.clone(),
            subnets: job.subnets.clone(),
            done: rx,
        });
        if let Some(tx) = &self.tx
            && let Err(mpsc::SendError((job, _))) = tx.send((job, done))
        {
            error!(network = %job.network, "teardown worker is gone; bridge and rules left behind");
        }
    }

    /// Wait for the jobs still holding `bridge` or a subnet overlapping `subnets` (all
    /// jobs with `None`), and forget finished ones.
    pub async fn settle(&mut self, conflict: Option<(Option<&str>, &[IpNet])>) {
        let mut keep = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            let conflicts = conflict.is_none_or(|(bridge, subnets)| {
                (bridge.is_some() && p.bridge.as_deref() == bridge)
                    || p.subnets.iter().any(|a| {
                        subnets
                            .iter()
                            .any(|b| crate::dataplane::checks::overlaps(a, b))
                    })
            });
            match p.done.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) if conflicts => {
                    let _ = p.done.await;
                }
                Err(oneshot::error::TryRecvError::Empty) => keep.push(p),
                _ => {}
            }
        }
        self.pending = keep;
    }

    /// Finish every queued job (at daemon shutdown).
    pub fn drain(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long kvnet's table outlives its last network: `KVNET_IDLE_TABLE` seconds, 60 by
/// default.
pub fn idle_table() -> Duration {
    let secs = std::env::var("KVNET_IDLE_TABLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Deletes kvnet's table if no network has needed it since (a start meanwhile keeps it).
fn drop_idle_table(fw: &Firewall) {
    match fw.drop_if_unused() {
        Ok(true) => info!(
            "table inet {} deleted: no network has needed it for {:?}",
            fw.table(),
            idle_table()
        ),
        Ok(false) => {}
        Err(e) => error!("{e:#}"),
    }
}

fn run(rt: &tokio::runtime::Runtime, nl: &Netlink, firewall: &Firewall, job: Job) {
    crate::hooks::kill_point("teardown");
    let mut errors = Vec::new();
    if let Some(fw) = &job.firewall
        && let Err(e) = crate::dataplane::firewall::remove_rules(firewall.table(), fw)
    {
        errors.push(format!("remove firewall rules: {e:#}"));
    }
    if let Some(br) = &job.bridge {
        let res = rt.block_on(async {
            if let Some(l) = nl.link(br).await? {
                nl.delete_link(l.index).await?;
            }
            Ok::<_, kvnet_host::HostError>(())
        });
        if let Err(e) = res {
            errors.push(format!("delete bridge {br}: {e}"));
        }
    }
    if let Err(e) = std::fs::remove_file(&job.status)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        errors.push(format!("remove {}: {e}", job.status.display()));
    }
    if errors.is_empty() {
        info!(network = %job.network, event = "torn-down", "teardown complete");
    } else {
        error!(network = %job.network, "teardown incomplete: {}", errors.join("; "));
    }
}
