//! The client messages: Solicit and Request, Renew and Rebind, Confirm, Release and
//! Decline, Information-request.

use super::bind::{Bind, times};
use super::*;

impl Server {
    fn no_addrs(iaid: u32) -> IaReply {
        IaReply::Status {
            iaid,
            status: Status::NoAddrsAvail,
            msg: "no addresses available",
        }
    }

    /// Solicit: advertise an address per IA (held for `offer_hold`), or bind it at once
    /// with Rapid Commit.
    pub(super) fn solicit(
        &mut self,
        now: u64,
        req: &Request,
        client: &[u8],
        duid: &str,
    ) -> Vec<Effect> {
        self.assign(now, req, client, duid, req.rapid_commit)
    }

    /// Request: bind an address per IA (the advertised one when still free).
    pub(super) fn request(
        &mut self,
        now: u64,
        req: &Request,
        client: &[u8],
        duid: &str,
    ) -> Vec<Effect> {
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
    pub(super) fn renew(
        &mut self,
        now: u64,
        req: &Request,
        client: &[u8],
        duid: &str,
    ) -> Vec<Effect> {
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

    pub(super) fn confirm(&mut self, req: &Request, duid: &str) -> Vec<Effect> {
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
    pub(super) fn release(&mut self, now: u64, req: &Request, duid: &str) -> Vec<Effect> {
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

    pub(super) fn information(&self, req: &Request) -> Vec<Effect> {
        vec![self.encode(req, Reply::new(MessageType::Reply))]
    }
}
