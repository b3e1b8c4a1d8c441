//! The DHCPv6 state machine (RFC 8415, IA_NA only): the server's state and entry points
//! here; `messages` answers each client message, `pool` decides which address an IA may
//! have, `bind` records a binding (the renewal rule) and builds its IA.

use crate::stats::Count as _;
use std::collections::HashMap;
use std::net::Ipv6Addr;

use dhcproto::v6::{MessageType, Status};

use super::config::{Config, StaticHost, duid_mac};
use super::event::{Effect, Event};
use super::lease::{LeaseRecord, LeaseState, LeaseTable, LeaseView};
use super::wire::{self, Ia, IaReply, Reply, Request};
use crate::config::{LeaseTime, format_client_id, parse_client_id};
use crate::ratelimit::{Bucket, Limiter, Verdict};
use crate::renewal::{self, Grant};

mod bind;
mod messages;
mod pool;

#[derive(Debug, Clone)]
struct Offer {
    duid: String,
    iaid: u32,
    until: u64,
}

/// The DHCPv6 server of one network's IPv6 prefix.
#[derive(Debug, Clone)]
pub struct Server {
    cfg: Config,
    leases: LeaseTable,
    /// Advertised addresses, held for `offer_hold` seconds.
    offers: HashMap<Ipv6Addr, Offer>,
    /// Declined addresses and when they may be used again.
    declined: HashMap<Ipv6Addr, u64>,
    /// Bound leases expiring at or before this time have been reported.
    expired_upto: u64,
    /// Per-client rate limit, by DUID (clients that send none share one bucket).
    buckets: Limiter<Vec<u8>>,
    /// The network's budget of lease changes (`Config::change_rate`).
    changes: Bucket,
    stats: crate::Stats,
}

impl Server {
    pub fn new(cfg: Config, table: LeaseTable) -> Server {
        Server {
            changes: Bucket::new(cfg.change_rate, 0),
            stats: crate::Stats::default(),
            cfg,
            leases: table,
            offers: HashMap::new(),
            declined: HashMap::new(),
            expired_upto: 0,
            buckets: Limiter::default(),
        }
    }

    /// Apply a changed definition; advertised addresses are forgotten.
    pub fn reconfigure(&mut self, cfg: Config) {
        self.cfg = cfg;
        self.offers.clear();
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn table(&self) -> &LeaseTable {
        &self.leases
    }

    /// The shell's report on its journal write, as for DHCPv4 (`crate::Server::recorded`):
    /// on failure the table goes back to what the journal holds.
    pub fn recorded(&mut self, durable: bool) {
        self.leases.settle(durable);
    }

    /// Active leases at `now`, for `net-dhcp-leases`.
    pub fn leases(&self, now: u64) -> Vec<LeaseView> {
        self.leases
            .iter()
            .filter(|r| r.is_active(now))
            .map(|r| LeaseView {
                expiry_time: r.expiry_time,
                mac_address: parse_client_id(&r.duid).ok().and_then(|d| duid_mac(&d)),
                ip_address: r.ip_address,
                prefix: self.cfg.prefix.prefix_len(),
                hostname: r.hostname.clone(),
                client_id: r.duid.clone(),
                iaid: r.iaid,
            })
            .collect()
    }

    /// The earliest time at which `expire` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let leases = self
            .leases
            .iter()
            .filter(|r| r.state == LeaseState::Bound && r.expiry_time > self.expired_upto)
            .map(|r| r.expiry_time);
        let offers = self.offers.values().map(|o| o.until);
        let declined = self.declined.values().copied();
        leases.chain(offers).chain(declined).min()
    }

    /// Drop stale offers and quarantines, and report leases that ran out. Expiry is not
    /// journalled: records carry their expiry time.
    pub fn expire(&mut self, now: u64) -> Vec<Effect> {
        self.offers.retain(|_, o| o.until > now);
        self.declined.retain(|_, t| *t > now);
        self.buckets.prune(self.cfg.rate, now);
        let from = self.expired_upto;
        let out = self
            .leases
            .iter()
            .filter(|r| {
                r.state == LeaseState::Bound && r.expiry_time > from && r.expiry_time <= now
            })
            .map(|r| {
                Effect::Log(Event::Expired {
                    ip: r.ip_address,
                    duid: r.duid.clone(),
                })
            })
            .collect::<Vec<_>>();
        self.expired_upto = self.expired_upto.max(now);
        self.count(&out);
        out
    }

