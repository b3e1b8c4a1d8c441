//! One API connection: request lines in, replies out, each bounded — a line's length,
//! the wait for it, the time a reply may take to leave — and closed early when the
//! server needs its slot or stops.

use super::{Handler, Idle, Limits};
use kvnet_api::{Reply, Request};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Notify, watch};
use tracing::warn;

/// What reading a request line gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A line (without its newline), or the last bytes before the end of the stream.
    Complete,
    /// More than the limit without a newline: what follows is not a request boundary.
    TooLong,
    Eof,
}

/// Reads one line into `buf` (cleared first), at most `max` bytes before its newline.
pub(super) async fn read_line(
    rd: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let n = rd.take(max as u64 + 1).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if n > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Complete)
}

/// Why a connection stopped waiting for a request.
enum Next {
    Read(io::Result<Line>),
    /// Idle too long, evicted for a newer connection, or the server is stopping.
    Closed,
}

pub(super) struct Conn {
    pub id: u64,
    /// Notified when the server needs this connection's slot while it is idle.
    pub evict: Arc<Notify>,
    pub handler: Handler,
    pub idle: Arc<Idle>,
    pub stopping: watch::Receiver<bool>,
    pub limits: Limits,
}

impl Conn {
    pub async fn serve(mut self, stream: UnixStream) {
        if let Err(e) = self.requests(stream).await {
            warn!("api connection: {e}");
        }
        self.idle.leave(self.id);
    }

    async fn requests(&mut self, stream: UnixStream) -> io::Result<()> {
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let evict = self.evict.clone();
        let mut buf = Vec::new();
        loop {
            self.idle.enter(self.id, &evict);
            let next = self.next(&mut rd, &mut buf, &evict).await;
            self.idle.leave(self.id);
            let reply = match next {
                Next::Read(Ok(Line::Complete)) => match serde_json::from_slice::<Request>(&buf) {
                    // A subscription: the connection becomes the event stream.
                    Ok(Request::Events(r)) => return self.events(r, rd, wr).await,
                    Ok(req) => (self.handler)(req).await,
                    Err(e) => Reply::err(format!("malformed request: {e}")),
                },
                Next::Read(Ok(Line::TooLong)) => {
                    let msg = format!(
                        "request longer than {} bytes: connection closed",
                        self.limits.max_request
                    );
                    warn!("api: {msg}");
                    self.send(&mut wr, &Reply::err(msg)).await?;
                    return Ok(());
                }
                Next::Read(Ok(Line::Eof)) | Next::Closed => return Ok(()),
                Next::Read(Err(e)) => return Err(e),
            };
            // One huge request must not pin its buffer for the connection's life.
            if buf.capacity() > 64 << 10 {
                buf = Vec::new();
            }
            if !self.send(&mut wr, &reply).await? {
                warn!(
                    "api client took no reply for {:?}: connection closed",
                    self.limits.write
                );
                return Ok(());
            }
            if *self.stopping.borrow() {
                return Ok(());
            }
        }
    }

    /// Streams events to the client until it closes the connection or the server stops.
    /// Events come from a broadcast channel: kvnetd never waits for this reader, which
    /// loses the oldest when it falls behind and is told how many.
    async fn events(
        &mut self,
        r: kvnet_api::request::Events,
        mut rd: impl AsyncBufRead + Unpin,
        mut wr: impl AsyncWriteExt + Unpin,
    ) -> io::Result<()> {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = crate::events::subscribe();
        if !self.send(&mut wr, &Reply::ok(&(), Vec::new())).await? {
            return Ok(());
        }
        let mut sink = [0u8; 64];
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) if crate::events::wanted(&ev, r.network.as_deref(), &r.kinds) => ev,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => crate::events::gap(n),
                    Err(RecvError::Closed) => return Ok(()),
                },
                // Anything the client sends, or its close, ends the stream.
                _ = rd.read(&mut sink) => return Ok(()),
                _ = self.stopping.wait_for(|s| *s) => return Ok(()),
            };
            let mut line = serde_json::to_vec(&ev)?;
            line.push(b'\n');
            match tokio::time::timeout(self.limits.write, wr.write_all(&line)).await {
                Ok(r) => r?,
                Err(_) => {
                    warn!(
                        "event reader took nothing for {:?}: stream closed",
                        self.limits.write
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Waits for the next request line, unless the connection is closed first.
    async fn next(
        &mut self,
        rd: &mut (impl AsyncBufRead + Unpin),
        buf: &mut Vec<u8>,
        evict: &Notify,
    ) -> Next {
        let max = self.limits.max_request;
        let read = read_line(rd, buf, max);
        tokio::pin!(read);
        let stopping = async {
            let _ = self.stopping.wait_for(|s| *s).await;
        };
        tokio::select! {
            r = &mut read => Next::Read(r),
            () = evict.notified() => Next::Closed,
            () = tokio::time::sleep(self.limits.idle) => Next::Closed,
            // A client that connected just before the stop has its request on the way.
            () = stopping => match tokio::time::timeout(self.limits.grace, &mut read).await {
                Ok(r) => Next::Read(r),
                Err(_) => Next::Closed,
            },
        }
    }

    /// Writes a reply; false if the client did not take it in time.
    async fn send(&self, wr: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> io::Result<bool> {
        let mut out = serde_json::to_vec(reply)?;
        out.push(b'\n');
        match tokio::time::timeout(self.limits.write, wr.write_all(&out)).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Line, String)> {
        let mut rd = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let l = read_line(&mut rd, &mut buf, max).await.unwrap();
            let text = String::from_utf8_lossy(&buf).into_owned();
            let end = l != Line::Complete;
            out.push((l, text));
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn a_line_over_the_limit_ends_the_stream_of_requests() {
        let c = |s: &str| (Line::Complete, s.to_string());
        assert_eq!(
            lines(b"a\nbb\n", 4).await,
            [c("a"), c("bb"), (Line::Eof, "".into())]
        );
        // Exactly the limit, then the limit and one: nothing after it is read as a request.
        assert_eq!(lines(b"abcd\n", 4).await[0], c("abcd"));
        let l = lines(b"abcde\n{\"op\":\"destroy\"}\n", 4).await;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0, Line::TooLong);
        // The cut in the middle of a line must not start a request either.
        assert_eq!(
            lines(b"    {\"op\":\"destroy\"}\n", 4).await[0].0,
            Line::TooLong
        );
        // The last line may lack its newline.
        assert_eq!(lines(b"ab", 4).await, [c("ab"), (Line::Eof, "".into())]);
        assert_eq!(lines(b"", 4).await, [(Line::Eof, "".into())]);
    }
}
