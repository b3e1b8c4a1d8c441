//! The shell's part of address-conflict detection as decisions (see Conflicts in the
//! crate docs): how many ARP probes may go out, which ACKs of fresh bindings wait for
//! their probe, until when, and which a claim drops. Like the engine, these own no clock:
//! the shell passes the `Instant` in; unlike the engine's seconds, the wait is a fraction
//! of a second.
//!
//! ```text
//! Effect::Probe(ip)  => if rate.allow(now) && arp.send_probe(mac, ip).is_ok() { holds.probed(ip, now) }
//! Effect::Send { bytes, to, after_probe } => match holds.hold(after_probe, bytes, to, now) {
//!                           Hold::Until(t) => {}                 // wakes up at next_release()
//!                           Hold::SendNow { bytes, to } => send(bytes, to) }
//! claims (note_in_use effects) => holds.drop_conflicts(&effects)
//! wakeup            => for ack in holds.take_due(now) { send(ack.bytes, ack.to) }
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::event::{Destination, Effect, Event};

/// How long after its ARP probe the ACK of a fresh binding waits for a squatter's answer.
/// Kea's ping-check hook waits 100 ms by default (ping-timeout) before it even offers;
/// here the OFFER leaves at once and only the ACK waits, for what is left of the window.
pub const PROBE_WAIT: Duration = Duration::from_millis(100);
/// Bound on ACKs held at once; beyond it they leave without waiting (best effort, like
/// the probes, whose rate limit keeps far fewer in the window anyway).
pub const MAX_HELD: usize = 256;
/// Probes are best effort: a flood of new clients must not become a flood of
/// broadcasts, nor cost the DHCP loop more than a few syscalls per batch. 200 a second
/// after a burst of 50.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
const PROBE_BURST: u32 = 50;

/// The token bucket of a network's ARP probes: a burst of 50, then 200 a second. The
/// bucket holds time rather than fractional tokens, so the arithmetic is exact.
#[derive(Debug, Clone)]
pub struct ProbeRate {
    credit: Duration,
    refilled: Instant,
}

impl ProbeRate {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> ProbeRate {
        ProbeRate {
            credit: PROBE_INTERVAL * PROBE_BURST,
            refilled: now,
        }
    }

    /// Whether a probe may go out at `now`; takes its token if so. A skipped probe only
    /// means the ACK of that address will not wait.
    pub fn allow(&mut self, now: Instant) -> bool {
        // An earlier `now` than the last one refills nothing.
        let dt = now.saturating_duration_since(self.refilled);
        self.credit = (self.credit + dt).min(PROBE_INTERVAL * PROBE_BURST);
        self.refilled = self.refilled.max(now);
        if self.credit < PROBE_INTERVAL {
            return false;
        }
        self.credit -= PROBE_INTERVAL;
        true
    }
}

/// An ACK held until its probe settles: the reply and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAck {
    /// The address it binds.
    pub ip: Ipv4Addr,
    /// When it leaves unless a claim drops it first.
    pub until: Instant,
    pub bytes: Vec<u8>,
    pub to: Destination,
}

/// What [`AckHolds::hold`] decided for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Held until then ([`AckHolds::take_due`] hands it back).
    Until(Instant),
    /// Send it now; here it is back.
    SendNow { bytes: Vec<u8>, to: Destination },
}

/// ACKs of fresh bindings held while the ARP probe for their address may still be
/// answered, and the probes in flight.
#[derive(Debug, Default)]
pub struct AckHolds {
    /// When a probe for each address left. Only those younger than PROBE_WAIT matter;
    /// older ones are pruned at every probe and release, so the probe rate bounds the map.
    probed: HashMap<Ipv4Addr, Instant>,
    held: Vec<HeldAck>,
}

impl AckHolds {
    /// A probe for `ip` left at `at` (the latest one counts).
    pub fn probed(&mut self, ip: Ipv4Addr, at: Instant) {
        self.prune(at);
        self.probed.insert(ip, at);
    }

    fn prune(&mut self, now: Instant) {
        self.probed
            .retain(|_, t| now.saturating_duration_since(*t) < PROBE_WAIT);
    }

