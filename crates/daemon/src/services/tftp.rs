//! The TFTP service of a started network (`<ip><tftp root='…'/></ip>`): the I/O shell
//! around the sans-IO engine in `kvnet_tftp` (sockets, clock, files). Read-only: write
//! requests get ERROR 2 (access violation).
//!
//! Requests arrive on a UDP socket on the bridge's IPv4 address, port 69, bound to the
//! bridge (SO_BINDTODEVICE): nothing listens on the host's other interfaces. Each
//! accepted read runs as its own task from its own port (RFC 1350's transfer ID): a UDP
//! socket on the bridge address and an ephemeral port, connected to the client, so
//! only the client's datagrams reach it. At most `kvnet_tftp::slots::PER_NETWORK`
//! transfers run on a network and `PER_CLIENT` for one client address; a request
//! beyond them is refused with ERROR 0 ("busy"), and the client retries.
//!
//! Files are opened with `kvnet_host::beneath::open_file`: beneath the root (openat2
//! RESOLVE_BENEATH, so neither `..`, an absolute path nor a symbolic link leaves it),
//! regular files only, readable by everyone. The root is opened anew for each request:
//! a root created or replaced while the network runs is served as it is then. Blocks
//! are read from the file in the transfer's task, one block per ACK.

use super::{Ctx, NetService, lock};
use anyhow::{Context, Result, bail};
use kvnet_host::beneath::{self, Refused};
use kvnet_host::sock::DeviceSocket;
use kvnet_model::Network;
use kvnet_tftp::packet::{self, ErrorCode, MAX_REQUEST};
use kvnet_tftp::{Config, Packet, Request, Slots, Step, Transfer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

const PORT: u16 = 69;
/// Requests queue here while the task is busy, e.g. under a flood of junk from a guest.
const RCVBUF: usize = 1 << 20;

/// The IPv4 address with `<tftp root>` and its root.
fn config(net: &Network) -> Option<(Ipv4Addr, PathBuf)> {
    net.ips
        .iter()
        .find_map(|ip| match (ip.address, &ip.tftp_root) {
            (IpAddr::V4(a), Some(root)) => Some((a, PathBuf::from(root))),
            _ => None,
        })
}

/// The root must be an absolute path to a directory.
fn check_root(root: &std::path::Path) -> Result<()> {
    if !root.is_absolute() {
        bail!("TFTP root {} is not an absolute path", root.display());
    }
    let md = std::fs::metadata(root).with_context(|| format!("TFTP root {}", root.display()))?;
    if !md.is_dir() {
        bail!("TFTP root {} is not a directory", root.display());
    }
    Ok(())
}

struct Shell {
    name: String,
    bridge: String,
    addr: Ipv4Addr,
    root: Mutex<PathBuf>,
    slots: Mutex<Slots>,
}

/// A running TFTP service; dropping it ends the listener and every transfer.
pub struct Tftp {
    shell: Arc<Shell>,
    task: JoinHandle<()>,
}

impl Drop for Tftp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NetService for Tftp {
    fn what() -> &'static str {
        "TFTP server"
    }

    fn wanted_for(net: &Network) -> bool {
        config(net).is_some()
    }

    /// Check the root, open port 69 on the bridge address and spawn the listener.
    fn start(ctx: &Ctx) -> Result<Tftp> {
        let (addr, root) = config(ctx.net).context("the network has no <tftp root>")?;
        check_root(&root)?;
        let fd = DeviceSocket::udp(ctx.bridge, SocketAddr::from((addr, PORT)))
            .rcvbuf(RCVBUF)
            .bind()?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(fd))
            .context("register the TFTP socket")?;
        let shell = Arc::new(Shell {
            name: ctx.net.name.clone(),
            bridge: ctx.bridge.to_string(),
            addr,
            root: Mutex::new(root),
            slots: Mutex::new(Slots::default()),
        });
        let task = tokio::spawn(listen(shell.clone(), sock));
        Ok(Tftp { shell, task })
    }

    /// A new root applies to the next request; transfers running go on. A changed
    /// address needs a restart of the network, as for the other services.
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let (_, root) = config(ctx.net).context("the network no longer serves TFTP")?;
        check_root(&root)?;
        *lock(&self.shell.root) = root;
        Ok(())
    }

    fn status(&self) -> String {
        format!(
            "TFTP server on {}:{PORT} ({}), root {}",
            self.shell.addr,
            self.shell.bridge,
            lock(&self.shell.root).display()
        )
    }
}

/// Receive requests; start a transfer for each acceptable one.
async fn listen(shell: Arc<Shell>, sock: UdpSocket) {
    // The transfers end with the listener (the set aborts them when dropped).
    let mut transfers = JoinSet::new();
    // One byte more than a request may have, so that a longer one is seen as such.
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    if let Some(reply) = shell.request(&buf[..n], from, &mut transfers)
                        && let Err(e) = sock.send_to(&reply, from).await
                    {
                        debug!(network = %shell.name, "TFTP reply to {from}: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(network = %shell.name, "TFTP socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = transfers.join_next(), if !transfers.is_empty() => {}
        }
    }
}

