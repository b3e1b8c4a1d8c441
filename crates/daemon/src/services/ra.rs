//! The router advertisement service of a started network: the I/O shell around the
//! sans-IO engine in `kvnet_ra` (socket, clock, the bridge's addresses). See
//! crates/ra/src/lib.rs for what is advertised and when.
//!
//! One raw ICMPv6 socket per network, bound to the bridge (SO_BINDTODEVICE), so nothing
//! is heard or sent on any other interface. The kernel filter lets only Router
//! Solicitations in (ICMP6_FILTER), and fills in the checksum of what we send. RAs go to
//! ff02::1 with hop limit 255 from the bridge's link-local address, named explicitly:
//! left to source selection, an RA could leave from the network's global address while
//! the link-local one is still tentative, and guests ignore such RAs (RFC 4861 §6.1.2).
//! While there is no usable link-local address (the bridge has no port with carrier, or
//! DAD is running) a send fails and the engine retries after 1 s, backing off to 16 s;
//! a guest's solicitation restarts at 1 s.

use super::{Ctx, NetService, lock};
use anyhow::{Context, Result};
use kvnet_model::{MacAddr, Network};
use kvnet_ra::{Config, Engine};
use nix::libc;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6, sockopt};
use std::ffi::OsString;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::debug;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// `ICMP6_FILTER` of <netinet/icmp6.h>, at level IPPROTO_ICMPV6 (not in the libc crate).
const ICMP6_FILTER: libc::c_int = 1;
/// Solicitations read per wakeup, so a flood cannot keep the task from its timer.
const DRAIN_MAX: usize = 64;
/// /proc/net/if_inet6 flags of an address not usable as a source yet, or ever.
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_DADFAILED: u32 = 0x08;

fn config(net: &Network) -> Option<Config> {
    Config::from_network(net, net.profile().guests)
}

struct Shell {
    name: String,
    bridge: String,
    ifindex: u32,
    fd: AsyncFd<OwnedFd>,
    engine: Mutex<Engine>,
    /// A reconfiguration moved the engine's deadline.
    wake: Notify,
}

/// A running RA service; dropping it stops advertising silently (kvnetd exits, the
/// network stays up). Stopping it also withdraws the router.
pub struct Ra {
    shell: Arc<Shell>,
    task: JoinHandle<()>,
}

impl Drop for Ra {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NetService for Ra {
    fn what() -> &'static str {
        "router advertisements"
    }

    fn wanted_for(net: &Network) -> bool {
        config(net).is_some()
    }

    /// Open the socket on the bridge and spawn the task.
    fn start(ctx: &Ctx) -> Result<Ra> {
        let bridge = ctx.bridge;
        let cfg = config(ctx.net).context("the network has no IPv6 address")?;
        let ifindex = nix::net::if_::if_nametoindex(bridge)
            .with_context(|| format!("interface index of {bridge}"))?;
        let fd = open(bridge, ifindex).context("router advertisement socket")?;
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let engine = Engine::new(
            cfg.with_source_mac(bridge_mac(bridge)),
            seed,
            Instant::now(),
        );
        let shell = Arc::new(Shell {
            name: ctx.net.name.clone(),
            bridge: bridge.to_string(),
            ifindex,
            // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped.
            fd: unsafe { AsyncFd::register(fd) }.context("register the RA socket")?,
            engine: Mutex::new(engine),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(shell.clone()));
        Ok(Ra { shell, task })
    }

    /// A live change of the definition; a changed advertisement goes out at once.
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let cfg = config(ctx.net).context("the network no longer advertises")?;
        let mut e = lock(&self.shell.engine);
        let mac = e.config().source_mac;
        e.set_config(cfg.with_source_mac(mac), Instant::now());
        drop(e);
        self.shell.wake.notify_one();
        Ok(())
    }

    /// Stop, after the final RA (router lifetime 0, RFC 4861 §6.2.5) so that guests
    /// drop their default route through the network at once instead of after 30 min.
    fn stop(self: Box<Self>) {
        self.task.abort();
        let e = lock(&self.shell.engine);
        if !e.has_advertised() {
            return;
        }
        match self.shell.send(&e.final_ra()) {
            Ok(()) => debug!(network = %self.shell.name, "final router advertisement sent"),
            Err(err) => debug!(network = %self.shell.name, "final router advertisement: {err:#}"),
        }
    }

    fn status(&self) -> String {
        format!("router advertisements on {}", self.shell.bridge)
    }
}

fn setopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> Result<()> {
    // SAFETY: `value` points to a T of the size given, as the option expects.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn open(bridge: &str, ifindex: u32) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_INET6, SOCK_RAW, ICMPv6)");
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))
        .with_context(|| format!("bind to {bridge}"))?;
    // A raw ICMPv6 socket sees every ICMPv6 message: block all but solicitations.
    setopt(
        &fd,
        libc::IPPROTO_ICMPV6,
        ICMP6_FILTER,
        &solicitations_only(),
    )
    .context("ICMP6_FILTER")?;
    let hops: libc::c_int = 255;
    setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)
        .context("IPV6_MULTICAST_HOPS")?;
    setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops).context("IPV6_UNICAST_HOPS")?;
    let index = ifindex as libc::c_int;
    setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)
        .context("IPV6_MULTICAST_IF")?;
    let off: libc::c_int = 0;
    setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)
        .context("IPV6_MULTICAST_LOOP")?;
    // The hop limit each solicitation arrived with: only 255 proves it was not routed.
    socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true).context("IPV6_RECVHOPLIMIT")?;
    // Solicitations go to all-routers, which the bridge only joins by itself while
    // forwarding is on: isolated networks need the explicit join.
    let mreq = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: ALL_ROUTERS.octets(),
        },
        ipv6mr_interface: ifindex,
    };
    setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq).context("join ff02::2")?;
    Ok(fd)
}

