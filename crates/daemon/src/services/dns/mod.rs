//! The DNS service of a started network: the I/O shell around the sans-IO engine in
//! `kvnet_dns` (sockets, clock, timers, resolv.conf, guest names). See
//! crates/dns/src/lib.rs for the contract this module keeps.
//!
//! Per network: a UDP socket and a TCP listener on port 53 of each address of the network,
//! IPv4 and IPv6, each also bound to the bridge (SO_BINDTODEVICE), so only the network's
//! own guests are served and nothing listens on a wildcard address. UDP answers leave from
//! the address the query was sent to. Each forwarded UDP query leaves from a socket of
//! its own on a port the kernel picks at random, connected to the upstream (RFC 5452: a
//! spoofed answer must guess the port as well as the ID and question); past
//! [`MAX_QUERY_SOCKETS`] in flight across the daemon, queries share one socket per family.
//! None is bound to the bridge: upstreams are reached through the host's routes.
//! Forwarded TCP queries use one TCP connection to the upstream per query.
//!
//! One task per network runs the UDP side and the engine's timers; each TCP client
//! connection has its own task. The engine sits behind a mutex that is never held
//! across an await.

mod hostsfile;
mod tcp;
mod udp;
mod upstream;

use super::{Ctx, LeaseNames, NetService, lock};
use anyhow::{Context, Result, anyhow};
use ipnet::IpNet;
use kvnet_dns::{Config, ConfigError, Decision, Engine, Peer, Transport};
use kvnet_host::sock::DeviceSocket;
use kvnet_model::Network;
use nix::sys::socket::{self, Backlog};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info};

/// Lease names are also re-read this often, so expired leases drop out of DNS.
const NAMES_REFRESH: Duration = Duration::from_secs(30);
/// UDP clients whose receiving socket is remembered until they are answered; beyond this
/// (queries that are never answered) the memory is cleared and answers fall back to the
/// socket on the client's subnet.
const MAX_UDP_CLIENTS: usize = 4096;
/// Receive buffer of each listening UDP socket: the default holds about 190 queries, and
/// a burst of guests booting, or a resolver retrying, would lose queries before the task
/// is scheduled.
const UDP_RCVBUF: usize = 2 << 20;

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

/// A running DNS service; dropping it stops its tasks.
pub struct Dns {
    bridge: String,
    shell: Arc<Shell>,
    tasks: Vec<JoinHandle<()>>,
    _stop: watch::Sender<()>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The network's DNS config; None when its DNS is disabled.
fn config(net: &Network) -> Result<Option<Config>> {
    match Config::from_network(net, net.profile().guests) {
        Ok(c) => Ok(Some(c)),
        Err(ConfigError::Disabled) => Ok(None),
        Err(e) => Err(anyhow!("DNS config: {e}")),
    }
}

fn seed() -> Result<[u8; 32]> {
    let mut s = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut s))
        .context("read /dev/urandom")?;
    Ok(s)
}

fn upstream_socket(addr: &str) -> Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .with_context(|| format!("upstream DNS socket on {addr}"))?;
    UdpSocket::from_std(s).context("register the upstream socket")
}

impl NetService for Dns {
    fn what() -> &'static str {
        "DNS server"
    }

    fn wanted_for(net: &Network) -> bool {
        matches!(config(net), Ok(Some(_)))
    }

    /// Open a UDP socket and a TCP listener on port 53 of each of the network's
    /// addresses, on the bridge, and spawn the tasks.
    fn start(ctx: &Ctx) -> Result<Dns> {
        let (net, bridge) = (ctx.net, ctx.bridge);
        let cfg = config(net)?.context("DNS is disabled on the network")?;
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        for ip in &net.ips {
            let sa = SocketAddr::new(ip.address, 53);
            // IPv6 addresses may still be tentative (DAD): bind them anyway; queries
            // arrive once the address is usable.
            let u = DeviceSocket::udp(bridge, sa)
                .rcvbuf(UDP_RCVBUF)
                .freebind()
                .bind()?;
            let u = UdpSocket::from_std(std::net::UdpSocket::from(u))
                .context("register the DNS socket")?;
            udp.push((u, ip.network()));
            let t = DeviceSocket::tcp(bridge, sa).freebind().bind()?;
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
        engine.set_local_addrs(Arc::clone(&ctx.local_addrs));
        let shell = Arc::new(Shell {
            name: net.name.clone(),
            engine: Mutex::new(engine),
            names: Mutex::new(Names {
                statics: static_names(net),
                leases: ctx.lease_names.clone(),
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
        let mut tasks = vec![tokio::spawn(udp::run(shell.clone()))];
        for l in listeners {
            tasks.push(tokio::spawn(tcp::run(shell.clone(), l)));
        }
        Ok(Dns {
            bridge: bridge.to_string(),
            shell,
            tasks,
            _stop: stop_tx,
        })
    }

    /// A live change of the definition (net-update of DNS records or DHCP hosts), with
    /// the DHCP service's leases as they are now.
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let cfg = config(ctx.net)?.context("DNS is no longer served on the network")?;
        lock(&self.shell.engine).set_config(cfg);
        let mut n = lock(&self.shell.names);
        n.statics = static_names(ctx.net);
        n.leases = ctx.lease_names.clone();
        n.stale = true;
        Ok(())
    }

    fn stats(&self) -> Option<super::ServiceStats> {
        Some(super::ServiceStats::Dns(
            lock(&self.shell.engine).stats().clone(),
        ))
    }

    fn status(&self) -> String {
        format!("DNS server on {}", self.bridge)
    }
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
            names.extend(l.names());
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
        let t = Instant::now();
        let mut e = lock(&self.engine);
        let d = e.handle_query(t, client, bytes);
        if matches!(d, Decision::Answer { .. }) {
            e.note_local_latency(t.elapsed().as_secs_f64());
        }
        // `log-queries` in the network's <dnsmasq:options>.
        if e.config().log_queries() {
            info!(network = %self.name, "{}", kvnet_dns::query_log_line(client, bytes, &d));
        }
        d
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
                    if upstream::spawn_query(self, to.addr, bytes.clone()) {
                        return;
                    }
                    // Too many in flight, or no socket for the family: the shared socket,
                    // else the engine's timer moves on to the next upstream.
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
                            r = tcp::exchange(to.addr, &bytes) => r,
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
