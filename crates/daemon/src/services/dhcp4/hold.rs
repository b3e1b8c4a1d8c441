//! ACKs of fresh bindings held while their ARP probe may still be answered.

use kvnet_dhcp::Destination;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long after its ARP probe the ACK of a fresh binding waits for a squatter's answer.
/// Kea's ping-check hook waits 100 ms by default (ping-timeout) before it even offers;
/// here the OFFER leaves at once and only the ACK waits, for what is left of the window.
const PROBE_WAIT: Duration = Duration::from_millis(100);
/// Bound on ACKs held at once; beyond it they leave without waiting (best effort, like
/// the probes, whose rate limit keeps far fewer in the window anyway).
const MAX_HELD: usize = 256;

/// ACKs of fresh bindings held while the ARP probe for their address may still be
/// answered (see the Conflicts section of crates/dhcp/src/lib.rs).
#[derive(Default)]
pub struct Holds {
    /// When a probe for each address left. Only those younger than PROBE_WAIT matter;
    /// older ones are pruned at every probe and wakeup, so the probe rate bounds the map.
    probed: HashMap<Ipv4Addr, Instant>,
    pub held: Vec<HeldAck>,
}

pub struct HeldAck {
    pub ip: Ipv4Addr,
    pub until: Instant,
    pub bytes: Vec<u8>,
    pub to: Destination,
}

impl Holds {
    pub fn probed(&mut self, ip: Ipv4Addr, at: Instant) {
        self.prune(at);
        self.probed.insert(ip, at);
    }

    fn prune(&mut self, now: Instant) {
        self.probed
            .retain(|_, t| now.saturating_duration_since(*t) < PROBE_WAIT);
    }

    /// Until when an ACK binding `ip` must wait: the end of the window of a probe still
    /// in flight; none when no probe was sent (rate limit, no ARP socket) or it is older.
    pub fn hold_until(&self, ip: Ipv4Addr, now: Instant) -> Option<Instant> {
        let until = *self.probed.get(&ip)? + PROBE_WAIT;
        (until > now && self.held.len() < MAX_HELD).then_some(until)
    }

    /// Forget the ACKs held for `ip`, which another machine was seen using; how many.
    pub fn drop_claimed(&mut self, ip: Ipv4Addr) -> usize {
        self.probed.remove(&ip);
        let before = self.held.len();
        self.held.retain(|h| h.ip != ip);
        before - self.held.len()
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(holds: &mut Holds, ip: Ipv4Addr, now: Instant) -> bool {
        let Some(until) = holds.hold_until(ip, now) else {
            return false;
        };
        holds.held.push(HeldAck {
            ip,
            until,
            bytes: vec![ip.octets()[3]],
            to: Destination::Broadcast,
        });
        true
    }

    #[test]
    fn acks_wait_only_for_probes_in_flight_and_claims_drop_them() {
        let (a, b, c) = (
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            Ipv4Addr::new(10, 0, 0, 4),
        );
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = Holds::default();
        assert!(!held(&mut h, a, t0), "no probe sent: no wait");
        h.probed(a, t0);
        h.probed(b, t0 + ms(10));
        h.probed(c, t0 + ms(20));
        assert!(held(&mut h, a, t0 + ms(1)));
        assert!(held(&mut h, b, t0 + ms(11)));
        assert!(held(&mut h, c, t0 + ms(21)));
        assert_eq!(h.next_release(), Some(t0 + PROBE_WAIT));
        // A claim for b drops its ACK; the others leave at the end of their windows.
        assert_eq!(h.drop_claimed(b), 1);
        assert!(h.take_due(t0 + ms(99)).is_empty());
        let due = h.take_due(t0 + ms(100));
        assert_eq!(due.iter().map(|d| d.ip).collect::<Vec<_>>(), vec![a]);
        assert_eq!(h.next_release(), Some(t0 + ms(120)));
        assert_eq!(h.take_due(t0 + ms(200)).len(), 1);
        assert_eq!(h.next_release(), None);
        // A probe older than the window is forgotten, and holds nothing.
        assert!(h.probed.is_empty(), "pruned once past the window");
        h.probed(a, t0 + ms(200));
        assert!(!held(&mut h, a, t0 + ms(300)));
    }
}
