//! The DHCPv6 state machine (RFC 8415, IA_NA only).

use crate::stats::Count as _;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;

use dhcproto::v6::{MessageType, Status};

use super::config::{Config, StaticHost, duid_mac};
use super::lease::{LeaseRecord, LeaseState, LeaseTable, LeaseView};
use super::wire::{self, Ia, IaReply, Malformed, Reply, Request};
use crate::config::{LeaseTime, format_client_id, parse_client_id};
use crate::ratelimit::{Bucket, Limiter, Verdict};
use crate::renewal::{self, Grant};

/// One thing for the shell to do, in order: every `Persist` must be durable before any
/// later `Send` of the batch leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append `encode_record(&rec)` to the network's v6 journal and fsync it.
    Persist(LeaseRecord),
    /// A complete DHCPv6 message, for the client that sent the datagram just handled
    /// (its link-local address, port 546, on the bridge).
    Send(Vec<u8>),
    Log(Event),
}

/// Log events, dnsmasq-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Advertise {
        ip: Ipv6Addr,
        duid: String,
    },
    Reply {
        ip: Ipv6Addr,
        duid: String,
        hostname: Option<String>,
    },
    NoAddrs {
        duid: String,
    },
    NoBinding {
        duid: String,
    },
    Confirm {
        duid: String,
        on_link: bool,
    },
    Release {
        ip: Ipv6Addr,
        duid: String,
    },
    Decline {
        ip: Ipv6Addr,
        duid: String,
    },
    Expired {
        ip: Ipv6Addr,
        duid: String,
    },
    /// A static host's address went to its host, taking it from `previous`.
    Revoked {
        ip: Ipv6Addr,
        previous: String,
    },
    Malformed(Malformed),
    Ignored {
        reason: &'static str,
    },
    /// A client over its packet rate: dropped (logged once per episode).
    RateLimited {
        duid: String,
    },
    /// The network's budget of lease changes is spent: a message that would change a
    /// lease was dropped (logged once per dry spell).
    ChangesLimited {
        duid: String,
    },
}

impl Event {
    /// Kinds a stranger can make us log at will; the shell logs them at debug level.
    pub fn is_noisy(&self) -> bool {
        matches!(
            self,
            Event::Malformed(_) | Event::Ignored { .. } | Event::RateLimited { .. }
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Advertise { ip, duid } => write!(f, "DHCPADVERTISE(v6) {ip} {duid}"),
            Event::Reply { ip, duid, hostname } => {
                write!(f, "DHCPREPLY(v6) {ip} {duid}")?;
                if let Some(h) = hostname {
                    write!(f, " {h}")?;
                }
                Ok(())
            }
            Event::NoAddrs { duid } => write!(f, "DHCPv6: no address available for {duid}"),
            Event::NoBinding { duid } => write!(f, "DHCPv6: no binding for {duid}"),
            Event::Confirm { duid, on_link } => write!(
                f,
                "DHCPCONFIRM(v6) {duid}: {}",
                if *on_link { "on link" } else { "not on link" }
            ),
            Event::Release { ip, duid } => write!(f, "DHCPRELEASE(v6) {ip} {duid}"),
            Event::Decline { ip, duid } => write!(f, "DHCPDECLINE(v6) {ip} {duid}"),
            Event::Expired { ip, duid } => write!(f, "DHCPv6 lease {ip} of {duid} expired"),
            Event::Revoked { ip, previous } => write!(
                f,
                "{ip} is reserved for a static host: DHCPv6 lease of {previous} revoked"
            ),
            Event::Malformed(m) => write!(f, "malformed DHCPv6 packet: {m}"),
            Event::Ignored { reason } => write!(f, "ignoring DHCPv6 packet: {reason}"),
            Event::RateLimited { duid } => {
                write!(f, "too many DHCPv6 packets from {duid}: dropping")
            }
            Event::ChangesLimited { duid } => write!(
                f,
                "too many DHCPv6 lease changes on this network: dropping the message of {duid} (logged once while it lasts)"
            ),
        }
    }
}

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

