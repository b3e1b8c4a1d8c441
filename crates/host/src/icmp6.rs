//! The raw ICMPv6 socket of a router on one bridge: router solicitations in, router
//! advertisements out (RFC 4861). What to advertise and when is the caller's (kvnet-ra).
//!
//! The socket is bound to the bridge (SO_BINDTODEVICE), so nothing is heard or sent on
//! any other interface, and the kernel lets only solicitations in (ICMP6_FILTER) and
//! fills in the checksum of what is sent. Advertisements go to ff02::1 with hop limit
//! 255 from a link-local address the caller names: left to source selection, one could
//! leave from a global address while the link-local one is still tentative, and hosts
//! ignore such advertisements (RFC 4861 §6.1.2); [`link_local`] finds a usable one.

use std::ffi::OsString;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol,
    SockType, SockaddrIn6, sockopt,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::HostError;
use crate::sys;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// The ICMPv6 type of a Router Solicitation (RFC 4861 §4.1).
const ROUTER_SOLICITATION: u8 = 133;
/// `ICMP6_FILTER` of <netinet/icmp6.h>, at level IPPROTO_ICMPV6 (not in the libc crate).
const ICMP6_FILTER: libc::c_int = 1;
/// Only a hop limit of 255 proves that a message was not routed (RFC 4861 §6.1.1).
const HOP_LIMIT: libc::c_int = 255;
/// /proc/net/if_inet6 flags of an address not usable as a source yet, or ever.
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_DADFAILED: u32 = 0x08;
/// /proc/net/if_inet6 scope of link-local addresses.
const SCOPE_LINK: &str = "20";

/// One message read by [`RouterSocket::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the ICMPv6 message (from its type on) at the start of the buffer.
    pub len: usize,
    /// The sender; `::` when the kernel gave none.
    pub from: Ipv6Addr,
    /// The hop limit it arrived with; 0 when the kernel gave none, which proves nothing.
    pub hop_limit: u8,
}

/// A raw ICMPv6 socket for router solicitations and advertisements on one bridge.
pub struct RouterSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
}

impl RouterSocket {
    /// Opens the socket on `bridge` in the calling thread's network namespace and joins
    /// all-routers there. Needs CAP_NET_RAW and a tokio runtime.
    pub fn open(bridge: &str) -> Result<RouterSocket, HostError> {
        let ctx = |what: &str| format!("open ICMPv6 socket on {bridge}: {what}");
        let err = |what: &'static str| move |e: nix::Error| HostError::new(ctx(what), e);
        let ioerr = |what: &'static str| move |e: io::Error| HostError::new(ctx(what), e);
        let ifindex = nix::net::if_::if_nametoindex(bridge).map_err(err("interface index"))?;
        let fd = socket::socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )
        .map_err(err("socket"))?;
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(bridge))
            .map_err(err("SO_BINDTODEVICE"))?;
        // A raw ICMPv6 socket sees every ICMPv6 message: block all but solicitations.
        sys::setsockopt(
            &fd,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            &solicitations_only(),
        )
        .map_err(ioerr("ICMP6_FILTER"))?;
        socket::setsockopt(&fd, sockopt::Ipv6MulticastHops, &HOP_LIMIT)
            .map_err(err("IPV6_MULTICAST_HOPS"))?;
        socket::setsockopt(&fd, sockopt::Ipv6Ttl, &HOP_LIMIT).map_err(err("IPV6_UNICAST_HOPS"))?;
        let index = ifindex as libc::c_int;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)
            .map_err(ioerr("IPV6_MULTICAST_IF"))?;
        let off: libc::c_int = 0;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)
            .map_err(ioerr("IPV6_MULTICAST_LOOP"))?;
        // The hop limit each solicitation arrived with: only 255 proves it was not routed.
        socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(err("IPV6_RECVHOPLIMIT"))?;
        // Solicitations go to all-routers, which the bridge only joins by itself while
        // forwarding is on: isolated networks need the explicit join. nix's membership
        // request has no interface, and a join without one follows the routes.
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: ALL_ROUTERS.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)
            .map_err(ioerr("join ff02::2"))?;
        let fd = sys::register(fd, Interest::READABLE).map_err(ioerr("register"))?;
        Ok(RouterSocket { fd, ifindex })
    }

    /// The bridge's interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits until a message may be there; [`RouterSocket::recv`] reads it. Fails only
    /// when the runtime is shutting down.
    pub async fn readable(&self) -> io::Result<()> {
        // Not cleared here: recv clears the readiness once it finds the socket empty.
        self.fd.readable().await.map(drop)
    }

    /// One message into `buf` without blocking; `Ok(None)` once nothing is left.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let r = self.fd.try_io(Interest::READABLE, |fd| {
            let mut cmsg = nix::cmsg_space!(libc::c_int);
            let mut iov = [IoSliceMut::new(buf)];
            let m = socket::recvmsg::<SockaddrIn6>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            )?;
            let hop_limit = m
                .cmsgs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|c| match c {
                    ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                    _ => None,
                })
                .unwrap_or(0);
            Ok(Received {
                len: m.bytes,
                from: m.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED),
                hop_limit,
            })
        });
        match r {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `msg` (an ICMPv6 message; the kernel fills in its checksum) to all nodes
    /// (ff02::1) on the bridge from `src`, without blocking. Fails while `src` is not a
    /// usable address of the bridge (tentative, or gone).
    pub fn send_all_nodes(&self, msg: &[u8], src: Ipv6Addr) -> io::Result<()> {
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let to = SockaddrIn6::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        socket::sendmsg(
            self.fd.as_raw_fd(),
            &[IoSlice::new(msg)],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        )?;
        Ok(())
    }
}

