//! Token buckets, shared by the DHCPv4 and DHCPv6 engines: one per client, so that a
//! flood from one client cannot starve the others, and a flood of new client identities
//! cannot grow the table without bound; and one per network for the lease changes that
//! cost a journal line (see [`RateLimit::for_pool`]).

use std::collections::HashMap;
use std::hash::Hash;

use crate::config::RateLimit;

/// Bound on per-client state.
const MAX_BUCKETS: usize = 65_536;

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: u64,
    last: u64,
    warned: bool,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn new(rate: RateLimit, now: u64) -> Bucket {
        Bucket {
            tokens: u64::from(rate.burst),
            last: now,
            warned: false,
        }
    }

    /// Take a token at `now` (unix seconds).
    pub(crate) fn take(&mut self, rate: RateLimit, now: u64) -> Verdict {
        self.tokens = refill(self, now, rate);
        self.last = self.last.max(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            self.warned = false;
            return Verdict::Pass;
        }
        let log = !self.warned;
        self.warned = true;
        Verdict::Drop { log }
    }
}

/// What to do with a client's packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Drop it; `log` is set once per episode of a client over its rate, and every time
    /// the table is full of other clients.
    Drop {
        log: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Limiter<K> {
    buckets: HashMap<K, Bucket>,
}

impl<K> Default for Limiter<K> {
    fn default() -> Self {
        Limiter {
            buckets: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> Limiter<K> {
    /// Take a token for `key` at `now` (unix seconds).
    pub(crate) fn take(&mut self, rate: RateLimit, key: K, now: u64) -> Verdict {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_BUCKETS {
            self.prune(rate, now);
            if self.buckets.len() >= MAX_BUCKETS {
                return Verdict::Drop { log: true };
            }
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::new(rate, now))
            .take(rate, now)
    }

    /// Forget the clients whose bucket has refilled: they are as good as new.
    pub(crate) fn prune(&mut self, rate: RateLimit, now: u64) {
        self.buckets
            .retain(|_, b| refill(b, now, rate) < u64::from(rate.burst));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// Tokens in `b` at `now` (time going backwards refills nothing).
fn refill(b: &Bucket, now: u64, rate: RateLimit) -> u64 {
    let elapsed = now.saturating_sub(b.last);
    b.tokens
        .saturating_add(elapsed.saturating_mul(u64::from(rate.per_sec)))
        .min(u64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: RateLimit = RateLimit {
        burst: 3,
        per_sec: 1,
    };

    #[test]
    fn a_burst_passes_then_one_log_per_episode_and_refill_over_time() {
        let mut l = Limiter::default();
        for _ in 0..3 {
            assert_eq!(l.take(RATE, 1, 100), Verdict::Pass);
        }
        assert_eq!(l.take(RATE, 1, 100), Verdict::Drop { log: true });
        assert_eq!(l.take(RATE, 1, 100), Verdict::Drop { log: false });
        // Another client is not affected.
        assert_eq!(l.take(RATE, 2, 100), Verdict::Pass);
        // One second later, one more packet; then a new episode logs again.
        assert_eq!(l.take(RATE, 1, 101), Verdict::Pass);
        assert_eq!(l.take(RATE, 1, 101), Verdict::Drop { log: true });
        // A clock going backwards refills nothing.
        assert_eq!(l.take(RATE, 1, 50), Verdict::Drop { log: false });
    }

    #[test]
    fn full_buckets_are_pruned_and_the_table_stays_bounded() {
        let mut l = Limiter::default();
        for k in 0..MAX_BUCKETS as u32 {
            assert_eq!(l.take(RATE, k, 10), Verdict::Pass);
        }
        // Every bucket is short of one token: a new client finds no room.
        assert_eq!(l.take(RATE, u32::MAX, 10), Verdict::Drop { log: true });
        assert_eq!(l.len(), MAX_BUCKETS);
        // Once they have refilled they are forgotten, and there is room again.
        assert_eq!(l.take(RATE, u32::MAX, 11), Verdict::Pass);
        assert_eq!(l.len(), 1);
    }
}