    /// Decides for one reply of the engine (`Effect::Send`): one whose `after_probe`
    /// names an address probed less than [`PROBE_WAIT`] ago is held until the end of
    /// that window, unless [`MAX_HELD`] are held already; every other reply (not an ACK
    /// of a fresh binding, no probe sent, the probe older) goes at once.
    pub fn hold(
        &mut self,
        after_probe: Option<Ipv4Addr>,
        bytes: Vec<u8>,
        to: Destination,
        now: Instant,
    ) -> Hold {
        let until = after_probe
            .and_then(|ip| Some((ip, *self.probed.get(&ip)? + PROBE_WAIT)))
            .filter(|(_, until)| *until > now && self.held.len() < MAX_HELD);
        match until {
            Some((ip, until)) => {
                self.held.push(HeldAck {
                    ip,
                    until,
                    bytes,
                    to,
                });
                Hold::Until(until)
            }
            None => Hold::SendNow { bytes, to },
        }
    }

    /// Forgets the ACKs held for `ip`, which another machine was seen using, and its
    /// probe; how many were dropped.
    pub fn drop_claimed(&mut self, ip: Ipv4Addr) -> usize {
        self.probed.remove(&ip);
        let before = self.held.len();
        self.held.retain(|h| h.ip != ip);
        before - self.held.len()
    }

