//! What a network's DNS server did since it started, counted from the engine's own
//! decisions.

use crate::engine::Decision;
pub use kvnet_metrics::DnsCounters as Stats;

/// How the engine counts into [`Stats`].
pub(crate) trait Count {
    fn query(&mut self, d: &Decision);
    fn upstream(&mut self, d: &Decision, timed_out: bool);
}

impl Count for Stats {
    /// A client query's outcome.
    fn query(&mut self, d: &Decision) {
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
    fn upstream(&mut self, d: &Decision, timed_out: bool) {
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
