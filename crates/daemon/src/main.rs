//! kvnetd: serves every kvnet network from one process. docs/architecture.md maps the
//! modules; dependencies point down this list:
//!
//! * `server`, `api` — the socket (its limits, socket activation) and the dispatch of
//!   typed requests;
//! * `daemon` — the verbs: check in the registry, persist, apply;
//! * `registry` — every network and the pure decisions about them;
//! * `lifecycle` — start, destroy, adopt; the sysctl ledger; background teardown;
//! * `ports`, `ifbridge` — guest ports; host bridges made from NICs;
//! * `services` — DHCPv4, DHCPv6, DNS, RA behind one interface;
//! * `dataplane` — bridge, addresses, routes, firewall in the kernel;
//! * `store`, `paths`, `ids` — files, where they live, users and clocks; `systemd`,
//!   the service manager's notifications; `hooks`, the test hooks.

#![forbid(unsafe_code)]

mod api;
mod daemon;
mod dataplane;
mod doctor;
mod events;
mod forwards;
mod hooks;
mod ids;
mod ifbridge;
mod lifecycle;
mod metrics;
mod nethooks;
mod nssindex;
mod paths;
mod portfilter;
mod ports;
mod qos;
mod registry;
mod server;
mod services;
mod store;
mod systemd;

use anyhow::{Context, Result};
use clap::Parser;
use daemon::Daemon;
use dataplane::Dataplane;
use dataplane::firewall::Firewall;
use dataplane::foreign::Foreign;
use kvnet_daemon::Args;
use nix::fcntl::{Flock, FlockArg};
use paths::Paths;
use server::Server;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use tracing::{error, info, warn};

/// One daemon per run dir: a second one would fight over the same bridges and table.
fn lock_run_dir(paths: &Paths) -> Result<Flock<std::fs::File>> {
    std::fs::create_dir_all(&paths.run_dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.lock())
        .with_context(|| format!("open {}", paths.lock().display()))?;
    // A kvnetd killed while it spawned `nft` leaves the lock to the child until its exec
    // closes it, which on a loaded host takes tens of milliseconds: while the pid file
    // names a process that is gone, wait for that (5 s at most).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut f = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((back, _)) => {
                let pid = std::fs::read_to_string(paths.lock()).unwrap_or_default();
                let gone = pid.trim().parse().is_ok_and(|p| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None)
                        == Err(nix::errno::Errno::ESRCH)
                });
                if !gone || std::time::Instant::now() > deadline {
                    anyhow::bail!(
                        "another kvnetd is running with run dir {} (pid {})",
                        paths.run_dir.display(),
                        pid.trim()
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                file = back;
            }
        }
    };
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

async fn run(args: Args, passed: Option<UnixListener>, limits: server::Limits) -> Result<()> {
    metrics::mark_started();
    let metrics = args
        .metrics
        .as_deref()
        .map(metrics::http::parse_listen)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let paths = Paths::new(args.config_dir, args.state_dir, args.run_dir, args.socket);
    let _lock = lock_run_dir(&paths)?;
    nethooks::init(paths.config_dir.join("hooks"));
    let group = args
        .socket_group
        .as_deref()
        .map(ids::group_id)
        .transpose()?;
    let nl = kvnet_host::Netlink::connect()
        .await
        .context("open netlink")?;
    let routes = kvnet_host::routewatch::RouteWatcher::start().context("watch routes")?;
    let foreign = Foreign::new(args.foreign_firewalls, &args.nft_table);
    let dp = Dataplane::new(nl, routes, Firewall::new(args.nft_table), foreign);
    let server = match passed {
        Some(l) => Server::take_over(l, &paths.socket, group, limits)?,
        None => Server::bind(&paths.socket, group, limits)?,
    };
    let d = Daemon::init(paths.clone(), dp).await?;
    let (defined, active) = d.counts();
    info!(
        "kvnetd ready on {}: {defined} networks defined, {active} active",
        paths.socket.display(),
    );
    systemd::ready(&d.status_line());
    let _watchdog = systemd::spawn_watchdog();
    let d = Arc::new(tokio::sync::Mutex::new(d));
    let _metrics = match &metrics {
        Some(l) => {
            let d = d.clone();
            let render: metrics::http::Render = Arc::new(move || {
                let d = d.clone();
                Box::pin(async move { d.lock().await.metrics_text().await })
            });
            Some(metrics::http::spawn(l, render).await?)
        }
        None => None,
    };
    let _status = {
        let d = d.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(systemd::STATUS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                systemd::status(&d.lock().await.status_line());
            }
        })
    };
    let handler: server::Handler = {
        let d = d.clone();
        Arc::new(move |req| {
            let d = d.clone();
            Box::pin(async move { api::handle(&mut *d.lock().await, req).await })
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    // Returns once the requests accepted before the stop are answered.
    server.serve(handler, stop).await;
    systemd::stopping();
    // Networks keep running: the next kvnetd adopts them.
    d.lock().await.shutdown();
    info!("kvnetd stopping; active networks stay up");
    Ok(())
}

/// One line per event on stderr; to journald with the events' fields (NETWORK=,
/// EVENT=, …) when systemd connected stderr to it, as `JOURNAL_STREAM` says.
fn init_logs(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new(filter));
    let journald = systemd::stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    match journald {
        Some(j) => logs
            .with(
                j.with_field_prefix(None)
                    .with_syslog_identifier("kvnetd".into())
                    // syslog's meaning: info is informational, not a notice.
                    .with_priority_mappings(tracing_journald::PriorityMappings {
                        info: tracing_journald::Priority::Informational,
                        debug: tracing_journald::Priority::Debug,
                        ..Default::default()
                    }),
            )
            .init(),
        None => logs
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    match server::limits::fd_soft_target(soft, hard) {
        Some(target) => match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => target,
            Err(e) => {
                warn!("cannot raise the open-file limit from {soft} to {target}: {e}");
                soft
            }
        },
        None => soft,
    }
}

fn main() {
    let args = Args::parse();
    init_logs(&args.log);
    // Before any thread exists: it clears LISTEN_PID/LISTEN_FDS from the environment.
    let passed = server::passed_socket().unwrap_or_else(|e| {
        error!("{e:#}");
        std::process::exit(1);
    });
    let nofile = raise_fd_limit();
    let limits = server::Limits::for_fd_limit(nofile);
    info!(
        "open-file limit {nofile}: at most {} API connections{}",
        limits.max_connections,
        if passed.is_some() {
            "; serving the socket systemd passed"
        } else {
            ""
        }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args, passed, limits)) {
        error!("{e:#}");
        std::process::exit(1);
    }
}