/// struct icmp6_filter passing only Router Solicitations: a set bit blocks its type.
fn solicitations_only() -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    let rs = usize::from(ROUTER_SOLICITATION);
    filter[rs >> 5] &= !(1u32 << (rs & 31));
    filter
}

/// The bridge's usable (neither tentative nor DAD-failed) link-local address in the
/// calling thread's network namespace; none yet while the bridge has no port with
/// carrier or DAD runs.
pub fn link_local(bridge: &str) -> Option<Ipv6Addr> {
    // thread-self, not self: /proc/self/net is the namespace of the main thread.
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").ok()?;
    parse_if_inet6(&text, bridge)
}

/// The first usable link-local address of `bridge` in the text of /proc/net/if_inet6:
/// "fe80000000000000021122fffe334455 05 40 20 80 virbr0" = address, index, prefix
/// length, scope, flags, name.
pub fn parse_if_inet6(text: &str, bridge: &str) -> Option<Ipv6Addr> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, name] = f[..] else {
            return None;
        };
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if name != bridge || scope != SCOPE_LINK || flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0
        {
            return None;
        }
        u128::from_str_radix(addr, 16).ok().map(Ipv6Addr::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::TestNs;
    use std::time::Duration;

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
        let dadfailed = "fe800000000000000000000000000001 05 40 20 88 kvra0\n";
        assert_eq!(parse_if_inet6(dadfailed, "kvra0"), None);
        assert_eq!(parse_if_inet6("fe80 05 40 20 80\n", "kvra0"), None);
    }

    #[test]
    fn the_filter_passes_solicitations_only() {
        let filter = solicitations_only();
        let passes = |t: usize| filter[t >> 5] & (1 << (t & 31)) == 0;
        assert!((0..256).filter(|&t| passes(t)).eq([133]));
    }

    #[test]
    fn opening_on_a_missing_bridge_names_it() {
        let e = RouterSocket::open("kvnosuch0")
            .err()
            .expect("no such interface");
        assert!(
            e.to_string()
                .starts_with("open ICMPv6 socket on kvnosuch0: interface index: "),
            "{e}"
        );
    }

    /// A plain raw ICMPv6 socket in the peer's namespace, for the other side of a test.
    fn peer_socket(dev: &str) -> OwnedFd {
        let fd = socket::socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )
        .unwrap();
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(dev)).unwrap();
        socket::setsockopt(&fd, sockopt::Ipv6MulticastHops, &HOP_LIMIT).unwrap();
        socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true).unwrap();
        let tv = nix::sys::time::TimeVal::new(5, 0);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv).unwrap();
        fd
    }

    /// The usable link-local address of `dev`, once it has one (within 5 s).
    fn wait_link_local(dev: &str) -> Ipv6Addr {
        for _ in 0..500 {
            if let Some(a) = link_local(dev) {
                return a;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{dev} has no usable link-local address");
    }

    /// Over a veth pair: a solicitation reaches the router's socket with its sender and
    /// hop limit (other ICMPv6 does not), and an advertisement sent to all nodes reaches
    /// the peer from the router's link-local address with hop limit 255.
    #[test]
    #[ignore = "needs root"]
    fn solicitations_in_and_advertisements_out_over_a_veth() {
        let (a, b) = (TestNs::new().unwrap(), TestNs::new().unwrap());
        for ns in [&a, &b] {
            ns.run(|| {
                // No DAD: the link-local addresses are usable at once.
                for conf in ["all", "default"] {
                    crate::sysctl::write(&format!("net/ipv6/conf/{conf}/accept_dad"), "0").unwrap();
                }
            });
        }
        a.veth_to("kva2", &b, "kvb2").unwrap();
        let peer_ll = b.run(|| wait_link_local("kvb2"));
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (ra_tx, ra_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let peer = s.spawn(|| {
                b.run(move || {
                    let fd = peer_socket("kvb2");
                    let ifindex = nix::net::if_::if_nametoindex("kvb2").unwrap();
                    let routers = SockaddrIn6::from(SocketAddrV6::new(ALL_ROUTERS, 0, 0, ifindex));
                    opened_rx.recv().unwrap();
                    // An echo request first: the router's filter must drop it.
                    for msg in [[128u8, 0, 0, 0, 0, 1, 0, 1], [133, 0, 0, 0, 0, 0, 0, 0]] {
                        socket::sendto(fd.as_raw_fd(), &msg, &routers, MsgFlags::empty()).unwrap();
                    }
                    // The advertisement, among whatever else ICMPv6 the link carries.
                    let src = ra_rx.recv().unwrap();
                    loop {
                        let mut buf = [0u8; 1500];
                        let mut cmsg = nix::cmsg_space!(libc::c_int);
                        let mut iov = [IoSliceMut::new(&mut buf)];
                        let m = socket::recvmsg::<SockaddrIn6>(
                            fd.as_raw_fd(),
                            &mut iov,
                            Some(&mut cmsg),
                            MsgFlags::empty(),
                        )
                        .expect("an advertisement within 5 s");
                        let hops: Vec<_> = m.cmsgs().unwrap().collect();
                        let (n, from) = (m.bytes, m.address.unwrap().ip());
                        if buf[0] != 134 {
                            continue;
                        }
                        assert_eq!(&buf[..n][4..], &[0; 12], "as sent, checksum aside");
                        assert_eq!(from, src);
                        assert_eq!(hops, vec![ControlMessageOwned::Ipv6HopLimit(255)]);
                        break;
                    }
                })
            });
            a.block_on(|| async move {
                let sock = RouterSocket::open("kva2").unwrap();
                assert_eq!(
                    sock.ifindex(),
                    nix::net::if_::if_nametoindex("kva2").unwrap()
                );
                opened_tx.send(()).unwrap();
                let mut buf = [0u8; 1500];
                let got = loop {
                    tokio::time::timeout(Duration::from_secs(5), sock.readable())
                        .await
                        .expect("a solicitation within 5 s")
                        .unwrap();
                    if let Some(m) = sock.recv(&mut buf).unwrap() {
                        break m;
                    }
                };
                assert_eq!(buf[0], 133, "the echo request was filtered out");
                assert_eq!(
                    got,
                    Received {
                        len: 8,
                        from: peer_ll,
                        hop_limit: 255
                    }
                );
                assert_eq!(sock.recv(&mut buf).unwrap(), None, "nothing else came in");
                let src = wait_link_local("kva2");
                // A bare RA with router lifetime 0: the peer's kernel learns nothing.
                let mut ra = [0u8; 16];
                ra[0] = 134;
                sock.send_all_nodes(&ra, src).unwrap();
                ra_tx.send(src).unwrap();
                // A source the bridge does not have is refused.
                let stranger: Ipv6Addr = "fe80::dead".parse().unwrap();
                assert!(sock.send_all_nodes(&ra, stranger).is_err());
            });
            peer.join().unwrap();
        });
    }
}
