//! What a DHCP server (v4 or v6) did since it started: messages received by type, and
//! what came of them. Counted by the engines from their own events, so a noisy event
//! the log rate limit suppresses still counts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters of one DHCP server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
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

impl Stats {
    pub(crate) fn received(&mut self, kind: &str) {
        *self.received.entry(kind.to_string()).or_default() += 1;
    }

    pub(crate) fn v4(&mut self, ev: &crate::Event) {
        use crate::Event as E;
        match ev {
            E::Offer { .. } => self.offers += 1,
            E::Ack { .. } => self.acks += 1,
            E::Nak { .. } => self.naks += 1,
            E::PoolExhausted { .. } | E::StaticUnavailable { .. } => self.no_address += 1,
            E::Conflict { .. } => self.conflicts += 1,
            E::Decline { .. } => {
                self.declines += 1;
                self.conflicts += 1;
            }
            E::Release { .. } => self.releases += 1,
            E::Expired { .. } => self.expirations += 1,
            E::RateLimited { .. } => self.rate_limited += 1,
            E::ChangesLimited { .. } => self.changes_limited += 1,
            E::Malformed(_) => self.malformed += 1,
            E::Ignored { .. } => self.ignored += 1,
            E::Inform { .. }
            | E::NameRefused { .. }
            | E::NameMoved { .. }
            | E::Revoked { .. }
            | E::Suppressed { .. } => {}
        }
    }

    pub(crate) fn v6(&mut self, ev: &crate::v6::Event) {
        use crate::v6::Event as E;
        match ev {
            E::Advertise { .. } => self.offers += 1,
            E::Reply { .. } => self.acks += 1,
            E::NoBinding { .. } => self.naks += 1,
            E::NoAddrs { .. } => self.no_address += 1,
            E::Decline { .. } => {
                self.declines += 1;
                self.conflicts += 1;
            }
            E::Release { .. } => self.releases += 1,
            E::Expired { .. } => self.expirations += 1,
            E::RateLimited { .. } => self.rate_limited += 1,
            E::ChangesLimited { .. } => self.changes_limited += 1,
            E::Malformed(_) => self.malformed += 1,
            E::Ignored { .. } => self.ignored += 1,
            E::Confirm { .. } | E::Revoked { .. } => {}
        }
    }
}