/// T1 = ½, T2 = ⅞ of the lease, lifetime = the lease (all infinite for an infinite one).
fn times(lease: LeaseTime) -> (u32, u32, u32) {
    match lease {
        LeaseTime::Finite(s) => (s / 2, (u64::from(s) * 7 / 8) as u32, s),
        LeaseTime::Infinite => (u32::MAX, u32::MAX, u32::MAX),
    }
}

/// A client's IA to bind to `ip`: the client's DUID, its static host, the name it sent.
#[derive(Clone, Copy)]
struct Bind<'a> {
    duid: &'a str,
    iaid: u32,
    ip: Ipv6Addr,
    host: Option<&'a StaticHost>,
    name: Option<&'a str>,
}

impl<'a> Bind<'a> {
    fn new(
        duid: &'a str,
        ia: &Ia,
        ip: Ipv6Addr,
        host: Option<&'a StaticHost>,
        name: Option<&'a str>,
    ) -> Bind<'a> {
        Bind {
            duid,
            iaid: ia.iaid,
            ip,
            host,
            name,
        }
    }
}

/// An IA bound to `ip` for `lease`.
fn ia_addrs(iaid: u32, lease: LeaseTime, ip: Ipv6Addr) -> IaReply {
    let (t1, t2, life) = times(lease);
    IaReply::Addrs {
        iaid,
        t1,
        t2,
        addrs: vec![(ip, life)],
    }
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

    /// By DUID first, then by the name the client sent — only for hosts without a DUID:
    /// a reservation for a DUID belongs to that client alone.
    fn host(&self, client: &[u8], name: Option<&str>) -> Option<StaticHost> {
        self.cfg
            .hosts
            .iter()
            .find(|h| h.duid.as_deref() == Some(client))
            .or_else(|| {
                let name = name?;
                self.cfg.hosts.iter().find(|h| {
                    h.duid.is_none()
                        && h.name.as_deref().is_some_and(|n| {
                            let n = n.to_ascii_lowercase();
                            n == name || n.split('.').next() == Some(name)
                        })
                })
            })
            .cloned()
    }

    fn declined(&self, ip: Ipv6Addr, now: u64) -> bool {
        self.declined.get(&ip).is_some_and(|&t| t > now)
    }

    /// Whether `ip` may go to the client's IA: not ours, not reserved for a static host,
    /// declined, leased or advertised to another.
    fn free_for(&self, ip: Ipv6Addr, duid: &str, iaid: u32, now: u64) -> bool {
        ip != self.cfg.server_ip
            && !self.cfg.hosts.iter().any(|h| h.ip == Some(ip))
            && !self.declined(ip, now)
            && self
                .leases
                .get(ip)
                .is_none_or(|r| !r.is_active(now) || r.is_of(duid, iaid))
            && self
                .offers
                .get(&ip)
                .is_none_or(|o| o.until <= now || (o.duid == duid && o.iaid == iaid))
    }

    /// The client's active binding for the IA.
    fn binding(&self, duid: &str, iaid: u32, now: u64) -> Option<Ipv6Addr> {
        self.leases
            .iter()
            .find(|r| r.is_of(duid, iaid) && r.is_active(now))
            .map(|r| r.ip_address)
    }

    /// The address for the client's IA: its static address, its binding, its offer,
    /// an address it asked for, the one it had before, else the first free one.
    fn choose(&self, now: u64, duid: &str, ia: &Ia, host: Option<&StaticHost>) -> Option<Ipv6Addr> {
        if let Some(ip) = host.and_then(|h| h.ip) {
            return (!self.declined(ip, now)).then_some(ip);
        }
        let usable = |ip: Ipv6Addr| self.cfg.in_range(ip) && self.free_for(ip, duid, ia.iaid, now);
        if let Some(ip) = self.binding(duid, ia.iaid, now).filter(|&ip| usable(ip)) {
            return Some(ip);
        }
        let offered = self
            .offers
            .iter()
            .find(|(_, o)| o.duid == duid && o.iaid == ia.iaid && o.until > now)
            .map(|(ip, _)| *ip);
        if let Some(ip) = offered.filter(|&ip| usable(ip)) {
            return Some(ip);
        }
        if let Some(&ip) = ia.addrs.iter().find(|&&ip| usable(ip)) {
            return Some(ip);
        }
        let before = self
            .leases
            .iter()
            .filter(|r| r.is_of(duid, ia.iaid))
            .map(|r| r.ip_address)
            .find(|&ip| usable(ip));
        if before.is_some() {
            return before;
        }
        // Every unusable address stands for a lease, offer, quarantine or host, so the
        // scan ends after at most that many steps past the first free address.
        for r in &self.cfg.own_ranges() {
            let (mut a, end) = (u128::from(r.start), u128::from(r.end));
            while a <= end {
                if self.free_for(Ipv6Addr::from(a), duid, ia.iaid, now) {
                    return Some(Ipv6Addr::from(a));
                }
                a += 1;
            }
        }
        None
    }

    fn lease_time(&self, ip: Ipv6Addr, host: Option<&StaticHost>) -> LeaseTime {
        host.and_then(|h| h.lease)
            .unwrap_or_else(|| self.cfg.range_lease(ip))
    }

    /// Record the binding (after releasing what it displaces) and return the IA reply.
    fn bind(&mut self, now: u64, b: Bind, out: &mut Vec<Effect>) -> IaReply {
        let Bind {
            duid,
            iaid,
            ip,
            host,
            name,
        } = b;
        let lease = self.lease_time(ip, host);
        let hostname = host
            .and_then(|h| h.name.clone())
            .or_else(|| name.map(str::to_string));
        if let Grant::Reuse(t) = self.grant_kind(now, b) {
            self.offers.remove(&ip);
            out.push(Effect::Log(Event::Reply {
                ip,
                duid: duid.to_string(),
                hostname,
            }));
            return ia_addrs(iaid, t, ip);
        }
        let mut freed = Vec::new();
        for r in self.leases.iter() {
            let other_holder = r.ip_address == ip && !r.is_of(duid, iaid);
            let moved = r.ip_address != ip && r.is_of(duid, iaid);
            if r.is_active(now) && (other_holder || moved) {
                if other_holder {
                    out.push(Effect::Log(Event::Revoked {
                        ip,
                        previous: r.duid.clone(),
                    }));
                }
                freed.push(LeaseRecord {
                    state: LeaseState::Released,
                    expiry_time: now,
                    ..r.clone()
                });
            }
        }
        for rec in freed {
            self.leases.record(rec.clone());
            out.push(Effect::Persist(rec));
        }
        let rec = LeaseRecord {
            ip_address: ip,
            duid: duid.to_string(),
            iaid,
            hostname: hostname.clone(),
            expiry_time: lease.expiry(now),
            state: LeaseState::Bound,
        };
        self.leases.record(rec.clone());
        self.offers.remove(&ip);
        out.push(Effect::Persist(rec));
        out.push(Effect::Log(Event::Reply {
            ip,
            duid: duid.to_string(),
            hostname,
        }));
        ia_addrs(iaid, lease, ip)
    }

    /// How binding `ip` to the IA would be granted (the renewal rule): from the record
    /// when the IA holds it, durable and unchanged but for its expiry, and holds no other.
    fn grant_kind(&self, now: u64, b: Bind) -> Grant {
        let hostname = b.host.and_then(|h| h.name.as_deref()).or(b.name);
        let held = |r: &LeaseRecord| r.is_active(now) && r.is_of(b.duid, b.iaid);
        let moved = self.leases.iter().any(|r| held(r) && r.ip_address != b.ip);
        let unchanged = self
            .leases
            .get(b.ip)
            .filter(|r| held(r) && !moved && r.hostname.as_deref() == hostname)
            .filter(|_| self.leases.is_recorded(b.ip))
            .map(|r| r.expiry_time);
        renewal::grant(unchanged, self.lease_time(b.ip, b.host), now)
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

    fn no_addrs(iaid: u32) -> IaReply {
        IaReply::Status {
            iaid,
            status: Status::NoAddrsAvail,
            msg: "no addresses available",
        }
    }

    /// Solicit: advertise an address per IA (held for `offer_hold`), or bind it at once
    /// with Rapid Commit.
    fn solicit(&mut self, now: u64, req: &Request, client: &[u8], duid: &str) -> Vec<Effect> {
        self.assign(now, req, client, duid, req.rapid_commit)
    }

    /// Request: bind an address per IA (the advertised one when still free).
    fn request(&mut self, now: u64, req: &Request, client: &[u8], duid: &str) -> Vec<Effect> {
        self.assign(now, req, client, duid, true)
    }

    /// An address per IA of `req`: bound, answered with a Reply (that echoes Rapid Commit
    /// to a Solicit), or else advertised.
    fn assign(
        &mut self,
        now: u64,
        req: &Request,
        client: &[u8],
        duid: &str,
        bind: bool,
    ) -> Vec<Effect> {
        let host = self.host(client, req.name.as_deref());
        if bind {
            let name = req.name.as_deref();
            let change = req.ia_na.iter().any(|ia| {
                self.choose(now, duid, ia, host.as_ref()).is_some_and(|ip| {
                    let b = Bind::new(duid, ia, ip, host.as_ref(), name);
                    self.grant_kind(now, b) == Grant::Change
                })
            });
            if change && let Err(dropped) = self.take_change(now, duid) {
                return dropped;
            }
        }
        let mut out = Vec::new();
        let mut reply = Reply::new(if bind {
            MessageType::Reply
        } else {
            MessageType::Advertise
        });
        reply.rapid_commit = bind && req.msg_type == wire::SOLICIT;
        reply.ia_ta = req.ia_ta.clone();
        for ia in &req.ia_na {
            let Some(ip) = self.choose(now, duid, ia, host.as_ref()) else {
                out.push(Effect::Log(Event::NoAddrs {
                    duid: duid.to_string(),
                }));
                reply.ias.push(Self::no_addrs(ia.iaid));
                continue;
            };
            if bind {
                let b = Bind::new(duid, ia, ip, host.as_ref(), req.name.as_deref());
                let r = self.bind(now, b, &mut out);
                reply.ias.push(r);
                continue;
            }
            self.offers.insert(
                ip,
                Offer {
                    duid: duid.to_string(),
                    iaid: ia.iaid,
                    until: now.saturating_add(self.cfg.offer_hold),
                },
            );
            let (t1, t2, life) = times(self.lease_time(ip, host.as_ref()));
            reply.ias.push(IaReply::Addrs {
                iaid: ia.iaid,
                t1,
                t2,
                addrs: vec![(ip, life)],
            });
            out.push(Effect::Log(Event::Advertise {
                ip,
                duid: duid.to_string(),
            }));
        }
        out.push(self.encode(req, reply));
        out
    }

    /// Renew and Rebind: extend the IA's binding. Without one, an address the client
    /// names is bound again when it is still free for it (RFC 8415 §18.3.4 allows this,
    /// and it lets a client keep its address past an expiry); else NoBinding. Other
    /// addresses the client names are returned with lifetimes 0.
    fn renew(&mut self, now: u64, req: &Request, client: &[u8], duid: &str) -> Vec<Effect> {
        let host = self.host(client, req.name.as_deref());
        let name = req.name.as_deref();
        let change = req.ia_na.iter().any(|ia| {
            self.renewed(now, duid, ia, host.as_ref())
                .is_some_and(|ip| {
                    let b = Bind::new(duid, ia, ip, host.as_ref(), name);
                    self.grant_kind(now, b) == Grant::Change
                })
        });
        if change && let Err(dropped) = self.take_change(now, duid) {
            return dropped;
        }
        let mut out = Vec::new();
        let mut reply = Reply::new(MessageType::Reply);
        reply.ia_ta = req.ia_ta.clone();
        for ia in &req.ia_na {
            let Some(ip) = self.renewed(now, duid, ia, host.as_ref()) else {
                out.push(Effect::Log(Event::NoBinding {
                    duid: duid.to_string(),
                }));
                reply.ias.push(IaReply::Status {
                    iaid: ia.iaid,
                    status: Status::NoBinding,
                    msg: "no binding for this IA",
                });
                continue;
            };
            let b = Bind::new(duid, ia, ip, host.as_ref(), req.name.as_deref());
            let mut r = self.bind(now, b, &mut out);
            if let IaReply::Addrs { addrs, .. } = &mut r {
                addrs.extend(ia.addrs.iter().filter(|&&a| a != ip).map(|&a| (a, 0)));
            }
            reply.ias.push(r);
        }
        out.push(self.encode(req, reply));
        out
    }

    /// The address a Renew or Rebind of `ia` keeps: the host's, the IA's binding, else
    /// one it names that is still free for it.
    fn renewed(
        &self,
        now: u64,
        duid: &str,
        ia: &Ia,
        host: Option<&StaticHost>,
    ) -> Option<Ipv6Addr> {
        match host.and_then(|h| h.ip) {
            Some(ip) => (!self.declined(ip, now)).then_some(ip),
            None => {
                self.binding(duid, ia.iaid, now)
                    .filter(|&ip| self.cfg.in_range(ip))
                    .or_else(|| {
                        ia.addrs.iter().copied().find(|&ip| {
                            self.cfg.in_range(ip) && self.free_for(ip, duid, ia.iaid, now)
                        })
                    })
            }
        }
    }

    fn confirm(&mut self, req: &Request, duid: &str) -> Vec<Effect> {
        let addrs: Vec<Ipv6Addr> = req.ia_na.iter().flat_map(|i| i.addrs.clone()).collect();
        if addrs.is_empty() {
            // RFC 8415 §18.3.3: nothing to confirm, no reply.
            return vec![Effect::Log(Event::Ignored {
                reason: "Confirm without addresses",
            })];
        }
        let on_link = addrs.iter().all(|a| self.cfg.prefix.contains(a));
        let mut reply = Reply::new(MessageType::Reply);
        reply.status = Some(if on_link {
            (Status::Success, "all addresses on link")
        } else {
            (Status::NotOnLink, "addresses not on link")
        });
        vec![
            Effect::Log(Event::Confirm {
                duid: duid.to_string(),
                on_link,
            }),
            self.encode(req, reply),
        ]
    }

    /// Release frees the client's addresses; Decline also quarantines them.
    fn release(&mut self, now: u64, req: &Request, duid: &str) -> Vec<Effect> {
        let decline = req.msg_type == wire::DECLINE;
        let change = req.ia_na.iter().any(|ia| {
            ia.addrs.iter().any(|&ip| {
                self.leases
                    .get(ip)
                    .is_some_and(|r| r.is_of(duid, ia.iaid) && r.state == LeaseState::Bound)
            })
        });
        if change && let Err(dropped) = self.take_change(now, duid) {
            return dropped;
        }
        let mut out = Vec::new();
        let mut reply = Reply::new(MessageType::Reply);
        for ia in &req.ia_na {
            let mut found = false;
            for &ip in &ia.addrs {
                let Some(r) = self.leases.get(ip).filter(|r| r.is_of(duid, ia.iaid)) else {
                    continue;
                };
                found = true;
                if decline {
                    self.declined
                        .insert(ip, now.saturating_add(self.cfg.decline_quarantine));
                }
                if r.state == LeaseState::Bound {
                    let rec = LeaseRecord {
                        state: LeaseState::Released,
                        expiry_time: now,
                        ..r.clone()
                    };
                    self.leases.record(rec.clone());
                    out.push(Effect::Persist(rec));
                }
                let duid = duid.to_string();
                out.push(Effect::Log(if decline {
                    Event::Decline { ip, duid }
                } else {
                    Event::Release { ip, duid }
                }));
            }
            if !found {
                reply.ias.push(IaReply::Status {
                    iaid: ia.iaid,
                    status: Status::NoBinding,
                    msg: "no binding for this IA",
                });
            }
        }
        reply.status = Some((Status::Success, "done"));
        out.push(self.encode(req, reply));
        out
    }

    fn information(&self, req: &Request) -> Vec<Effect> {
        vec![self.encode(req, Reply::new(MessageType::Reply))]
    }
}
