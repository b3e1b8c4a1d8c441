//! The DHCPv4 service's task: datagrams, ARP claims and timers in; the engine's effects
//! carried out with one group commit of the journal per batch.

use super::hub::{Inbound, Port};
use super::probe::Prober;
use crate::ids::now;
use crate::services::journal::{Journal, Outcome};
use crate::services::lock;
use kvnet_dhcp::conflict::{AckHolds, Hold};
use kvnet_dhcp::{Destination, Effect, Event, Server};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// With no lease or offer pending, the timer still wakes up now and then; harmless.
const IDLE_WAKEUP: u64 = 3600;
/// Datagrams handled per group commit (one fsync). Their replies leave back to back, and
/// a client machine behind one socket (a relay, a test tool) with the default 212 KB
/// receive buffer holds about 200 of them; a fsync takes a few ms, so 128 per batch still
/// allows tens of thousands of datagrams per second.
const BATCH: usize = 128;
/// Kernel drops are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// A reply the engine asked for.
struct Reply {
    bytes: Vec<u8>,
    to: Destination,
    after_probe: Option<Ipv4Addr>,
}

pub(super) struct Task {
    pub name: String,
    /// The server's address and port, the source of its replies.
    pub src: SocketAddrV4,
    /// What arrives on the bridge, and the way out (the hub's sockets).
    pub port: Port,
    pub prober: Option<Prober>,
    pub server: Arc<Mutex<Server>>,
    pub journal: Journal,
    /// Notified after lease changes are recorded (guest names for DNS).
    pub changed: watch::Sender<()>,
}

/// Datagrams and claims lost because the network's queue in the hub was full, logged in
/// one line at most every [`DROP_LOG_EVERY`].
struct Drops {
    seen: u32,
    logged: u32,
    at: Instant,
}

impl Drops {
    fn note(&mut self, count: u32) {
        self.seen = self.seen.max(count);
    }

    fn report(&mut self, name: &str, bridge: &str) {
        if self.seen == self.logged || self.at.elapsed() < DROP_LOG_EVERY {
            return;
        }
        warn!(network = %name,
            "{} DHCP datagrams or ARP frames on {bridge} dropped in the last {} s: the network's queue was full",
            self.seen.wrapping_sub(self.logged), self.at.elapsed().as_secs());
        self.logged = self.seen;
        self.at = Instant::now();
    }
}

/// Split one engine call's effects: journal lines and replies go through the commit;
/// probes and log lines are returned to be carried out at once.
fn outcome(effects: Vec<Effect>, rest: &mut Vec<Effect>) -> Outcome<Reply> {
    let mut o = Outcome {
        lines: String::new(),
        replies: Vec::new(),
    };
    for e in effects {
        match e {
            Effect::Persist(rec) => o.lines.push_str(&kvnet_dhcp::encode_record(&rec)),
            Effect::Send {
                bytes,
                to,
                after_probe,
            } => o.replies.push(Reply {
                bytes,
                to,
                after_probe,
            }),
            other => rest.push(other),
        }
    }
    o
}

