//! The DHCPv4 state machine (RFC 2131) for one subnet.

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

/// Who is asking: MAC, and option 61 in libvirt's text form when sent.
#[derive(Debug, Clone)]
struct Client {
    mac: MacAddr,
    id: Option<String>,
    id_raw: Option<Vec<u8>>,
    hostname: Option<String>,
}

impl Client {
    fn of(req: &Request) -> Client {
        Client {
            mac: req.mac,
            id: req.client_id.as_deref().map(format_client_id),
            id_raw: req.client_id.clone(),
            hostname: req.hostname.clone(),
        }
    }

    fn owns(&self, rec: &LeaseRecord) -> bool {
        rec.belongs_to(self.mac, self.id.as_deref())
    }
}

#[derive(Debug, Clone)]
struct Offer {
    mac: MacAddr,
    client_id: Option<String>,
    until: u64,
}

impl Offer {
    fn for_client(&self, c: &Client) -> bool {
        match (&self.client_id, &c.id) {
            (Some(a), Some(b)) => a == b,
            _ => self.mac == c.mac,
        }
    }
}

/// Pending offers by address, indexed by client like [`LeaseTable`], so that a client's
/// offer is found without a scan. Also remembers the addresses whose offers went away,
/// for the search of never-used addresses.
#[derive(Debug, Clone, Default)]
struct Offers {
    by_ip: HashMap<Ipv4Addr, Offer>,
    by_mac: HashMap<MacAddr, BTreeSet<Ipv4Addr>>,
    by_id: HashMap<String, BTreeSet<Ipv4Addr>>,
    dropped: Vec<Ipv4Addr>,
}

impl Offers {
    fn get(&self, ip: &Ipv4Addr) -> Option<&Offer> {
        self.by_ip.get(ip)
    }

    fn until(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_ip.values().map(|o| o.until)
    }

    /// The address of the oldest offer (every offer is held as long, so the first to
    /// run out) made to a client other than `c`, if it runs out by `until`.
    fn oldest_not_for(&self, c: &Client, until: u64) -> Option<Ipv4Addr> {
        self.by_ip
            .iter()
            .filter(|(_, o)| !o.for_client(c) && o.until <= until)
            .min_by_key(|(ip, o)| (o.until, **ip))
            .map(|(ip, _)| *ip)
    }

    fn insert(&mut self, ip: Ipv4Addr, o: Offer) {
        self.remove(&ip);
        self.by_mac.entry(o.mac).or_default().insert(ip);
        if let Some(id) = &o.client_id {
            self.by_id.entry(id.clone()).or_default().insert(ip);
        }
        self.by_ip.insert(ip, o);
    }

    fn remove(&mut self, ip: &Ipv4Addr) -> Option<Offer> {
        let o = self.by_ip.remove(ip)?;
        unindex(&mut self.by_mac, &o.mac, ip);
        if let Some(id) = &o.client_id {
            unindex(&mut self.by_id, id, ip);
        }
        self.dropped.push(*ip);
        Some(o)
    }

    /// The addresses offered to `c` (`Offer::for_client`).
    fn of_client(&self, c: &Client) -> Vec<Ipv4Addr> {
        // Matching is by client id when both have one, else by MAC: the union of the two
        // index entries holds every candidate.
        let mut ips = self.by_mac.get(&c.mac).cloned().unwrap_or_default();
        if let Some(set) = c.id.as_ref().and_then(|id| self.by_id.get(id)) {
            ips.extend(set);
        }
        ips.into_iter()
            .filter(|ip| self.by_ip.get(ip).is_some_and(|o| o.for_client(c)))
            .collect()
    }

    fn remove_client(&mut self, c: &Client) {
        for ip in self.of_client(c) {
            self.remove(&ip);
        }
    }

    fn retain(&mut self, mut f: impl FnMut(&Ipv4Addr, &Offer) -> bool) {
        let gone: Vec<Ipv4Addr> = self
            .by_ip
            .iter()
            .filter(|(ip, o)| !f(ip, o))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in gone {
            self.remove(&ip);
        }
    }
}

