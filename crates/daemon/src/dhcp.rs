//! The DHCPv4 service of a started network: the I/O shell around the sans-IO engine in
//! `kvnet_dhcp` (socket, lease journal, clock, timers). See crates/dhcp/src/lib.rs for
//! the contract this module keeps.
//!
//! One UDP socket per network, bound to 0.0.0.0:67 and to the bridge device
//! (SO_BINDTODEVICE), so every network can listen on port 67 at once and a request is
//! answered only by the network it arrived on.
//!
//! Checksums: a reply sent through the kernel's UDP socket on the bridge leaves with its
//! UDP checksum only partly computed (CHECKSUM_PARTIAL, the bridge offloads it), and a
//! veth or TAP port hands it on like that. A client reading from a packet socket sees a
//! wrong checksum unless it asks the kernel (PACKET_AUXDATA) whether it was offloaded:
//! busybox udhcpc and ISC dhclient 4.4 do, older clients drop the reply, which is why
//! libvirt has the checksum of DHCP replies filled in on the bridge. kvnet sends replies
//! through a raw IPv4 socket instead, with the UDP checksum computed here, so every reply
//! carries a complete checksum (`Replies`); without CAP_NET_RAW it falls back to the UDP
//! socket.

use crate::paths::Paths;
use crate::store;
use anyhow::{Context, Result, anyhow};
use kvnet_dhcp::{Config, Destination, Effect, Event, LeaseView, Server};
use kvnet_model::Network;
use nix::libc;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, sockopt,
};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{IoSliceMut, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// With no lease or offer pending, the timer still wakes up now and then; harmless.
const IDLE_WAKEUP: u64 = 3600;
/// How long after its ARP probe the ACK of a fresh binding waits for a squatter's answer.
/// Kea's ping-check hook waits 100 ms by default (ping-timeout) before it even offers;
/// here the OFFER leaves at once and only the ACK waits, for what is left of the window.
const PROBE_WAIT: Duration = Duration::from_millis(100);
/// Bound on ACKs held at once; beyond it they leave without waiting (best effort, like
/// the probes, whose rate limit keeps far fewer in the window anyway).
const MAX_HELD: usize = 256;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `<ip>` kvnet serves DHCP on: the first IPv4 one with `<dhcp>` (libvirt allows
/// only one). DHCPv6 is dhcp6.rs's.
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
        let cfg = Config::from_network(net, idx, net.profile().guests)
            .map_err(|e| anyhow!("DHCP config: {e}"))?;
        let path = paths.lease_journal(&net.name);
        let (table, journal) = open_journal(&path, kvnet_dhcp::replay, kvnet_dhcp::compact)?;
        let sock = open_socket(bridge)?;
        let arp = arp::Socket::open(bridge)
            .inspect_err(|e| {
                warn!(network = %net.name,
                    "no address-conflict detection on {bridge}: ARP socket: {e}");
            })
            .ok();
        let replies = Replies::open(bridge, cfg.server_ip).unwrap_or_else(|e| {
            warn!(network = %net.name,
                "DHCP replies on {bridge} through the UDP socket, checksums left to offload: raw socket: {e}");
            Replies {
                raw: None,
                src: cfg.server_ip,
            }
        });
        let server = Arc::new(Mutex::new(Server::new(cfg, table)));
        let (changed, _) = watch::channel(());
        let task = tokio::spawn(run(
            net.name.clone(),
            bridge.to_string(),
            sock,
            replies,
            arp,
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
        let cfg = Config::from_network(net, idx, net.profile().guests)
            .map_err(|e| anyhow!("DHCP config: {e}"))?;
        lock(&self.server).reconfigure(cfg);
        Ok(())
    }
}

/// The leases recorded for `net` while it is not running.
pub fn stored_leases(paths: &Paths, net: &Network) -> Result<Vec<LeaseView>> {
    let Some(idx) = ip_index(net) else {
        return Ok(Vec::new());
    };
    let cfg = Config::from_network(net, idx, net.profile().guests)
        .map_err(|e| anyhow!("DHCP config: {e}"))?;
    let (table, _) = load_journal(&paths.lease_journal(&net.name), kvnet_dhcp::replay)?;
    Ok(Server::new(cfg, table).leases(now()))
}

/// A lease journal (v4 or v6) replayed, and its text as found (empty when there is none
/// yet).
pub(crate) fn load_journal<T>(path: &Path, replay: fn(&str) -> T) -> Result<(T, String)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    Ok((replay(&text), text))
}

/// A lease journal (v4 or v6) replayed, rewritten compacted if that drops anything, and
/// opened for appending.
pub(crate) fn open_journal<T>(
    path: &Path,
    replay: fn(&str) -> T,
    compact: fn(&T) -> String,
) -> Result<(T, File)> {
    let (table, text) = load_journal(path, replay)?;
    // Compacting costs two fsyncs; only pay them when there is something to drop.
    let compacted = compact(&table);
    if compacted != text {
        store::write_atomic(
            path,
            compacted.as_bytes(),
            0o600,
            store::Durability::Durable,
        )
        .with_context(|| format!("compact {}", path.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    Ok((table, file))
}

/// Kernel receive buffer of the DHCP socket: room for a burst of a few thousand
/// datagrams while a batch is being made durable.
const RCVBUF: usize = 4 << 20;
const SNDBUF: usize = 1 << 20;
/// Datagrams handled per group commit (one fsync). Their replies leave back to back, and
/// a client machine behind one socket (a relay, a test tool) with the default 212 KB
/// receive buffer holds about 200 of them; a fsync takes a few ms, so 128 per batch still
/// allows tens of thousands of datagrams per second.
const BATCH: usize = 128;
/// Kernel drops are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

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
    // The *FORCE variants pass net.core.rmem_max (root only); the plain ones are capped.
    if socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF).context("SO_RCVBUF")?;
    }
    if socket::setsockopt(&fd, sockopt::SndBufForce, &SNDBUF).is_err() {
        socket::setsockopt(&fd, sockopt::SndBuf, &SNDBUF).context("SO_SNDBUF")?;
    }
    // Every datagram then carries the socket's running count of kernel drops.
    socket::setsockopt(&fd, sockopt::RxqOvfl, &1).context("SO_RXQ_OVFL")?;
    socket::bind(
        fd.as_raw_fd(),
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

/// One datagram without blocking, with the socket's drop count when the kernel sent it.
/// `Ok(None)`: nothing left to read.
fn recv_one(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Option<(usize, Option<u32>)>> {
    let r = sock.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(u32);
        let msg = socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )?;
        let mut drops = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::RxqOvfl(n) = c {
                drops = Some(n);
            }
        }
        Ok((msg.bytes, drops))
    });
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Datagrams the kernel dropped because the socket's buffer was full, logged in one line
/// at most every [`DROP_LOG_EVERY`].
struct Drops {
    seen: u32,
    logged: u32,
    at: Instant,
}

impl Drops {
    fn note(&mut self, count: Option<u32>) {
        if let Some(n) = count {
            self.seen = self.seen.max(n);
        }
    }

    fn report(&mut self, name: &str, bridge: &str) {
        if self.seen == self.logged || self.at.elapsed() < DROP_LOG_EVERY {
            return;
        }
        warn!(network = %name,
            "the kernel dropped {} DHCP datagrams on {bridge} in the last {} s: the receive buffer was full",
            self.seen.wrapping_sub(self.logged), self.at.elapsed().as_secs());
        self.logged = self.seen;
        self.at = Instant::now();
    }
}

async fn run(
    name: String,
    bridge: String,
    sock: UdpSocket,
    replies: Replies,
    mut arp: Option<arp::Socket>,
    server: Arc<Mutex<Server>>,
    mut journal: Journal,
) {
    let mut buf = vec![0u8; 4096];
    let mut holds = Holds::default();
    let mut drops = Drops {
        seen: 0,
        logged: 0,
        at: Instant::now(),
    };
    // What the kernel's neighbour table knows: machines already on the bridge.
    let mut effects = Vec::new();
    if arp.is_some() {
        let t = now();
        let mut srv = lock(&server);
        for (ip, mac) in arp::neighbours(&bridge) {
            effects.extend(srv.note_in_use(ip, mac, t));
        }
    }
    carry_out(
        &name,
        &sock,
        &replies,
        &mut arp,
        &mut journal,
        &mut holds,
        std::mem::take(&mut effects),
    )
    .await;
    let mut deadline = lock(&server).next_deadline().unwrap_or(now() + IDLE_WAKEUP);
    let mut deadline_at = now();
    loop {
        // At least a second, so a deadline that is already due cannot make us spin.
        let wait = Duration::from_secs(deadline.saturating_sub(now()).max(1));
        let arp_ready = async {
            match &arp {
                Some(a) => a.readable().await,
                None => std::future::pending().await,
            }
        };
        let release = async {
            match holds.next_release() {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = sock.readable() => if let Err(e) = r {
                warn!(network = %name, "DHCP socket on {bridge}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            },
            () = arp_ready => {},
            () = release => {},
            _ = tokio::time::sleep(wait) => {},
        }
        let mut recv_failed = false;
        let due;
        {
            let t = now();
            let mut srv = lock(&server);
            // Claims first, so that a squatter's answer to a probe counts against a REQUEST
            // arriving in the same batch, and against the held ACKs released below.
            if let Some(a) = &mut arp {
                a.drain(|ip, mac| effects.extend(srv.note_in_use(ip, mac, t)));
            }
            for e in &effects {
                if let Effect::Log(Event::Conflict { ip, .. }) = e
                    && holds.drop_claimed(*ip) > 0
                {
                    warn!(network = %name, "held DHCPACK of {ip} not sent: the address is in use");
                }
            }
            due = holds.take_due(Instant::now());
            // Group commit: everything the socket holds (up to BATCH) goes through the
            // engine, then one fsync covers every lease of the batch, then the replies go.
            for _ in 0..BATCH {
                match recv_one(&sock, &mut buf) {
                    Ok(Some((n, d))) => {
                        drops.note(d);
                        effects.extend(srv.handle(t, &buf[..n]));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(network = %name, "DHCP receive on {bridge}: {e}");
                        recv_failed = true;
                        break;
                    }
                }
            }
            if t >= deadline {
                effects.extend(srv.expire(t));
            }
            // Finding the next deadline walks every lease: once a second is enough, as the
            // engine's new deadlines are never earlier than the next second.
            if t >= deadline || t != deadline_at {
                deadline = srv.next_deadline().unwrap_or(t + IDLE_WAKEUP);
                deadline_at = t;
            } else {
                deadline = deadline.min(t + 1);
            }
        }
        carry_out(
            &name,
            &sock,
            &replies,
            &mut arp,
            &mut journal,
            &mut holds,
            std::mem::take(&mut effects),
        )
        .await;
        for h in due {
            send_reply(&name, &sock, &replies, &h.bytes, h.to).await;
        }
        drops.report(&name, &bridge);
        if recv_failed {
            // The socket may stay readable with the same error: do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Where replies leave: a raw IPv4 socket on the bridge (headers and UDP checksum built
/// here, see the module docs), or the UDP socket when no raw socket could be opened.
struct Replies {
    raw: Option<AsyncFd<OwnedFd>>,
    src: Ipv4Addr,
}

impl Replies {
    fn open(bridge: &str, src: Ipv4Addr) -> std::io::Result<Replies> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true)?;
        if socket::setsockopt(&fd, sockopt::SndBufForce, &SNDBUF).is_err() {
            socket::setsockopt(&fd, sockopt::SndBuf, &SNDBUF)?;
        }
        Ok(Replies {
            // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped.
            raw: Some(unsafe { AsyncFd::register(fd) }?),
            src,
        })
    }

    async fn send(
        &self,
        sock: &UdpSocket,
        payload: &[u8],
        dest: Ipv4Addr,
        port: u16,
    ) -> std::io::Result<()> {
        let Some(raw) = &self.raw else {
            return sock
                .send_to(payload, SocketAddrV4::new(dest, port))
                .await
                .map(|_| ());
        };
        let pkt = ip_udp(self.src, dest, port, payload);
        let to = SockaddrIn::from(SocketAddrV4::new(dest, 0));
        raw.async_io(Interest::WRITABLE, |fd| {
            socket::sendto(fd.as_raw_fd(), &pkt, &to, MsgFlags::empty()).map_err(Into::into)
        })
        .await
        .map(|_| ())
    }
}

/// An IPv4/UDP datagram from `src`:67 with a complete UDP checksum. The kernel fills in
/// the IP header's length, id and checksum (IP_HDRINCL).
fn ip_udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let total = 20 + ulen;
    let mut p = Vec::with_capacity(total);
    // version 4, 20-byte header, TOS 0, length, id 0, no fragment flags, TTL 64, UDP
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&67u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let c = udp_checksum(src, dst, &p[20..]);
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// RFC 768: the one's complement of the one's complement sum over the pseudo-header and
/// the datagram; a result of 0 is sent as 0xffff, as 0 means "no checksum".
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let len = (udp.len() as u16).to_be_bytes();
    let pseudo: [&[u8]; 4] = [&src.octets(), &dst.octets(), &[0, 17], &len];
    let mut sum: u32 = pseudo.iter().map(|b| ones_sum(b)).sum::<u32>() + ones_sum(udp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        c => c,
    }
}

fn ones_sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// ACKs of fresh bindings held while the ARP probe for their address may still be
/// answered (see the Conflicts section of crates/dhcp/src/lib.rs).
#[derive(Default)]
struct Holds {
    /// When a probe for each address left. Only those younger than PROBE_WAIT matter;
    /// older ones are pruned at every probe and wakeup, so the probe rate bounds the map.
    probed: HashMap<Ipv4Addr, Instant>,
    held: Vec<HeldAck>,
}

struct HeldAck {
    ip: Ipv4Addr,
    until: Instant,
    bytes: Vec<u8>,
    to: Destination,
}

impl Holds {
    fn probed(&mut self, ip: Ipv4Addr, at: Instant) {
        self.prune(at);
        self.probed.insert(ip, at);
    }

    fn prune(&mut self, now: Instant) {
        self.probed
            .retain(|_, t| now.saturating_duration_since(*t) < PROBE_WAIT);
    }

    /// Until when an ACK binding `ip` must wait: the end of the window of a probe still
    /// in flight; none when no probe was sent (rate limit, no ARP socket) or it is older.
    fn hold_until(&self, ip: Ipv4Addr, now: Instant) -> Option<Instant> {
        let until = *self.probed.get(&ip)? + PROBE_WAIT;
        (until > now && self.held.len() < MAX_HELD).then_some(until)
    }

    /// Forget the ACKs held for `ip`, which another machine was seen using; how many.
    fn drop_claimed(&mut self, ip: Ipv4Addr) -> usize {
        self.probed.remove(&ip);
        let before = self.held.len();
        self.held.retain(|h| h.ip != ip);
        before - self.held.len()
    }

    fn next_release(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.until).min()
    }

    /// The held ACKs due at `now`, in the order they were held.
    fn take_due(&mut self, now: Instant) -> Vec<HeldAck> {
        self.prune(now);
        if self.held.iter().all(|h| h.until > now) {
            return Vec::new();
        }
        let (due, wait) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.until <= now);
        self.held = wait;
        due
    }
}

async fn send_reply(
    name: &str,
    sock: &UdpSocket,
    replies: &Replies,
    bytes: &[u8],
    to: Destination,
) {
    // A client without an address cannot answer ARP. Broadcasting the reply reaches it
    // without a packet socket, and clients accept broadcast replies.
    let dest = match to {
        Destination::Hardware { .. } => Ipv4Addr::BROADCAST,
        other => other.ip(),
    };
    if let Err(e) = replies.send(sock, bytes, dest, to.port()).await {
        warn!(network = %name, "DHCP send to {dest}: {e}");
    }
}

/// Effects in order. Every journal line of the batch is written and made durable with
/// one fsync before any reply goes out; if that fails, the replies that follow the first
/// lease change are dropped and their clients retry. ACKs that must wait for a probe go
/// to `holds` (after the fsync, like every reply).
async fn carry_out(
    name: &str,
    sock: &UdpSocket,
    replies: &Replies,
    arp: &mut Option<arp::Socket>,
    journal: &mut Journal,
    holds: &mut Holds,
    effects: Vec<Effect>,
) {
    let mut lines = String::new();
    let mut first_persist = None;
    for (i, e) in effects.iter().enumerate() {
        if let Effect::Persist(rec) = e {
            lines.push_str(&kvnet_dhcp::encode_record(rec));
            first_persist.get_or_insert(i);
        }
    }
    let mut durable = true;
    if !lines.is_empty() {
        // A blocking write and fsync on the daemon's thread: one per batch, and it keeps
        // the ordering trivially right.
        let res = journal
            .file
            .write_all(lines.as_bytes())
            .and_then(|()| journal.file.sync_data());
        match res {
            Ok(()) => {
                journal.changed.send_replace(());
            }
            Err(e) => {
                durable = false;
                warn!(network = %name, "cannot record {} lease change(s) in {}: {e}; their replies dropped",
                    lines.lines().count(), journal.path.display());
            }
        }
    }
    for (i, e) in effects.into_iter().enumerate() {
        match e {
            Effect::Persist(_) => {}
            Effect::Send { .. } if !durable && first_persist.is_some_and(|p| i > p) => {}
            Effect::Send {
                bytes,
                to,
                after_probe,
            } => {
                let now = Instant::now();
                if let Some(ip) = after_probe
                    && let Some(until) = holds.hold_until(ip, now)
                {
                    debug!(network = %name, "DHCPACK of {ip} held {} ms for the ARP probe",
                        until.saturating_duration_since(now).as_millis());
                    holds.held.push(HeldAck {
                        ip,
                        until,
                        bytes,
                        to,
                    });
                    continue;
                }
                send_reply(name, sock, replies, &bytes, to).await;
            }
            Effect::Probe(ip) => {
                if let Some(a) = arp
                    && a.probe(ip)
                {
                    holds.probed(ip, Instant::now());
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

/// Address-conflict detection on the bridge: ARP probes for addresses about to be
/// offered, and the claims (ARP senders) seen there, for `Server::note_in_use`.
mod arp {
    use crate::bgclose::BgClose;
    use kvnet_model::MacAddr;
    use nix::libc;
    use std::io;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};
    use tokio::io::unix::AsyncFd;
    use tracing::debug;

    const ETH_P_ARP: u16 = 0x0806;
    /// Probes are best effort: a flood of new clients must not become a flood of
    /// broadcasts, nor cost the DHCP loop more than a few syscalls per batch.
    const PROBES_PER_SEC: f64 = 200.0;
    const PROBE_BURST: f64 = 50.0;
    /// Frames read per drain, so that an ARP storm cannot starve DHCP.
    const DRAIN_MAX: usize = 1024;
    /// The bridge's MAC changes when ports come and go unless it was set; re-read it.
    const MAC_MAX_AGE: Duration = Duration::from_secs(5);

    pub struct Socket {
        fd: AsyncFd<BgClose>,
        bridge: String,
        mac: Option<([u8; 6], Instant)>,
        tokens: f64,
        refilled: Instant,
    }

    impl Socket {
        /// A packet socket for ARP frames on `bridge`. Needs CAP_NET_RAW and a runtime.
        pub fn open(bridge: &str) -> io::Result<Socket> {
            let ifindex = nix::net::if_::if_nametoindex(bridge)?;
            let proto = ETH_P_ARP.to_be();
            // Protocol 0 here and ETH_P_ARP at bind: a socket created with a protocol
            // already listens on every interface, and re-binding it to one waits for an
            // RCU grace period (10-20 ms of every network start).
            // SAFETY: plain socket(2); the result is checked before use.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor that nothing else owns.
            let fd = BgClose::new(unsafe { OwnedFd::from_raw_fd(raw) });
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: a valid sockaddr_ll and its size.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Socket {
                // SAFETY: BgClose keeps its descriptor open and unchanged until dropped.
                fd: unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?,
                bridge: bridge.to_string(),
                mac: None,
                tokens: PROBE_BURST,
                refilled: Instant::now(),
            })
        }

        /// Wait until frames may be there; `drain` reads them.
        pub async fn readable(&self) {
            // Cleared before the drain, so a frame arriving meanwhile wakes us again.
            if let Ok(mut g) = self.fd.readable().await {
                g.clear_ready();
            }
        }

        /// Every claim read without blocking: (sender address, sender MAC).
        pub fn drain(&mut self, mut claim: impl FnMut(Ipv4Addr, MacAddr)) {
            let mut buf = [0u8; 128];
            for _ in 0..DRAIN_MAX {
                // SAFETY: recv(2) into a buffer of the length given.
                let n = unsafe {
                    libc::recv(
                        self.fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::WouldBlock {
                        debug!("ARP receive on {}: {e}", self.bridge);
                    }
                    return;
                }
                if let Some((ip, mac)) = parse(&buf[..n as usize]) {
                    claim(ip, mac);
                }
            }
        }

        /// Broadcast an RFC 5227 probe (who-has `ip`, sender address 0.0.0.0, so that no
        /// neighbour cache learns anything from it), unless over the rate. Whether it was
        /// sent.
        pub fn probe(&mut self, ip: Ipv4Addr) -> bool {
            let now = Instant::now();
            let dt = now.duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + dt * PROBES_PER_SEC).min(PROBE_BURST);
            self.refilled = now;
            if self.tokens < 1.0 {
                return false;
            }
            self.tokens -= 1.0;
            let Some(mac) = self.own_mac() else {
                return false;
            };
            let frame = probe_frame(mac, ip);
            // SAFETY: send(2) of a buffer of the length given.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                debug!(
                    "ARP probe for {ip} on {}: {}",
                    self.bridge,
                    io::Error::last_os_error()
                );
                return false;
            }
            true
        }

        fn own_mac(&mut self) -> Option<[u8; 6]> {
            if let Some((m, at)) = self.mac
                && at.elapsed() < MAC_MAX_AGE
            {
                return Some(m);
            }
            let path = format!("/sys/class/net/{}/address", self.bridge);
            let text = std::fs::read_to_string(&path).ok()?;
            let m = text.trim().parse::<MacAddr>().ok()?.0;
            self.mac = Some((m, Instant::now()));
            Some(m)
        }
    }

    /// The sender of an Ethernet/IPv4 ARP request or reply, unless it has no address yet
    /// (a probe, sender 0.0.0.0).
    pub fn parse(f: &[u8]) -> Option<(Ipv4Addr, MacAddr)> {
        if f.len() < 42 || f[12..14] != ETH_P_ARP.to_be_bytes() {
            return None;
        }
        let a = &f[14..];
        // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request (1) or reply (2)
        if a[..6] != [0, 1, 8, 0, 6, 4] || !matches!(a[6..8], [0, 1] | [0, 2]) {
            return None;
        }
        let mac = MacAddr(a[8..14].try_into().ok()?);
        let ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
        (!ip.is_unspecified() && !mac.is_multicast() && mac.0 != [0; 6]).then_some((ip, mac))
    }

    pub fn probe_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
        let mut f = [0u8; 42];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&mac);
        // sender address 0.0.0.0 and target MAC 0 are already zero
        f[38..42].copy_from_slice(&ip.octets());
        f
    }

    /// The bridge's complete entries in the kernel's neighbour table (/proc/net/arp).
    pub fn neighbours(bridge: &str) -> Vec<(Ipv4Addr, MacAddr)> {
        std::fs::read_to_string("/proc/net/arp")
            .map(|t| parse_proc_arp(&t, bridge))
            .unwrap_or_default()
    }

    pub fn parse_proc_arp(text: &str, bridge: &str) -> Vec<(Ipv4Addr, MacAddr)> {
        const ATF_COM: u32 = 0x2;
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let [ip, _, flags, mac, _, dev] = f[..] else {
                    return None;
                };
                let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
                (dev == bridge && flags & ATF_COM != 0)
                    .then(|| Some((ip.parse().ok()?, mac.parse().ok()?)))?
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn probes_parse_as_no_claim_and_replies_as_claims() {
            let me = [0x52, 0x54, 0, 0, 0, 1];
            let p = probe_frame(me, Ipv4Addr::new(10, 0, 0, 9));
            assert_eq!(parse(&p), None, "a probe claims nothing");
            let mut reply = p;
            reply[21] = 2;
            reply[28..32].copy_from_slice(&[10, 0, 0, 9]);
            assert_eq!(
                parse(&reply),
                Some((Ipv4Addr::new(10, 0, 0, 9), MacAddr(me)))
            );
            assert_eq!(parse(&reply[..41]), None);
            let mut ipv6 = reply;
            ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
            assert_eq!(parse(&ipv6), None);
        }

        #[test]
        fn proc_arp_keeps_complete_entries_of_the_bridge() {
            let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.5         0x1         0x2         52:54:00:00:00:05     *        br0\n\
                     10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        br0\n\
                     10.0.0.7         0x1         0x2         52:54:00:00:00:07     *        eth0\n";
            let mac: MacAddr = "52:54:00:00:00:05".parse().unwrap();
            assert_eq!(
                parse_proc_arp(t, "br0"),
                vec![(Ipv4Addr::new(10, 0, 0, 5), mac)]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(holds: &mut Holds, ip: Ipv4Addr, now: Instant) -> bool {
        let Some(until) = holds.hold_until(ip, now) else {
            return false;
        };
        holds.held.push(HeldAck {
            ip,
            until,
            bytes: vec![ip.octets()[3]],
            to: Destination::Broadcast,
        });
        true
    }

    #[test]
    fn acks_wait_only_for_probes_in_flight_and_claims_drop_them() {
        let (a, b, c) = (
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            Ipv4Addr::new(10, 0, 0, 4),
        );
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = Holds::default();
        assert!(!held(&mut h, a, t0), "no probe sent: no wait");
        h.probed(a, t0);
        h.probed(b, t0 + ms(10));
        h.probed(c, t0 + ms(20));
        assert!(held(&mut h, a, t0 + ms(1)));
        assert!(held(&mut h, b, t0 + ms(11)));
        assert!(held(&mut h, c, t0 + ms(21)));
        assert_eq!(h.next_release(), Some(t0 + PROBE_WAIT));
        // A claim for b drops its ACK; the others leave at the end of their windows.
        assert_eq!(h.drop_claimed(b), 1);
        assert!(h.take_due(t0 + ms(99)).is_empty());
        let due = h.take_due(t0 + ms(100));
        assert_eq!(due.iter().map(|d| d.ip).collect::<Vec<_>>(), vec![a]);
        assert_eq!(h.next_release(), Some(t0 + ms(120)));
        assert_eq!(h.take_due(t0 + ms(200)).len(), 1);
        assert_eq!(h.next_release(), None);
        // A probe older than the window is forgotten, and holds nothing.
        assert!(h.probed.is_empty(), "pruned once past the window");
        h.probed(a, t0 + ms(200));
        assert!(!held(&mut h, a, t0 + ms(300)));
    }

    #[test]
    fn raw_replies_carry_a_verifiable_udp_checksum() {
        let (src, dst) = (Ipv4Addr::new(192, 168, 122, 1), Ipv4Addr::BROADCAST);
        for len in [0, 1, 300, 301, 548] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let p = ip_udp(src, dst, 68, &payload);
            assert_eq!(p.len(), 28 + len);
            assert_eq!(&p[20..24], &[0, 67, 0, 68]);
            assert_ne!(&p[26..28], &[0, 0], "0 would mean no checksum");
            // A receiver sums pseudo-header and datagram, checksum included: all ones.
            let len16 = ((8 + len) as u16).to_be_bytes();
            let mut sum = ones_sum(&src.octets())
                + ones_sum(&dst.octets())
                + ones_sum(&[0, 17])
                + ones_sum(&len16)
                + ones_sum(&p[20..]);
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff, "payload of {len} bytes");
        }
    }
}
