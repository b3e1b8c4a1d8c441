//! Registering descriptors with tokio's reactor: the one place that vouches for the
//! I/O-safety contract of `AsyncFd::register`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

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
