//! The DHCPv4 state machine (RFC 2131) for one subnet: the server's state and entry
//! points here; `messages` answers each client message, `pool` decides which address a
//! client may have, `offers` holds who asked and what was offered, `reply` builds the
//! replies.

use crate::stats::Count as _;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode, UnknownOption};
use kvnet_model::MacAddr;

use crate::config::{Config, LeaseTime, StaticHost, format_client_id};
use crate::event::{Destination, Effect, Event};
use crate::fqdn;
use crate::lease::{LeaseRecord, LeaseState, LeaseTable, LeaseView};
use crate::ratelimit::{Bucket, Limiter, Verdict};
use crate::renewal::{self, Grant};
use crate::wire::{self, Reply, Request};

/// Noisy log events allowed per window before they are summarised.
const LOG_BURST: u64 = 20;
const LOG_WINDOW: u64 = 10;
/// An exhausted pool is reported again after this many seconds.
const EXHAUSTED_RELOG: u64 = 60;
/// How long an offer stays its client's even when the pool is full (seconds): clients
/// REQUEST within milliseconds; this keeps two clients from taking one address from
/// each other in turn.
const OFFER_MIN_HOLD: u64 = 3;
/// The shortest lease a client's option 51 gets (libvirt's floor, in seconds).
const MIN_LEASE: u32 = 120;

mod messages;
mod offers;
mod pool;
mod reply;

use offers::{Client, Offer, Offers};
use pool::Refusal;

/// The DHCP server for one network's IPv4 subnet. Pure: time comes in as `now`
/// (unix seconds) on every call, packets come in as bytes, decisions go out as [`Effect`]s.
#[derive(Debug, Clone)]
pub struct Server {
    cfg: Config,
    leases: LeaseTable,
    offers: Offers,
    quarantine: HashMap<Ipv4Addr, u64>,
    in_use: HashMap<Ipv4Addr, (MacAddr, u64)>,
    buckets: Limiter<MacAddr>,
    /// The network's budget of lease changes (`Config::change_rate`).
    changes: Bucket,
    log_window: u64,
    log_count: u64,
    log_suppressed: u64,
    /// When "no address available" was last logged: once per exhaustion, not once per
    /// DISCOVER, and again after [`EXHAUSTED_RELOG`] if it lasts.
    exhausted_logged: Option<u64>,
    /// Leases expiring at or before this were already reported by `expire`.
    expired_upto: u64,
    /// Per range: every address below this one has a lease record, so the search for a
    /// never-used address starts here instead of rescanning the leased part.
    fresh_from: Vec<u32>,
    stats: crate::Stats,
}

impl Server {
    /// A server over `table` (typically `replay` of the network's journal). Records that
    /// the configuration can no longer serve (outside the subnet, or our own address)
    /// are dropped from memory; clients holding them get a NAK when they renew.
    pub fn new(cfg: Config, table: LeaseTable) -> Server {
        let changes = Bucket::new(cfg.change_rate, 0);
        let mut s = Server {
            cfg,
            leases: table,
            offers: Offers::default(),
            quarantine: HashMap::new(),
            in_use: HashMap::new(),
            buckets: Limiter::default(),
            changes,
            log_window: 0,
            log_count: 0,
            log_suppressed: 0,
            exhausted_logged: None,
            expired_upto: 0,
            fresh_from: Vec::new(),
            stats: crate::Stats::default(),
        };
        s.prune();
        s
    }

    /// Swap in a new configuration (e.g. after `net-update`), keeping leases, offers and
    /// conflict state.
    pub fn reconfigure(&mut self, cfg: Config) {
        self.cfg = cfg;
        self.prune();
    }

