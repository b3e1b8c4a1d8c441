//! kvnetd: serves every kvnet network from one process.

mod bgclose;
mod dataplane;
mod dhcp;
mod dhcp6;
mod dns;
mod ifbridge;
mod manager;
mod paths;
mod plan;
mod ports;
mod ra;
mod server;
mod store;
mod teardown;

use anyhow::{Context, Result};
use clap::Parser;
use manager::Manager;
use nix::fcntl::{Flock, FlockArg};
use paths::Paths;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    name = "kvnetd",
    version,
    about = "kvnet daemon: virtual networks for KVM/QEMU guests"
)]
struct Args {
    /// Network definitions (NAME.xml) and autostart links.
    #[arg(long, default_value = "/etc/kvnet", env = "KVNET_CONFIG_DIR")]
    config_dir: PathBuf,
    /// Durable state (leases, first-start marker).
    #[arg(long, default_value = "/var/lib/kvnet", env = "KVNET_STATE_DIR")]
    state_dir: PathBuf,
    /// Runtime state: API socket and status of active networks (a tmpfs in production).
    #[arg(long, default_value = "/run/kvnet", env = "KVNET_RUN_DIR")]
    run_dir: PathBuf,
    /// API socket path (default RUN_DIR/kvnetd.sock).
    #[arg(long, env = "KVNET_SOCKET")]
    socket: Option<PathBuf>,
    /// Group allowed to use the API socket (default: root only).
    #[arg(long)]
    socket_group: Option<String>,
    /// nftables table kvnet owns (family inet).
    #[arg(long, default_value = "kvnet")]
    nft_table: String,
    /// Log filter, e.g. "info" or "kvnetd=debug".
    #[arg(long, default_value = "info", env = "KVNET_LOG")]
    log: String,
}

fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    nix::unistd::Group::from_name(name)?
        .map(|g| g.gid.as_raw())
        .with_context(|| format!("no such group '{name}'"))
}

/// One daemon per run dir: a second one would fight over the same bridges and table.
fn lock_run_dir(paths: &Paths) -> Result<Flock<std::fs::File>> {
    std::fs::create_dir_all(&paths.run_dir)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.lock())
        .with_context(|| format!("open {}", paths.lock().display()))?;
    let mut f = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another kvnetd is running with run dir {}",
            paths.run_dir.display()
        )
    })?;
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

async fn run(args: Args) -> Result<()> {
    let paths = Paths::new(args.config_dir, args.state_dir, args.run_dir, args.socket);
    let _lock = lock_run_dir(&paths)?;
    let group = args.socket_group.as_deref().map(group_id).transpose()?;
    let nl = kvnet_host::Netlink::connect()
        .await
        .context("open netlink")?;
    let routes = kvnet_host::routewatch::RouteWatcher::start().context("watch routes")?;
    let dp = dataplane::Dataplane {
        nl,
        routes,
        table: args.nft_table,
        skeleton: std::sync::atomic::AtomicBool::new(false),
        nl_seq: std::sync::atomic::AtomicU32::new(1),
    };
    let listener = server::bind(&paths.socket, group)?;
    let mgr = Manager::init(paths.clone(), dp).await?;
    let active = mgr.active().len();
    info!(
        "kvnetd ready on {}: {} networks defined, {active} active",
        paths.socket.display(),
        mgr.nets.len()
    );
    let mgr = Arc::new(tokio::sync::Mutex::new(mgr));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = server::serve(listener, mgr.clone()) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Networks keep running: the next kvnetd adopts them. Wait for a request in flight.
    mgr.lock().await.shutdown();
    let _ = std::fs::remove_file(&paths.socket);
    info!("kvnetd stopping; active networks stay up");
    Ok(())
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)) {
        error!("{e:#}");
        std::process::exit(1);
    }
}
