//! When to advertise (RFC 4861 §6.2.4-§6.2.6).

use crate::config::Config;
use crate::wire::{RsError, Solicitation, encode_ra, validate_solicit};
use kvnet_model::MacAddr;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// MinRtrAdvInterval and MaxRtrAdvInterval (RFC 4861 §6.2.1 defaults: 0.33 × 600, 600).
pub const MIN_RTR_ADV_INTERVAL: Duration = Duration::from_secs(200);
pub const MAX_RTR_ADV_INTERVAL: Duration = Duration::from_secs(600);
/// The first RAs after a start or a change (RFC 4861 §10).
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u32 = 3;
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// At most one multicast RA per this time (RFC 4861 §10).
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// After a failed send (the bridge's link-local address still tentative, or no carrier
/// yet), retry after 1 s, doubling up to 16 s until a send succeeds or a solicitation
/// arrives.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(16);

/// The schedule state that a failed send rolls back.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next_unsolicited: Instant,
    initial_sent: u32,
    solicited: Option<Instant>,
    last_sent: Option<Instant>,
}

/// The RA scheduler of one network. Time is passed in; randomness comes from the seed.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    rng: u64,
    s: Schedule,
    /// Before the last poll's RA, for `on_send_failed`.
    before_send: Option<Schedule>,
    failures: u32,
    hold_until: Option<Instant>,
}

impl Engine {
    /// Starts advertising: the first RA is due at `now`.
    pub fn new(cfg: Config, seed: u64, now: Instant) -> Engine {
        Engine {
            cfg,
            rng: seed,
            s: Schedule {
                next_unsolicited: now,
                initial_sent: 0,
                solicited: None,
                last_sent: None,
            },
            before_send: None,
            failures: 0,
            hold_until: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A changed configuration is announced like a new start: an RA at once (or as soon
    /// as MIN_DELAY_BETWEEN_RAS allows) and the initial ones (RFC 4861 §6.2.4).
    pub fn set_config(&mut self, cfg: Config, now: Instant) {
        if cfg == self.cfg {
            return;
        }
        self.cfg = cfg;
        self.s.initial_sent = 0;
        self.s.next_unsolicited = self.earliest_allowed(now);
    }

    /// The bridge's MAC for the source link-layer option. Unlike a configuration change
    /// this sends nothing early: the shell re-reads the MAC before each RA, and a bridge
    /// without a fixed MAC takes a port's when ports come and go.
    pub fn set_source_mac(&mut self, mac: Option<MacAddr>) {
        self.cfg.source_mac = mac;
    }

    /// A received ICMPv6 message (what the socket's filter lets through: solicitations)
    /// with its source and hop limit. A valid solicitation gets a multicast RA at once,
    /// or at the earliest time MIN_DELAY_BETWEEN_RAS allows; solicitations meanwhile
    /// share that RA.
    pub fn on_solicit(
        &mut self,
        now: Instant,
        from: Ipv6Addr,
        hop_limit: u8,
        bytes: &[u8],
    ) -> Result<Solicitation, RsError> {
        let rs = validate_solicit(from, hop_limit, bytes)?;
        let at = self.earliest_allowed(now);
        self.s.solicited = Some(self.s.solicited.map_or(at, |t| t.min(at)));
        // Someone is waiting: stop backing off.
        self.failures = 0;
        self.hold_until = None;
        Ok(rs)
    }

    /// The RA to send now, if one is due. The schedule moves on as if it was sent;
    /// report the outcome with [`Engine::on_sent`] or [`Engine::on_send_failed`].
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_deadline() {
            return None;
        }
        self.before_send = Some(self.s);
        let unsolicited_due = self.s.next_unsolicited <= now;
        if unsolicited_due {
            self.s.initial_sent = self.s.initial_sent.saturating_add(1);
            let mut interval = self.random_interval();
            if self.s.initial_sent < MAX_INITIAL_RTR_ADVERTISEMENTS {
                interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
            }
            self.s.next_unsolicited = now + interval;
        }
        // Any multicast RA answers the pending solicitations.
        self.s.solicited = None;
        self.s.last_sent = Some(now);
        self.hold_until = None;
        Some(encode_ra(&self.cfg, false))
    }

    /// The RA returned by the last poll could not be sent: roll the schedule back and
    /// retry after a backoff (1 s, doubling to 16 s).
    pub fn on_send_failed(&mut self, now: Instant) {
        if let Some(s) = self.before_send.take() {
            self.s = s;
        }
        let backoff = RETRY_FIRST
            .saturating_mul(1 << self.failures.min(4))
            .min(RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.hold_until = Some(now + backoff);
    }

    /// The RA returned by the last poll was sent: the next failure retries after 1 s.
    pub fn on_sent(&mut self) {
        self.before_send = None;
        self.failures = 0;
    }

    /// When [`Engine::poll`] next has something to send.
    pub fn next_deadline(&self) -> Instant {
        let due = self
            .s
            .solicited
            .map_or(self.s.next_unsolicited, |t| t.min(self.s.next_unsolicited));
        self.hold_until.map_or(due, |h| h.max(due))
    }

    /// The final RA at shutdown (RFC 4861 §6.2.5): router lifetime 0, so guests drop
    /// their default route through us at once, and DNS options with lifetime 0.
    pub fn final_ra(&self) -> Vec<u8> {
        encode_ra(&self.cfg, true)
    }

    /// Whether an RA was sent since the start: a final RA is only owed then.
    pub fn has_advertised(&self) -> bool {
        self.s.last_sent.is_some()
    }

    fn earliest_allowed(&self, now: Instant) -> Instant {
        self.s
            .last_sent
            .map_or(now, |t| (t + MIN_DELAY_BETWEEN_RAS).max(now))
    }

    /// Uniform in [MinRtrAdvInterval, MaxRtrAdvInterval], millisecond resolution.
    fn random_interval(&mut self) -> Duration {
        let lo = MIN_RTR_ADV_INTERVAL.as_millis() as u64;
        let hi = MAX_RTR_ADV_INTERVAL.as_millis() as u64;
        Duration::from_millis(lo + self.next_random() % (hi - lo + 1))
    }

    /// splitmix64: enough to spread routers' RAs apart, which is all RFC 4861 asks.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
