//! Where DHCP replies leave: a raw IPv4 socket on the bridge with the UDP checksum
//! computed here (see the module docs of `dhcp4`), or the UDP socket when no raw socket
//! could be opened.

use nix::libc;
use nix::sys::socket::{self, MsgFlags, SockaddrIn, sockopt};
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

const SNDBUF: usize = 1 << 20;

/// Where replies leave: a raw IPv4 socket on the bridge (headers and UDP checksum built
/// here, see the module docs), or the UDP socket when no raw socket could be opened.
pub struct Replies {
    pub raw: Option<AsyncFd<OwnedFd>>,
    pub src: Ipv4Addr,
}

impl Replies {
    pub fn open(bridge: &str, src: Ipv4Addr) -> std::io::Result<Replies> {
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

    pub async fn send(
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

#[cfg(test)]
mod tests {
    use super::*;

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
