//! The API socket: one JSON request per line, one JSON reply per line (docs/api.md);
//! [`crate::api`] serves each request.
//!
//! The socket is bound here, or taken over from systemd (socket activation: the
//! listening socket outlives kvnetd's restarts, clients queue on it meanwhile). The
//! accept loop caps the connections ([`Limits`]), closing the oldest idle one for a new
//! one at the cap, and backs off when accepting fails (at the open-file limit).
//! [`conn`] bounds what one connection may take. At a stop, what was accepted is
//! answered before kvnetd exits.

mod conn;
pub mod limits;

use anyhow::{Context, Result};
use kvnet_api::{Reply, Request};
pub use limits::Limits;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::{info, warn};

/// Serves one request: the daemon's dispatch in kvnetd, a stand-in in tests.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// The listening socket, and whether kvnetd made it (and so removes it at exit).
pub struct Server {
    listener: UnixListener,
    /// None when systemd owns the socket: it must stay for the next kvnetd.
    made: Option<PathBuf>,
    limits: Limits,
}

/// The socket systemd passed (LISTEN_PID, LISTEN_FDS), if any. Call before any thread
/// starts: it clears the variables, so that `nft` and other children do not see them.
pub fn passed_socket() -> Result<Option<std::os::unix::net::UnixListener>> {
    let var = |k| std::env::var(k).ok();
    let n = limits::passed_sockets(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        std::process::id(),
    )
    .map_err(anyhow::Error::msg)?;
    match n {
        0 => Ok(None),
        1 => {
            let l = listenfd::ListenFd::from_env()
                .take_unix_listener(0)
                .context("the socket systemd passed (fd 3)")?
                .context("LISTEN_FDS=1 but fd 3 was already taken")?;
            let listening =
                nix::sys::socket::getsockopt(&l, nix::sys::socket::sockopt::AcceptConn)?;
            anyhow::ensure!(
                listening,
                "the socket systemd passed (fd 3) is not listening: ListenStream= is needed"
            );
            Ok(Some(l))
        }
        n => anyhow::bail!("systemd passed {n} sockets; kvnetd takes one (ListenStream=)"),
    }
}

