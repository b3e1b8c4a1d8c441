//! What a network's DNS server did since it started, counted from the engine's own
//! decisions.

use crate::engine::Decision;
use kvnet_metrics::Histogram;

/// Counters of one DNS engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
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
    /// shell measures them ([`crate::Engine::note_local_latency`]).
    pub latency: Histogram,
}

impl Stats {
    /// A client query's outcome.
    pub(crate) fn query(&mut self, d: &Decision) {
        self.queries += 1;
        match d {
            Decision::Forward { .. } => self.forwarded += 1,
            Decision::Drop => self.dropped += 1,
            Decision::Answer { bytes, .. } => {
                let authoritative = bytes.get(2).is_some_and(|b| b & 0x04 != 0);
                let rcode = bytes.get(3).map_or(0, |b| b & 0x0f);
                if authoritative {
                    self.local += 1;
                } else if rcode == 5 {
                    self.refused += 1;
                } else {
                    self.errors += 1;
                }
            }
        }
    }

    /// What became of a forwarded query: `d` after an upstream reply or a timeout.
    pub(crate) fn upstream(&mut self, d: &Decision, timed_out: bool) {
        match d {
            Decision::Forward { .. } => self.retries += 1,
            Decision::Answer { .. } if timed_out => self.upstream_failures += 1,
            Decision::Answer { bytes, .. } => {
                if bytes.get(3).is_some_and(|b| b & 0x0f == 2) {
                    self.upstream_failures += 1;
                }
                self.upstream_answers += 1;
            }
            Decision::Drop => {}
        }
    }
}
