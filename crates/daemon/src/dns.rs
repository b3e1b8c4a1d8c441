//! The DNS service of a started network: the I/O shell around the sans-IO engine in
//! `kvnet_dns` (sockets, clock, timers, resolv.conf, guest names). See
//! crates/dns/src/lib.rs for the contract this module keeps.
//!
//! Per network: a UDP socket and a TCP listener on port 53 of each address of the network,
//! IPv4 and IPv6, each also bound to the bridge (SO_BINDTODEVICE), so only the network's
//! own guests are served and nothing listens on a wildcard address. UDP answers leave from
//! the address the query was sent to. Forwarded UDP queries leave from one socket per
//! family on the unspecified address, which is not bound to the bridge: upstreams are
//! reached through the host's routes. Forwarded TCP queries use one TCP connection to the
//! upstream per query.
//!
//! One task per network runs the UDP side and the engine's timers; each TCP client
//! connection has its own task. The engine sits behind a mutex that is never held
//! across an await.

use crate::dhcp::LeaseNames;
use anyhow::{Context, Result, anyhow};
use ipnet::IpNet;
use kvnet_dns::{Config, ConfigError, Decision, Engine, Peer, Transport};
use kvnet_model::Network;
use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, sockopt,
};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How often resolv.conf's mtime is checked.
const RESOLV_CHECK: Duration = Duration::from_secs(2);
/// Lease names are also re-read this often, so expired leases drop out of DNS.
const NAMES_REFRESH: Duration = Duration::from_secs(30);
/// A TCP client silent this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP clients served at once per network; more are refused until one leaves.
const MAX_TCP_CLIENTS: usize = 32;
/// UDP clients whose receiving socket is remembered until they are answered; beyond this
/// (queries that are never answered) the memory is cleared and answers fall back to the
/// socket on the client's subnet.
const MAX_UDP_CLIENTS: usize = 4096;

/// Receive buffer of each listening UDP socket: room for a few thousand queries.
const UDP_RCVBUF: usize = 2 << 20;

/// The resolv.conf whose nameservers are the default upstreams; tests point it elsewhere.
fn resolv_conf_path() -> PathBuf {
    std::env::var_os("KVNET_RESOLV_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"))
}

/// Every address of the active networks (the engine never forwards to them).
pub fn local_addrs<'a>(nets: impl IntoIterator<Item = &'a Network>) -> Arc<HashSet<IpAddr>> {
    Arc::new(
        nets.into_iter()
            .flat_map(|n| n.ips.iter().map(|ip| ip.address))
            .collect(),
    )
}

/// Guest names of the static `<dhcp><host name ip>` entries.
fn static_names(net: &Network) -> Vec<(String, IpAddr)> {
    net.ips
        .iter()
        .filter_map(|ip| ip.dhcp.as_ref())
        .flat_map(|d| d.hosts.iter())
        .filter_map(|h| Some((h.name.clone()?, h.ip?)))
        .collect()
}

/// Guest names: static hosts, the DHCP leases' hostnames, and when they were last read.
struct Names {
    statics: Vec<(String, IpAddr)>,
    leases: Option<LeaseNames>,
    stale: bool,
    read: Instant,
}

/// State shared by the network's tasks.
struct Shell {
    name: String,
    engine: Mutex<Engine>,
    names: Mutex<Names>,
    /// Listening UDP sockets with the subnet each serves.
    udp: Vec<(UdpSocket, IpNet)>,
    /// The listening socket each UDP client with a query in flight wrote to: its answer
    /// leaves from the same address, or the client would not accept it.
    udp_clients: Mutex<HashMap<SocketAddr, usize>>,
    /// Forwarded UDP queries, IPv4 and IPv6 (an IPv4 socket cannot reach IPv6 upstreams).
    upstream: UdpSocket,
    upstream6: Option<UdpSocket>,
    /// Open TCP client connections: where to hand their answers.
    tcp: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    tcp_clients: AtomicUsize,
    /// Closed when the service is dropped: the tasks that hold the shell end, and with
    /// them the sockets, so the network can start again at once.
    stop: watch::Receiver<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Neither the engine nor the name lists have invariants a panicking caller could break.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running DNS service; dropping it stops its tasks.
pub struct Service {
    shell: Arc<Shell>,
    tasks: Vec<JoinHandle<()>>,
    _stop: watch::Sender<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn config(net: &Network) -> Result<Option<Config>> {
    match Config::from_network(net, net.profile().guests) {
        Ok(c) => Ok(Some(c)),
        Err(ConfigError::Disabled) => Ok(None),
        Err(e) => Err(anyhow!("DNS config: {e}")),
    }
}

/// Whether kvnetd serves DNS on `net`.
pub fn enabled(net: &Network) -> bool {
    matches!(config(net), Ok(Some(_)))
}

fn seed() -> Result<[u8; 32]> {
    let mut s = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut s))
        .context("read /dev/urandom")?;
    Ok(s)
}