    fn prune(&mut self) {
        let cfg = &self.cfg;
        self.leases.retain(|r| cfg.assignable(r.ip_address));
        self.offers.retain(|ip, _| cfg.assignable(*ip));
        // Records may be gone and ranges may differ: search from each range's start.
        self.fresh_from.clear();
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How many leases are bound at `now`, without listing them.
    pub fn active_leases(&self, now: u64) -> usize {
        self.leases.iter().filter(|r| r.is_active(now)).count()
    }

    /// What this server did since it started.
    pub fn stats(&self) -> &crate::Stats {
        &self.stats
    }

    /// The lease table as it stands (what `compact` should write).
    pub fn table(&self) -> &LeaseTable {
        &self.leases
    }

    /// The shell's report on its journal write of the `Persist`s returned since the last
    /// report: `true` once they are durable, `false` if the write failed (the replies
    /// that needed them were dropped). On failure the table goes back to what the
    /// journal holds, so that nothing is later promised from a record the journal lacks.
    /// A record is only reused by a renewal (the renewal rule) once reported durable.
    pub fn recorded(&mut self, durable: bool) {
        if self.leases.settle(durable) {
            // Records may be back that the configuration changed since, and addresses
            // may be unleased again: as after a reconfiguration.
            self.prune();
        }
    }

    /// Give the table back, e.g. to keep it across a network stop/start.
    pub fn into_table(self) -> LeaseTable {
        self.leases
    }

    /// Active leases at `now`, for `net-dhcp-leases`.
    pub fn leases(&self, now: u64) -> Vec<LeaseView> {
        let prefix = self.cfg.subnet.prefix_len();
        self.leases
            .iter()
            .filter(|r| r.is_active(now))
            .map(|r| LeaseView {
                expiry_time: r.expiry_time,
                mac_address: r.mac_address,
                ip_address: r.ip_address,
                prefix,
                hostname: r.hostname.clone(),
                client_id: r.client_id.clone(),
            })
            .collect()
    }

    /// The earliest time at which `expire` has something to do, for the shell's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        let leases = self
            .leases
            .iter()
            .filter(|r| r.state == LeaseState::Bound && r.expiry_time > self.expired_upto)
            .map(|r| r.expiry_time);
        let offers = self.offers.until();
        let quarantine = self.quarantine.values().copied();
        let in_use = self.in_use.values().map(|(_, t)| *t);
        leases.chain(offers).chain(quarantine).chain(in_use).min()
    }

