//! The counters kvnet's engines keep, as data: the engines count, the daemon exports
//! them (metrics, `net-stats`).

use crate::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters of one DHCP server (v4 or v6), kept by kvnet-dhcp's engines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpCounters {
    /// Well-formed messages received, by type (`discover`, `request`, … ; `solicit`,
    /// `renew`, … for DHCPv6).
    pub received: BTreeMap<String, u64>,
    /// OFFERs (DHCPv6: ADVERTISEs).
    pub offers: u64,
    /// ACKs (DHCPv6: REPLYs that bind an address).
    pub acks: u64,
    /// NAKs (DHCPv6: no binding for a renewal).
    pub naks: u64,
    /// Requests answered with no address: the pool was exhausted.
    pub no_address: u64,
    /// Addresses found in use by another machine (ARP probes, DECLINE).
    pub conflicts: u64,
    pub declines: u64,
    pub releases: u64,
    pub expirations: u64,
    /// Dropped: a client over its packet rate.
    pub rate_limited: u64,
    /// Dropped: the network's budget of lease changes was spent.
    pub changes_limited: u64,
    pub malformed: u64,
    /// Well-formed, deliberately not answered (another server's, another subnet's…).
    pub ignored: u64,
}

/// Counters of one DNS engine, kept by kvnet-dns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsCounters {
    /// Queries received (UDP and TCP).
    pub queries: u64,
    /// Answered from the network's own names (authoritative: records, NODATA, NXDOMAIN).
    pub local: u64,
    /// Sent to an upstream server.
    pub forwarded: u64,
    /// Answers from upstream servers passed on.
    pub upstream_answers: u64,
    /// Upstreams that failed a query in the end: SERVFAIL to the client.
    pub upstream_failures: u64,
    /// Another upstream tried after a failure or timeout.
    pub retries: u64,
    /// Refused (policy: isolated networks, zone transfers, other classes).
    pub refused: u64,
    /// Malformed or unsupported queries answered with an error.
    pub errors: u64,
    /// Not answered: responses, retransmissions, unparsable bytes.
    pub dropped: u64,
    /// From a query's arrival to its answer, forwarded queries; local answers as the
    /// shell measures them ((`Engine::note_local_latency`)).
    pub latency: Histogram,
}