impl Service {
    /// Start serving DNS on `net` unless its DNS is disabled or it is not L3: open the
    /// sockets on `bridge` and spawn the tasks. Needs a tokio runtime.
    pub fn start(
        net: &Network,
        bridge: &str,
        leases: Option<LeaseNames>,
        local: Arc<HashSet<IpAddr>>,
    ) -> Result<Option<Service>> {
        let Some(cfg) = config(net)? else {
            return Ok(None);
        };
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        for ip in &net.ips {
            let sa = SocketAddr::new(ip.address, 53);
            let u = open(bridge, sa, SockType::Datagram)?;
            let u = UdpSocket::from_std(std::net::UdpSocket::from(u))
                .context("register the DNS socket")?;
            udp.push((u, ip.network()));
            let t = open(bridge, sa, SockType::Stream)?;
            socket::listen(&t, Backlog::new(64).expect("valid backlog"))
                .with_context(|| format!("listen on {sa} TCP"))?;
            listeners.push(
                TcpListener::from_std(std::net::TcpListener::from(t))
                    .context("register the DNS listener")?,
            );
        }
        let upstream = upstream_socket("0.0.0.0:0")?;
        // A host without IPv6 still forwards to its IPv4 upstreams.
        let upstream6 = upstream_socket("[::]:0")
            .inspect_err(|e| debug!(network = %net.name, "no IPv6 upstream socket: {e:#}"))
            .ok();
        let (stop_tx, stop) = watch::channel(());
        let mut engine = Engine::new(cfg, seed()?);
        engine.set_local_addrs(local);
        let shell = Arc::new(Shell {
            name: net.name.clone(),
            engine: Mutex::new(engine),
            names: Mutex::new(Names {
                statics: static_names(net),
                leases,
                stale: true,
                read: Instant::now(),
            }),
            udp,
            udp_clients: Mutex::new(HashMap::new()),
            upstream,
            upstream6,
            tcp: Mutex::new(HashMap::new()),
            tcp_clients: AtomicUsize::new(0),
            stop,
        });
        let mut tasks = vec![tokio::spawn(run_udp(shell.clone()))];
        for l in listeners {
            tasks.push(tokio::spawn(run_tcp(shell.clone(), l)));
        }
        Ok(Some(Service {
            shell,
            tasks,
            _stop: stop_tx,
        }))
    }

    /// Apply a live change of the definition (net-update of DNS records or DHCP hosts),
    /// with the DHCP service's leases as they are now.
    pub fn reconfigure(&self, net: &Network, leases: Option<LeaseNames>) -> Result<()> {
        let cfg = config(net)?.context("DNS is no longer served on the network")?;
        lock(&self.shell.engine).set_config(cfg);
        let mut n = lock(&self.shell.names);
        n.statics = static_names(net);
        n.leases = leases;
        n.stale = true;
        Ok(())
    }

    pub fn set_local_addrs(&self, addrs: Arc<HashSet<IpAddr>>) {
        lock(&self.shell.engine).set_local_addrs(addrs);
    }
}

fn upstream_socket(addr: &str) -> Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .with_context(|| format!("upstream DNS socket on {addr}"))?;
    UdpSocket::from_std(s).context("register the upstream socket")
}

