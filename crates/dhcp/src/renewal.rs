//! The renewal rule, shared by the DHCPv4 and DHCPv6 engines: when granting a binding
//! needs a new journal line, and what its reply may promise without one.
//!
//! An ACK never promises more than the journal holds. A client renewing an unchanged
//! binding within the first quarter of its lease is answered from the durable record, as
//! ISC dhcpd's `dhcp-cache-threshold` and Kea's lease caching answer it: no new line, and
//! the lease time it is given is what is left of the recorded one. A later renewal
//! extends the lease with a new line, so a client renewing as fast as it may costs one
//! line per quarter lease, not one per packet; clients renewing at T1 (half the lease)
//! always get a fresh, whole lease. Every other binding (new, moved, renamed) is a
//! change, under the network's budget of lease changes.

use crate::config::LeaseTime;

/// The part of a lease that may have gone by when a renewal reuses its record: 1/4.
const REUSE_DIVISOR: u64 = 4;

/// How a binding is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// From the record, without a journal line: the reply promises this lease time.
    Reuse(LeaseTime),
    /// A new line extending the holder's unchanged binding. It needs no share of the
    /// network's budget: the rule itself bounds it to one per quarter lease per binding.
    Extend,
    /// A new line for anything else, under the network's budget of lease changes.
    Change,
}

/// `held` is the recorded expiry (0 = infinite) when the client holds an active binding
/// of the address whose record is durable and would not change but for its expiry;
/// `lease` is what the configuration gives now.
pub(crate) fn grant(held: Option<u64>, lease: LeaseTime, now: u64) -> Grant {
    let Some(recorded) = held else {
        return Grant::Change;
    };
    match lease {
        LeaseTime::Infinite if recorded == 0 => Grant::Reuse(LeaseTime::Infinite),
        LeaseTime::Finite(s) if recorded != 0 => {
            let s = u64::from(s);
            let left = recorded.saturating_sub(now);
            if left > 0 && left >= s - s / REUSE_DIVISOR {
                // `left` may exceed a lease time shortened since: promise the shorter.
                Grant::Reuse(LeaseTime::Finite(left.min(s) as u32))
            } else {
                Grant::Extend
            }
        }
        // The configuration changed between finite and infinite: record what it is now.
        _ => Grant::Extend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LeaseTime::{Finite, Infinite};

    #[test]
    fn early_renewals_reuse_the_record_and_never_promise_more_than_it_holds() {
        let hour = Finite(3600);
        // Granted at 1000: recorded expiry 4600.
        assert_eq!(grant(Some(4600), hour, 1000), Grant::Reuse(Finite(3600)));
        assert_eq!(grant(Some(4600), hour, 1001), Grant::Reuse(Finite(3599)));
        // Up to a quarter of the lease gone: still the record, never past 4600.
        assert_eq!(grant(Some(4600), hour, 1900), Grant::Reuse(Finite(2700)));
        for now in 1000..=1900 {
            let Grant::Reuse(Finite(t)) = grant(Some(4600), hour, now) else {
                panic!("{now}")
            };
            assert_eq!(now + u64::from(t), 4600);
        }
        // Past it (T1 comes at half the lease): a new line, a whole lease.
        assert_eq!(grant(Some(4600), hour, 1901), Grant::Extend);
        assert_eq!(grant(Some(4600), hour, 2800), Grant::Extend);
        assert_eq!(grant(Some(4600), hour, 4599), Grant::Extend);
    }

    #[test]
    fn a_shortened_lease_is_promised_as_configured() {
        assert_eq!(
            grant(Some(4600), Finite(600), 1000),
            Grant::Reuse(Finite(600))
        );
        // Lengthened: the record falls short at once.
        assert_eq!(grant(Some(4600), Finite(7200), 1000), Grant::Extend);
    }

    #[test]
    fn infinite_and_tiny_leases() {
        assert_eq!(grant(Some(0), Infinite, 1000), Grant::Reuse(Infinite));
        // Finite ↔ infinite: recorded anew.
        assert_eq!(grant(Some(0), Finite(60), 1000), Grant::Extend);
        assert_eq!(grant(Some(2000), Infinite, 1000), Grant::Extend);
        // A one-second lease is reused within its second only.
        assert_eq!(grant(Some(1001), Finite(1), 1000), Grant::Reuse(Finite(1)));
        assert_eq!(grant(Some(1001), Finite(1), 1001), Grant::Extend);
        // A record already run out (clock jumps) is never reused.
        assert_eq!(grant(Some(900), Finite(3600), 1000), Grant::Extend);
    }

    #[test]
    fn anything_but_an_unchanged_recorded_binding_is_a_change() {
        assert_eq!(grant(None, Finite(3600), 1000), Grant::Change);
        assert_eq!(grant(None, Infinite, 1000), Grant::Change);
    }
}