impl Server {
    /// Binds `socket`, replacing a stale one (a kvnetd killed left it).
    pub fn bind(socket: &Path, group: Option<u32>, limits: Limits) -> Result<Server> {
        if socket.exists() {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                anyhow::bail!("another kvnetd is already serving {}", socket.display());
            }
            std::fs::remove_file(socket)
                .with_context(|| format!("remove stale socket {}", socket.display()))?;
        }
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let listener =
            UnixListener::bind(socket).with_context(|| format!("bind {}", socket.display()))?;
        set_access(socket, group)?;
        Ok(Server {
            listener,
            made: Some(socket.to_path_buf()),
            limits,
        })
    }

    /// Serves on the socket systemd passed; `socket` is where clients look for it.
    pub fn take_over(
        passed: std::os::unix::net::UnixListener,
        socket: &Path,
        group: Option<u32>,
        limits: Limits,
    ) -> Result<Server> {
        let addr = passed.local_addr()?;
        if addr.as_pathname() != Some(socket) {
            warn!(
                "systemd passed the socket {:?}, but clients use {} (--socket, KVNET_SOCKET)",
                addr.as_pathname().unwrap_or(Path::new("(unnamed)")),
                socket.display()
            );
        } else if group.is_some() {
            set_access(socket, group)?;
        }
        passed.set_nonblocking(true)?;
        Ok(Server {
            listener: UnixListener::from_std(passed)?,
            made: None,
            limits,
        })
    }

    /// Accepts and serves until `stop` completes, then answers what was accepted (and,
    /// when kvnetd made the socket, what is queued on it) and returns.
    pub async fn serve(self, handler: Handler, stop: impl Future<Output = ()>) {
        let Server {
            listener,
            made,
            limits,
        } = self;
        let (stopping, _) = watch::channel(false);
        let (done, mut all_done) = mpsc::channel::<()>(1);
        let mut ctx = Ctx {
            handler,
            idle: Arc::new(Idle::default()),
            stopping: stopping.clone(),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            done,
            limits,
            next_id: 0,
        };
        let mut backoff = limits::AcceptBackoff::default();
        tokio::pin!(stop);
        let mut late = None;
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = &mut stop => break,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    let p = backoff.failed();
                    if p.log {
                        warn!(
                            "api accept failed ({} in a row): {e}; retrying in {:?}",
                            p.failures, p.delay
                        );
                    }
                    // At the descriptor limit an idle connection's is better used.
                    ctx.idle.evict_oldest();
                    tokio::select! {
                        () = tokio::time::sleep(p.delay) => continue,
                        () = &mut stop => break,
                    }
                }
            };
            if let Some(n) = backoff.succeeded() {
                info!("api accepting again after {n} failed accepts");
            }
            let slot = match ctx.slots.clone().try_acquire_owned() {
                Ok(s) => Some(s),
                Err(_) => {
                    ctx.idle.evict_oldest();
                    tokio::select! {
                        s = ctx.slots.clone().acquire_owned() => s.ok(),
                        () = &mut stop => { late = Some(stream); break }
                    }
                }
            };
            ctx.spawn(stream, slot);
        }
        if let Some(s) = late {
            ctx.spawn(s, None);
        }
        if let Some(path) = made {
            // New clients find no socket and retry until the next kvnetd listens; the
            // ones already queued are served here rather than reset by the close.
            let _ = std::fs::remove_file(&path);
            match listener.into_std() {
                Ok(l) => {
                    while let Ok((s, _)) = l.accept() {
                        match s
                            .set_nonblocking(true)
                            .and_then(|()| UnixStream::from_std(s))
                        {
                            Ok(s) => ctx.spawn(s, None),
                            Err(e) => warn!("api: queued connection: {e}"),
                        }
                    }
                }
                Err(e) => warn!("api: drain the socket: {e}"),
            }
        }
        stopping.send_replace(true);
        drop(ctx);
        if tokio::time::timeout(limits.drain, all_done.recv())
            .await
            .is_err()
        {
            warn!(
                "api: requests still in progress after {:?}; stopping anyway",
                limits.drain
            );
        }
    }
}

/// Who may use the socket: root only, unless an admin group is configured (the API can
/// reconfigure the host).
fn set_access(socket: &Path, group: Option<u32>) -> Result<()> {
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        nix::unistd::chown(socket, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("chown {} to gid {gid}", socket.display()))?;
    }
    Ok(())
}

/// What the accept loop shares with its connections.
struct Ctx {
    handler: Handler,
    idle: Arc<Idle>,
    stopping: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    /// Each connection holds a clone; the server waits for all to be dropped.
    done: mpsc::Sender<()>,
    limits: Limits,
    next_id: u64,
}

impl Ctx {
    fn spawn(&mut self, stream: UnixStream, slot: Option<OwnedSemaphorePermit>) {
        self.next_id += 1;
        // Idle from the start: the accept loop may need to evict it before it first runs.
        let evict = Arc::new(Notify::new());
        self.idle.enter(self.next_id, &evict);
        let c = conn::Conn {
            id: self.next_id,
            evict,
            handler: self.handler.clone(),
            idle: self.idle.clone(),
            stopping: self.stopping.subscribe(),
            limits: self.limits,
        };
        let done = self.done.clone();
        tokio::spawn(async move {
            c.serve(stream).await;
            drop((slot, done));
        });
    }
}

/// Connections waiting for a request, oldest first: the ones to close for a new one.
#[derive(Default)]
pub(super) struct Idle(Mutex<BTreeMap<u64, Arc<Notify>>>);

impl Idle {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn enter(&self, id: u64, evict: &Arc<Notify>) {
        self.map().insert(id, evict.clone());
    }

    pub fn leave(&self, id: u64) {
        self.map().remove(&id);
    }

    /// Tells the oldest idle connection to close; false if none is idle.
    pub fn evict_oldest(&self) -> bool {
        let oldest = self.map().pop_first();
        oldest.map(|(_, n)| n.notify_one()).is_some()
    }
}

#[cfg(test)]
mod tests;
