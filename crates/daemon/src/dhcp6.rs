//! The DHCPv6 service of a started network: the I/O shell around `kvnet_dhcp::v6`
//! (socket, lease journal, clock, timer), with the DHCPv4 shell's rules: the journal is
//! made durable (one fsync per batch of datagrams) before any reply of the batch leaves.
//!
//! One UDP socket per network on [::]:547, bound to the bridge (SO_BINDTODEVICE) and
//! joined to All_DHCP_Relay_Agents_and_Servers (ff02::1:2) on it only, so every network
//! listens at once and nothing is heard on other interfaces. Replies go to the client's
//! link-local address, port 546, scoped to the bridge. UDP over IPv6 always carries a
//! checksum the kernel computes, offloaded or not, and IPv6 clients read replies from
//! ordinary UDP sockets, so there is no raw-socket path as for v4.
//!
//! Server DUID: DUID-UUID of the network's UUID (stable across restarts and bridge MAC
//! changes), else DUID-LL of the bridge's MAC.

use crate::paths::Paths;
use anyhow::{Context, Result, anyhow};
use kvnet_dhcp::v6::{self, Config, Effect, Event, LeaseView, Server};
use kvnet_model::{MacAddr, Network};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn6, sockopt};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const SERVER_PORT: u16 = 547;
const CLIENT_PORT: u16 = 546;
const IDLE_WAKEUP: u64 = 3600;
/// Datagrams handled per group commit (one fsync), as for v4.
const BATCH: usize = 128;
const RCVBUF: usize = 1 << 20;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock(server: &Mutex<Server>) -> MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running DHCPv6 service; dropping it stops the task (the journal stays).
pub struct Service {
    server: Arc<Mutex<Server>>,
    task: JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_duid(net: &Network, bridge: &str) -> Result<Vec<u8>> {
    if let Some(u) = net.uuid {
        return Ok(v6::duid_uuid(*u.as_bytes()));
    }
    let mac: MacAddr = std::fs::read_to_string(format!("/sys/class/net/{bridge}/address"))
        .context("the bridge's MAC for the DHCPv6 server DUID")?
        .trim()
        .parse()
        .map_err(|e| anyhow!("the bridge's MAC: {e}"))?;
    Ok(v6::duid_ll(mac))
}

fn config(net: &Network, idx: usize, duid: Vec<u8>) -> Result<Config> {
    Config::from_network(net, idx, duid).map_err(|e| anyhow!("DHCPv6 config: {e}"))
}

impl Service {
    /// Start serving `net` if it has an IPv6 `<dhcp>`: replay and compact its journal,
    /// open the socket on `bridge`, spawn the task. Needs a tokio runtime.
    pub fn start(paths: &Paths, net: &Network, bridge: &str) -> Result<Option<Service>> {
        let Some(idx) = v6::ip_index(net) else {
            return Ok(None);
        };
        let cfg = config(net, idx, server_duid(net, bridge)?)?;
        let path = paths.lease_journal6(&net.name);
        let (table, file) = crate::dhcp::open_journal(&path, v6::replay, v6::compact)?;
        let ifindex = nix::net::if_::if_nametoindex(bridge)
            .with_context(|| format!("interface index of {bridge}"))?;
        let sock = open_socket(bridge, ifindex)?;
        let server = Arc::new(Mutex::new(Server::new(cfg, table)));
        let task = tokio::spawn(run(
            net.name.clone(),
            ifindex,
            sock,
            server.clone(),
            Journal { file, path },
        ));
        Ok(Some(Service { server, task }))
    }

    pub fn leases(&self) -> Vec<LeaseView> {
        lock(&self.server).leases(now())
    }

