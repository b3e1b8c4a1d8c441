//! Forwarded UDP queries on sockets of their own (RFC 5452 §9.2): each query leaves from
//! a fresh socket on an ephemeral port, which Linux picks at random, connected to the
//! upstream so the kernel itself drops datagrams from any other address or port. The
//! engine still checks the ID and the question of what arrives.

use super::Shell;
use super::udp::BUF;
use crate::services::lock;
use kvnet_dns::{Decision, Limits, Peer};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::net::UdpSocket;
use tracing::debug;

/// Query sockets open at once across the daemon; beyond this, queries fall back to the
/// shared socket (ID and question still checked) rather than exhaust file descriptors.
pub(super) const MAX_QUERY_SOCKETS: usize = 2048;

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One query socket counted in [`OPEN`] while it lives.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_QUERY_SOCKETS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket on a random port, connected to `to`.
fn query_socket(to: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(to)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Send `bytes` to `to` from a socket of its own and hand its answer to the engine.
/// False when no socket could be had: the caller sends it from the shared one.
pub(super) fn spawn_query(shell: &Arc<Shell>, to: SocketAddr, bytes: Vec<u8>) -> bool {
    let Some(slot) = Slot::take() else {
        return false;
    };
    let sock = match query_socket(to) {
        Ok(s) => s,
        Err(e) => {
            debug!(network = %shell.name, "DNS query socket for {to}: {e}");
            return false;
        }
    };
    let shell = shell.clone();
    tokio::spawn(async move {
        let _slot = slot;
        // A fresh tokio socket has no readiness yet, so try_send would say WouldBlock.
        if let Err(e) = sock.send(&bytes).await {
            // Left to the engine's timer: the next upstream, or SERVFAIL.
            debug!(network = %shell.name, "DNS forward to {to}: {e}");
            return;
        }
        // The engine gives an upstream this long before it tries the next one; a later
        // answer would be dropped anyway.
        let wait = Limits::default().attempt_timeout;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, sock.readable()) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return,
                },
                () = shell.stopped() => return,
            }
            let done = BUF.with_borrow_mut(|buf| match sock.try_recv(buf) {
                Ok(n) => {
                    let d = lock(&shell.engine).handle_upstream_reply(
                        Instant::now(),
                        Peer::udp(to),
                        &buf[..n],
                    );
                    // A stray or forged datagram: the socket waits on for the answer.
                    if d == Decision::Drop {
                        return false;
                    }
                    shell.dispatch(d);
                    true
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                // Refused (ICMP): the engine's timer moves on.
                Err(_) => true,
            });
            if done {
                return;
            }
        }
    });
    true
}
