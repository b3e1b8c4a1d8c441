//! Which address a client may have: static hosts, the checks an address must pass,
//! the search of the ranges, lease times.

use super::*;

/// Why an address cannot go to a client; the NAK message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
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
    pub(super) fn message(self) -> &'static str {
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

impl Server {
    /// Mark `ip` released now and return the journal write for it (none if not leased).
    pub(super) fn free(&mut self, ip: Ipv4Addr, now: u64) -> Option<Effect> {
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
    pub(super) fn host_for(&self, c: &Client, now: u64) -> Option<&StaticHost> {
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
    pub(super) fn may_have_reserved(
        &self,
        h: &StaticHost,
        ip: Ipv4Addr,
        c: &Client,
        now: u64,
    ) -> bool {
        Self::host_matches(h, c)
            || (Self::by_name_only(h)
                && self
                    .leases
                    .get(ip)
                    .is_some_and(|r| r.is_active(now) && c.owns(r)))
    }

    /// Take `name` from every other client's live lease: their records go on without
    /// it (in the lease listing, and so in DNS).
    pub(super) fn take_name(&mut self, out: &mut Vec<Effect>, name: &str, c: &Client, now: u64) {
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
    pub(super) fn held_by_other(&self, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        self.leases
            .get(ip)
            .is_some_and(|r| r.is_active(now) && !c.owns(r))
    }

    /// A `<host>` matched by its name alone: it gives neither MAC nor client id.
    pub(super) fn by_name_only(h: &StaticHost) -> bool {
        h.mac.is_none() && h.client_id.is_none()
    }

    pub(super) fn host_matches(h: &StaticHost, c: &Client) -> bool {
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
    pub(super) fn check(&self, ip: Ipv4Addr, c: &Client, now: u64) -> Result<(), Refusal> {
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
    pub(super) fn allocate(
        &mut self,
        c: &Client,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
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

    pub(super) fn allocate_once(
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
        for (r, from) in self.cfg.own_ranges().iter().zip(&self.fresh_from) {
            let e = u32::from(r.end);
            if let Some(ip) = (*from..=e)
                .map(Ipv4Addr::from)
                .find(|ip| self.leases.get(*ip).is_none() && ok(*ip))
            {
                return Some(ip);
            }
        }
        let own_ranges = self.cfg.own_ranges();
        let own = |ip: Ipv4Addr| own_ranges.iter().any(|r| r.contains(ip));
        self.leases
            .iter()
            .filter(|r| !r.is_active(now) && own(r.ip_address) && ok(r.ip_address))
            .min_by_key(|r| r.freed_at())
            .map(|r| r.ip_address)
    }

    /// Move each range's `fresh_from` past the addresses that have a record or a live
    /// offer. Records are never removed except by `prune`, which resets the hints; an
    /// offer that goes away without a lease moves the hint back to its address.
    pub(super) fn advance_fresh(&mut self, now: u64) {
        let ranges = self.cfg.own_ranges();
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
    pub(super) fn lease_time(
        &self,
        host: Option<&StaticHost>,
        ip: Ipv4Addr,
        asked: Option<u32>,
    ) -> LeaseTime {
        let configured = host
            .and_then(|h| h.lease)
            .unwrap_or_else(|| self.cfg.range_lease(ip));
        match (configured, asked.map(|a| a.max(MIN_LEASE))) {
            (LeaseTime::Finite(c), Some(a)) => LeaseTime::Finite(c.min(a)),
            (LeaseTime::Infinite, Some(a)) if a != u32::MAX => LeaseTime::Finite(a),
            (c, _) => c,
        }
    }
}