/// A socket bound to `sa` on `bridge`, non-blocking.
fn open(bridge: &str, sa: SocketAddr, ty: SockType) -> Result<OwnedFd> {
    let family = match sa {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("DNS socket")?;
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))
        .with_context(|| format!("bind the DNS socket to {bridge}"))?;
    // A restarted kvnetd rebinds at once despite connections in TIME_WAIT.
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
    if ty == SockType::Datagram {
        // The default buffer holds about 190 queries: a burst of guests booting, or a
        // resolver retrying, would lose queries before the task is scheduled. A limit,
        // not an allocation. Best effort: without CAP_NET_ADMIN, up to rmem_max.
        if socket::setsockopt(&fd, sockopt::RcvBufForce, &UDP_RCVBUF).is_err() {
            let _ = socket::setsockopt(&fd, sockopt::RcvBuf, &UDP_RCVBUF);
        }
    }
    let bound = match sa {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => {
            socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).context("IPV6_V6ONLY")?;
            // The bridge's IPv6 addresses stay tentative until DAD ends, which needs a
            // port with carrier: until then bind() fails with EADDRNOTAVAIL. IP_FREEBIND
            // (honoured by IPv6 sockets too) lets it succeed; queries arrive once the
            // address is usable.
            socket::setsockopt(&fd, sockopt::IpFreebind, &true).context("IP_FREEBIND")?;
            socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a))
        }
    };
    bound.with_context(|| format!("bind {sa} on {bridge}"))?;
    Ok(fd)
}

impl Shell {
    /// Resolves once the service is dropped.
    async fn stopped(&self) {
        let mut stop = self.stop.clone();
        while stop.changed().await.is_ok() {}
    }

    /// Hand the engine fresh guest names if a lease was recorded or the config changed.
    fn refresh_names(&self) {
        let mut n = lock(&self.names);
        let lease_changed = n.leases.as_mut().is_some_and(|l| l.changed());
        if !(n.stale || lease_changed || n.read.elapsed() >= NAMES_REFRESH) {
            return;
        }
        let mut names = n.statics.clone();
        if let Some(l) = &n.leases {
            names.extend(l.names().into_iter().map(|(h, ip)| (h, IpAddr::V4(ip))));
        }
        n.stale = false;
        n.read = Instant::now();
        drop(n);
        let rejected = lock(&self.engine).set_guest_names(names);
        if !rejected.is_empty() {
            debug!(network = %self.name, "guest names not usable in DNS: {}", rejected.join(", "));
        }
    }

    /// One UDP query that arrived on listener `socket`. An immediate answer leaves from
    /// that socket; a forwarded query remembers it for the upstream's answer.
    fn serve_udp(self: &Arc<Self>, bytes: &[u8], from: SocketAddr, socket: usize) {
        match self.query(Peer::udp(from), bytes) {
            Decision::Answer { to, bytes } if to == Peer::udp(from) => {
                if let Some((s, _)) = self.udp.get(socket)
                    && let Err(e) = s.try_send_to(&bytes, from)
                {
                    debug!(network = %self.name, "DNS answer to {from}: {e}");
                }
            }
            d => {
                self.note_udp_client(from, socket);
                self.dispatch(d);
            }
        }
    }

    fn query(&self, client: Peer, bytes: &[u8]) -> Decision {
        self.refresh_names();
        lock(&self.engine).handle_query(Instant::now(), client, bytes)
    }

    /// Remember which listening socket `client` wrote to.
    fn note_udp_client(&self, client: SocketAddr, socket: usize) {
        let mut m = lock(&self.udp_clients);
        if m.len() >= MAX_UDP_CLIENTS {
            m.clear();
        }
        m.insert(client, socket);
    }

    /// The listening socket to answer `client` from: the one it wrote to, else the one on
    /// its subnet, else any of its family.
    fn answer_socket(&self, client: SocketAddr) -> Option<&UdpSocket> {
        let asked = lock(&self.udp_clients).remove(&client);
        let ip = client.ip().to_canonical();
        asked
            .and_then(|i| self.udp.get(i))
            .or_else(|| self.udp.iter().find(|(_, net)| net.contains(&ip)))
            .or_else(|| {
                self.udp
                    .iter()
                    .find(|(_, net)| net.addr().is_ipv4() == ip.is_ipv4())
            })
            .map(|(s, _)| s)
    }

    fn upstream_for(&self, to: SocketAddr) -> Option<&UdpSocket> {
        match to {
            SocketAddr::V4(_) => Some(&self.upstream),
            SocketAddr::V6(_) => self.upstream6.as_ref(),
        }
    }

