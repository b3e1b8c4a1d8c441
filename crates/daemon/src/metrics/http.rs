//! The metrics endpoint: `GET /metrics` over HTTP/1.x on a loopback address or a Unix
//! socket, answered with the text [`Render`] gives, one request per connection. Only
//! that much HTTP, so no web framework: a scraper is the only client, and anything else
//! (a request head over 8 KiB, 5 s without one, more than 16 at once) is cut off.

use anyhow::{Context, Result, bail};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

/// Where metrics are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// `--metrics ADDR`: `unix:PATH` or an absolute path, or a loopback `IP:PORT`.
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    if let Some(p) = s.strip_prefix("unix:") {
        return if p.starts_with('/') {
            Ok(Listen::Unix(p.into()))
        } else {
            Err(format!("metrics socket '{p}' must be an absolute path"))
        };
    }
    if s.starts_with('/') {
        return Ok(Listen::Unix(s.into()));
    }
    let a: SocketAddr = s.parse().map_err(|_| {
        format!("metrics address '{s}' is neither IP:PORT (e.g. 127.0.0.1:9125) nor unix:PATH")
    })?;
    if !a.ip().is_loopback() {
        return Err(format!(
            "metrics address '{s}' is not a loopback address: metrics are served on loopback or a Unix socket only (put a proxy in front to publish them)"
        ));
    }
    Ok(Listen::Tcp(a))
}

/// Gives the metrics text at each scrape.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds `l` and serves until the task is dropped.
pub async fn spawn(l: &Listen, render: Render) -> Result<tokio::task::JoinHandle<()>> {
    let listener = match l {
        Listen::Tcp(a) => Listener::Tcp(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("metrics: bind {a}"))?,
        ),
        Listen::Unix(p) => {
            // A socket file left by a kvnetd that died; anything else is not ours.
            match std::fs::symlink_metadata(p) {
                Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                    std::fs::remove_file(p).with_context(|| format!("remove {}", p.display()))?;
                }
                Ok(_) => bail!("metrics: {} exists and is not a socket", p.display()),
                Err(_) => {}
            }
            let u =
                UnixListener::bind(p).with_context(|| format!("metrics: bind {}", p.display()))?;
            Listener::Unix(u, p.clone())
        }
    };
    info!("metrics served on {l:?}");
    Ok(tokio::spawn(serve(listener, render)))
}

async fn serve(listener: Listener, render: Render) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let render = render.clone();
        let res = match &listener {
            Listener::Tcp(t) => t.accept().await.map(|(s, _)| {
                tokio::spawn(async move {
                    answer(s, render).await;
                    drop(permit);
                });
            }),
            Listener::Unix(u, _) => u.accept().await.map(|(s, _)| {
                tokio::spawn(async move {
                    answer(s, render).await;
                    drop(permit);
                });
            }),
        };
        if let Err(e) = res {
            warn!("metrics: accept: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The request head, up to its blank line; None if it is too long, too slow
/// ([`HEAD_TIMEOUT`]) or cut.
async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

/// Status line and body for a request's first line.
pub fn route(request_line: &str) -> (&'static str, bool) {
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics" | "/")) => ("200 OK", true),
        (Some("GET"), Some(_)) => ("404 Not Found", false),
        _ => ("405 Method Not Allowed", false),
    }
}

async fn answer(mut s: impl AsyncRead + AsyncWrite + Unpin, render: Render) {
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    let (status, ok) = route(head.lines().next().unwrap_or_default());
    let body = if ok {
        render().await
    } else {
        format!("{status}\n")
    };
    let content_type = if ok {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(reply.as_bytes()).await {
        debug!("metrics: write: {e}");
    }
    let _ = s.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:9125"),
            Ok(Listen::Tcp("127.0.0.1:9125".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("[::1]:9125"),
            Ok(Listen::Tcp("[::1]:9125".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("unix:/run/kvnet/metrics.sock"),
            Ok(Listen::Unix("/run/kvnet/metrics.sock".into()))
        );
        assert_eq!(
            parse_listen("/tmp/m.sock"),
            Ok(Listen::Unix("/tmp/m.sock".into()))
        );
        assert!(
            parse_listen("0.0.0.0:9125")
                .unwrap_err()
                .contains("not a loopback")
        );
        assert!(
            parse_listen("unix:rel.sock")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_listen("localhost").unwrap_err().contains("neither"));
    }

    fn render() -> Render {
        Arc::new(|| Box::pin(async { "kvnet_up 1\n".to_string() }))
    }

    /// What `answer` writes back for `request` (the client side closed after it).
    async fn exchange(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(answer(server, render()));
        client.write_all(request).await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_a_scrape_and_refuses_the_rest() {
        let ok = exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Length: 11\r\n") && ok.ends_with("kvnet_up 1\n"),
            "{ok}"
        );
        let no = exchange(b"DELETE /metrics HTTP/1.1\r\n\r\n").await;
        assert!(no.starts_with("HTTP/1.1 405"), "{no}");
        // A head over 8 KiB gets nothing but a closed connection.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert_eq!(exchange(&huge).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let task = tokio::spawn(answer(server, render()));
        client.write_all(b"GET /metr").await.unwrap();
        // Time runs on (paused clock): the head never completes, the server gives up.
        tokio::time::sleep(HEAD_TIMEOUT + Duration::from_secs(1)).await;
        task.await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "");
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced_and_anything_else_refused() {
        let dir = std::env::temp_dir().join(format!("kvnet-metrics-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        // A socket file a killed kvnetd left behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let task = spawn(&Listen::Unix(path.clone()), render()).await.unwrap();
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        task.abort();
        let file = dir.join("not-a-socket");
        std::fs::write(&file, "x").unwrap();
        let e = spawn(&Listen::Unix(file), render()).await.unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET /metrics HTTP/1.1"), ("200 OK", true));
        assert_eq!(route("GET / HTTP/1.0"), ("200 OK", true));
        assert_eq!(route("GET /x HTTP/1.1").0, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1").0, "405 Method Not Allowed");
        assert_eq!(route("").0, "405 Method Not Allowed");
    }
}
