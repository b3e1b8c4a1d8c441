//! The DHCPv6 service of a started network: the I/O shell around `kvnet_dhcp::v6`
//! (socket, lease journal, clock, timer), with the DHCPv4 shell's journal rule (one
//! group commit per batch of datagrams, before any reply of the batch leaves).
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

use super::journal::{self, Journal, Outcome};
use super::{Ctx, LeaseNames, NetService, lock};
use crate::ids::now;
use crate::paths::Paths;
use anyhow::{Context, Result, anyhow};
use kvnet_api::Lease;
use kvnet_dhcp::v6::{self, Config, Effect, Event, LeaseView, Server};
use kvnet_host::sock::{DeviceSocket, recv_counting};
use kvnet_model::{MacAddr, Network};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const SERVER_PORT: u16 = 547;
const CLIENT_PORT: u16 = 546;
const IDLE_WAKEUP: u64 = 3600;
/// Datagrams handled per group commit (one fsync), as for v4.
const BATCH: usize = 128;
const RCVBUF: usize = 1 << 20;

/// A running DHCPv6 service; dropping it stops the task (the journal stays).
pub struct Dhcp6 {
    bridge: String,
    server: Arc<Mutex<Server>>,
    journal: Arc<Mutex<journal::JournalStats>>,
    /// Bumped whenever a lease is recorded, for guest names (DNS, the host's index).
    changed: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Drop for Dhcp6 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_duid(net: &Network, bridge: &str) -> Result<Vec<u8>> {
    if let Some(u) = net.uuid {
        return Ok(v6::duid_uuid(*u.as_bytes()));
    }
    let mac = kvnet_host::link::mac(bridge)
        .with_context(|| format!("the MAC of {bridge} for the DHCPv6 server DUID"))?;
    Ok(v6::duid_ll(MacAddr(mac)))
}

fn config(net: &Network, duid: Vec<u8>, slice: Option<(usize, usize)>) -> Result<Config> {
    let idx = v6::ip_index(net).context("the network has no IPv6 <dhcp>")?;
    let cfg = Config::from_network(net, idx, duid).map_err(|e| anyhow!("DHCPv6 config: {e}"))?;
    Ok(match slice {
        Some((i, n)) => cfg.slice(i, n),
        None => cfg,
    })
}

fn api_lease(l: LeaseView) -> Lease {
    Lease {
        expiry_time: l.expiry_time,
        mac_address: l.mac_address.map(|m| m.to_string()),
        ip_address: IpAddr::V6(l.ip_address),
        prefix: l.prefix,
        hostname: l.hostname,
        client_id: Some(l.client_id),
        iaid: Some(l.iaid),
    }
}

fn open_socket(bridge: &str, ifindex: u32) -> Result<UdpSocket> {
    let fd = DeviceSocket::udp(
        bridge,
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, SERVER_PORT)),
    )
    .rcvbuf(RCVBUF)
    .bind()?;
    let sock = std::net::UdpSocket::from(fd);
    sock.join_multicast_v6(&ALL_SERVERS, ifindex)
        .with_context(|| format!("join {ALL_SERVERS} on {bridge}"))?;
    UdpSocket::from_std(sock).context("register the DHCPv6 socket")
}