/// struct icmp6_filter passing only Router Solicitations: a set bit blocks its type.
fn solicitations_only() -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    let rs = usize::from(kvnet_ra::ROUTER_SOLICITATION);
    filter[rs >> 5] &= !(1u32 << (rs & 31));
    filter
}

/// The bridge's MAC, re-read because a bridge without a fixed one takes a port's.
fn bridge_mac(bridge: &str) -> Option<MacAddr> {
    std::fs::read_to_string(format!("/sys/class/net/{bridge}/address"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The bridge's usable (not tentative) link-local address, from /proc/net/if_inet6:
/// "fe80000000000000021122fffe334455 05 40 20 80 virbr0" = address, index, prefix
/// length, scope, flags, name.
fn link_local(bridge: &str) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    parse_if_inet6(&text, bridge)
}

fn parse_if_inet6(text: &str, bridge: &str) -> Option<Ipv6Addr> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, name] = f[..] else {
            return None;
        };
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if name != bridge || scope != "20" || flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0 {
            return None;
        }
        u128::from_str_radix(addr, 16).ok().map(Ipv6Addr::from)
    })
}

impl Shell {
    /// Send one message to all nodes from the bridge's link-local address.
    fn send(&self, msg: &[u8]) -> Result<()> {
        let src = link_local(&self.bridge).context("no usable link-local address yet")?;
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let to = SockaddrIn6::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        socket::sendmsg(
            self.fd.get_ref().as_raw_fd(),
            &[IoSlice::new(msg)],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        )
        .with_context(|| format!("send from {src}"))?;
        Ok(())
    }

    /// Hand the engine what arrived; true once the socket is empty.
    fn drain(&self, buf: &mut [u8]) -> bool {
        for _ in 0..DRAIN_MAX {
            let mut cmsg = nix::cmsg_space!(libc::c_int);
            let mut iov = [IoSliceMut::new(buf)];
            let (len, from, hop_limit) = match socket::recvmsg::<SockaddrIn6>(
                self.fd.get_ref().as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => {
                    // No hop limit reported: not provably on-link, and dropped as such.
                    let hop = m
                        .cmsgs()
                        .ok()
                        .into_iter()
                        .flatten()
                        .find_map(|c| match c {
                            ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                            _ => None,
                        })
                        .unwrap_or(0);
                    let from = m.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
                    (m.bytes, from, hop)
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(e) => {
                    debug!(network = %self.name, "RA socket receive: {e}");
                    return true;
                }
            };
            let res = lock(&self.engine).on_solicit(Instant::now(), from, hop_limit, &buf[..len]);
            match res {
                Ok(_) => debug!(network = %self.name, "router solicitation from {from}"),
                Err(e) => debug!(network = %self.name, "ignored ICMPv6 from {from}: {e}"),
            }
        }
        false
    }

    /// Send what the engine has due.
    fn send_due(&self) {
        let now = Instant::now();
        let mut e = lock(&self.engine);
        if e.next_deadline() > now {
            return;
        }
        e.set_source_mac(bridge_mac(&self.bridge));
        while let Some(ra) = e.poll(now) {
            match self.send(&ra) {
                Ok(()) => {
                    e.on_sent();
                    debug!(network = %self.name, "router advertisement sent on {}", self.bridge);
                }
                Err(err) => {
                    // Expected until the bridge has a port and its link-local address
                    // passed DAD; the engine retries.
                    e.on_send_failed(now);
                    debug!(network = %self.name, "router advertisement on {} not sent: {err:#}", self.bridge);
                    return;
                }
            }
        }
    }
}

async fn run(shell: Arc<Shell>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let deadline = lock(&shell.engine).next_deadline();
        tokio::select! {
            r = shell.fd.readable() => match r {
                Ok(mut g) => {
                    // Readiness is only cleared once the socket is empty: epoll is
                    // edge-triggered, and a partly drained socket raises no new edge.
                    if shell.drain(&mut buf) {
                        g.clear_ready();
                    }
                }
                Err(e) => {
                    debug!(network = %shell.name, "RA socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shell.wake.notified() => {}
        }
        shell.send_due();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_skips_tentative_and_other_interfaces() {
        let text = "\
fd000077000000000000000000000001 05 40 00 80   kvra0
fe800000000000000000000000000001 05 40 20 c0   kvra0
fe800000000000000000000000000002 06 40 20 80   kvra1
fe800000000000000000000000000003 05 40 20 80   kvra0
";
        assert_eq!(
            parse_if_inet6(text, "kvra0"),
            Some("fe80::3".parse().unwrap())
        );
        assert_eq!(
            parse_if_inet6(text, "kvra1"),
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(parse_if_inet6(text, "kvra2"), None);
        let tentative = "fe800000000000000000000000000001 05 40 20 40 kvra0\n";
        assert_eq!(parse_if_inet6(tentative, "kvra0"), None);
    }

    #[test]
    fn the_filter_passes_solicitations_only() {
        let filter = solicitations_only();
        let passes = |t: usize| filter[t >> 5] & (1 << (t & 31)) == 0;
        assert!((0..256).filter(|&t| passes(t)).eq([133]));
    }
}
