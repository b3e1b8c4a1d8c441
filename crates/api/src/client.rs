//! The synchronous client. Every step is bounded in time, so a kvnetd that is restarting,
//! frozen or gone never hangs a caller (qemu waits for its ifup script and bridge
//! helper):
//!
//! * connecting is retried while kvnetd restarts (its socket missing or refusing, or its
//!   backlog full), on the schedule of [`Retry`], then fails naming the socket and the
//!   time waited;
//! * once the request may have been sent it is never sent again: it might have run;
//! * sending the request and waiting for the reply have deadlines
//!   ([`Client::send_timeout`], [`Client::reply_timeout`]).

use crate::{Call, Reply, Request};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use nix::sys::time::TimeVal;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", connect_message(path, source, *waited))]
    Connect {
        path: String,
        source: io::Error,
        /// How long connecting was retried.
        waited: Duration,
    },
    /// The request was not sent, or its reply not received, in time.
    #[error("kvnetd at {path} did not {what} within {:.1} s", waited.as_secs_f64())]
    Timeout {
        path: String,
        what: &'static str,
        waited: Duration,
    },
    #[error("talking to kvnetd: {0}")]
    Io(#[from] io::Error),
    #[error("bad reply from kvnetd: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("kvnetd closed the connection without replying")]
    Closed,
    /// The daemon refused the request; `warnings` came with the refusal.
    #[error("{message}")]
    Refused {
        message: String,
        warnings: Vec<String>,
    },
}

fn connect_message(path: &str, source: &io::Error, waited: Duration) -> String {
    let tried = if waited.is_zero() {
        String::new()
    } else {
        format!(" (tried for {:.1} s)", waited.as_secs_f64())
    };
    format!(
        "cannot reach kvnetd at {path}{tried}: {source}\n(is the daemon running? start it with `kvnetd` as root, or point --socket / KVNET_SOCKET at its socket)"
    )
}

/// A successful reply: the request's data and the warnings the user must see.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub data: T,
    pub warnings: Vec<String>,
}

/// When to try connecting again: exponential steps from `first` up to `max_step`, for
/// `total` at most; the last try is at `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub first: Duration,
    pub max_step: Duration,
    pub total: Duration,
}

impl Retry {
    /// A restart of kvnetd (stop, adopt the networks, listen) takes well under a second;
    /// a kvnetd that is not running should be reported before a user gives up waiting.
    pub const DEFAULT: Retry = Retry {
        first: Duration::from_millis(10),
        max_step: Duration::from_millis(250),
        total: Duration::from_secs(5),
    };

    /// The pause before the next try, after `failures` (≥ 1) failed tries and `elapsed`
    /// since the first one; `None` once `total` has passed.
    pub fn delay(&self, failures: u32, elapsed: Duration) -> Option<Duration> {
        let left = self.total.checked_sub(elapsed).filter(|l| !l.is_zero())?;
        let step = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max_step);
        Some(step.min(left))
    }

    /// Connect errors that mean "kvnetd is not listening yet": the socket file missing
    /// (between a stop and the next listen), refusing (a stale file left by a kill), or
    /// the backlog full for longer than a try (EAGAIN). Anything else (EACCES, ENOTSOCK)
    /// will not change by waiting.
    pub fn worth_retrying(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock
        )
    }
}

/// How a client waits for kvnetd; [`Client::default`] is what every kvnet program uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub retry: Retry,
    /// Writing the request (a few hundred bytes: only a kvnetd that stopped reading
    /// fills the socket's buffer).
    pub send_timeout: Duration,
    /// The reply. kvnetd serves requests one at a time, and its slowest steps (an `nft`
    /// process, a teardown waited for) are bounded by its own timeouts, well below this.
    pub reply_timeout: Duration,
}

impl Default for Client {
    fn default() -> Client {
        Client {
            retry: Retry::DEFAULT,
            send_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(60),
        }
    }
}

impl Client {
    /// Send one request and wait for its reply envelope.
    pub fn call_raw(&self, socket: &Path, req: &Request) -> Result<Reply, ClientError> {
        let path = || socket.display().to_string();
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        let mut stream = self.connect(socket)?;
        // From here on the request may reach kvnetd: no retry.
        stream.set_write_timeout(Some(self.send_timeout))?;
        if let Err(e) = stream.write_all(&line) {
            return Err(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                    path: path(),
                    what: "accept the request",
                    waited: self.send_timeout,
                },
                _ => e.into(),
            });
        }
        let reply = read_line(&mut stream, self.reply_timeout).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                path: path(),
                what: "reply",
                waited: self.reply_timeout,
            },
            io::ErrorKind::UnexpectedEof => ClientError::Closed,
            _ => e.into(),
        })?;
        Ok(serde_json::from_slice(&reply)?)
    }

    /// Send one request and decode its reply's data as the request's reply type.
    pub fn call<C: Call>(&self, socket: &Path, req: C) -> Result<Answer<C::Reply>, ClientError> {
        let reply = self.call_raw(socket, &req.into())?;
        if !reply.ok {
            return Err(ClientError::Refused {
                message: reply.error.unwrap_or_else(|| "unknown error".into()),
                warnings: reply.warnings,
            });
        }
        Ok(Answer {
            data: serde_json::from_value(reply.data)?,
            warnings: reply.warnings,
        })
    }

    /// Connect, trying again on [`Retry::worth_retrying`] errors until the schedule ends.
    fn connect(&self, socket: &Path) -> Result<UnixStream, ClientError> {
        let t0 = Instant::now();
        let mut failures = 0;
        loop {
            let left = self.retry.total.saturating_sub(t0.elapsed());
            let e = match connect_once(socket, left.max(Duration::from_millis(10))) {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            failures += 1;
            let pause = Retry::worth_retrying(&e)
                .then(|| self.retry.delay(failures, t0.elapsed()))
                .flatten();
            match pause {
                Some(p) => std::thread::sleep(p),
                None => {
                    return Err(ClientError::Connect {
                        path: socket.display().to_string(),
                        source: e,
                        waited: if failures > 1 {
                            t0.elapsed()
                        } else {
                            Duration::ZERO
                        },
                    });
                }
            }
        }
    }
}

/// One connection attempt. A Unix socket's connect blocks while the listener's backlog is
/// full; the send timeout bounds that wait (EAGAIN after it).
fn connect_once(path: &Path, wait: Duration) -> io::Result<UnixStream> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let wait = TimeVal::new(
        wait.as_secs().try_into().unwrap_or(i64::MAX),
        wait.subsec_micros().into(),
    );
    socket::setsockopt(&fd, sockopt::SendTimeout, &wait)?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// Bytes up to the first newline, within `timeout` in all (a read timeout alone would
/// restart with every byte a slow peer sends).
fn read_line(stream: &mut UnixStream, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&got[..end]);
            return Ok(line);
        }
        line.extend_from_slice(got);
    }
}

/// Send one request and wait for its reply envelope, as [`Client::default`] does.
pub fn call_raw(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    Client::default().call_raw(socket, req)
}

/// Send one request and decode its reply's data as the request's reply type, as
/// [`Client::default`] does.
pub fn call<C: Call>(socket: &Path, req: C) -> Result<Answer<C::Reply>, ClientError> {
    Client::default().call(socket, req)
}
