//! Sockets bound to one interface (SO_BINDTODEVICE), as the guest services open them:
//! several networks then listen on the same port at once, each hearing only its own
//! bridge, and nothing listens on the host's other interfaces.

use crate::HostError;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, sockopt,
};
use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// A non-blocking UDP or TCP socket on one device, built option by option.
#[derive(Debug, Clone)]
pub struct DeviceSocket {
    device: String,
    addr: SocketAddr,
    ty: SockType,
    broadcast: bool,
    freebind: bool,
    drop_counts: bool,
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
}

impl DeviceSocket {
    pub fn udp(device: &str, addr: SocketAddr) -> DeviceSocket {
        DeviceSocket::new(device, addr, SockType::Datagram)
    }

    pub fn tcp(device: &str, addr: SocketAddr) -> DeviceSocket {
        DeviceSocket::new(device, addr, SockType::Stream)
    }

    fn new(device: &str, addr: SocketAddr, ty: SockType) -> DeviceSocket {
        DeviceSocket {
            device: device.to_string(),
            addr,
            ty,
            broadcast: false,
            freebind: false,
            drop_counts: false,
            rcvbuf: None,
            sndbuf: None,
        }
    }

    /// May send to 255.255.255.255.
    pub fn broadcast(mut self) -> Self {
        self.broadcast = true;
        self
    }

    /// May bind an address the device does not have yet: a bridge's IPv6 addresses stay
    /// tentative until DAD ends, which needs a port with carrier.
    pub fn freebind(mut self) -> Self {
        self.freebind = true;
        self
    }

    /// Datagrams carry the socket's running count of kernel drops once there were any
    /// ([`recv_counting`]).
    pub fn drop_counts(mut self) -> Self {
        self.drop_counts = true;
        self
    }

    /// The receive buffer: beyond net.core.rmem_max where the caller may (root), else
    /// capped by it. A limit, not an allocation.
    pub fn rcvbuf(mut self, bytes: usize) -> Self {
        self.rcvbuf = Some(bytes);
        self
    }

    pub fn sndbuf(mut self, bytes: usize) -> Self {
        self.sndbuf = Some(bytes);
        self
    }

    pub fn bind(self) -> Result<OwnedFd, HostError> {
        let ctx = |what: &str| format!("{what} for {} on {}", self.addr, self.device);
        let family = match self.addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket::socket(
            family,
            self.ty,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| HostError::new(ctx("socket"), io::Error::from(e)))?;
        let set = |r: nix::Result<()>, what: &str| {
            r.map_err(|e| HostError::new(ctx(what), io::Error::from(e)))
        };
        // The device binding comes before bind(): sockets on different devices may then
        // share one address and port.
        set(
            socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(&self.device)),
            "SO_BINDTODEVICE",
        )?;
        // A restarted kvnetd rebinds at once despite connections in TIME_WAIT.
        set(
            socket::setsockopt(&fd, sockopt::ReuseAddr, &true),
            "SO_REUSEADDR",
        )?;
        if self.broadcast {
            set(
                socket::setsockopt(&fd, sockopt::Broadcast, &true),
                "SO_BROADCAST",
            )?;
        }
        // The *FORCE variants pass net.core.rmem_max/wmem_max (root only).
        if let Some(n) = self.rcvbuf
            && socket::setsockopt(&fd, sockopt::RcvBufForce, &n).is_err()
        {
            set(socket::setsockopt(&fd, sockopt::RcvBuf, &n), "SO_RCVBUF")?;
        }
        if let Some(n) = self.sndbuf
            && socket::setsockopt(&fd, sockopt::SndBufForce, &n).is_err()
        {
            set(socket::setsockopt(&fd, sockopt::SndBuf, &n), "SO_SNDBUF")?;
        }
        if self.drop_counts {
            set(socket::setsockopt(&fd, sockopt::RxqOvfl, &1), "SO_RXQ_OVFL")?;
        }
        let bound = match self.addr {
            SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
            SocketAddr::V6(a) => {
                set(
                    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true),
                    "IPV6_V6ONLY",
                )?;
                if self.freebind {
                    // Honoured by IPv6 sockets too.
                    set(
                        socket::setsockopt(&fd, sockopt::IpFreebind, &true),
                        "IP_FREEBIND",
                    )?;
                }
                socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a))
            }
        };
        set(bound, "bind")?;
        Ok(fd)
    }
}

/// One datagram without blocking: its length, sender, and the socket's count of kernel
/// drops when it was opened with [`DeviceSocket::drop_counts`] (None until the first
/// drop). `WouldBlock` when there is none.
pub fn recv_counting(
    fd: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<u32>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(u32);
    let msg = socket::recvmsg::<SockaddrStorage>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let mut drops = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::RxqOvfl(n) = c {
            drops = Some(n);
        }
    }
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|s| SocketAddr::from(std::net::SocketAddrV4::from(*s)))
            .or_else(|| {
                a.as_sockaddr_in6()
                    .map(|s| SocketAddr::from(std::net::SocketAddrV6::from(*s)))
            })
    });
    Ok((msg.bytes, from, drops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_socket_on_lo_receives_with_drop_counts() {
        let fd = DeviceSocket::udp("lo", "127.0.0.1:0".parse().unwrap())
            .rcvbuf(1 << 16)
            .drop_counts()
            .bind();
        // SO_BINDTODEVICE needs CAP_NET_RAW before Linux 5.7: without it, say so.
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) if e.errno() == Some(libc::EPERM) => return,
            Err(e) => panic!("{e}"),
        };
        let sock = UdpSocket::from(fd);
        let to = sock.local_addr().unwrap();
        let mut buf = [0u8; 16];
        let e = recv_counting(&sock, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"hello", to).unwrap();
        let (n, from, drops) = loop {
            match recv_counting(&sock, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, Some(tx.local_addr().unwrap()));
        assert_eq!(
            drops, None,
            "the kernel says nothing until something was dropped"
        );
    }

    #[test]
    fn errors_name_the_option_the_address_and_the_device() {
        let e = DeviceSocket::udp("kvnet-nosuchdev", "127.0.0.1:0".parse().unwrap())
            .bind()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SO_BINDTODEVICE for 127.0.0.1:0 on kvnet-nosuchdev"),
            "{e}"
        );
    }
}
