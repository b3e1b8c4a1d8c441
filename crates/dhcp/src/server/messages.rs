//! The client messages: DISCOVER, REQUEST (and the grant of a lease), RELEASE, DECLINE,
//! INFORM.

use super::reply::destination;
use super::*;

impl Server {
    pub(super) fn discover(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
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
        let known = host.is_some();
        let bytes = self.address_reply(req, MessageType::Offer, ip, Some(lease), c, names, known);
        out.push(Effect::Send {
            bytes,
            to: destination(req, ip, false),
            after_probe: None,
        });
        out.push(Effect::Log(Event::Offer { ip, mac: c.mac }));
    }

    pub(super) fn request(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
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
                        sname: None,
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
    pub(super) fn grant(
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
        let known = host.is_some();
        let bytes = self.address_reply(req, MessageType::Ack, ip, Some(lease), c, names, known);
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

    pub(super) fn release(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
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

    pub(super) fn decline(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
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

    pub(super) fn inform(&mut self, out: &mut Vec<Effect>, now: u64, req: &Request, c: &Client) {
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
        let known = self.host_for(c, now).is_some();
        let (siaddr, file, sname) = self.boot_fields(known);
        let bytes = wire::encode_reply(
            &req.msg,
            Reply {
                msg_type: MessageType::Ack,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                ciaddr: ip,
                siaddr,
                file,
                sname,
                broadcast: false,
                opts: self.with_extras(req, known, opts),
            },
        );
        out.push(Effect::Send {
            bytes,
            to: destination(req, ip, false),
            after_probe: None,
        });
        out.push(Effect::Log(Event::Inform { ip, mac: c.mac }));
    }
}