    /// Apply a live change of the definition (net-update of hosts or ranges).
    pub fn reconfigure(&self, net: &Network) -> Result<()> {
        let idx = v6::ip_index(net).context("the network no longer has IPv6 <dhcp>")?;
        let mut srv = lock(&self.server);
        let duid = srv.config().server_duid.clone();
        srv.reconfigure(config(net, idx, duid)?);
        Ok(())
    }
}

/// The DHCPv6 leases recorded for `net` while it is not running.
pub fn stored_leases(paths: &Paths, net: &Network) -> Result<Vec<LeaseView>> {
    let Some(idx) = v6::ip_index(net) else {
        return Ok(Vec::new());
    };
    // Listing needs no server identifier.
    let cfg = config(net, idx, Vec::new())?;
    let (table, _) = crate::dhcp::load_journal(&paths.lease_journal6(&net.name), v6::replay)?;
    Ok(Server::new(cfg, table).leases(now()))
}

fn open_socket(bridge: &str, ifindex: u32) -> Result<UdpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("DHCPv6 socket")?;
    // Before bind(): sockets on different devices may then share [::]:547.
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))
        .with_context(|| format!("bind the DHCPv6 socket to {bridge}"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).context("IPV6_V6ONLY")?;
    if socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF).context("SO_RCVBUF")?;
    }
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0)),
    )
    .with_context(|| format!("bind [::]:{SERVER_PORT} on {bridge}"))?;
    let sock = std::net::UdpSocket::from(fd);
    sock.join_multicast_v6(&ALL_SERVERS, ifindex)
        .with_context(|| format!("join {ALL_SERVERS} on {bridge}"))?;
    UdpSocket::from_std(sock).context("register the DHCPv6 socket")
}

struct Journal {
    file: File,
    path: PathBuf,
}

async fn run(
    name: String,
    ifindex: u32,
    sock: UdpSocket,
    server: Arc<Mutex<Server>>,
    mut journal: Journal,
) {
    let mut buf = vec![0u8; 4096];
    let mut deadline = lock(&server).next_deadline().unwrap_or(now() + IDLE_WAKEUP);
    loop {
        // At least a second, so a deadline already due cannot make us spin.
        let wait = Duration::from_secs(deadline.saturating_sub(now()).max(1));
        tokio::select! {
            r = sock.readable() => if let Err(e) = r {
                warn!(network = %name, "DHCPv6 socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            },
            _ = tokio::time::sleep(wait) => {},
        }
        // (effects, the client the datagram came from)
        let mut batch: Vec<(Vec<Effect>, Option<SocketAddrV6>)> = Vec::new();
        let mut recv_failed = false;
        {
            let t = now();
            let mut srv = lock(&server);
            for _ in 0..BATCH {
                match sock.try_recv_from(&mut buf) {
                    Ok((n, SocketAddr::V6(from))) => {
                        batch.push((srv.handle(t, &buf[..n]), Some(from)));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!(network = %name, "DHCPv6 receive: {e}");
                        recv_failed = true;
                        break;
                    }
                }
            }
            if t >= deadline {
                batch.push((srv.expire(t), None));
            }
            deadline = srv.next_deadline().unwrap_or(t + IDLE_WAKEUP);
        }
        carry_out(&name, ifindex, &sock, &mut journal, batch).await;
        if recv_failed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Journal every record of the batch with one fsync, then send the replies; when the
/// write fails, no reply of the batch leaves (the clients retry).
async fn carry_out(
    name: &str,
    ifindex: u32,
    sock: &UdpSocket,
    journal: &mut Journal,
    batch: Vec<(Vec<Effect>, Option<SocketAddrV6>)>,
) {
    let lines: String = batch
        .iter()
        .flat_map(|(effects, _)| effects)
        .filter_map(|e| match e {
            Effect::Persist(rec) => Some(v6::encode_record(rec)),
            _ => None,
        })
        .collect();
    let mut durable = true;
    if !lines.is_empty()
        && let Err(e) = journal
            .file
            .write_all(lines.as_bytes())
            .and_then(|()| journal.file.sync_data())
    {
        durable = false;
        warn!(network = %name, "cannot record {} DHCPv6 lease change(s) in {}: {e}; their replies dropped",
            lines.lines().count(), journal.path.display());
    }
    for (effects, from) in batch {
        for e in effects {
            match e {
                Effect::Persist(_) => {}
                Effect::Send(bytes) => {
                    let Some(from) = from.filter(|_| durable) else {
                        continue;
                    };
                    let to = SocketAddrV6::new(*from.ip(), CLIENT_PORT, 0, ifindex);
                    if let Err(e) = sock.send_to(&bytes, to).await {
                        warn!(network = %name, "DHCPv6 send to {to}: {e}");
                    }
                }
                Effect::Log(ev) => log_event(name, &ev),
            }
        }
    }
}

fn log_event(name: &str, ev: &Event) {
    match ev {
        _ if ev.is_noisy() => debug!(network = %name, "{ev}"),
        Event::NoAddrs { .. } => warn!(network = %name, "{ev}"),
        _ => info!(network = %name, "{ev}"),
    }
}
