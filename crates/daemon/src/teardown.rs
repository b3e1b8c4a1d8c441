//! Background teardown of stopped networks.
//!
//! Deleting a bridge makes the kernel wait for RCU callbacks (about 40 ms here), and
//! every nftables transaction that deletes something waits for a grace period (15–30 ms).
//! None of that is needed for traffic to stop: net-destroy takes the bridge down at once
//! and hands the deletions to this worker, which has its own thread and netlink socket
//! so the daemon keeps serving. Jobs run in order. A network's status file stays (marked
//! `stopping`) until its job is done, so a daemon killed meanwhile finishes the job at
//! its next start.

use anyhow::{Context, Result};
use kvnet_firewall::{FwNetwork, render_remove};
use kvnet_host::{Netlink, nft};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use tracing::{error, info};

pub struct Job {
    pub network: String,
    pub firewall: Option<FwNetwork>,
    /// The bridge to delete, when kvnet created it.
    pub bridge: Option<String>,
    pub status: PathBuf,
    pub done: oneshot::Sender<()>,
}

pub struct Reaper {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    pub fn spawn(table: String) -> Result<Reaper> {
        let (tx, rx) = mpsc::channel::<Job>();
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
                for job in rx {
                    run(&rt, &nl, &table, job);
                }
            })
            .context("spawn teardown thread")?;
        ready_rx.recv().context("teardown thread died")??;
        Ok(Reaper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.tx
            && let Err(mpsc::SendError(job)) = tx.send(job)
        {
            error!(network = %job.network, "teardown worker is gone; bridge and rules left behind");
        }
    }

    /// Finish every queued job (at daemon shutdown).
    pub fn drain(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, nl: &Netlink, table: &str, job: Job) {
    let mut errors = Vec::new();
    if let Some(fw) = &job.firewall {
        // A missing table means someone removed kvnet's rules wholesale; a remove script
        // would recreate an empty table without its base chains.
        match nft::list_table("inet", table) {
            Ok(Some(_)) => {
                if let Err(e) = nft::apply(&render_remove(table, fw)) {
                    errors.push(format!("remove firewall rules: {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("read firewall: {e}")),
        }
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
        info!(network = %job.network, "teardown complete");
    } else {
        error!(network = %job.network, "teardown incomplete: {}", errors.join("; "));
    }
    let _ = job.done.send(());
}
