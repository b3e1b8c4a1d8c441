//! The kvnetd API: one JSON request per line on a Unix stream socket, one JSON reply
//! line back. Typed on both sides: every request is a type ([`request`]) naming the data
//! its reply carries ([`Call::Reply`]), shared by the daemon and the CLI so both agree
//! on the wire format. The client ([`Client`]) is synchronous so the CLI needs no async
//! runtime (it starts in ~1 ms), and bounded in time: it waits out a restart of kvnetd and
//! never hangs on a frozen one. The protocol is documented in docs/api.md.

#![forbid(unsafe_code)]

mod client;
pub mod reply;
pub mod request;

pub use client::{Answer, Client, ClientError, Retry, call, call_raw};

pub use reply::{
    Bridged, Check, CreatedPort, DhcpStats, EventKind, Finding, FirewallStats, ForwardEntry, Lease,
    LeaseTime, NetEvent, NetStats, NetSummary, NetworkId, Port, PortKind, PortTraffic, Reply,
    Report, Unbridged, Version,
};
pub use request::{Call, Request};

pub const DEFAULT_SOCKET: &str = "/run/kvnet/kvnetd.sock";

#[cfg(test)]
mod tests;