fn unindex<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, BTreeSet<Ipv4Addr>>,
    key: &K,
    ip: &Ipv4Addr,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(ip);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// Why an address cannot go to a client; the NAK message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongNetwork,
    NotInRange,
    Reserved,
    Taken,
    Offered,
    Declined,
    InUse,
    WrongAddress,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::WrongNetwork => "wrong network",
            Refusal::NotInRange => "address not available",
            Refusal::Reserved => "address reserved",
            Refusal::Taken => "address in use",
            Refusal::Offered => "address offered to another client",
            Refusal::Declined => "address declined",
            Refusal::InUse => "address in use",
            Refusal::WrongAddress => "wrong address",
        }
    }
}

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
        out
    }

    fn discover(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        let host = self.host_for(c, now).cloned();
        let ip = match host.as_ref().and_then(|h| h.ip) {
            Some(ip) => match self.check(ip, c, now) {
                Ok(()) => Some(ip),
                Err(_) => {
                    let ev = Event::StaticUnavailable { ip, mac: c.mac };
                    out.push(Effect::Log(ev));
                    return;
                }
            },
            None => self.allocate(c, req.requested_ip, now),
        };
        let Some(ip) = ip else {
            if self
                .exhausted_logged
                .is_none_or(|t| now >= t.saturating_add(EXHAUSTED_RELOG))
            {
                self.exhausted_logged = Some(now);
                self.log(out, now, Event::PoolExhausted { mac: c.mac });
            }
            return;
        };
        self.exhausted_logged = None;
        let holds = self
            .leases
            .get(ip)
            .is_some_and(|r| r.is_active(now) && c.owns(r));
        let offered = self
            .offers
            .get(&ip)
            .is_some_and(|o| o.until > now && o.for_client(c));
        if !holds && !offered {
            // Before the OFFER, so that an answer from a squatter tends to arrive before
            // the client's REQUEST.
            out.push(Effect::Probe(ip));
        }
        self.offers.remove_client(c);
        self.offers.insert(
            ip,
            Offer {
                mac: c.mac,
                client_id: c.id.clone(),
                until: now.saturating_add(self.cfg.offer_hold),
            },
        );
        let lease = self.lease_time(host.as_ref(), ip, req.lease_time);
        let name = host.as_ref().and_then(|h| h.name.clone());
        let names = name.map(DhcpOption::Hostname).into_iter().collect();
        let bytes = self.address_reply(req, MessageType::Offer, ip, Some(lease), c, names);
        out.push(Effect::Send {
            bytes,
            to: destination(req, ip, false),
            after_probe: None,
        });
        out.push(Effect::Log(Event::Offer { ip, mac: c.mac }));
    }

    fn request(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        let ciaddr = req.msg.ciaddr();
        let ip = match req.server_id {
            Some(sid) if sid != self.cfg.server_ip => {
                // The client picked another server's offer: ours is free again.
                self.offers.remove_client(c);
                let ev = Event::Ignored {
                    mac: c.mac,
                    reason: "request for another server",
                };
                self.log(out, now, ev);
                return;
            }
            // SELECTING: the address comes in option 50.
            Some(_) => req
                .requested_ip
                .or((!ciaddr.is_unspecified()).then_some(ciaddr)),
            // INIT-REBOOT: option 50, ciaddr empty.
            None if ciaddr.is_unspecified() => req.requested_ip,
            // RENEWING / REBINDING: the address in use is ciaddr.
            None => Some(ciaddr),
        };
        let Some(ip) = ip else {
            let ev = Event::Ignored {
                mac: c.mac,
                reason: "request without an address",
            };
            self.log(out, now, ev);
            return;
        };
        let host = self.host_for(c, now).cloned();
        let verdict = if !self.cfg.subnet.contains(&ip) {
            Err(Refusal::WrongNetwork)
        } else if host.as_ref().and_then(|h| h.ip).is_some_and(|h| h != ip) {
            // A reserved host only ever holds its reserved address.
            Err(Refusal::WrongAddress)
        } else {
            self.check(ip, c, now)
        };
        match verdict {
            Ok(()) => self.grant(out, now, req, c, ip, host.as_ref()),
            Err(r) => {
                self.offers.remove_client(c);
                let mut opts = vec![
                    DhcpOption::ServerIdentifier(self.cfg.server_ip),
                    DhcpOption::Message(r.message().to_string()),
                ];
                if let Some(id) = &c.id_raw {
                    opts.push(DhcpOption::ClientIdentifier(id.clone()));
                }
                let relayed = !req.msg.giaddr().is_unspecified();
                let bytes = wire::encode_reply(
                    &req.msg,
                    Reply {
                        msg_type: MessageType::Nak,
                        yiaddr: Ipv4Addr::UNSPECIFIED,
                        ciaddr: Ipv4Addr::UNSPECIFIED,
                        siaddr: Ipv4Addr::UNSPECIFIED,
                        file: None,
                        // RFC 2131 4.3.2: a relay must broadcast the NAK to the client.
                        broadcast: relayed,
                        opts,
                    },
                );
                out.push(Effect::Send {
                    bytes,
                    to: destination(req, ip, true),
                    after_probe: None,
                });
                out.push(Effect::Log(Event::Nak {
                    ip,
                    mac: c.mac,
                    reason: r.message(),
                }));
            }
        }
    }

    /// Bind `ip` to the client: journal first, then the ACK.
    fn grant(
        &mut self,
        out: &mut Vec<Effect>,
        now: u64,
        req: &Request,
        c: &Client,
        ip: Ipv4Addr,
        host: Option<&StaticHost>,
    ) {
        let held = self
            .leases
            .get(ip)
            .filter(|r| r.is_active(now) && c.owns(r));
        // A fresh binding: the address may have been probed with the OFFER moments ago,
        // and the ACK must not outrun a squatter's answer.
        let fresh = held.is_none();
        // One client, one address: free any other binding before creating this one, so
        // no prefix of the journal ever shows the client on two addresses.
        let others: Vec<Ipv4Addr> = self
            .leases
            .owned_by(c.mac, c.id.as_deref())
            .into_iter()
            .filter(|r| r.ip_address != ip && r.is_active(now))
            .map(|r| r.ip_address)
            .collect();
        let lease = self.lease_time(host, ip, req.lease_time);
        let static_name = host.and_then(|h| h.name.clone());
        let asked = c.hostname.clone().filter(|n| {
            let admin = static_name.is_none() && self.cfg.is_admin_name(n);
            if admin {
                out.push(Effect::Log(Event::NameRefused {
                    name: n.clone(),
                    mac: c.mac,
                }));
            }
            !admin
        });
        let hostname = static_name.clone().or_else(|| asked.clone()).or_else(|| {
            self.leases
                .get(ip)
                .filter(|r| c.owns(r))
                .and_then(|r| r.hostname.clone())
        });
        let rec = LeaseRecord {
            ip_address: ip,
            mac_address: c.mac,
            client_id: c.id.clone(),
            hostname: hostname.clone(),
            expiry_time: lease.expiry(now),
            state: LeaseState::Bound,
        };
        // The renewal rule: the holder's unchanged, durable binding is renewed from its
        // record early in the lease; anything new spends the network's budget.
        let unchanged = held
            .filter(|r| others.is_empty() && self.leases.is_recorded(ip) && r.same_binding(&rec))
            .map(|r| r.expiry_time);
        let promised = match renewal::grant(unchanged, lease, now) {
            Grant::Reuse(t) => Some(t),
            Grant::Extend => None,
            Grant::Change => {
                if !self.take_change(out, now, c.mac) {
                    return;
                }
                None
            }
        };
        for old in others {
            out.extend(self.free(old, now));
        }
        // One name, one guest: the newest lease holding a name owns it.
        if static_name.is_none()
            && let Some(name) = &asked
        {
            self.take_name(out, name, c, now);
        }
        if let Some(rec) = self.leases.get(ip)
            && rec.is_active(now)
            && !c.owns(rec)
        {
            // Only a static host's reserved address gets here (`check` refuses the rest).
            let previous = rec.mac_address;
            out.extend(self.free(ip, now));
            out.push(Effect::Log(Event::Revoked { ip, previous }));
        }
        let lease = match promised {
            Some(t) => t,
            None => {
                self.leases.record(rec.clone());
                out.push(Effect::Persist(rec));
                lease
            }
        };
        self.offers.remove_client(c);
        self.offers.remove(&ip);
        // RFC 4702: a client that sent option 81 gets it back, with the name in use.
        let fqdn = req.fqdn_flags.zip(hostname.as_deref()).map(|(flags, h)| {
            DhcpOption::Unknown(UnknownOption::new(
                OptionCode::ClientFQDN,
                fqdn::answer(flags, h, self.cfg.domain.as_deref()),
            ))
        });
        let names = static_name
            .map(DhcpOption::Hostname)
            .into_iter()
            .chain(fqdn)
            .collect();
        let bytes = self.address_reply(req, MessageType::Ack, ip, Some(lease), c, names);
        out.push(Effect::Send {
            bytes,
            to: destination(req, ip, false),
            after_probe: fresh.then_some(ip),
        });
        out.push(Effect::Log(Event::Ack {
            ip,
            mac: c.mac,
            hostname,
            renewed: !fresh,
        }));
    }

    fn release(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        if req.server_id.is_some_and(|s| s != self.cfg.server_ip) {
            return;
        }
        let ip = req.msg.ciaddr();
        match self.leases.get(ip) {
            Some(rec) if rec.is_active(now) && c.owns(rec) => {
                if !self.take_change(out, now, c.mac) {
                    return;
                }
                out.extend(self.free(ip, now));
                out.push(Effect::Log(Event::Release { ip, mac: c.mac }));
            }
            _ => {
                let ev = Event::Ignored {
                    mac: c.mac,
                    reason: "release of an address it does not hold",
                };
                self.log(out, now, ev);
            }
        }
    }

    fn decline(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        if req.server_id.is_some_and(|s| s != self.cfg.server_ip) {
            return;
        }
        let Some(ip) = req.requested_ip else { return };
        let leased = self
            .leases
            .get(ip)
            .is_some_and(|r| r.is_active(now) && c.owns(r));
        let offered = self.offers.get(&ip).is_some_and(|o| o.for_client(c));
        // Only the holder may take an address out of the pool, or one client could
        // quarantine everything.
        if !leased && !offered {
            let ev = Event::Ignored {
                mac: c.mac,
                reason: "decline of an address it does not hold",
            };
            self.log(out, now, ev);
            return;
        }
        if leased {
            if !self.take_change(out, now, c.mac) {
                return;
            }
            out.extend(self.free(ip, now));
        }
        self.offers.remove(&ip);
        self.quarantine
            .insert(ip, now.saturating_add(self.cfg.decline_quarantine));
        out.push(Effect::Log(Event::Decline { ip, mac: c.mac }));
    }

    fn inform(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
        let ip = req.msg.ciaddr();
        if ip.is_unspecified() || !self.cfg.subnet.contains(&ip) {
            let ev = Event::Ignored {
                mac: c.mac,
                reason: "inform from outside the subnet",
            };
            self.log(out, now, ev);
            return;
        }
        let mut opts = self.common_options();
        if let Some(id) = &c.id_raw {
            opts.push(DhcpOption::ClientIdentifier(id.clone()));
        }
        let bytes = wire::encode_reply(
            &req.msg,
            Reply {
                msg_type: MessageType::Ack,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                ciaddr: ip,
                siaddr: self.cfg.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
                file: self.cfg.boot_file.clone(),
                broadcast: false,
                opts,
            },
        );
        out.push(Effect::Send {
            bytes,
            to: destination(req, ip, false),
            after_probe: None,
        });
        out.push(Effect::Log(Event::Inform { ip, mac: c.mac }));
    }

    /// Mark `ip` released now and return the journal write for it (none if not leased).
    fn free(&mut self, ip: Ipv4Addr, now: u64) -> Option<Effect> {
        let mut rec = self.leases.get(ip)?.clone();
        rec.state = LeaseState::Released;
        rec.expiry_time = now;
        self.leases.record(rec.clone());
        Some(Effect::Persist(rec))
    }

    /// The static host entry for this client: by MAC, then client id, then hostname —
    /// the last only for entries that name neither (libvirt's rule): a reservation for
    /// a MAC or a client id belongs to that client alone, whatever others call
    /// themselves. A name-only entry whose address another client holds under a live
    /// lease does not match either: this client gets a dynamic address, as dnsmasq does.
    fn host_for(&self, c: &Client, now: u64) -> Option<&StaticHost> {
        let hosts = &self.cfg.hosts;
        hosts
            .iter()
            .find(|h| h.mac == Some(c.mac))
            .or_else(|| {
                c.id_raw.as_ref().and_then(|id| {
                    hosts
                        .iter()
                        .find(|h| h.client_id.as_deref() == Some(id.as_slice()))
                })
            })
            .or_else(|| {
                c.hostname.as_deref().and_then(|n| {
                    hosts.iter().find(|h| {
                        Self::by_name_only(h)
                            && h.name
                                .as_deref()
                                .is_some_and(|hn| hn.eq_ignore_ascii_case(n))
                            && !h.ip.is_some_and(|ip| self.held_by_other(ip, c, now))
                    })
                })
            })
    }

    /// Whether `c` may have `ip`, which `h` reserves: it is the host's client, or it holds
    /// the live lease of a name-only reservation (and renews it under any name).
    fn may_have_reserved(&self, h: &StaticHost, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        Self::host_matches(h, c)
            || (Self::by_name_only(h)
                && self
                    .leases
                    .get(ip)
                    .is_some_and(|r| r.is_active(now) && c.owns(r)))
    }

    /// Take `name` from every other client's live lease: their records go on without
    /// it (in the lease listing, and so in DNS).
    fn take_name(&mut self, out: &mut Vec<Effect>, name: &str, c: &Client, now: u64) {
        let holders: Vec<LeaseRecord> = self
            .leases
            .iter()
            .filter(|r| {
                r.is_active(now)
                    && !c.owns(r)
                    && r.hostname
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(name))
            })
            .cloned()
            .collect();
        for mut rec in holders {
            let from = rec.mac_address;
            rec.hostname = None;
            self.leases.record(rec.clone());
            out.push(Effect::Persist(rec));
            out.push(Effect::Log(Event::NameMoved {
                name: name.to_string(),
                from,
                to: c.mac,
            }));
        }
    }

    /// Another client holds `ip` under a live lease.
    fn held_by_other(&self, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        self.leases
            .get(ip)
            .is_some_and(|r| r.is_active(now) && !c.owns(r))
    }

    /// A `<host>` matched by its name alone: it gives neither MAC nor client id.
    fn by_name_only(h: &StaticHost) -> bool {
        h.mac.is_none() && h.client_id.is_none()
    }

    fn host_matches(h: &StaticHost, c: &Client) -> bool {
        h.mac == Some(c.mac)
            || (h.client_id.is_some() && h.client_id == c.id_raw)
            || (Self::by_name_only(h)
                && h.name.as_deref().is_some_and(|hn| {
                    c.hostname
                        .as_deref()
                        .is_some_and(|n| hn.eq_ignore_ascii_case(n))
                }))
    }

    /// May `ip` go to this client now?
    fn check(&self, ip: Ipv4Addr, c: &Client, now: u64) -> Result<(), Refusal> {
        if !self.cfg.assignable(ip) {
            return Err(Refusal::WrongNetwork);
        }
        let reserved = self.cfg.hosts.iter().find(|h| h.ip == Some(ip));
        match reserved {
            Some(h) if !self.may_have_reserved(h, ip, c, now) => return Err(Refusal::Reserved),
            // A name is no proof of identity: whoever holds the address under it keeps
            // it while the lease lives (a MAC or client id reservation may reclaim it).
            Some(h) if Self::by_name_only(h) && self.held_by_other(ip, c, now) => {
                return Err(Refusal::Taken);
            }
            Some(_) => {}
            None => {
                if !self.cfg.in_range(ip) {
                    return Err(Refusal::NotInRange);
                }
                if self.held_by_other(ip, c, now) {
                    return Err(Refusal::Taken);
                }
            }
        }
        if self
            .offers
            .get(&ip)
            .is_some_and(|o| o.until > now && !o.for_client(c))
            && reserved.is_none()
        {
            return Err(Refusal::Offered);
        }
        if self.quarantine.get(&ip).is_some_and(|t| *t > now) {
            return Err(Refusal::Declined);
        }
        if self
            .in_use
            .get(&ip)
            .is_some_and(|(m, t)| *t > now && *m != c.mac)
        {
            return Err(Refusal::InUse);
        }
        Ok(())
    }

    /// A dynamic address for a DISCOVER: the current offer, the client's previous lease,
    /// the requested address, a never-used address, then the longest-free expired one.
    fn allocate(&mut self, c: &Client, requested: Option<Ipv4Addr>, now: u64) -> Option<Ipv4Addr> {
        let found = self.allocate_once(c, requested, now);
        // The search skips addresses under offer; offers that ran out but were not yet
        // dropped by `expire` hide their addresses until then. Drop them and look again,
        // only when the pool looks full.
        if found.is_none() && self.offers.until().any(|t| t <= now) {
            self.offers.retain(|_, o| o.until > now);
            if let Some(ip) = self.allocate_once(c, requested, now) {
                return Some(ip);
            }
        }
        // Still full: clients that DISCOVER and never REQUEST (or one guest cycling MACs)
        // must not lock everyone else out. The oldest offer to another client goes, once
        // it had the seconds a live client needs to REQUEST it.
        let made_before = (now + self.cfg.offer_hold).saturating_sub(OFFER_MIN_HOLD);
        if found.is_none()
            && let Some(ip) = self.offers.oldest_not_for(c, made_before)
        {
            self.offers.remove(&ip);
            return self.allocate_once(c, requested, now);
        }
        found
    }

    fn allocate_once(
        &mut self,
        c: &Client,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        self.advance_fresh(now);
        let ok = |ip: Ipv4Addr| self.check(ip, c, now).is_ok();
        if let Some(ip) = self
            .offers
            .of_client(c)
            .into_iter()
            .find(|ip| self.offers.get(ip).is_some_and(|o| o.until > now) && ok(*ip))
        {
            return Some(ip);
        }
        // Bound before released, then the most recent.
        let previous = self
            .leases
            .owned_by(c.mac, c.id.as_deref())
            .into_iter()
            .filter(|r| ok(r.ip_address))
            .max_by_key(|r| {
                (
                    r.state == LeaseState::Bound,
                    r.expiry_time == 0,
                    r.freed_at(),
                )
            });
        if let Some(r) = previous {
            return Some(r.ip_address);
        }
        if let Some(ip) = requested.filter(|ip| ok(*ip)) {
            return Some(ip);
        }
        for (r, from) in self.cfg.ranges.iter().zip(&self.fresh_from) {
            let e = u32::from(r.end);
            if let Some(ip) = (*from..=e)
                .map(Ipv4Addr::from)
                .find(|ip| self.leases.get(*ip).is_none() && ok(*ip))
            {
                return Some(ip);
            }
        }
        self.leases
            .iter()
            .filter(|r| !r.is_active(now) && ok(r.ip_address))
            .min_by_key(|r| r.freed_at())
            .map(|r| r.ip_address)
    }

    /// Move each range's `fresh_from` past the addresses that have a record or a live
    /// offer. Records are never removed except by `prune`, which resets the hints; an
    /// offer that goes away without a lease moves the hint back to its address.
    fn advance_fresh(&mut self, now: u64) {
        let ranges = &self.cfg.ranges;
        self.fresh_from.resize(ranges.len(), 0);
        // Only offers that did not turn into a lease give an address back; the hint must
        // not go back for the others, or every ACK would cost a rescan.
        let leases = &self.leases;
        let dropped = std::mem::take(&mut self.offers.dropped)
            .into_iter()
            .filter(|ip| leases.get(*ip).is_none())
            .map(u32::from)
            .min();
        for (r, from) in ranges.iter().zip(self.fresh_from.iter_mut()) {
            let (s, e) = (u32::from(r.start), u32::from(r.end));
            let mut ip = (*from).max(s);
            if let Some(d) = dropped.filter(|d| (s..=e).contains(d)) {
                ip = ip.min(d);
            }
            while ip <= e && {
                let a = Ipv4Addr::from(ip);
                self.leases.get(a).is_some() || self.offers.get(&a).is_some_and(|o| o.until > now)
            } {
                ip += 1;
            }
            *from = ip;
        }
    }

    /// The configured lease time, shortened to what the client asked (option 51) as
    /// dnsmasq does, but never below libvirt's two-minute floor.
    fn lease_time(&self, host: Option<&StaticHost>, ip: Ipv4Addr, asked: Option<u32>) -> LeaseTime {
        let configured = host
            .and_then(|h| h.lease)
            .unwrap_or_else(|| self.cfg.range_lease(ip));
        match (configured, asked.map(|a| a.max(MIN_LEASE))) {
            (LeaseTime::Finite(c), Some(a)) => LeaseTime::Finite(c.min(a)),
            (LeaseTime::Infinite, Some(a)) if a != u32::MAX => LeaseTime::Finite(a),
            (c, _) => c,
        }
    }

    /// Options every configured reply carries (RFC 2132), lease options aside.
    fn common_options(&self) -> Vec<DhcpOption> {
        let cfg = &self.cfg;
        let mut opts = vec![
            DhcpOption::ServerIdentifier(cfg.server_ip),
            DhcpOption::SubnetMask(cfg.subnet.netmask()),
            DhcpOption::BroadcastAddr(cfg.subnet.broadcast()),
        ];
        if let Some(r) = cfg.router {
            opts.push(DhcpOption::Router(vec![r]));
        }
        if let Some(d) = cfg.dns_server {
            opts.push(DhcpOption::DomainNameServer(vec![d]));
        }
        if let Some(d) = &cfg.domain {
            opts.push(DhcpOption::DomainName(d.clone()));
        }
        if let Some(m) = cfg.mtu {
            opts.push(DhcpOption::InterfaceMtu(m));
        }
        opts
    }

    fn address_reply(
        &self,
        req: &Request,
        kind: MessageType,
        ip: Ipv4Addr,
        lease: Option<LeaseTime>,
        c: &Client,
        names: Vec<DhcpOption>,
    ) -> Vec<u8> {
        let mut opts = self.common_options();
        opts.extend(names);
        match lease {
            Some(LeaseTime::Finite(s)) => {
                opts.push(DhcpOption::AddressLeaseTime(s));
                opts.push(DhcpOption::Renewal(s / 2));
                opts.push(DhcpOption::Rebinding((u64::from(s) * 7 / 8) as u32));
            }
            // RFC 2131: 0xffffffff is infinity; T1/T2 make no sense then.
            Some(LeaseTime::Infinite) => opts.push(DhcpOption::AddressLeaseTime(u32::MAX)),
            None => {}
        }
        // RFC 6842: echo the client identifier.
        if let Some(id) = &c.id_raw {
            opts.push(DhcpOption::ClientIdentifier(id.clone()));
        }
        let ciaddr = if kind == MessageType::Ack {
            req.msg.ciaddr()
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        wire::encode_reply(
            &req.msg,
            Reply {
                msg_type: kind,
                yiaddr: ip,
                ciaddr,
                siaddr: self.cfg.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
                file: self.cfg.boot_file.clone(),
                broadcast: false,
                opts,
            },
        )
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

/// RFC 2131 §4.1: relay agent first; NAKs broadcast; a configured client by unicast;
/// otherwise broadcast if asked, else to the MAC without ARP.
fn destination(req: &Request, yiaddr: Ipv4Addr, nak: bool) -> Destination {
    let giaddr = req.msg.giaddr();
    let ciaddr = req.msg.ciaddr();
    if !giaddr.is_unspecified() {
        Destination::Relay(giaddr)
    } else if nak {
        Destination::Broadcast
    } else if !ciaddr.is_unspecified() {
        Destination::Unicast(ciaddr)
    } else if req.msg.flags().broadcast() {
        Destination::Broadcast
    } else {
        Destination::Hardware {
            ip: yiaddr,
            mac: req.mac,
        }
    }
}
