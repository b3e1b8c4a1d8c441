//! The sockets every network's DHCPv4 server shares, as dnsmasq shares its own: one UDP
//! socket on 0.0.0.0:67 for all interfaces (IP_PKTINFO says which bridge a datagram came
//! in on), one ARP packet socket and one raw sender. A socket per network would make
//! each start slower than the last: binding the Nth socket to port 67 walks the N−1
//! already there, and the kernel walks every packet socket on each event of each device.
//!
//! One reader task hands each datagram and ARP claim to the network of its interface
//! ([`Port`], registered by bridge index) through a bounded channel; a network that does
//! not keep up loses its own datagrams (counted), never another network's.

use anyhow::{Context, Result};
use kvnet_host::arp::ArpSocket;
use kvnet_host::rawip::UdpSender;
use kvnet_host::sock::{DeviceSocket, recv_pktinfo, send_pktinfo};
use kvnet_model::MacAddr;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::services::lock;

/// Kernel receive buffer of the shared socket: room for a burst of a few thousand
/// datagrams while a network's batch is being made durable.
const RCVBUF: usize = 8 << 20;
const SNDBUF: usize = 1 << 20;
/// Datagrams and claims queued for one network; beyond, that network's are dropped.
const QUEUE: usize = 4096;
/// Datagrams read per wake-up of the reader, so ARP is not starved by a DHCP storm.
const READ_MAX: usize = 256;
/// Kernel drops are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the reader hands a network.
#[derive(Debug)]
pub enum Inbound {
    Datagram(Vec<u8>),
    /// An ARP sender seen on the bridge: (address, MAC).
    Claim(Ipv4Addr, MacAddr),
}

struct Route {
    tx: mpsc::Sender<Inbound>,
    dropped: Arc<AtomicU32>,
}

type Routes = Arc<Mutex<HashMap<u32, Route>>>;

struct Shared {
    udp: Arc<UdpSocket>,
    raw: Option<UdpSender>,
    arp: Option<Arc<ArpSocket>>,
    routes: Routes,
    reader: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The shared sockets, opened at the first network's start (in the daemon's runtime and
/// network namespace) and kept for the daemon's life.
#[derive(Default)]
pub struct Hub {
    shared: Mutex<Option<Arc<Shared>>>,
}

impl Hub {
    /// A network's share: what arrives on bridge `ifindex` (named `bridge` in logs).
    pub fn register(&self, bridge: &str, ifindex: u32) -> Result<Port> {
        let shared = {
            let mut s = lock(&self.shared);
            match &*s {
                Some(sh) => Arc::clone(sh),
                None => {
                    let sh = Arc::new(Shared::open()?);
                    *s = Some(Arc::clone(&sh));
                    sh
                }
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU32::new(0));
        let route = Route {
            tx,
            dropped: Arc::clone(&dropped),
        };
        if lock(&shared.routes).insert(ifindex, route).is_some() {
            warn!(
                "{bridge}: a second DHCP server registered on interface {ifindex}; the first hears nothing more"
            );
        }
        Ok(Port {
            rx,
            ifindex,
            bridge: bridge.to_string(),
            dropped,
            shared,
        })
    }
}

impl Shared {
    fn open() -> Result<Shared> {
        let fd = DeviceSocket::any_device(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)))
            .reuseport()
            .broadcast()
            .rcvbuf(RCVBUF)
            .sndbuf(SNDBUF)
            .drop_counts()
            .bind()?;
        let udp = Arc::new(
            UdpSocket::from_std(std::net::UdpSocket::from(fd))
                .context("register the DHCP socket")?,
        );
        let raw = UdpSender::open(SNDBUF)
            .inspect_err(|e| {
                warn!("DHCP replies through the UDP socket, checksums left to offload: {e}");
            })
            .ok();
        let arp = ArpSocket::open_all()
            .inspect_err(|e| warn!("no address-conflict detection: {e}"))
            .ok()
            .map(Arc::new);
        let routes = Routes::default();
        let reader = tokio::spawn(read(Arc::clone(&udp), arp.clone(), Arc::clone(&routes)));
        Ok(Shared {
            udp,
            raw,
            arp,
            routes,
            reader,
        })
    }
}