    /// Drops the held ACKs of every address that `effects` (of
    /// [`crate::Server::note_in_use`]) report an [`Event::Conflict`] for: the engine has
    /// abandoned those leases, and the client retries. The addresses whose ACKs were
    /// dropped, once each.
    pub fn drop_conflicts(&mut self, effects: &[Effect]) -> Vec<Ipv4Addr> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Log(Event::Conflict { ip, .. }) => Some(*ip),
                _ => None,
            })
            .filter(|ip| self.drop_claimed(*ip) > 0)
            .collect()
    }

    /// When the next held ACK is due.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.until).min()
    }

    /// The held ACKs due at `now`, in the order they were held.
    pub fn take_due(&mut self, now: Instant) -> Vec<HeldAck> {
        self.prune(now);
        if self.held.iter().all(|h| h.until > now) {
            return Vec::new();
        }
        let (due, wait) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.until <= now);
        self.held = wait;
        due
    }

    /// How many ACKs are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvnet_model::MacAddr;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    /// Offers `h` an ACK binding `ip`; whether it was held.
    fn held(h: &mut AckHolds, ip: Ipv4Addr, now: Instant) -> bool {
        let bytes = vec![ip.octets()[3]];
        match h.hold(Some(ip), bytes.clone(), Destination::Broadcast, now) {
            Hold::Until(until) => {
                assert!(until > now);
                true
            }
            Hold::SendNow { bytes: back, to } => {
                assert_eq!((back, to), (bytes, Destination::Broadcast), "handed back");
                false
            }
        }
    }

    #[test]
    fn acks_wait_only_for_probes_in_flight_and_claims_drop_them() {
        let (a, b, c) = (ip(2), ip(3), ip(4));
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        assert!(!held(&mut h, a, t0), "no probe sent: no wait");
        h.probed(a, t0);
        h.probed(b, t0 + ms(10));
        h.probed(c, t0 + ms(20));
        assert!(held(&mut h, a, t0 + ms(1)));
        assert!(held(&mut h, b, t0 + ms(11)));
        assert!(held(&mut h, c, t0 + ms(21)));
        assert_eq!(h.len(), 3);
        assert_eq!(h.next_release(), Some(t0 + PROBE_WAIT));
        // A claim for b drops its ACK; the others leave at the end of their windows.
        assert_eq!(h.drop_claimed(b), 1);
        assert!(h.take_due(t0 + ms(99)).is_empty());
        let due = h.take_due(t0 + ms(100));
        assert_eq!(due.iter().map(|d| d.ip).collect::<Vec<_>>(), vec![a]);
        assert_eq!(due[0].bytes, vec![2]);
        assert_eq!(h.next_release(), Some(t0 + ms(120)));
        assert_eq!(h.take_due(t0 + ms(200)).len(), 1);
        assert_eq!(h.next_release(), None);
        assert!(h.is_empty());
        // A probe older than the window is forgotten, and holds nothing.
        assert!(h.probed.is_empty(), "pruned once past the window");
        h.probed(a, t0 + ms(200));
        assert!(!held(&mut h, a, t0 + ms(300)));
    }

    #[test]
    fn only_acks_of_fresh_bindings_wait() {
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        h.probed(ip(2), t0);
        let to = Destination::Unicast(ip(2));
        assert_eq!(
            h.hold(None, vec![1], to, t0 + ms(1)),
            Hold::SendNow { bytes: vec![1], to },
            "a reply that names no probe (OFFER, NAK, renewal) never waits"
        );
        assert!(h.is_empty());
    }

    #[test]
    fn the_window_ends_exactly_one_probe_wait_after_the_probe() {
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        h.probed(ip(2), t0);
        assert_eq!(
            h.hold(Some(ip(2)), vec![], Destination::Broadcast, t0 + ms(99)),
            Hold::Until(t0 + PROBE_WAIT),
            "only what is left of the window"
        );
        assert!(
            !held(&mut h, ip(2), t0 + PROBE_WAIT),
            "a settled probe holds nothing"
        );
        assert!(!held(&mut h, ip(2), t0 + ms(500)));
        assert_eq!(h.take_due(t0 + ms(500)).len(), 1, "the one held at 99 ms");
        // A later probe for the same address opens a new window.
        h.probed(ip(2), t0 + ms(550));
        assert!(held(&mut h, ip(2), t0 + ms(620)));
        assert_eq!(h.next_release(), Some(t0 + ms(650)));
    }

    #[test]
    fn two_acks_for_one_address_leave_together_or_drop_together() {
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        h.probed(ip(5), t0);
        // A client that repeats its REQUEST gets two ACKs for the same binding.
        let first = h.hold(Some(ip(5)), vec![1], Destination::Broadcast, t0 + ms(1));
        let second = h.hold(Some(ip(5)), vec![2], Destination::Broadcast, t0 + ms(30));
        assert_eq!(first, Hold::Until(t0 + PROBE_WAIT));
        assert_eq!(second, first, "the same window");
        let due = h.take_due(t0 + PROBE_WAIT);
        assert_eq!(
            due.iter().map(|d| d.bytes.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![2]],
            "in the order they were held"
        );
        h.probed(ip(5), t0 + ms(200));
        held(&mut h, ip(5), t0 + ms(201));
        held(&mut h, ip(5), t0 + ms(202));
        assert_eq!(h.drop_claimed(ip(5)), 2);
        assert!(h.is_empty());
        assert!(
            !held(&mut h, ip(5), t0 + ms(203)),
            "the claim ended the window"
        );
    }

    #[test]
    fn beyond_max_held_acks_leave_at_once() {
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        let addrs: Vec<Ipv4Addr> = (0..=MAX_HELD as u32)
            .map(|n| Ipv4Addr::from(0x0a00_0000 + n))
            .collect();
        for a in &addrs {
            h.probed(*a, t0);
        }
        for a in &addrs[..MAX_HELD] {
            assert!(held(&mut h, *a, t0 + ms(1)));
        }
        assert_eq!(h.len(), MAX_HELD);
        assert!(!held(&mut h, addrs[MAX_HELD], t0 + ms(1)), "the bound");
        // Once some leave, there is room again.
        h.probed(addrs[MAX_HELD], t0 + ms(100));
        assert_eq!(h.take_due(t0 + ms(100)).len(), MAX_HELD);
        assert!(held(&mut h, addrs[MAX_HELD], t0 + ms(101)));
    }

    #[test]
    fn conflicts_among_the_effects_drop_held_acks() {
        let t0 = Instant::now();
        let mut h = AckHolds::default();
        for n in [2, 3] {
            h.probed(ip(n), t0);
            assert!(held(&mut h, ip(n), t0 + ms(1)));
        }
        let mac = |n: u8| MacAddr([0x52, 0x54, 0, 0, 0, n]);
        let conflict = |n: u8| {
            Effect::Log(Event::Conflict {
                ip: ip(n),
                holder: mac(1),
                seen: mac(n),
            })
        };
        let effects = [conflict(3), Effect::Probe(ip(2)), conflict(9), conflict(3)];
        assert_eq!(
            h.drop_conflicts(&effects),
            vec![ip(3)],
            "once, held ones only"
        );
        assert_eq!(
            h.take_due(t0 + PROBE_WAIT)
                .iter()
                .map(|d| d.ip)
                .collect::<Vec<_>>(),
            vec![ip(2)]
        );
    }

    #[test]
    fn probes_pass_a_burst_then_at_the_rate() {
        let t0 = Instant::now();
        let mut r = ProbeRate::new(t0);
        for i in 0..PROBE_BURST {
            assert!(r.allow(t0), "probe {i} of the burst");
        }
        assert!(!r.allow(t0), "the burst is spent");
        // 200 a second: one token every 5 ms.
        assert!(!r.allow(t0 + ms(4)));
        assert!(r.allow(t0 + ms(5)));
        assert!(!r.allow(t0 + ms(5)));
        // An earlier instant refills nothing and moves nothing back.
        assert!(!r.allow(t0 + ms(1)));
        assert!(r.allow(t0 + ms(10)));
        // A long pause refills the burst, no more.
        let later = t0 + Duration::from_secs(60);
        let passed = (0..1000).take_while(|_| r.allow(later)).count();
        assert_eq!(passed, PROBE_BURST as usize);
    }
}