    /// Handle one datagram received on port 547 at `now` (unix seconds).
    pub fn handle(&mut self, now: u64, bytes: &[u8]) -> Vec<Effect> {
        let out = self.dispatch(now, bytes);
        self.count(&out);
        out
    }

    /// How many leases are bound at `now`, without listing them.
    pub fn active_leases(&self, now: u64) -> usize {
        self.leases.iter().filter(|r| r.is_active(now)).count()
    }

    /// What this server did since it started.
    pub fn stats(&self) -> &crate::Stats {
        &self.stats
    }

    fn count(&mut self, effects: &[Effect]) {
        for e in effects {
            if let Effect::Log(ev) = e {
                self.stats.v6(ev);
            }
        }
    }

    fn dispatch(&mut self, now: u64, bytes: &[u8]) -> Vec<Effect> {
        let req = match wire::parse(bytes) {
            Ok(r) => r,
            Err(m) => return vec![Effect::Log(Event::Malformed(m))],
        };
        self.stats.received(match req.msg_type {
            wire::SOLICIT => "solicit",
            wire::REQUEST => "request",
            wire::RENEW => "renew",
            wire::REBIND => "rebind",
            wire::CONFIRM => "confirm",
            wire::RELEASE => "release",
            wire::DECLINE => "decline",
            wire::INFORMATION_REQUEST => "information-request",
            _ => "other",
        });
        let key = req.client_id.clone().unwrap_or_default();
        if let Verdict::Drop { log } = self.buckets.take(self.cfg.rate, key, now) {
            if !log {
                // Logged once per episode; counted every time.
                self.stats.rate_limited += 1;
                return Vec::new();
            }
            let duid = req.client_id.as_deref().map(format_client_id);
            return vec![Effect::Log(Event::RateLimited {
                duid: duid.unwrap_or_else(|| "-".into()),
            })];
        }
        let ours = req.server_id.as_deref() == Some(&self.cfg.server_duid[..]);
        let ignore = |reason| vec![Effect::Log(Event::Ignored { reason })];
        let Some(client) = req.client_id.clone() else {
            if req.msg_type == wire::INFORMATION_REQUEST && (ours || req.server_id.is_none()) {
                return self.information(&req);
            }
            return ignore("no client identifier");
        };
        let duid = format_client_id(&client);
        match req.msg_type {
            wire::SOLICIT | wire::CONFIRM | wire::REBIND if req.server_id.is_some() => {
                ignore("server identifier in a Solicit, Confirm or Rebind")
            }
            wire::REQUEST | wire::RENEW | wire::RELEASE | wire::DECLINE if !ours => {
                ignore("for another server")
            }
            wire::SOLICIT => self.solicit(now, &req, &client, &duid),
            wire::REQUEST => self.request(now, &req, &client, &duid),
            wire::RENEW | wire::REBIND => self.renew(now, &req, &client, &duid),
            wire::CONFIRM => self.confirm(&req, &duid),
            wire::RELEASE | wire::DECLINE => self.release(now, &req, &duid),
            wire::INFORMATION_REQUEST if ours || req.server_id.is_none() => self.information(&req),
            _ => ignore("not a client message this server answers"),
        }
    }

    fn encode(&self, req: &Request, reply: Reply) -> Effect {
        Effect::Send(wire::encode(
            req,
            reply,
            &self.cfg.server_duid,
            self.cfg.dns_server,
            self.cfg.domain.as_deref(),
        ))
    }

    /// A token from the network's budget of lease changes, or what to answer instead:
    /// nothing (the client retries), logged once per dry spell.
    fn take_change(&mut self, now: u64, duid: &str) -> Result<(), Vec<Effect>> {
        match self.changes.take(self.cfg.change_rate, now) {
            Verdict::Pass => Ok(()),
            Verdict::Drop { log } => Err(if log {
                vec![Effect::Log(Event::ChangesLimited {
                    duid: duid.to_string(),
                })]
            } else {
                Vec::new()
            }),
        }
    }
}
