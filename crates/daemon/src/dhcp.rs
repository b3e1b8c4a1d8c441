//! The DHCPv4 service of a started network: the I/O shell around the sans-IO engine in
//! `kvnet_dhcp` (socket, lease journal, clock, timers). See crates/dhcp/src/lib.rs for
//! the contract this module keeps.
//!
//! One UDP socket per network, bound to 0.0.0.0:67 and to the bridge device
//! (SO_BINDTODEVICE), so every network can listen on port 67 at once and a request is
//! answered only by the network it arrived on.
//!
//! Checksums: replies go through an ordinary UDP socket, so the kernel builds the IP and
//! UDP headers. The bridge offloads checksums, so a reply may leave the bridge with its
//! UDP checksum still to be filled in (CHECKSUM_PARTIAL). Guests on veth ports (the
//! tests) and virtio guests told so by vhost-net's header cope; old DHCP clients reading
//! from a packet socket behind a vhost tap do not, which is why libvirt fills in the
//! checksum of DHCP replies on the bridge (iptables CHECKSUM, later a tc `csum` action).
//! kvnet does not do that yet; it matters only once TAP ports exist.

use crate::paths::Paths;
use crate::store;
use anyhow::{Context, Result, anyhow};
use kvnet_dhcp::{Config, Destination, Effect, Event, LeaseView, Server};
use kvnet_model::Network;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// With no lease or offer pending, the timer still wakes up now and then; harmless.
const IDLE_WAKEUP: u64 = 3600;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `<ip>` kvnet serves DHCP on: the first IPv4 one with `<dhcp>` (libvirt allows
/// only one). DHCPv6 is not served.
pub fn ip_index(net: &Network) -> Option<usize> {
    net.ips
        .iter()
        .position(|ip| !ip.is_ipv6() && ip.dhcp.is_some())
}

/// A running DHCP service; dropping it stops the task (the journal stays).
pub struct Service {
    server: Arc<Mutex<Server>>,
    /// Bumped whenever a lease is recorded, for the DNS service's guest names.
    changed: watch::Sender<()>,
    task: JoinHandle<()>,
}

/// The leases of a running DHCP service as the DNS service sees them.
#[derive(Clone)]
pub struct LeaseNames {
    server: Arc<Mutex<Server>>,
    changed: watch::Receiver<()>,
}

impl LeaseNames {
    /// Whether a lease was recorded since the last call.
    pub fn changed(&mut self) -> bool {
        let c = self.changed.has_changed().unwrap_or(false);
        self.changed.mark_unchanged();
        c
    }

    /// (hostname, address) of every current lease that has a hostname.
    pub fn names(&self) -> Vec<(String, Ipv4Addr)> {
        lock(&self.server)
            .leases(now())
            .into_iter()
            .filter_map(|l| Some((l.hostname?, l.ip_address)))
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(server: &Mutex<Server>) -> MutexGuard<'_, Server> {
    // The engine has no invariants a panicking caller could break half-way.
    server.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
    /// Start serving `net` if it has an IPv4 `<dhcp>`: replay and compact its journal,
    /// open the socket on `bridge`, spawn the task. Needs a tokio runtime.
    pub fn start(paths: &Paths, net: &Network, bridge: &str) -> Result<Option<Service>> {
        let Some(idx) = ip_index(net) else {
            return Ok(None);
        };
        let cfg = Config::from_network(net, idx).map_err(|e| anyhow!("DHCP config: {e}"))?;
        let path = paths.lease_journal(&net.name);
        let (table, text) = load_journal(&path)?;
        // Compacting costs two fsyncs; only pay them when there is something to drop.
        let compacted = kvnet_dhcp::compact(&table);
        if compacted != text {
            store::write_atomic(
                &path,
                compacted.as_bytes(),
                0o600,
                store::Durability::Durable,
            )
            .context("compact the lease journal")?;
        }
        let journal = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        let sock = open_socket(bridge)?;
        let server = Arc::new(Mutex::new(Server::new(cfg, table)));
        let (changed, _) = watch::channel(());
        let task = tokio::spawn(run(
            net.name.clone(),
            sock,
            server.clone(),
            Journal {
                file: journal,
                path,
                changed: changed.clone(),
            },
        ));
        Ok(Some(Service {
            server,
            changed,
            task,
        }))
    }

    pub fn lease_names(&self) -> LeaseNames {
        let mut changed = self.changed.subscribe();
        // A new subscriber has not seen the leases recorded so far.
        changed.mark_changed();
        LeaseNames {
            server: self.server.clone(),
            changed,
        }
    }

    pub fn leases(&self) -> Vec<LeaseView> {
        lock(&self.server).leases(now())
    }

    /// Apply a live change of the definition (net-update of hosts or ranges).
    pub fn reconfigure(&self, net: &Network) -> Result<()> {
        let idx = ip_index(net).context("the network no longer has IPv4 <dhcp>")?;
        let cfg = Config::from_network(net, idx).map_err(|e| anyhow!("DHCP config: {e}"))?;
        lock(&self.server).reconfigure(cfg);
        Ok(())
    }
}

/// The leases recorded for `net` while it is not running.
pub fn stored_leases(paths: &Paths, net: &Network) -> Result<Vec<LeaseView>> {
    let Some(idx) = ip_index(net) else {
        return Ok(Vec::new());
    };
    let cfg = Config::from_network(net, idx).map_err(|e| anyhow!("DHCP config: {e}"))?;
    let table = load_table(&paths.lease_journal(&net.name))?;
    Ok(Server::new(cfg, table).leases(now()))
}

fn load_table(path: &Path) -> Result<kvnet_dhcp::LeaseTable> {
    Ok(load_journal(path)?.0)
}

/// The journal replayed, and its text as found (empty when there is none yet).
fn load_journal(path: &Path) -> Result<(kvnet_dhcp::LeaseTable, String)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    Ok((kvnet_dhcp::replay(&text), text))
}

fn open_socket(bridge: &str) -> Result<UdpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("DHCP socket")?;
    // The device binding comes before bind(): sockets on different devices may then
    // share 0.0.0.0:67.
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))
        .with_context(|| format!("bind the DHCP socket to {bridge}"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
    socket::setsockopt(&fd, sockopt::Broadcast, &true).context("SO_BROADCAST")?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67)),
    )
    .with_context(|| format!("bind 0.0.0.0:67 on {bridge}"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd)).context("register the DHCP socket")
}

