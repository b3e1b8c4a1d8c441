//! Link changes (RTMGRP_LINK), as a wake-up: a device was added, removed, or changed
//! (its master, its state). Readers look at the links themselves; the messages are not
//! parsed, so an overflow (`ENOBUFS`) is just one more wake-up.

use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};
use std::os::fd::OwnedFd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::HostError;

/// The calling thread's network namespace's link changes.
pub struct LinkEvents {
    sock: Socket,
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Subscribes on the current tokio runtime.
    pub fn open() -> Result<LinkEvents, HostError> {
        let ctx = |what: &str| format!("link watcher: {what}");
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| HostError::new(ctx("open socket"), e))?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .and_then(|_| sock.set_non_blocking(true))
            .map_err(|e| HostError::new(ctx("subscribe"), e))?;
        let fd = crate::sys::register_dup(&sock, Interest::READABLE)
            .map_err(|e| HostError::new(ctx("register socket"), e))?;
        Ok(LinkEvents {
            sock,
            fd,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Waits until a link changed, then takes every queued message.
    pub async fn changed(&mut self) -> Result<(), HostError> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| HostError::new("link watcher: wait", e))?;
            guard.clear_ready();
            let mut any = false;
            loop {
                self.buf.clear();
                match self.sock.recv(&mut self.buf, 0) {
                    Ok(_) => any = true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                    Err(e) => return Err(HostError::new("link watcher: read", e)),
                }
            }
            if any {
                return Ok(());
            }
        }
    }
}
