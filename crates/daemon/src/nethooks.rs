//! libvirt's network hook scripts, so that existing ones run unchanged: every
//! executable of CONFIG_DIR/hooks/network and CONFIG_DIR/hooks/network.d/* (in name
//! order) is run as `SCRIPT NETWORK OPERATION SUB-OPERATION -` with the network's XML
//! on stdin — `start begin` (before anything is set up: a failure aborts the start,
//! libvirt's rule), `started begin`, `stopped end`, `updated begin`,
//! `port-created begin`, `port-deleted begin` — plus kvnet's own `lease added|renewed|
//! released|expired`, with the lease in `KVNET_LEASE_MAC`, `KVNET_LEASE_ADDRESS` and
//! `KVNET_LEASE_HOSTNAME`. Each run is bounded ([`timeout`]); hooks other than
//! `start begin` run in order on a task of their own, so a slow script never holds
//! kvnetd (past a backlog of [`BACKLOG`], hooks are dropped and counted).
//!
//! Only root's scripts run: a file that another user owns or can write is skipped,
//! with a warning, since it would run as root.

use anyhow::{Result, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Hooks queued for the task before new ones are dropped.
pub const BACKLOG: usize = 1024;
/// How long the lease path (thousands a second) trusts its last look at the hook
/// directory; every other hook looks again.
const RESCAN: Duration = Duration::from_secs(2);

/// One hook run: the arguments after the script, stdin, extra environment.
struct Job {
    network: String,
    op: String,
    subop: String,
    stdin: String,
    env: Vec<(&'static str, String)>,
}

struct Hooks {
    dir: PathBuf,
    tx: mpsc::Sender<Job>,
    scripts: Mutex<Option<(Instant, Vec<PathBuf>)>>,
    dropped: AtomicU64,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// How long a script may run: `KVNET_HOOK_TIMEOUT` seconds, 30 by default.
pub fn timeout() -> Duration {
    let secs = std::env::var("KVNET_HOOK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Start the hook task for scripts under `dir` (CONFIG_DIR/hooks). Needs a tokio
/// runtime; without it (or before it), no hook runs.
pub fn init(dir: PathBuf) {
    let (tx, mut rx) = mpsc::channel::<Job>(BACKLOG);
    if HOOKS
        .set(Hooks {
            dir,
            tx,
            scripts: Mutex::new(None),
            dropped: AtomicU64::new(0),
        })
        .is_err()
    {
        return;
    }
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            for script in scripts(false) {
                if let Err(e) = run(&script, &job).await {
                    warn!(network = %job.network, "hook {} {} {}: {e}", script.display(), job.op, job.subop);
                }
            }
        }
    });
}

/// Whether `path` is a script root may run: a regular executable file, owned by root
/// (or kvnetd's user) and writable by nobody else.
fn runnable(path: &Path) -> bool {
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    if !m.is_file() || m.mode() & 0o111 == 0 {
        return false;
    }
    let me = nix::unistd::geteuid().as_raw();
    if (m.uid() != 0 && m.uid() != me) || m.mode() & 0o022 != 0 {
        warn!(
            "hook {} skipped: it must belong to root and be writable by no one else",
            path.display()
        );
        return false;
    }
    true
}

/// The scripts to run, in order; with `cached`, as last looked up if that was less
/// than [`RESCAN`] ago.
fn scripts(cached: bool) -> Vec<PathBuf> {
    let Some(h) = HOOKS.get() else {
        return Vec::new();
    };
    let mut cache = h.scripts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, list)) = cache.as_ref()
        && cached
        && at.elapsed() < RESCAN
    {
        return list.clone();
    }
    let mut list = vec![h.dir.join("network")];
    if let Ok(rd) = std::fs::read_dir(h.dir.join("network.d")) {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        list.extend(more);
    }
    list.retain(|p| runnable(p));
    *cache = Some((Instant::now(), list.clone()));
    list
}

/// Runs one script for `job`, bounded by [`timeout`]; the error says how it failed,
/// with the end of what it wrote to stderr.
async fn run(script: &Path, job: &Job) -> Result<()> {
    let mut cmd = tokio::process::Command::new(script);
    cmd.args([&job.network, &job.op, &job.subop, "-"])
        .envs(job.env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A script that does not read its stdin is fine.
        let _ = stdin.write_all(job.stdin.as_bytes()).await;
    }
    let limit = timeout();
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out?,
        Err(_) => bail!("still running after {limit:?}: killed"),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .trim()
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "failed ({}){}",
            out.status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        );
    }
    debug!(network = %job.network, "hook {} {} {} done", script.display(), job.op, job.subop);
    Ok(())
}

/// Whether any hook script is installed (callers skip rendering XML for none).
pub fn any() -> bool {
    HOOKS.get().is_some() && !scripts(false).is_empty()
}

/// [`any`] for the lease path: a script installed a moment ago may miss a lease or
/// two, a lease storm costs no directory scans.
pub fn any_cached() -> bool {
    HOOKS.get().is_some() && !scripts(true).is_empty()
}

/// `start begin`, before the network is set up: each script in turn, the first
/// failure returned (and the start refused).
pub async fn start_begin(network: &str, xml: &str) -> Result<()> {
    let job = Job {
        network: network.into(),
        op: "start".into(),
        subop: "begin".into(),
        stdin: xml.into(),
        env: Vec::new(),
    };
    for script in scripts(false) {
        if let Err(e) = run(&script, &job).await {
            bail!("hook {} refused the start: {e:#}", script.display());
        }
    }
    Ok(())
}

/// Queue a hook run (never waits); callers ask [`any`] first.
pub fn fire(network: &str, op: &str, subop: &str, stdin: String, env: Vec<(&'static str, String)>) {
    let Some(h) = HOOKS.get() else {
        return;
    };
    let job = Job {
        network: network.into(),
        op: op.into(),
        subop: subop.into(),
        stdin,
        env,
    };
    if h.tx.try_send(job).is_err() {
        let n = h.dropped.fetch_add(1, Relaxed) + 1;
        if n.is_power_of_two() {
            warn!("{n} hooks dropped: the scripts cannot keep up");
        }
    }
}