/// Hand `what` to the network of `ifindex`, if one is registered there.
fn deliver(routes: &HashMap<u32, Route>, ifindex: u32, what: Inbound) {
    if let Some(r) = routes.get(&ifindex)
        && r.tx.try_send(what).is_err()
    {
        r.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The reader task: the shared sockets' datagrams and claims to their networks.
async fn read(udp: Arc<UdpSocket>, arp: Option<Arc<ArpSocket>>, routes: Routes) {
    let mut buf = vec![0u8; 4096];
    let (mut seen, mut logged, mut at) = (0u32, 0u32, Instant::now());
    loop {
        let arp_ready = async {
            match &arp {
                Some(a) => {
                    if a.readable().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = udp.readable() => if let Err(e) = r {
                warn!("DHCP socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            },
            () = arp_ready => {},
        }
        let mut failed = false;
        {
            let routes = lock(&routes);
            if let Some(a) = &arp
                && let Err(e) =
                    a.drain(|i, ip, mac| deliver(&routes, i, Inbound::Claim(ip, MacAddr(mac))))
            {
                debug!("ARP receive: {e}");
            }
            for _ in 0..READ_MAX {
                match udp.try_io(Interest::READABLE, || recv_pktinfo(&*udp, &mut buf)) {
                    Ok(r) => {
                        if let Some(n) = r.drops {
                            seen = seen.max(n);
                        }
                        if let Some(i) = r.ifindex {
                            deliver(&routes, i, Inbound::Datagram(buf[..r.len].to_vec()));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!("DHCP receive: {e}");
                        failed = true;
                        break;
                    }
                }
            }
        }
        if seen != logged && at.elapsed() >= DROP_LOG_EVERY {
            warn!(
                "the kernel dropped {} DHCP datagrams in the last {} s: the shared socket's receive buffer was full",
                seen.wrapping_sub(logged),
                at.elapsed().as_secs()
            );
            (logged, at) = (seen, Instant::now());
        }
        if failed {
            // The socket may stay readable with the same error: do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One network's share of the hub; dropping it unregisters the network.
pub struct Port {
    pub rx: mpsc::Receiver<Inbound>,
    ifindex: u32,
    bridge: String,
    dropped: Arc<AtomicU32>,
    shared: Arc<Shared>,
}

impl Drop for Port {
    fn drop(&mut self) {
        let mut routes = lock(&self.shared.routes);
        // A newer registration on the same index (a restart of the service) stays.
        if routes
            .get(&self.ifindex)
            .is_some_and(|r| Arc::ptr_eq(&r.dropped, &self.dropped))
        {
            routes.remove(&self.ifindex);
        }
    }
}

impl Port {
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Datagrams and claims lost so far because this network's queue was full.
    pub fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether ARP probes can be sent and claims are heard.
    pub fn arp(&self) -> bool {
        self.shared.arp.is_some()
    }

    /// Send a DHCP reply from `src` out of the bridge: through the raw sender, with a
    /// complete UDP checksum (see the module docs of `dhcp4`), else the UDP socket.
    pub async fn send(
        &self,
        bytes: &[u8],
        src: SocketAddrV4,
        to: SocketAddrV4,
    ) -> std::io::Result<()> {
        match &self.shared.raw {
            Some(raw) => raw.send_to(bytes, src, to, self.ifindex).await,
            None => {
                let udp = &self.shared.udp;
                loop {
                    udp.writable().await?;
                    match udp.try_io(Interest::WRITABLE, || {
                        send_pktinfo(&**udp, bytes, to, self.ifindex, *src.ip())
                    }) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        r => return r,
                    }
                }
            }
        }
    }

    /// Broadcast an ARP probe for `ip` from `mac` on the bridge.
    pub fn probe(&self, mac: [u8; 6], ip: Ipv4Addr) -> std::io::Result<()> {
        match &self.shared.arp {
            Some(a) => a.send_probe(self.ifindex, mac, ip),
            None => Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
        }
    }
}
