//! DNS over TCP: the listeners' client connections, and forwarding over TCP.

use super::Shell;
use crate::services::lock;
use anyhow::{Context, Result, anyhow};
use kvnet_dns::{Decision, Peer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::warn;

/// A TCP client silent this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// A client that takes no answer for this long (it stopped reading: its window is
/// closed) is disconnected, so that it keeps no slot and no task.
const TCP_WRITE: Duration = Duration::from_secs(5);
/// TCP clients served at once per network; more are refused until one leaves.
const MAX_TCP_CLIENTS: usize = 32;

/// One query over a fresh TCP connection to an upstream, within the engine's retry time.
pub(super) async fn exchange(to: SocketAddr, query: &[u8]) -> Result<Vec<u8>> {
    let work = async {
        let mut s = TcpStream::connect(to).await.context("connect")?;
        write_frame(&mut s, query).await.context("send")?;
        read_frame(&mut s).await?.context("closed")
    };
    tokio::time::timeout(kvnet_dns::Limits::default().attempt_timeout, work)
        .await
        .map_err(|_| anyhow!("timed out"))?
}

async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut msg = Vec::with_capacity(bytes.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(bytes);
    s.write_all(&msg).await
}

/// One length-prefixed message, or None at a clean end of stream.
async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

pub(super) async fn run(shell: Arc<Shell>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(network = %shell.name, "DNS accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shell.tcp_clients.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CLIENTS {
            shell.tcp_clients.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let shell = shell.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve_tcp(&shell, stream, peer) => {}
                () = shell.stopped() => {}
            }
            lock(&shell.tcp).remove(&peer);
            shell.tcp_clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One TCP client: a reader feeds its queries to the engine; answers, local or from an
/// upstream, come back through the connection's channel and are written here.
async fn serve_tcp(shell: &Arc<Shell>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    lock(&shell.tcp).insert(peer, tx.clone());
    // Queries not yet answered; the connection stays while there are any.
    let open = Arc::new(AtomicUsize::new(0));
    let reader = {
        let shell = shell.clone();
        let open = open.clone();
        tokio::spawn(async move {
            loop {
                let q = tokio::select! {
                    r = read_frame(&mut rd) => match r {
                        Ok(Some(q)) => q,
                        _ => break,
                    },
                    () = shell.stopped() => return,
                };
                open.fetch_add(1, Ordering::SeqCst);
                let d = shell.query(Peer::tcp(peer), &q);
                if d == Decision::Drop {
                    open.fetch_sub(1, Ordering::SeqCst);
                }
                shell.dispatch(d);
            }
            // An empty message marks the end of the client's queries.
            let _ = tx.send(Vec::new()).await;
        })
    };
    let mut reading = true;
    loop {
        match tokio::time::timeout(TCP_IDLE, rx.recv()).await {
            Ok(Some(a)) if a.is_empty() => reading = false,
            Ok(Some(a)) => {
                match tokio::time::timeout(TCP_WRITE, write_frame(&mut wr, &a)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
                open.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) | Err(_) => break,
        }
        if !reading && open.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
    reader.abort();
}