    /// Carry out one decision. UDP sends do not wait: a full socket buffer loses the
    /// datagram, which the client or the engine retries anyway.
    fn dispatch(self: &Arc<Self>, d: Decision) {
        match d {
            Decision::Drop => {}
            Decision::Answer { to, bytes } => match to.transport {
                Transport::Udp => {
                    if let Some(s) = self.answer_socket(to.addr)
                        && let Err(e) = s.try_send_to(&bytes, to.addr)
                    {
                        debug!(network = %self.name, "DNS answer to {}: {e}", to.addr);
                    }
                }
                Transport::Tcp => {
                    if let Some(tx) = lock(&self.tcp).get(&to.addr) {
                        let _ = tx.try_send(bytes);
                    }
                }
            },
            Decision::Forward { to, bytes } => match to.transport {
                Transport::Udp => {
                    // No socket for the family: the engine's timer moves on to the next
                    // upstream.
                    if let Some(s) = self.upstream_for(to.addr)
                        && let Err(e) = s.try_send_to(&bytes, to.addr)
                    {
                        debug!(network = %self.name, "DNS forward to {}: {e}", to.addr);
                    }
                }
                Transport::Tcp => {
                    let shell = self.clone();
                    tokio::spawn(async move {
                        // A failed exchange is left to the engine's timer: it retries
                        // the next upstream or answers SERVFAIL.
                        let res = tokio::select! {
                            r = tcp_exchange(to.addr, &bytes) => r,
                            () = shell.stopped() => return,
                        };
                        match res {
                            Ok(reply) => {
                                let d = lock(&shell.engine).handle_upstream_reply(
                                    Instant::now(),
                                    to,
                                    &reply,
                                );
                                shell.dispatch(d);
                            }
                            Err(e) => {
                                debug!(network = %shell.name, "DNS over TCP to {}: {e:#}", to.addr)
                            }
                        }
                    });
                }
            },
        }
    }
}

/// One query over a fresh TCP connection to an upstream, within the engine's retry time.
async fn tcp_exchange(to: SocketAddr, query: &[u8]) -> Result<Vec<u8>> {
    let work = async {
        let mut s = TcpStream::connect(to).await.context("connect")?;
        write_frame(&mut s, query).await.context("send")?;
        read_frame(&mut s).await?.context("closed")
    };
    tokio::time::timeout(kvnet_dns::Limits::default().attempt_timeout, work)
        .await
        .map_err(|_| anyhow!("timed out"))?
}

async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut msg = Vec::with_capacity(bytes.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(bytes);
    s.write_all(&msg).await
}

/// One length-prefixed message, or None at a clean end of stream.
async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

/// Queries read per wakeup once one has arrived: a burst is answered without a trip
/// through the runtime (select, timer, epoll) per datagram, yet the timers and upstream
/// answers get their turn after a bounded amount of work.
const DRAIN_MAX: usize = 64;

/// Answer what the listeners already hold, without waiting.
fn drain_queries(shell: &Arc<Shell>, listeners: &[&UdpSocket], buf: &mut [u8]) {
    let mut served = 0;
    while served < DRAIN_MAX {
        let mut any = false;
        for (i, s) in listeners.iter().enumerate() {
            // WouldBlock, or an error (ICMP feedback) that the next recv_any reports.
            if let Ok((n, from)) = s.try_recv_from(buf) {
                shell.serve_udp(&buf[..n], from, i);
                served += 1;
                any = true;
            }
        }
        if !any {
            return;
        }
    }
}