    /// Housekeeping at `now`: forget stale offers, quarantines and sightings, and report
    /// leases that ran out. Expiry needs no journal write: the record already carries its
    /// expiry time, and an expired lease is free for reuse (oldest first) on replay too.
    pub fn expire(&mut self, now: u64) -> Vec<Effect> {
        self.offers.retain(|_, o| o.until > now);
        self.quarantine.retain(|_, t| *t > now);
        self.in_use.retain(|_, (_, t)| *t > now);
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
                    mac: r.mac_address,
                })
            })
            .collect::<Vec<_>>();
        self.expired_upto = self.expired_upto.max(now);
        self.count(&out);
        out
    }

    /// The shell saw `mac` using `ip` on the bridge (ARP, neighbour table, traffic).
    /// The address is avoided for `in_use_hold` seconds; if it was offered or leased to
    /// another machine, that offer or lease is abandoned (the holder's next renewal is
    /// NAKed and its next DISCOVER gets another address).
    pub fn note_in_use(&mut self, ip: Ipv4Addr, mac: MacAddr, now: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.cfg.assignable(ip) {
            return out;
        }
        if let Some(rec) = self.leases.get(ip)
            && rec.is_active(now)
            && rec.mac_address == mac
        {
            return out;
        }
        self.in_use
            .insert(ip, (mac, now.saturating_add(self.cfg.in_use_hold)));
        if let Some(o) = self.offers.get(&ip)
            && o.mac != mac
        {
            let holder = o.mac;
            self.offers.remove(&ip);
            out.push(Effect::Log(Event::Conflict {
                ip,
                holder,
                seen: mac,
            }));
        }
        if let Some(rec) = self.leases.get(ip)
            && rec.is_active(now)
        {
            let holder = rec.mac_address;
            out.extend(self.free(ip, now));
            out.push(Effect::Log(Event::Conflict {
                ip,
                holder,
                seen: mac,
            }));
        }
        self.count(&out);
        out
    }

    /// Handle one datagram received on port 67 of this network's bridge.
    pub fn handle(&mut self, now: u64, bytes: &[u8]) -> Vec<Effect> {
        let out = self.dispatch(now, bytes);
        self.count(&out);
        out
    }

    fn dispatch(&mut self, now: u64, bytes: &[u8]) -> Vec<Effect> {
        let mut out = Vec::new();
        let req = match wire::parse(bytes) {
            Ok(r) => r,
            Err(m) => {
                self.log(&mut out, now, Event::Malformed(m));
                return out;
            }
        };
        if !self.take_token(&mut out, now, req.mac) {
            return out;
        }
        let giaddr = req.msg.giaddr();
        if !giaddr.is_unspecified() && !self.cfg.subnet.contains(&giaddr) {
            let ev = Event::Ignored {
                mac: req.mac,
                reason: "relayed from another subnet",
            };
            self.log(&mut out, now, ev);
            return out;
        }
        let client = Client::of(&req);
        self.stats.received(match req.msg_type {
            MessageType::Discover => "discover",
            MessageType::Request => "request",
            MessageType::Release => "release",
            MessageType::Decline => "decline",
            MessageType::Inform => "inform",
            _ => "other",
        });
        match req.msg_type {
            MessageType::Discover => self.discover(&mut out, now, &req, &client),
            MessageType::Request => self.request(&mut out, now, &req, &client),
            MessageType::Release => self.release(&mut out, now, &req, &client),
            MessageType::Decline => self.decline(&mut out, now, &req, &client),
            MessageType::Inform => self.inform(&mut out, now, &req, &client),
            _ => {}
        }
        if self.cfg.log_dhcp {
            self.log_exchange(&mut out, now, &req, &client);
        }
        out
    }

    /// `log-dhcp`: what the client asked for and what each reply carries.
    fn log_exchange(&self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        let request = match req.msg_type {
            MessageType::Discover => "DHCPDISCOVER",
            MessageType::Request => "DHCPREQUEST",
            MessageType::Release => "DHCPRELEASE",
            MessageType::Decline => "DHCPDECLINE",
            MessageType::Inform => "DHCPINFORM",
            _ => "DHCP",
        };
        let known = self.host_for(c, now).is_some();
        let asked = wire::requested(&req.msg);
        let replies: Vec<Vec<u8>> = out
            .iter()
            .filter_map(|e| match e {
                Effect::Send { bytes, .. } => Some(wire::option_codes(bytes)),
                _ => None,
            })
            .collect();
        // A message without a reply (RELEASE, DECLINE) is logged with none.
        let replies = if replies.is_empty() {
            vec![Vec::new()]
        } else {
            replies
        };
        for sent in replies {
            out.push(Effect::Log(Event::Exchange {
                mac: c.mac,
                request,
                known,
                asked: asked.clone(),
                sent,
            }));
        }
    }

    /// Per-client token bucket; when it runs dry the packet is dropped, and that is
    /// logged once per dry spell.
    fn take_token(&mut self, out: &mut Vec<Effect>, now: u64, mac: MacAddr) -> bool {
        match self.buckets.take(self.cfg.rate, mac, now) {
            Verdict::Pass => true,
            Verdict::Drop { log } => {
                if log {
                    self.log(out, now, Event::RateLimited { mac });
                }
                false
            }
        }
    }

    /// A token from the network's budget of lease changes; without one the request is
    /// dropped (the client retries), logged once per dry spell.
    fn take_change(&mut self, out: &mut Vec<Effect>, now: u64, mac: MacAddr) -> bool {
        match self.changes.take(self.cfg.change_rate, now) {
            Verdict::Pass => true,
            Verdict::Drop { log } => {
                if log {
                    self.log(out, now, Event::ChangesLimited { mac });
                }
                false
            }
        }
    }

    /// Emit a log event, applying the shared rate limit to noisy kinds.
    fn log(&mut self, out: &mut Vec<Effect>, now: u64, ev: Event) {
        if !ev.is_noisy() {
            out.push(Effect::Log(ev));
            return;
        }
        if now >= self.log_window.saturating_add(LOG_WINDOW) {
            self.log_window = now;
            self.log_count = 0;
            if self.log_suppressed > 0 {
                out.push(Effect::Log(Event::Suppressed {
                    count: self.log_suppressed,
                }));
                self.log_suppressed = 0;
            }
        }
        if self.log_count < LOG_BURST {
            self.log_count += 1;
            out.push(Effect::Log(ev));
        } else {
            // Not in the output, so counted here.
            self.stats.v4(&ev);
            self.log_suppressed += 1;
        }
    }

    /// Counts the events of a call's output.
    fn count(&mut self, out: &[Effect]) {
        for e in out {
            if let Effect::Log(ev) = e {
                self.stats.v4(ev);
            }
        }
    }
}
