//! The system calls that nix wraps for no type of ours, each in one place: registering
//! a descriptor with tokio's reactor, setting a socket option nix has no type for, and
//! the address of a packet socket.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::bgclose::BgClose;

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::os::fd::OwnedFd {}
    impl Sealed for crate::bgclose::BgClose {}
}

/// Types that own one descriptor: it stays open, and `as_raw_fd` keeps returning it,
/// until the value is dropped.
pub(crate) trait Owned: AsRawFd + sealed::Sealed {}
impl Owned for OwnedFd {}
impl Owned for BgClose {}

/// `fd` registered with the current tokio runtime for `interest`. The AsyncFds of this
/// crate are never exposed by `&mut` (no `get_mut`, `into_inner`), so the descriptor
/// cannot be swapped underneath the registration.
pub(crate) fn register<T: Owned>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: T owns its descriptor (see `Owned`), and the AsyncFd owns the T: the
    // descriptor stays open and the same until the AsyncFd is dropped.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}

/// A descriptor of its own for the socket `fd`, registered like [`register`]: a task
/// waits on it while reads go through the socket's owner.
pub(crate) fn register_dup(fd: &impl AsFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    register(fd.as_fd().try_clone_to_owned()?, interest)
}

/// setsockopt(2) for the options nix has no wrapper for. `T` is the plain C value the
/// option expects (an int, a struct without padding).
pub(crate) fn setsockopt<T: Copy>(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live reference to an initialised T, and the kernel only
    // reads the size_of::<T>() bytes given from it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The address a packet socket binds to for the frames of protocol `proto` (an EtherType,
/// or ETH_P_ALL) on interface `ifindex`.
pub(crate) fn packet_addr(ifindex: i32, proto: u16) -> nix::sys::socket::LinkAddr {
    use nix::sys::socket::{LinkAddr, SockaddrLike};
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: proto.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the pointer is to a complete, initialised sockaddr_ll of `len` bytes, which
    // lives across the call; from_raw copies it.
    unsafe { LinkAddr::from_raw((&raw const sll).cast(), Some(len)) }
        .expect("an AF_PACKET address of the size of sockaddr_ll")
}
