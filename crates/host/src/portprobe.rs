//! Whether a host process holds a port: a bind on it that the kernel refuses with
//! EADDRINUSE. One syscall per port, whatever the number of sockets on the host
//! (reading /proc/net/tcp walks the kernel's whole socket hash, milliseconds a read).
//! TCP probes set SO_REUSEADDR, so only a listener (not a TIME_WAIT leftover) counts;
//! the probe socket never listens and is closed at once.

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, sockopt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether binding `addr` with `ty` is refused because the port is taken.
fn taken(ty: SockType, addr: SocketAddr) -> bool {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let Ok(fd) = socket::socket(family, ty, SockFlag::SOCK_CLOEXEC, None) else {
        return false;
    };
    if ty == SockType::Stream {
        let _ = socket::setsockopt(&fd, sockopt::ReuseAddr, &true);
    }
    let r = match addr {
        SocketAddr::V4(a) => {
            socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(a))
        }
        SocketAddr::V6(a) => {
            let _ = socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true);
            socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a))
        }
    };
    r == Err(Errno::EADDRINUSE)
}

/// The first port of `ports` a host socket of this protocol (`udp` when not `tcp`)
/// holds on `address`, or on any address when None.
pub fn first_taken(tcp: bool, address: Option<IpAddr>, ports: (u16, u16)) -> Option<u16> {
    let ty = if tcp {
        SockType::Stream
    } else {
        SockType::Datagram
    };
    let addrs: Vec<IpAddr> = match address {
        Some(a) => vec![a],
        None => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
    };
    (ports.0..=ports.1).find(|&p| addrs.iter().any(|&a| taken(ty, SocketAddr::new(a, p))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn a_listener_or_a_bound_udp_socket_is_found() {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        let p = l.local_addr().unwrap().port();
        assert_eq!(first_taken(true, None, (p, p)), Some(p));
        drop(l);
        assert_eq!(first_taken(true, None, (p, p)), None);
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        assert_eq!(first_taken(false, None, (p, p)), Some(p));
        assert_eq!(
            first_taken(false, Some("127.0.0.1".parse().unwrap()), (p, p)),
            Some(p)
        );
        assert_eq!(first_taken(true, None, (p, p)), None);
    }
}
