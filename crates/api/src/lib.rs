//! The kvnetd API: one JSON request per line on a Unix stream socket, one JSON reply
//! line back. Typed on both sides: every request is a type ([`request`]) naming the data
//! its reply carries ([`Call::Reply`]), shared by the daemon and the CLI so both agree
//! on the wire format. The client is synchronous so the CLI needs no async runtime (it
//! starts in ~1 ms). The protocol is documented in docs/api.md.

#![forbid(unsafe_code)]

pub mod reply;
pub mod request;

pub use reply::{
    Bridged, Check, CreatedPort, Finding, Lease, NetSummary, NetworkId, Port, PortKind, Reply,
    Report, Unbridged, Version,
};
pub use request::{Call, Request};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub const DEFAULT_SOCKET: &str = "/run/kvnet/kvnetd.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach kvnetd at {path}: {source}\n(is the daemon running? start it with `kvnetd` as root, or point --socket / KVNET_SOCKET at its socket)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to kvnetd: {0}")]
    Io(#[from] std::io::Error),
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

/// A successful reply: the request's data and the warnings the user must see.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub data: T,
    pub warnings: Vec<String>,
}

/// Send one request and wait for its reply envelope.
pub fn call_raw(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut buf = String::new();
    if reader.read_line(&mut buf)? == 0 {
        return Err(ClientError::Closed);
    }
    Ok(serde_json::from_str(&buf)?)
}

/// Send one request and decode its reply's data as the request's reply type.
pub fn call<C: Call>(socket: &Path, req: C) -> Result<Answer<C::Reply>, ClientError> {
    let reply = call_raw(socket, &req.into())?;
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

#[cfg(test)]
mod tests;
