//! UDP over a raw IPv4 socket, with headers and the UDP checksum built here: one socket
//! for every interface, each datagram sent out of the one it names.
//!
//! Why: a datagram sent through the kernel's UDP socket on a bridge leaves with its UDP
//! checksum only partly computed (CHECKSUM_PARTIAL, left to offload), and a veth or TAP
//! port hands it on like that. A DHCP client reading from a packet socket then sees a
//! wrong checksum unless it asks the kernel whether it was offloaded (PACKET_AUXDATA);
//! older clients drop such replies. Whether to fall back to the UDP socket when no raw
//! socket can be opened (no CAP_NET_RAW) is the caller's choice.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn,
    sockopt,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::HostError;
use crate::sys;

const IPPROTO_UDP: u8 = 17;
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
/// The largest payload an IPv4 datagram without options can carry.
pub const MAX_PAYLOAD: usize = u16::MAX as usize - IP_HEADER - UDP_HEADER;

/// A raw IPv4 socket that sends UDP datagrams out of any interface.
pub struct UdpSender {
    fd: AsyncFd<OwnedFd>,
}

impl UdpSender {
    /// Opens the socket with a send buffer of `sndbuf` bytes (beyond net.core.wmem_max
    /// where the caller may). Needs CAP_NET_RAW and a tokio runtime.
    pub fn open(sndbuf: usize) -> Result<UdpSender, HostError> {
        let ctx = || "open raw IPv4 socket".to_string();
        let err = |e: nix::Error| HostError::new(ctx(), e);
        // IPPROTO_RAW: send only (nothing is ever received on it), headers included.
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Raw,
        )
        .map_err(err)?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(err)?;
        // The FORCE variant passes net.core.wmem_max (CAP_NET_ADMIN); the plain one is capped.
        if socket::setsockopt(&fd, sockopt::SndBufForce, &sndbuf).is_err() {
            socket::setsockopt(&fd, sockopt::SndBuf, &sndbuf).map_err(err)?;
        }
        let fd = sys::register(fd, Interest::WRITABLE).map_err(|e| HostError::new(ctx(), e))?;
        Ok(UdpSender { fd })
    }

    /// Sends `payload` from `src` to `dst` (unicast or 255.255.255.255) out of interface
    /// `ifindex` (IP_PKTINFO), waiting while the send buffer is full.
    pub async fn send_to(
        &self,
        payload: &[u8],
        src: SocketAddrV4,
        dst: SocketAddrV4,
        ifindex: u32,
    ) -> io::Result<()> {
        if payload.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a UDP payload of {} bytes", payload.len()),
            ));
        }
        let pkt = ip_udp(src, dst, payload);
        // With IP_HDRINCL the port of the address is ignored; the header has it.
        let to = SockaddrIn::from(SocketAddrV4::new(*dst.ip(), 0));
        let info = libc::in_pktinfo {
            ipi_ifindex: ifindex as libc::c_int,
            ipi_spec_dst: libc::in_addr { s_addr: 0 },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let iov = [io::IoSlice::new(&pkt)];
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                socket::sendmsg(fd.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&to))
                    .map_err(Into::into)
            })
            .await
            .map(drop)
    }
}

/// An IPv4/UDP datagram from `src` to `dst` with a complete UDP checksum. The kernel
/// fills in the IP header's id and checksum (IP_HDRINCL).
///
/// # Panics
/// When `payload` is longer than [`MAX_PAYLOAD`].
pub fn ip_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= MAX_PAYLOAD, "UDP payload too long");
    let ulen = UDP_HEADER + payload.len();
    let total = IP_HEADER + ulen;
    let mut p = Vec::with_capacity(total);
    // version 4, 20-byte header, TOS 0, length, id 0, no fragment flags, TTL 64, UDP
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let c = udp_checksum(*src.ip(), *dst.ip(), &p[IP_HEADER..]);
    p[IP_HEADER + 6..IP_HEADER + 8].copy_from_slice(&c.to_be_bytes());
    p
}

/// RFC 768: the one's complement of the one's complement sum over the pseudo-header and
/// the datagram `udp` (header and payload); a result of 0 is sent as 0xffff, as 0 means
/// "no checksum".
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    match !fold(pseudo_sum(src, dst, udp.len()) + ones_sum(udp)) {
        0 => 0xffff,
        c => c,
    }
}

fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    // A UDP length beyond u16 cannot be sent; its low bits keep the sum defined.
    let len = (udp_len as u16).to_be_bytes();
    [&src.octets()[..], &dst.octets(), &[0, IPPROTO_UDP], &len]
        .iter()
        .map(|b| ones_sum(b))
        .sum()
}

