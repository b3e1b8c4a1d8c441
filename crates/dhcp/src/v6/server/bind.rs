//! Binding an address to a client's IA: the lease record (and what it displaces), the
//! renewal rule, the IA's lifetimes.

use super::*;

/// T1 = ½, T2 = ⅞ of the lease, lifetime = the lease (all infinite for an infinite one).
pub(super) fn times(lease: LeaseTime) -> (u32, u32, u32) {
    match lease {
        LeaseTime::Finite(s) => (s / 2, (u64::from(s) * 7 / 8) as u32, s),
        LeaseTime::Infinite => (u32::MAX, u32::MAX, u32::MAX),
    }
}

/// A client's IA to bind to `ip`: the client's DUID, its static host, the name it sent.
#[derive(Clone, Copy)]
pub(super) struct Bind<'a> {
    duid: &'a str,
    iaid: u32,
    ip: Ipv6Addr,
    host: Option<&'a StaticHost>,
    name: Option<&'a str>,
}

impl<'a> Bind<'a> {
    pub(super) fn new(
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
    /// Record the binding (after releasing what it displaces) and return the IA reply.
    pub(super) fn bind(&mut self, now: u64, b: Bind, out: &mut Vec<Effect>) -> IaReply {
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
    pub(super) fn grant_kind(&self, now: u64, b: Bind) -> Grant {
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
}
