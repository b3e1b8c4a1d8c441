//! Which address a client's IA may have: static hosts, quarantines, the checks an
//! address must pass, the search of the ranges, lease times.

use super::*;

impl Server {
    /// By DUID first, then by the name the client sent — only for hosts without a DUID:
    /// a reservation for a DUID belongs to that client alone.
    pub(super) fn host(&self, client: &[u8], name: Option<&str>) -> Option<StaticHost> {
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
    pub(super) fn choose(
        &self,
        now: u64,
        duid: &str,
        ia: &Ia,
        host: Option<&StaticHost>,
    ) -> Option<Ipv6Addr> {
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

    pub(super) fn lease_time(&self, ip: Ipv6Addr, host: Option<&StaticHost>) -> LeaseTime {
        host.and_then(|h| h.lease)
            .unwrap_or_else(|| self.cfg.range_lease(ip))
    }

    /// The address a Renew or Rebind of `ia` keeps: the host's, the IA's binding, else
    /// one it names that is still free for it.
    pub(super) fn renewed(
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
}