impl Shell {
    /// A datagram on port 69: spawn its transfer, or the ERROR that refuses it (None:
    /// not answered).
    fn request(
        self: &Arc<Self>,
        bytes: &[u8],
        from: SocketAddrV4,
        transfers: &mut JoinSet<()>,
    ) -> Option<Vec<u8>> {
        let ip = from.ip();
        // No transfer can reach such a source (and connecting to 0.0.0.0 would reach
        // the host itself): not answered.
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || from.port() == 0 {
            return None;
        }
        let refuse = |code, why: &str, file: &str| {
            debug!(network = %self.name, "TFTP request from {from} for {file:?} refused: {why}");
            Some(packet::error(code, why))
        };
        let req = match packet::parse(bytes) {
            Ok(Packet::Request(r)) => r,
            // Stray ACKs, ERRORs or DATA on port 69 are no requests: not answered.
            Ok(_) | Err(kvnet_tftp::ParseError::Short) => return None,
            Err(e) => {
                debug!(network = %self.name, "TFTP packet from {from} refused: {e}");
                return Some(e.reply());
            }
        };
        if req.write {
            return refuse(
                ErrorCode::AccessViolation,
                "access violation: read-only server",
                &req.filename,
            );
        }
        // Taken before the file is opened; given back if it is not.
        let client = IpAddr::V4(*ip);
        if let Err(busy) = lock(&self.slots).admit(client) {
            return refuse(
                ErrorCode::Undefined,
                &format!("busy: {busy}"),
                &req.filename,
            );
        }
        let slot = Slot {
            shell: self.clone(),
            client,
        };
        let rel = match kvnet_tftp::relative(&req.filename) {
            Ok(r) => r,
            Err(e) => {
                return refuse(
                    ErrorCode::AccessViolation,
                    &format!("access violation: {e}"),
                    &req.filename,
                );
            }
        };
        let root = lock(&self.root).clone();
        let (file, size) = match beneath::open_file(&root, &rel) {
            Ok(f) => f,
            Err(Refused::NotFound) => {
                return refuse(ErrorCode::FileNotFound, "file not found", &req.filename);
            }
            Err(Refused::Denied(why)) => {
                return refuse(
                    ErrorCode::AccessViolation,
                    &format!("access violation: {why}"),
                    &req.filename,
                );
            }
            Err(Refused::Io(e)) => {
                return refuse(ErrorCode::Undefined, &e.to_string(), &req.filename);
            }
        };
        transfers.spawn(transfer(slot, req, file, size, from));
        None
    }
}

/// A transfer's place in the slots, given back when the transfer ends or is aborted.
struct Slot {
    shell: Arc<Shell>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shell.slots).release(self.client);
    }
}

/// One transfer, from its own port on the bridge address.
async fn transfer(slot: Slot, req: Request, file: std::fs::File, size: u64, client: SocketAddrV4) {
    let shell = &slot.shell;
    let sock = match transfer_socket(shell, client) {
        Ok(s) => s,
        Err(e) => {
            warn!(network = %shell.name, "TFTP transfer to {client}: {e:#}");
            return;
        }
    };
    let mtu = kvnet_host::link::mtu(&shell.bridge).unwrap_or(1500);
    let t0 = Instant::now();
    let mut t = match Transfer::start(&req, file, size, &Config::for_mtu(mtu), t0) {
        Ok(t) => t,
        Err(reply) => {
            let _ = sock.send(&reply).await;
            info!(network = %shell.name, "TFTP {:?} to {client}: read error", req.filename);
            return;
        }
    };
    let mut buf = [0u8; 516];
    let mut step = Step::Send;
    loop {
        match step {
            Step::Send => {
                if let Err(e) = sock.send(t.packet()).await {
                    debug!(network = %shell.name, "TFTP send to {client}: {e}");
                }
            }
            Step::Wait => {}
            Step::Done => {
                info!(
                    network = %shell.name,
                    "TFTP sent {:?} to {client}: {} bytes in {:.1} s, block size {}, {} retransmissions",
                    req.filename,
                    t.acked_bytes,
                    t0.elapsed().as_secs_f64(),
                    t.blksize(),
                    t.retransmits
                );
                return;
            }
            Step::Fail { reason, reply } => {
                if let Some(r) = reply {
                    let _ = sock.send(&r).await;
                }
                info!(network = %shell.name, "TFTP {:?} to {client} failed: {reason}", req.filename);
                return;
            }
        }
        step = tokio::select! {
            r = sock.recv(&mut buf) => match r {
                Ok(n) => t.on_packet(&buf[..n], Instant::now()),
                // An ICMP error for the client's port: it is gone.
                Err(e) => Step::Fail { reason: format!("receive: {e}"), reply: None },
            },
            _ = tokio::time::sleep_until(t.deadline().into()) => t.on_timeout(Instant::now()),
        };
    }
}

/// A socket on the bridge address, a port of the kernel's choosing, connected to the
/// client: the transfer's own TID.
fn transfer_socket(shell: &Shell, client: SocketAddrV4) -> Result<UdpSocket> {
    let fd = DeviceSocket::udp(&shell.bridge, SocketAddr::from((shell.addr, 0))).bind()?;
    let sock = std::net::UdpSocket::from(fd);
    sock.connect(client)
        .with_context(|| format!("connect to {client}"))?;
    UdpSocket::from_std(sock).context("register the transfer socket")
}
