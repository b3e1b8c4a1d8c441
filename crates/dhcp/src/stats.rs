//! What a DHCP server (v4 or v6) did since it started: messages received by type, and
//! what came of them. Counted by the engines from their own events, so a noisy event
//! the log rate limit suppresses still counts.

pub use kvnet_metrics::DhcpCounters as Stats;

/// How the engines count into [`Stats`].
pub(crate) trait Count {
    fn received(&mut self, kind: &str);
    fn v4(&mut self, ev: &crate::Event);
    fn v6(&mut self, ev: &crate::v6::Event);
}

impl Count for Stats {
    fn received(&mut self, kind: &str) {
        *self.received.entry(kind.to_string()).or_default() += 1;
    }

    fn v4(&mut self, ev: &crate::Event) {
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
            | E::Suppressed { .. }
            | E::Exchange { .. } => {}
        }
    }

    fn v6(&mut self, ev: &crate::v6::Event) {
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