impl NetService for Dhcp6 {
    fn what() -> &'static str {
        "DHCPv6 server"
    }

    fn wanted_for(net: &Network) -> bool {
        v6::ip_index(net).is_some()
    }

    /// Replay and compact the journal, open the socket on the bridge, spawn the task.
    fn start(ctx: &Ctx) -> Result<Dhcp6> {
        let (net, bridge) = (ctx.net, ctx.bridge);
        let cfg = config(net, server_duid(net, bridge)?, ctx.dhcp_slice)?;
        let (table, journal) = Journal::open(
            &ctx.paths.lease_journal6(&net.name),
            v6::replay,
            v6::compact,
        )?;
        let ifindex = nix::net::if_::if_nametoindex(bridge)
            .with_context(|| format!("interface index of {bridge}"))?;
        let sock = open_socket(bridge, ifindex)?;
        let server = Arc::new(Mutex::new(Server::new(cfg, table)));
        let changed = watch::Sender::new(());
        let journal_stats = journal.stats();
        let task = tokio::spawn(run(
            net.name.clone(),
            ifindex,
            sock,
            server.clone(),
            journal,
            changed.clone(),
        ));
        Ok(Dhcp6 {
            bridge: bridge.to_string(),
            server,
            journal: journal_stats,
            changed,
            task,
        })
    }

    /// A live change of the definition (net-update of hosts or ranges).
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let mut srv = lock(&self.server);
        let duid = srv.config().server_duid.clone();
        srv.reconfigure(config(ctx.net, duid, ctx.dhcp_slice)?);
        Ok(())
    }

    fn status(&self) -> String {
        format!("DHCPv6 server on {}", self.bridge)
    }

    fn lease_names(&self) -> Option<LeaseNames> {
        Some(LeaseNames::v6(self.server.clone(), &self.changed))
    }

    fn stats(&self) -> Option<super::ServiceStats> {
        let (stats, active, pool) = {
            let s = lock(&self.server);
            let pool = s
                .config()
                .ranges
                .iter()
                .map(|r| {
                    let n = u128::from(r.end).saturating_sub(u128::from(r.start)) + 1;
                    u64::try_from(n).unwrap_or(u64::MAX)
                })
                .fold(0u64, u64::saturating_add);
            (s.stats().clone(), s.active_leases(now()) as u64, pool)
        };
        Some(super::ServiceStats::Dhcp {
            family: "v6",
            stats,
            active,
            pool,
            journal: lock(&self.journal).clone(),
        })
    }

    fn leases(&self) -> Vec<Lease> {
        lock(&self.server)
            .leases(now())
            .into_iter()
            .map(api_lease)
            .collect()
    }

    fn stored_leases(paths: &Paths, net: &Network) -> Result<Vec<Lease>> {
        let (table, _) = journal::load(&paths.lease_journal6(&net.name), v6::replay)?;
        // Listing needs no server identifier.
        let leases = Server::new(config(net, Vec::new(), None)?, table).leases(now());
        Ok(leases.into_iter().map(api_lease).collect())
    }
}

/// A reply and the client it goes to.
type Reply = (Vec<u8>, SocketAddrV6);

fn outcome(
    effects: Vec<Effect>,
    to: Option<SocketAddrV6>,
    logs: &mut Vec<Event>,
) -> Outcome<Reply> {
    let mut o = Outcome {
        lines: String::new(),
        replies: Vec::new(),
    };
    for e in effects {
        match e {
            Effect::Persist(rec) => o.lines.push_str(&v6::encode_record(&rec)),
            Effect::Send(bytes) => o.replies.extend(to.map(|to| (bytes, to))),
            Effect::Log(ev) => logs.push(ev),
        }
    }
    o
}

async fn run(
    name: String,
    ifindex: u32,
    sock: UdpSocket,
    server: Arc<Mutex<Server>>,
    mut journal: Journal,
    changed: watch::Sender<()>,
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
        let mut batch = Vec::new();
        let mut logs = Vec::new();
        let mut recv_failed = false;
        {
            let t = now();
            let mut srv = lock(&server);
            for _ in 0..BATCH {
                match sock.try_io(Interest::READABLE, || recv_counting(&sock, &mut buf)) {
                    Ok((n, Some(SocketAddr::V6(from)), _)) => {
                        // Replies go to the client's port 546, on the bridge.
                        let to = SocketAddrV6::new(*from.ip(), CLIENT_PORT, 0, ifindex);
                        batch.push(outcome(srv.handle(t, &buf[..n]), Some(to), &mut logs));
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
                batch.push(outcome(srv.expire(t), None, &mut logs));
            }
            deadline = srv.next_deadline().unwrap_or(t + IDLE_WAKEUP);
        }
        for ev in &logs {
            log_event(&name, ev);
        }
        let c = journal.commit(batch);
        // The engine forgets what the journal could not take (the journal logs why).
        lock(&server).recorded(c.failed.is_none());
        if c.recorded > 0 {
            changed.send_replace(());
        }
        for (bytes, to) in c.replies {
            if let Err(e) = sock.send_to(&bytes, to).await {
                warn!(network = %name, "DHCPv6 send to {to}: {e}");
            }
        }
        let records = lock(&server).table().len();
        journal.compact_if_due(now(), records, || v6::compact(lock(&server).table()));
        if recv_failed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn log_event(name: &str, ev: &Event) {
    match ev {
        _ if ev.is_noisy() => debug!(network = %name, "{ev}"),
        Event::NoAddrs { .. } | Event::ChangesLimited { .. } => warn!(network = %name, "{ev}"),
        _ => info!(network = %name, "{ev}"),
    }
}