impl Task {
    pub async fn run(mut self) {
        let mut holds = AckHolds::default();
        let mut drops = Drops {
            seen: 0,
            logged: 0,
            at: Instant::now(),
        };
        // What the kernel's neighbour table knows: machines already on the bridge.
        if self.prober.is_some() {
            let t = now();
            let effects: Vec<Effect> = {
                let mut srv = lock(&self.server);
                kvnet_host::arp::neighbours(self.port.bridge())
                    .into_iter()
                    .flat_map(|(ip, mac)| srv.note_in_use(ip, kvnet_model::MacAddr(mac), t))
                    .collect()
            };
            let mut rest = Vec::new();
            let batch = vec![outcome(effects, &mut rest)];
            self.carry_out(batch, rest, &mut holds).await;
        }
        let mut deadline = lock(&self.server)
            .next_deadline()
            .unwrap_or(now() + IDLE_WAKEUP);
        let mut deadline_at = now();
        let mut inbound = Vec::with_capacity(BATCH);
        loop {
            // At least a second, so a deadline that is already due cannot make us spin.
            let wait = Duration::from_secs(deadline.saturating_sub(now()).max(1));
            let release = async {
                match holds.next_release() {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = self.port.rx.recv() => match m {
                    Some(m) => inbound.push(m),
                    // The hub lives as long as the daemon.
                    None => std::future::pending().await,
                },
                () = release => {},
                _ = tokio::time::sleep(wait) => {},
            }
            // Group commit: what the queue holds (up to BATCH) goes through the engine,
            // then one fsync covers every lease of the batch, then the replies.
            while inbound.len() < BATCH {
                match self.port.rx.try_recv() {
                    Ok(m) => inbound.push(m),
                    Err(_) => break,
                }
            }
            drops.note(self.port.dropped());
            let mut batch = Vec::new();
            let mut rest = Vec::new();
            let due;
            {
                let t = now();
                let mut srv = lock(&self.server);
                // Claims first, so that a squatter's answer to a probe counts against a
                // REQUEST arriving in the same batch, and against the held ACKs released
                // below.
                let mut claims = Vec::new();
                let mut datagrams = Vec::new();
                for m in inbound.drain(..) {
                    match m {
                        Inbound::Claim(ip, mac) => claims.extend(srv.note_in_use(ip, mac, t)),
                        Inbound::Datagram(d) => datagrams.push(d),
                    }
                }
                if !claims.is_empty() {
                    for ip in holds.drop_conflicts(&claims) {
                        warn!(network = %self.name, "held DHCPACK of {ip} not sent: the address is in use");
                    }
                    batch.push(outcome(claims, &mut rest));
                }
                due = holds.take_due(Instant::now());
                for d in datagrams {
                    batch.push(outcome(srv.handle(t, &d), &mut rest));
                }
                if t >= deadline {
                    batch.push(outcome(srv.expire(t), &mut rest));
                }
                // Finding the next deadline walks every lease: once a second is enough, as
                // the engine's new deadlines are never earlier than the next second.
                if t >= deadline || t != deadline_at {
                    deadline = srv.next_deadline().unwrap_or(t + IDLE_WAKEUP);
                    deadline_at = t;
                } else {
                    deadline = deadline.min(t + 1);
                }
            }
            self.carry_out(batch, rest, &mut holds).await;
            for h in due {
                self.send(&h.bytes, h.to).await;
            }
            drops.report(&self.name, self.port.bridge());
        }
    }

    /// Probes and log lines at once, then the journal's commit, then the replies that
    /// may leave; an ACK that must wait for its probe goes to `holds`.
    async fn carry_out(
        &mut self,
        batch: Vec<Outcome<Reply>>,
        rest: Vec<Effect>,
        holds: &mut AckHolds,
    ) {
        let mut leases = Vec::new();
        for e in rest {
            match e {
                Effect::Probe(ip) => {
                    if let Some(p) = &mut self.prober
                        && p.probe(&self.port, ip)
                    {
                        holds.probed(ip, Instant::now());
                    }
                }
                Effect::Log(ev) => {
                    log_event(&self.name, &ev);
                    leases.extend(lease_event(&ev));
                }
                Effect::Persist(_) | Effect::Send { .. } => {}
            }
        }
        let c = self.journal.commit(batch);
        // Announced once durable: a change the journal could not take is not made.
        if c.failed.is_none() {
            let hooks = !leases.is_empty() && crate::nethooks::any_cached();
            for (action, detail) in leases {
                crate::events::emit(&self.name, kvnet_api::EventKind::Lease, action, &detail);
                if hooks {
                    let env = detail
                        .into_iter()
                        .map(|(k, v)| match k {
                            "address" => ("KVNET_LEASE_ADDRESS", v),
                            "mac" => ("KVNET_LEASE_MAC", v),
                            _ => ("KVNET_LEASE_HOSTNAME", v),
                        })
                        .collect();
                    crate::nethooks::fire(&self.name, "lease", action, String::new(), env);
                }
            }
        }
        // The engine forgets what the journal could not take (the journal logs why).
        lock(&self.server).recorded(c.failed.is_none());
        if c.recorded > 0 {
            self.changed.send_replace(());
        }
        for r in c.replies {
            let now = Instant::now();
            match holds.hold(r.after_probe, r.bytes, r.to, now) {
                Hold::Until(until) => {
                    debug!(network = %self.name, "DHCPACK held {} ms for the ARP probe",
                        until.saturating_duration_since(now).as_millis());
                }
                Hold::SendNow { bytes, to } => self.send(&bytes, to).await,
            }
        }
        let records = lock(&self.server).table().len();
        let server = &self.server;
        self.journal
            .compact_if_due(now(), records, || kvnet_dhcp::compact(lock(server).table()));
    }

    async fn send(&self, bytes: &[u8], to: Destination) {
        // A client without an address cannot answer ARP. Broadcasting the reply reaches
        // it without a packet socket, and clients accept broadcast replies.
        let dest = match to {
            Destination::Hardware { .. } => Ipv4Addr::BROADCAST,
            other => other.ip(),
        };
        let to = SocketAddrV4::new(dest, to.port());
        if let Err(e) = self.port.send(bytes, self.src, to).await {
            warn!(network = %self.name, "DHCP send to {dest}: {e}");
        }
    }
}

/// The `lease` event (net-event) a log event stands for, if any.
fn lease_event(ev: &Event) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    let (action, ip, mac, hostname) = match ev {
        Event::Ack {
            ip,
            mac,
            hostname,
            renewed,
        } => {
            let action = if *renewed { "renewed" } else { "added" };
            (action, ip, mac, hostname.as_ref())
        }
        Event::Release { ip, mac } => ("released", ip, mac, None),
        Event::Expired { ip, mac } => ("expired", ip, mac, None),
        _ => return None,
    };
    let mut detail = vec![("address", ip.to_string()), ("mac", mac.to_string())];
    detail.extend(hostname.map(|h| ("hostname", h.clone())));
    Some((action, detail))
}

fn log_event(name: &str, ev: &Event) {
    match ev {
        Event::Conflict { .. }
        | Event::StaticUnavailable { .. }
        | Event::PoolExhausted { .. }
        | Event::RateLimited { .. }
        | Event::ChangesLimited { .. }
        | Event::Malformed(_)
        | Event::NameRefused { .. }
        | Event::Suppressed { .. } => warn!(network = %name, "{ev}"),
        _ => info!(network = %name, "{ev}"),
    }
}