/// Wait for a datagram on any of `socks`: its length, sender and the socket's index.
/// Polling starts at `first`, which the caller rotates so that a flood on one address
/// cannot starve the others.
async fn recv_any(
    socks: &[&UdpSocket],
    first: usize,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, usize)> {
    std::future::poll_fn(|cx| {
        for k in 0..socks.len() {
            let i = (first + k) % socks.len();
            let s = socks[i];
            let mut rb = tokio::io::ReadBuf::new(buf);
            match s.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(from)) => return Poll::Ready(Ok((rb.filled().len(), from, i))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Read the upstreams from resolv.conf if it changed since `seen`.
fn reload_resolv(shell: &Shell, path: &std::path::Path, seen: &mut Option<Option<SystemTime>>) {
    let m = mtime(path);
    if seen.as_ref() == Some(&m) {
        return;
    }
    *seen = Some(m);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Link-local upstreams name their interface (fe80::1%eth0).
    let ups = kvnet_dns::parse_resolv_conf_with(&text, |ifname| {
        nix::net::if_::if_nametoindex(ifname).ok()
    });
    info!(network = %shell.name, "DNS upstreams from {}: {ups:?}", path.display());
    lock(&shell.engine).set_upstreams(ups);
}

/// The UDP side and the timers.
async fn run_udp(shell: Arc<Shell>) {
    let path = resolv_conf_path();
    let mut seen = None;
    reload_resolv(&shell, &path, &mut seen);
    let mut next_check = Instant::now() + RESOLV_CHECK;
    // Client queries fit in 512 bytes unless EDNS; upstream answers may be larger.
    let mut qbuf = vec![0u8; 4096];
    let mut rbuf = vec![0u8; 65535];
    let listeners: Vec<&UdpSocket> = shell.udp.iter().map(|(s, _)| s).collect();
    let upstreams: Vec<&UdpSocket> = std::iter::once(&shell.upstream)
        .chain(shell.upstream6.as_ref())
        .collect();
    let mut turn = 0usize;
    loop {
        let timer = lock(&shell.engine)
            .next_timeout()
            .map_or(next_check, |t| t.min(next_check));
        turn = turn.wrapping_add(1);
        tokio::select! {
            r = recv_any(&listeners, turn, &mut qbuf) => match r {
                Ok((n, from, i)) => {
                    shell.serve_udp(&qbuf[..n], from, i);
                    drain_queries(&shell, &listeners, &mut qbuf);
                }
                Err(e) => {
                    // E.g. ICMP feedback; do not spin on it.
                    debug!(network = %shell.name, "DNS receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            r = recv_any(&upstreams, turn, &mut rbuf) => match r {
                Ok((n, from, _)) => {
                    let d = lock(&shell.engine).handle_upstream_reply(
                        Instant::now(),
                        Peer::udp(from),
                        &rbuf[..n],
                    );
                    shell.dispatch(d);
                }
                Err(e) => {
                    debug!(network = %shell.name, "upstream receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::time::sleep_until(timer.into()) => {
                let ds = lock(&shell.engine).poll_timeouts(Instant::now());
                for d in ds {
                    shell.dispatch(d);
                }
                if Instant::now() >= next_check {
                    reload_resolv(&shell, &path, &mut seen);
                    next_check = Instant::now() + RESOLV_CHECK;
                }
            }
        }
    }
}

async fn run_tcp(shell: Arc<Shell>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(network = %shell.name, "DNS accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shell.tcp_clients.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CLIENTS {
            shell.tcp_clients.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let shell = shell.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve_tcp(&shell, stream, peer) => {}
                () = shell.stopped() => {}
            }
            lock(&shell.tcp).remove(&peer);
            shell.tcp_clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One TCP client: a reader feeds its queries to the engine; answers, local or from an
/// upstream, come back through the connection's channel and are written here.
async fn serve_tcp(shell: &Arc<Shell>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    lock(&shell.tcp).insert(peer, tx.clone());
    // Queries not yet answered; the connection stays while there are any.
    let open = Arc::new(AtomicUsize::new(0));
    let reader = {
        let shell = shell.clone();
        let open = open.clone();
        tokio::spawn(async move {
            loop {
                let q = tokio::select! {
                    r = read_frame(&mut rd) => match r {
                        Ok(Some(q)) => q,
                        _ => break,
                    },
                    () = shell.stopped() => return,
                };
                open.fetch_add(1, Ordering::SeqCst);
                let d = shell.query(Peer::tcp(peer), &q);
                if d == Decision::Drop {
                    open.fetch_sub(1, Ordering::SeqCst);
                }
                shell.dispatch(d);
            }
            // An empty message marks the end of the client's queries.
            let _ = tx.send(Vec::new()).await;
        })
    };
    let mut reading = true;
    loop {
        match tokio::time::timeout(TCP_IDLE, rx.recv()).await {
            Ok(Some(a)) if a.is_empty() => reading = false,
            Ok(Some(a)) => {
                if write_frame(&mut wr, &a).await.is_err() {
                    break;
                }
                open.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) | Err(_) => break,
        }
        if !reading && open.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
    reader.abort();
}