struct Journal {
    file: File,
    path: PathBuf,
    changed: watch::Sender<()>,
}

async fn run(name: String, sock: UdpSocket, server: Arc<Mutex<Server>>, mut journal: Journal) {
    let mut buf = vec![0u8; 4096];
    loop {
        let deadline = lock(&server).next_deadline().unwrap_or(now() + IDLE_WAKEUP);
        // At least a second, so a deadline that is already due cannot make us spin.
        let wait = Duration::from_secs(deadline.saturating_sub(now()).max(1));
        let effects = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, _)) => lock(&server).handle(now(), &buf[..n]),
                Err(e) => {
                    warn!(network = %name, "DHCP receive: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::time::sleep(wait) => lock(&server).expire(now()),
        };
        carry_out(&name, &sock, &mut journal, effects).await;
    }
}

/// Effects strictly in order. A lease is on disk before the reply that promises it; if
/// it cannot be written, the rest of the batch is dropped and the client retries.
async fn carry_out(name: &str, sock: &UdpSocket, journal: &mut Journal, effects: Vec<Effect>) {
    for e in effects {
        match e {
            Effect::Persist(rec) => {
                // A blocking write and fsync on the daemon's thread: a journal line is
                // small and it keeps the ordering trivially right.
                let res = journal
                    .file
                    .write_all(kvnet_dhcp::encode_record(&rec).as_bytes())
                    .and_then(|()| journal.file.sync_data());
                if let Err(e) = res {
                    warn!(network = %name, "cannot record lease of {} in {}: {e}; reply dropped",
                        rec.ip_address, journal.path.display());
                    return;
                }
                journal.changed.send_replace(());
            }
            Effect::Send { bytes, to } => {
                // A client without an address cannot answer ARP. Broadcasting the reply
                // reaches it without a packet socket, and clients accept broadcast replies.
                let dest = match to {
                    Destination::Hardware { .. } => Ipv4Addr::BROADCAST,
                    other => other.ip(),
                };
                if let Err(e) = sock
                    .send_to(&bytes, SocketAddrV4::new(dest, to.port()))
                    .await
                {
                    warn!(network = %name, "DHCP send to {dest}: {e}");
                }
            }
            Effect::Log(ev) => log_event(name, &ev),
        }
    }
}

fn log_event(name: &str, ev: &Event) {
    match ev {
        Event::Conflict { .. }
        | Event::StaticUnavailable { .. }
        | Event::PoolExhausted { .. }
        | Event::RateLimited { .. }
        | Event::Malformed(_)
        | Event::Suppressed { .. } => warn!(network = %name, "{ev}"),
        _ => info!(network = %name, "{ev}"),
    }
}
