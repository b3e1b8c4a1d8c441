//! DNS over UDP: the listening sockets, upstream answers, the engine's timers and the
//! host's resolv.conf and hosts file, in one task per network.

use super::Shell;
use crate::services::lock;
use kvnet_dns::Peer;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use tracing::{debug, info};

/// How often resolv.conf's mtime is checked.
const RESOLV_CHECK: Duration = Duration::from_secs(2);

/// The resolv.conf whose nameservers are the default upstreams; tests point it elsewhere.
fn resolv_conf_path() -> PathBuf {
    std::env::var_os("KVNET_RESOLV_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"))
}

/// Queries read per wakeup once one has arrived: a burst is answered without a trip
/// through the runtime (select, timer, epoll) per datagram, yet the timers and upstream
/// answers get their turn after a bounded amount of work.
const DRAIN_MAX: usize = 64;

/// Answer what the listeners already hold, without waiting.
fn drain_queries(shell: &Arc<Shell>, listeners: &[&UdpSocket], buf: &mut [u8]) {
    let mut served = 0;
    while served < DRAIN_MAX {
        let mut any = false;
        for (i, s) in listeners.iter().enumerate() {
            // WouldBlock, or an error (ICMP feedback), which the read consumed.
            if let Ok((n, from)) = s.try_recv_from(buf) {
                shell.serve_udp(&buf[..n], from, i);
                served += 1;
                any = true;
            }
        }
        if !any {
            return;
        }
    }
}

thread_local! {
    /// One receive buffer for the DNS tasks of every network: they all run on the
    /// daemon's one runtime thread and read only between awaits, so a thousand networks
    /// do not hold a thousand buffers. Large enough for any UDP answer of an upstream.
    pub(super) static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 65535]);
}

/// Wait until any of `socks` may hold a datagram; the socket's index. Polling starts at
/// `first`, which the caller rotates so that a flood on one address cannot starve the
/// others.
async fn ready_any(socks: &[&UdpSocket], first: usize) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        for k in 0..socks.len() {
            let i = (first + k) % socks.len();
            match socks[i].poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(i)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Read the upstreams from resolv.conf if it changed since `seen`.
fn reload_resolv(shell: &Shell, path: &std::path::Path, seen: &mut Option<Option<SystemTime>>) {
    let m = mtime(path);
    if seen.as_ref() == Some(&m) {
        return;
    }
    *seen = Some(m);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Link-local upstreams name their interface (fe80::1%eth0).
    let ups = kvnet_dns::parse_resolv_conf_with(&text, |ifname| {
        nix::net::if_::if_nametoindex(ifname).ok()
    });
    info!(network = %shell.name, "DNS upstreams from {}: {ups:?}", path.display());
    lock(&shell.engine).set_upstreams(ups);
}

/// The UDP side and the timers.
pub(super) async fn run(shell: Arc<Shell>) {
    let path = resolv_conf_path();
    let mut seen = None;
    reload_resolv(&shell, &path, &mut seen);
    lock(&shell.engine).set_hosts_file(super::hostsfile::current());
    let mut next_check = Instant::now() + RESOLV_CHECK;
    let listeners: Vec<&UdpSocket> = shell.udp.iter().map(|(s, _)| s).collect();
    let upstreams: Vec<&UdpSocket> = std::iter::once(&shell.upstream)
        .chain(shell.upstream6.as_ref())
        .collect();
    let mut turn = 0usize;
    loop {
        let timer = lock(&shell.engine)
            .next_timeout()
            .map_or(next_check, |t| t.min(next_check));
        turn = turn.wrapping_add(1);
        tokio::select! {
            r = ready_any(&listeners, turn) => match r {
                Ok(_) => BUF.with_borrow_mut(|buf| drain_queries(&shell, &listeners, buf)),
                Err(e) => {
                    // E.g. ICMP feedback; do not spin on it.
                    debug!(network = %shell.name, "DNS receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            r = ready_any(&upstreams, turn) => match r {
                Ok(i) => BUF.with_borrow_mut(|buf| match upstreams[i].try_recv_from(buf) {
                    Ok((n, from)) => {
                        let d = lock(&shell.engine).handle_upstream_reply(
                            Instant::now(),
                            Peer::udp(from),
                            &buf[..n],
                        );
                        shell.dispatch(d);
                    }
                    // Readiness that found nothing, or ICMP feedback: wait again.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => debug!(network = %shell.name, "upstream receive: {e}"),
                }),
                Err(e) => {
                    debug!(network = %shell.name, "upstream receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::time::sleep_until(timer.into()) => {
                let ds = lock(&shell.engine).poll_timeouts(Instant::now());
                for d in ds {
                    shell.dispatch(d);
                }
                if Instant::now() >= next_check {
                    reload_resolv(&shell, &path, &mut seen);
                    lock(&shell.engine).set_hosts_file(super::hostsfile::current());
                    next_check = Instant::now() + RESOLV_CHECK;
                }
            }
        }
    }
}
