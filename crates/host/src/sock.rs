//! Sockets bound to one interface (SO_BINDTODEVICE), as the guest services open them:
//! several networks then listen on the same port at once, each hearing only its own
//! bridge, and nothing listens on the host's other interfaces. One socket may instead
//! serve every interface ([`DeviceSocket::any_device`]) and say which one each datagram
//! came in on ([`recv_pktinfo`]), as the DHCPv4 server's is.

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
    /// None: every interface.
    device: Option<String>,
    addr: SocketAddr,
    ty: SockType,
    broadcast: bool,
    freebind: bool,
    drop_counts: bool,
    pktinfo: bool,
    reuseport: bool,
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

    /// A UDP socket on every interface, each datagram saying where it came in: one
    /// socket instead of one per network makes a network's start cost the same at any
    /// network count (binding the 1,000th socket to a port walks the 999 others).
    pub fn any_device(addr: SocketAddr) -> DeviceSocket {
        let mut s = DeviceSocket::new("", addr, SockType::Datagram);
        s.device = None;
        s.pktinfo = true;
        s
    }

    /// Shares the port with sockets that ask the same (SO_REUSEPORT), as well as
    /// SO_REUSEADDR: dnsmasq's DHCP socket on one interface (libvirt's, with
    /// bind-dynamic) sets only SO_REUSEPORT, and the kernel lets a socket on every
    /// interface share port 67 with it only when both do.
    pub fn reuseport(mut self) -> Self {
        self.reuseport = true;
        self
    }

    fn new(device: &str, addr: SocketAddr, ty: SockType) -> DeviceSocket {
        DeviceSocket {
            device: Some(device.to_string()),
            addr,
            ty,
            broadcast: false,
            freebind: false,
            drop_counts: false,
            pktinfo: false,
            reuseport: false,
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
        let on = self.device.as_deref().unwrap_or("every interface");
        let ctx = |what: &str| format!("{what} for {} on {on}", self.addr);
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
        if let Some(dev) = &self.device {
            set(
                socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(dev)),
                "SO_BINDTODEVICE",
            )?;
        }
        if self.pktinfo {
            set(
                socket::setsockopt(&fd, sockopt::Ipv4PacketInfo, &true),
                "IP_PKTINFO",
            )?;
        }
        // A restarted kvnetd rebinds at once despite connections in TIME_WAIT.
        set(
            socket::setsockopt(&fd, sockopt::ReuseAddr, &true),
            "SO_REUSEADDR",
        )?;
        if self.reuseport {
            set(
                socket::setsockopt(&fd, sockopt::ReusePort, &true),
                "SO_REUSEPORT",
            )?;
        }
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
    recv_pktinfo(fd, buf).map(|r| (r.len, r.from, r.drops))
}

/// A datagram [`recv_pktinfo`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// The interface it came in on, when the socket asked (IP_PKTINFO).
    pub ifindex: Option<u32>,
    /// The socket's running count of kernel drops ([`DeviceSocket::drop_counts`]).
    pub drops: Option<u32>,
}

/// [`recv_counting`], with the arriving interface of a socket opened by
/// [`DeviceSocket::any_device`].
pub fn recv_pktinfo(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(u32, libc::in_pktinfo);
    let msg = socket::recvmsg::<SockaddrStorage>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let (mut drops, mut ifindex) = (None, None);
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::RxqOvfl(n) => drops = Some(n),
            ControlMessageOwned::Ipv4PacketInfo(i) => ifindex = u32::try_from(i.ipi_ifindex).ok(),
            _ => {}
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
    Ok(Received {
        len: msg.bytes,
        from,
        ifindex,
        drops,
    })
}

/// Sends `buf` to `to` without blocking out of interface `ifindex`, from address `src`
/// (IP_PKTINFO), on a socket opened by [`DeviceSocket::any_device`].
pub fn send_pktinfo(
    fd: &impl AsRawFd,
    buf: &[u8],
    to: std::net::SocketAddrV4,
    ifindex: u32,
    src: std::net::Ipv4Addr,
) -> io::Result<()> {
    let info = libc::in_pktinfo {
        ipi_ifindex: ifindex as libc::c_int,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(src).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let iov = [io::IoSlice::new(buf)];
    let cmsg = [socket::ControlMessage::Ipv4PacketInfo(&info)];
    socket::sendmsg(
        fd.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_DONTWAIT,
        Some(&SockaddrIn::from(to)),
    )?;
    Ok(())
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
    fn a_socket_on_every_interface_says_where_a_datagram_came_in() {
        let fd = DeviceSocket::any_device("127.0.0.1:0".parse().unwrap())
            .bind()
            .unwrap();
        let sock = UdpSocket::from(fd);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"hi", sock.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let r = loop {
            match recv_pktinfo(&sock, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(&buf[..r.len], b"hi");
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        assert_eq!(r.ifindex, Some(lo));
    }

    /// libvirt's dnsmasq holds 0.0.0.0:67 on its bridge with SO_REUSEPORT only; the
    /// shared DHCP socket binds the same port beside it, in either order.
    #[test]
    fn a_socket_on_every_interface_shares_its_port_with_dnsmasqs() {
        let dnsmasq_like = || -> nix::Result<OwnedFd> {
            let fd = socket::socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from("lo"))?;
            socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
            socket::bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 0))?;
            Ok(fd)
        };
        // SO_BINDTODEVICE needs CAP_NET_RAW before Linux 5.7.
        let Ok(theirs) = dnsmasq_like() else { return };
        let port = socket::getsockname::<SockaddrIn>(theirs.as_raw_fd())
            .unwrap()
            .port();
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        let ours = DeviceSocket::any_device(addr).reuseport().bind();
        assert!(ours.is_ok(), "{ours:?}");
        let without = DeviceSocket::any_device(addr).bind();
        assert!(without.is_err(), "without SO_REUSEPORT the kernel refuses");
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
