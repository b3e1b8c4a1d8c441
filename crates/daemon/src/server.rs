//! The API socket: one JSON request per line, one JSON reply per line (docs/api.md);
//! [`crate::api`] serves each request.

use crate::daemon::Daemon;
use anyhow::{Context, Result};
use kvnet_api::{Reply, Request};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;
use tracing::warn;

/// Requests are small; a line longer than this is a misbehaving client.
const MAX_REQUEST: usize = 4 << 20;

pub fn bind(socket: &Path, group: Option<u32>) -> Result<UnixListener> {
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
    // Root only, unless an admin group is configured: the API can reconfigure the host.
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        nix::unistd::chown(socket, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("chown {} to gid {gid}", socket.display()))?;
    }
    Ok(listener)
}

pub async fn serve(listener: UnixListener, d: Arc<Mutex<Daemon>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let d = d.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, d).await {
                        warn!("api connection: {e:#}");
                    }
                });
            }
            Err(e) => warn!("api accept: {e}"),
        }
    }
}

async fn connection(stream: UnixStream, d: Arc<Mutex<Daemon>>) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut rd)
            .take(MAX_REQUEST as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => crate::api::handle(&mut *d.lock().await, req).await,
            Err(e) => Reply::err(format!("malformed request: {e}")),
        };
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        wr.write_all(&out).await?;
    }
}