/// The 16-bit words of `b` added up (a last odd byte padded with zero), not yet folded.
fn ones_sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::TestNs;
    use std::time::Duration;

    /// What a receiver computes: the sum over pseudo-header and datagram, checksum
    /// included, is all ones when the checksum is right.
    fn verifies(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> bool {
        fold(pseudo_sum(src, dst, udp.len()) + ones_sum(udp)) == 0xffff
    }

    #[test]
    fn datagrams_carry_a_verifiable_udp_checksum() {
        let src = SocketAddrV4::new(Ipv4Addr::new(192, 168, 122, 1), 67);
        let dst = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        for len in [0, 1, 300, 301, 548] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let p = ip_udp(src, dst, &payload);
            assert_eq!(p.len(), 28 + len);
            assert_eq!(
                &p[..4],
                &[0x45, 0, ((28 + len) >> 8) as u8, (28 + len) as u8]
            );
            assert_eq!(&p[12..20], &[192, 168, 122, 1, 255, 255, 255, 255]);
            assert_eq!(&p[20..24], &[0, 67, 0, 68]);
            assert_eq!(&p[24..26], &((8 + len) as u16).to_be_bytes());
            assert_ne!(&p[26..28], &[0, 0], "0 would mean no checksum");
            assert_eq!(&p[28..], &payload[..]);
            assert!(
                verifies(*src.ip(), *dst.ip(), &p[20..]),
                "payload of {len} bytes"
            );
        }
    }

    #[test]
    fn a_zero_sum_is_sent_as_all_ones() {
        // Find a two-byte payload whose checksum computes to 0; it must go out as 0xffff,
        // which verifies just the same.
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let header = [0, 67, 0, 68, 0, 10, 0, 0];
        let rest = fold(pseudo_sum(src, dst, 10) + ones_sum(&header));
        // The payload word that brings the sum to 0xffff, so that its complement is 0.
        let word = 0xffff - rest;
        let mut udp = header.to_vec();
        udp.extend_from_slice(&word.to_be_bytes());
        assert_eq!(udp_checksum(src, dst, &udp), 0xffff);
        udp[6..8].copy_from_slice(&[0xff, 0xff]);
        assert!(verifies(src, dst, &udp));
    }

    #[test]
    fn an_oversized_payload_is_refused() {
        assert_eq!(MAX_PAYLOAD, 65_507);
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 67);
        let p = ip_udp(src, src, &vec![0; MAX_PAYLOAD]);
        assert_eq!(&p[2..4], &[0xff, 0xff]);
        let r = std::panic::catch_unwind(|| ip_udp(src, src, &vec![0; MAX_PAYLOAD + 1]));
        assert!(r.is_err());
    }

    /// Datagrams sent on one end of a veth pair reach a UDP socket behind the other end,
    /// as broadcast and as unicast, with a checksum that verifies.
    #[test]
    #[ignore = "needs root"]
    fn datagrams_cross_a_veth_with_their_checksum() {
        let (a, b) = (TestNs::new().unwrap(), TestNs::new().unwrap());
        a.veth_to("kva1", &b, "kvb1").unwrap();
        a.exec_ok("ip", &["addr", "add", "10.78.0.1/24", "dev", "kva1"])
            .unwrap();
        b.exec_ok("ip", &["addr", "add", "10.78.0.2/24", "dev", "kvb1"])
            .unwrap();
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 1), 67);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let peer = s.spawn(|| {
                b.run(move || {
                    let udp = std::net::UdpSocket::bind("0.0.0.0:68").unwrap();
                    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    // A raw UDP socket sees each datagram whole, before the UDP stack.
                    let raw = socket::socket(
                        AddressFamily::Inet,
                        SockType::Raw,
                        SockFlag::SOCK_CLOEXEC,
                        SockProtocol::Udp,
                    )
                    .unwrap();
                    let tv = nix::sys::time::TimeVal::new(5, 0);
                    socket::setsockopt(&raw, sockopt::ReceiveTimeout, &tv).unwrap();
                    ready_tx.send(()).unwrap();
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        let mut buf = [0u8; 1500];
                        let (n, from) = udp.recv_from(&mut buf).expect("a datagram");
                        assert_eq!(from, std::net::SocketAddr::V4(src));
                        got.push(buf[..n].to_vec());
                        let n = socket::recv(raw.as_raw_fd(), &mut buf, MsgFlags::empty())
                            .expect("its copy on the raw socket");
                        let ip = &buf[..n];
                        let (s, d) = (
                            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
                            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
                        );
                        assert!(verifies(s, d, &ip[20..]), "checksum of {:?}", &ip[20..]);
                    }
                    got
                })
            });
            a.block_on(|| async move {
                let tx = UdpSender::open(1 << 16).unwrap();
                let kva1 = nix::net::if_::if_nametoindex("kva1").unwrap();
                ready_rx.recv().unwrap();
                let big = vec![0u8; MAX_PAYLOAD + 1];
                let e = tx
                    .send_to(&big, src, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68), kva1)
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                tx.send_to(
                    b"to all",
                    src,
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, 68),
                    kva1,
                )
                .await
                .unwrap();
                tx.send_to(
                    b"odd length!",
                    src,
                    SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 2), 68),
                    kva1,
                )
                .await
                .unwrap();
            });
            let got = peer.join().unwrap();
            assert_eq!(got, vec![b"to all".to_vec(), b"odd length!".to_vec()]);
        });
    }
}
