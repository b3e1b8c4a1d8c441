//! The ARP side of DHCP address-conflict detection on a bridge: RFC 5227 probes for
//! addresses about to be offered, and the claims (ARP senders) seen there. Which probes
//! go out, how many and what a claim means is the caller's (kvnet_dhcp::conflict).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::HostError;
use crate::bgclose::BgClose;
use crate::sys;

const ETH_P_ARP: u16 = 0x0806;
/// Frames read per [`ArpSocket::drain`], so that an ARP storm cannot starve the caller.
const DRAIN_MAX: usize = 1024;

/// A packet socket for the ARP frames of one bridge, registered with tokio. Dropping it
/// closes the descriptor on a background thread ([`BgClose`]).
pub struct ArpSocket {
    fd: AsyncFd<BgClose>,
}

impl ArpSocket {
    /// Opens the socket on `bridge`, in the calling thread's network namespace. Needs
    /// CAP_NET_RAW and a tokio runtime.
    pub fn open(bridge: &str) -> Result<ArpSocket, HostError> {
        let ctx = || format!("open ARP socket on {bridge}");
        let ifindex =
            nix::net::if_::if_nametoindex(bridge).map_err(|e| HostError::new(ctx(), e))?;
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| HostError::invalid(ctx(), format!("interface index {ifindex}")))?;
        Self::bound(ifindex).map_err(|e| HostError::new(ctx(), e))
    }

    /// Opens one socket for the ARP frames of every interface, each read with the
    /// interface it came in on: one socket for all networks, as the kernel walks every
    /// packet socket on each event of each device (a bridge's start among them).
    pub fn open_all() -> Result<ArpSocket, HostError> {
        Self::bound(0).map_err(|e| HostError::new("open ARP socket on every interface", e))
    }

    fn bound(ifindex: i32) -> io::Result<ArpSocket> {
        // Protocol 0 here and ETH_P_ARP at bind: a socket created with a protocol already
        // listens on every interface, and re-binding it to one waits for an RCU grace
        // period (10-20 ms of every network start).
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let fd = BgClose::new(fd);
        socket::bind(fd.as_raw_fd(), &sys::packet_addr(ifindex, ETH_P_ARP))?;
        let fd = sys::register(fd, Interest::READABLE | Interest::WRITABLE)?;
        Ok(ArpSocket { fd })
    }

    /// Waits until frames may be there; [`ArpSocket::drain`] reads them. Fails only
    /// when the runtime is shutting down.
    pub async fn readable(&self) -> io::Result<()> {
        // The guard is dropped without clearing: drain clears the readiness once it
        // finds the socket empty, so frames left by a bounded drain wake us again.
        self.fd.readable().await.map(drop)
    }

    /// Hands `claim` the interface index and the sender (address, MAC) of every ARP
    /// request and reply read without blocking, at most a bounded number per call;
    /// frames that claim nothing (probes, other protocols) are skipped. Err only for a
    /// failed receive.
    pub fn drain(&self, mut claim: impl FnMut(u32, Ipv4Addr, [u8; 6])) -> io::Result<()> {
        let mut buf = [0u8; 128];
        for _ in 0..DRAIN_MAX {
            let r = self.fd.try_io(Interest::READABLE, |fd| {
                socket::recvfrom::<LinkAddr>(fd.as_raw_fd(), &mut buf).map_err(Into::into)
            });
            match r {
                Ok((n, from)) => {
                    let ifindex = from.map_or(0, |a| a.ifindex() as u32);
                    if let Some((ip, mac)) = parse(&buf[..n]) {
                        claim(ifindex, ip, mac);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Broadcasts on interface `ifindex` an RFC 5227 probe for `ip` from `own_mac` (the
    /// bridge's): who-has `ip` with sender address 0.0.0.0, so that no neighbour cache
    /// learns anything from it.
    pub fn send_probe(&self, ifindex: u32, own_mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
        let frame = probe_frame(own_mac, ip);
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let to = sys::packet_addr(ifindex, ETH_P_ARP);
        socket::sendto(self.fd.as_raw_fd(), &frame, &to, MsgFlags::MSG_DONTWAIT)?;
        Ok(())
    }
}

/// The sender of an Ethernet/IPv4 ARP request or reply, unless it has no address yet (a
/// probe, sender 0.0.0.0) or no usable MAC (zero, multicast).
pub fn parse(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let a = &frame[14..];
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request (1) or reply (2)
    if a[..6] != [0, 1, 8, 0, 6, 4] || !matches!(a[6..8], [0, 1] | [0, 2]) {
        return None;
    }
    let mac: [u8; 6] = a[8..14].try_into().ok()?;
    let ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let multicast = mac[0] & 1 != 0;
    (!ip.is_unspecified() && !multicast && mac != [0; 6]).then_some((ip, mac))
}

/// An RFC 5227 ARP probe: broadcast who-has `ip` from `mac`, sender address 0.0.0.0.
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

/// The bridge's complete entries in the kernel's neighbour table, of the calling
/// thread's network namespace; none when it cannot be read.
pub fn neighbours(bridge: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
    // thread-self, not self: /proc/self/net is the namespace of the main thread.
    std::fs::read_to_string("/proc/thread-self/net/arp")
        .map(|t| parse_proc_arp(&t, bridge))
        .unwrap_or_default()
}

/// The complete entries of `bridge` in the text of /proc/net/arp.
pub fn parse_proc_arp(text: &str, bridge: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
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
                .then(|| Some((ip.parse().ok()?, crate::link::parse_mac(mac)?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::TestNs;
    use std::time::Duration;

    #[test]
    fn probes_parse_as_no_claim_and_replies_as_claims() {
        let me = [0x52, 0x54, 0, 0, 0, 1];
        let p = probe_frame(me, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(parse(&p), None, "a probe claims nothing");
        let mut reply = p;
        reply[21] = 2;
        reply[28..32].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(parse(&reply), Some((Ipv4Addr::new(10, 0, 0, 9), me)));
        assert_eq!(parse(&reply[..41]), None);
        let mut ipv6 = reply;
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse(&ipv6), None);
        let mut rarp = reply;
        rarp[21] = 3;
        assert_eq!(parse(&rarp), None, "only requests and replies");
        let mut multicast = reply;
        multicast[22] = 0x01;
        assert_eq!(parse(&multicast), None);
        let mut zero = reply;
        zero[22..28].fill(0);
        assert_eq!(parse(&zero), None);
    }

    #[test]
    fn the_probe_frame_is_an_rfc5227_probe() {
        let me = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];
        let f = probe_frame(me, Ipv4Addr::new(192, 168, 122, 7));
        assert_eq!(&f[..6], &[0xff; 6], "broadcast");
        assert_eq!(&f[6..12], &me, "from us");
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[22..28], &me, "sender MAC");
        assert_eq!(&f[28..32], &[0; 4], "sender address 0.0.0.0");
        assert_eq!(&f[32..38], &[0; 6], "target MAC unknown");
        assert_eq!(&f[38..42], &[192, 168, 122, 7]);
    }

    #[test]
    fn proc_arp_keeps_complete_entries_of_the_bridge() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.0.0.5         0x1         0x2         52:54:00:00:00:05     *        br0\n\
                 10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        br0\n\
                 10.0.0.7         0x1         0x2         52:54:00:00:00:07     *        eth0\n\
                 10.0.0.8         0x1         0x6         52:54:00:00:00:08     *        br0\n\
                 garbage\n";
        assert_eq!(
            parse_proc_arp(t, "br0"),
            vec![
                (Ipv4Addr::new(10, 0, 0, 5), [0x52, 0x54, 0, 0, 0, 5]),
                (Ipv4Addr::new(10, 0, 0, 8), [0x52, 0x54, 0, 0, 0, 8]),
            ]
        );
        assert_eq!(parse_proc_arp(t, "br1"), vec![]);
    }

    /// A probe sent on one end of a veth pair arrives on the other as a probe (no
    /// claim), and a reply sent back is read as a claim.
    #[test]
    #[ignore = "needs root"]
    fn a_probe_crosses_a_veth_and_a_reply_is_a_claim() {
        let (a, b) = (TestNs::new().unwrap(), TestNs::new().unwrap());
        a.veth_to("kva0", &b, "kvb0").unwrap();
        let (mac_a, mac_b) = ([0x52, 0x54, 0, 0, 0, 0xa], [0x52, 0x54, 0, 0, 0, 0xb]);
        let target = Ipv4Addr::new(10, 77, 0, 9);
        // Both sockets open before anything is sent; each side runs on its own thread.
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (probed_tx, probed_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let peer = s.spawn(|| {
                b.block_on(|| async move {
                    let sock = ArpSocket::open("kvb0").unwrap();
                    opened_tx.send(()).unwrap();
                    // The probe arrives, claims nothing, and is answered.
                    let frame = read_frame(&sock).await;
                    assert_eq!(frame, probe_frame(mac_a, target));
                    probed_tx.send(()).unwrap();
                    let mut reply = frame;
                    reply[..6].copy_from_slice(&mac_a);
                    reply[6..12].copy_from_slice(&mac_b);
                    reply[21] = 2;
                    reply[22..28].copy_from_slice(&mac_b);
                    reply[28..32].copy_from_slice(&target.octets());
                    reply[32..38].copy_from_slice(&mac_a);
                    reply[38..42].fill(0);
                    socket::send(sock.fd.as_raw_fd(), &reply, MsgFlags::empty()).unwrap();
                })
            });
            a.block_on(|| async move {
                // The prober's socket hears every interface and sends on one.
                let sock = ArpSocket::open_all().unwrap();
                let kva0 = nix::net::if_::if_nametoindex("kva0").unwrap();
                opened_rx.recv().unwrap();
                sock.send_probe(kva0, mac_a, target).unwrap();
                probed_rx.recv().unwrap();
                let mut claims = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while claims.is_empty() {
                    tokio::time::timeout_at(deadline, sock.readable())
                        .await
                        .expect("a reply within 5 s")
                        .unwrap();
                    sock.drain(|i, ip, mac| claims.push((i, ip, mac))).unwrap();
                }
                assert_eq!(claims, vec![(kva0, target, mac_b)]);
            });
            peer.join().unwrap();
        });
    }

    #[test]
    fn opening_on_a_missing_bridge_names_it() {
        let e = ArpSocket::open("kvnosuch0")
            .err()
            .expect("no such interface");
        assert!(
            e.to_string().starts_with("open ARP socket on kvnosuch0: "),
            "{e}"
        );
    }

    /// The first ARP frame that arrives, whole.
    async fn read_frame(sock: &ArpSocket) -> [u8; 42] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::timeout_at(deadline, sock.readable())
                .await
                .expect("a frame within 5 s")
                .unwrap();
            let mut buf = [0u8; 128];
            let r = sock.fd.try_io(Interest::READABLE, |fd| {
                socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).map_err(Into::into)
            });
            match r {
                Ok(n) if n >= 42 => return buf[..42].try_into().unwrap(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
    }
}
