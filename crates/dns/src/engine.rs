//! The query state machine: local answers, routing, and the table of forwarded queries.

use crate::stats::Count as _;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{HostsFile, LocalAddrs};
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::local::{LocalData, Lookup, guest_name};
use crate::names::key_of;
use crate::routes::{Routed, Routes, address_records};

/// How a message travels between the shell and a peer. The engine never sees the 2-byte TCP
/// length prefix; it only needs the transport to decide truncation and to forward a query the
/// way it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A client or an upstream server: address plus transport. For TCP the address identifies
/// the connection (the shell maps it back to its stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            transport: Transport::Udp,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            transport: Transport::Tcp,
        }
    }
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send `bytes` to the client `to`.
    Answer { to: Peer, bytes: Vec<u8> },
    /// Send `bytes` (a query with a fresh ID) to the upstream `to`, over `to.transport`, and
    /// feed what comes back to [`Engine::handle_upstream_reply`] with `from = to`.
    Forward { to: Peer, bytes: Vec<u8> },
    /// Nothing to send.
    Drop,
}

/// Tunables; the defaults suit a guest network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long one upstream gets before the next is tried.
    pub attempt_timeout: Duration,
    /// Upstreams tried per query (strict order, as libvirt's `strict-order`) before SERVFAIL.
    pub max_attempts: usize,
    /// Forwarded queries in flight; the oldest is forgotten beyond this, so a flood cannot
    /// grow memory (its client simply retries).
    pub max_pending: usize,
    /// Our own largest UDP answer; 1232 avoids IP fragmentation (DNS flag day 2020).
    pub max_udp_payload: u16,
    /// TTL of local records. dnsmasq's `local-ttl` default is 0: lease names change.
    pub ttl: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            attempt_timeout: Duration::from_secs(2),
            max_attempts: 3,
            max_pending: 1024,
            max_udp_payload: 1232,
            ttl: 0,
        }
    }
}

/// Queries longer than this are refused with FORMERR; real ones are far smaller, and the
/// pending table keeps a copy of each.
const MAX_QUERY_LEN: usize = 4096;
const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    key: String,
    qtype: u16,
    qclass: u16,
}

impl Question {
    fn of(q: &Query) -> Question {
        Question {
            key: key_of(q.name()),
            qtype: q.query_type().into(),
            qclass: q.query_class().into(),
        }
    }
}

type PendingKey = (Peer, u16);

#[derive(Debug)]
struct Pending {
    client: Peer,
    client_id: u16,
    question: Question,
    query: Vec<u8>,
    upstreams: Vec<SocketAddr>,
    tried: usize,
    timer: (Instant, u64),
    udp_limit: usize,
    /// When the client's query came: the answer's latency.
    arrived: Instant,
}

/// The DNS engine of one network. See the crate documentation for the shell's side.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    limits: Limits,
    guests: Vec<(String, IpAddr)>,
    local: LocalData,
    routes: Routes,
    resolv: Vec<SocketAddr>,
    local_addrs: Arc<LocalAddrs>,
    hosts_file: Arc<HostsFile>,
    rng: StdRng,
    pending: HashMap<PendingKey, Pending>,
    /// Deadlines in order; the first entry is also the oldest query, evicted when full.
    timers: BTreeMap<(Instant, u64), PendingKey>,
    by_client: HashMap<(Peer, u16), PendingKey>,
    seq: u64,
    stats: crate::Stats,
}

impl Engine {
    /// `seed` feeds the ChaCha generator of upstream query IDs: take it from the OS.
    pub fn new(config: Config, seed: [u8; 32]) -> Engine {
        Engine::with_limits(config, Limits::default(), seed)
    }

    pub fn with_limits(config: Config, limits: Limits, seed: [u8; 32]) -> Engine {
        let mut e = Engine {
            config,
            limits,
            guests: Vec::new(),
            local: LocalData::default(),
            routes: Routes::default(),
            resolv: Vec::new(),
            local_addrs: Arc::default(),
            hosts_file: Arc::default(),
            rng: StdRng::from_seed(seed),
            pending: HashMap::new(),
            timers: BTreeMap::new(),
            by_client: HashMap::new(),
            seq: 0,
            stats: crate::Stats::default(),
        };
        e.rebuild();
        e
    }

    /// Replace the configuration (`net-update`); queries in flight carry on.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        self.rebuild();
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Guest names from DHCP leases and static DHCP hosts, replacing the previous set.
    /// Returns the names refused (control characters, invalid labels) for the shell to log.
    pub fn set_guest_names(&mut self, names: Vec<(String, IpAddr)>) -> Vec<String> {
        let mut rejected = Vec::new();
        self.guests.clear();
        for (n, ip) in names {
            match guest_name(&n, None) {
                Ok(_) => self.guests.push((n, ip)),
                Err(_) => rejected.push(n.escape_debug().to_string()),
            }
        }
        self.rebuild();
        rejected
    }

    /// The host's /etc/hosts (from [`HostsFile::parse`]), replacing the previous one.
    pub fn set_hosts_file(&mut self, hosts: Arc<HostsFile>) {
        if !Arc::ptr_eq(&self.hosts_file, &hosts) {
            self.hosts_file = hosts;
            self.rebuild();
        }
    }

    /// The host's resolvers (from [`crate::parse_resolv_conf`]), used when no `<forwarder>`
    /// replaces them and the network is not isolated.
    pub fn set_upstreams(&mut self, upstreams: Vec<SocketAddr>) {
        self.resolv = upstreams;
    }

    /// Addresses of every network kvnetd serves (see [`LocalAddrs`]), never used as
    /// upstreams.
    pub fn set_local_addrs(&mut self, addrs: Arc<LocalAddrs>) {
        self.local_addrs = addrs;
    }

    /// Forwarded queries awaiting a reply.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// When [`Engine::poll_timeouts`] next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    fn rebuild(&mut self) {
        let domain = self.config.domain.clone();
        let guests: Vec<(String, IpAddr)> = self
            .guests
            .iter()
            .filter_map(|(n, ip)| Some((guest_name(n, domain.as_deref()).ok()?, *ip)))
            .collect();
        self.local = LocalData::build(&self.config, &guests, self.hosts_file.clone());

        self.routes = Routes::build(&self.config);
    }

    fn default_upstreams(&self) -> Vec<SocketAddr> {
        if self.config.has_default_forwarders() {
            self.config
                .forwarders
                .iter()
                .filter(|f| f.domain.is_none())
                .filter_map(|f| f.addr)
                .collect()
        } else if self.config.isolated {
            Vec::new()
        } else {
            self.resolv.clone()
        }
    }

    /// `list` without the addresses that would loop back to us.
    fn usable(&self, list: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in list {
            // Forwarding to ourselves would loop until the pending table fills.
            let ip = a.ip();
            let own = self.config.own_addrs.contains(&ip)
                || self.local_addrs.contains(&ip)
                || ip.is_unspecified();
            if !own && a.port() != 0 && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// A query from a client. Never panics, whatever the bytes.
    pub fn handle_query(&mut self, now: Instant, client: Peer, bytes: &[u8]) -> Decision {
        let d = self.query(now, client, bytes);
        self.stats.query(&d);
        d
    }

    /// What this engine did since it started.
    pub fn stats(&self) -> &crate::Stats {
        &self.stats
    }

    /// The shell's measure of a local answer's latency (the engine has no clock).
    pub fn note_local_latency(&mut self, secs: f64) {
        self.stats.latency.observe(secs);
    }

    fn query(&mut self, now: Instant, client: Peer, bytes: &[u8]) -> Decision {
        let Some(header) = read_header(bytes) else {
            return Decision::Drop;
        };
        // Answering responses would let two servers bounce packets forever.
        if header.metadata.message_type != MessageType::Query {
            return Decision::Drop;
        }
        let answer = |b: Option<Vec<u8>>| match b {
            Some(bytes) => Decision::Answer { to: client, bytes },
            None => Decision::Drop,
        };
        if bytes.len() > MAX_QUERY_LEN {
            return answer(header_only(&header, ResponseCode::FormErr));
        }
        let query = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => return answer(header_only(&header, ResponseCode::FormErr)),
        };
        let limit = self.client_limit(client, &query);
        if query.metadata.op_code != OpCode::Query {
            return answer(self.respond(&query, ResponseCode::NotImp, false, vec![], limit));
        }
        if query.queries.len() != 1 {
            return answer(self.respond(&query, ResponseCode::FormErr, false, vec![], limit));
        }
        if query.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return answer(self.respond(&query, ResponseCode::BADVERS, false, vec![], limit));
        }
        let q = &query.queries[0];
        match q.query_class() {
            DNSClass::IN | DNSClass::ANY => {}
            _ => return answer(self.respond(&query, ResponseCode::Refused, false, vec![], limit)),
        }
        if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return answer(self.respond(&query, ResponseCode::Refused, false, vec![], limit));
        }
        let question = Question::of(q);
        let qtype = q.query_type();
        let ttl = self.limits.ttl;
        let upstreams = match self.local.lookup(&question.key, q.name(), qtype, ttl) {
            Lookup::Records(records) => {
                return answer(self.respond(&query, ResponseCode::NoError, true, records, limit));
            }
            Lookup::NoData => {
                let ips = self.routes.addresses(&self.config, &question.key, qtype);
                let records = address_records(q.name(), &ips, ttl);
                return answer(self.respond(&query, ResponseCode::NoError, true, records, limit));
            }
            Lookup::NotFound => match self.routes.route(&self.config, &question.key, qtype) {
                Routed::Answer(ips) => {
                    let records = address_records(q.name(), &ips, ttl);
                    let rcode = ResponseCode::NoError;
                    return answer(self.respond(&query, rcode, true, records, limit));
                }
                Routed::NxDomain => {
                    let rcode = ResponseCode::NXDomain;
                    return answer(self.respond(&query, rcode, true, vec![], limit));
                }
                Routed::Forward(list) => self.usable(list),
                Routed::Default => self.usable(self.default_upstreams()),
            },
        };
        // Isolated networks and loops-only lists: a policy refusal, not a failure.
        if upstreams.is_empty() || self.limits.max_attempts == 0 || self.limits.max_pending == 0 {
            return answer(self.respond(&query, ResponseCode::Refused, false, vec![], limit));
        }
        let client_id = header.metadata.id;
        if let Some(k) = self.by_client.get(&(client, client_id))
            && self.pending.get(k).is_some_and(|p| p.question == question)
        {
            // A retransmission: the answer to the first copy will serve it.
            return Decision::Drop;
        }
        let p = Pending {
            client,
            client_id,
            question,
            query: bytes.to_vec(),
            upstreams,
            tried: 0,
            timer: (now, 0),
            udp_limit: limit,
            arrived: now,
        };
        self.forward(now, p)
    }

    /// A reply from an upstream. Dropped unless it answers a query we sent to exactly that
    /// upstream, with that ID and that question (anti-spoofing).
    pub fn handle_upstream_reply(&mut self, now: Instant, from: Peer, bytes: &[u8]) -> Decision {
        let mut dec = BinDecoder::new(bytes);
        let Ok(header) = Header::read(&mut dec) else {
            return Decision::Drop;
        };
        if header.metadata.message_type != MessageType::Response || header.counts.queries != 1 {
            return Decision::Drop;
        }
        let key = (from, header.metadata.id);
        let Some(p) = self.pending.get(&key) else {
            return Decision::Drop;
        };
        let Ok(q) = Query::read(&mut dec) else {
            return Decision::Drop;
        };
        if Question::of(&q) != p.question {
            return Decision::Drop;
        }
        let question_end = dec.index();
        let Some(p) = self.remove(&key) else {
            return Decision::Drop;
        };
        let rcode = header.metadata.response_code;
        if matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused) && self.can_retry(&p) {
            let d = self.forward(now, p);
            self.stats.upstream(&d, false);
            return d;
        }
        let latency = now.saturating_duration_since(p.arrived).as_secs_f64();
        let mut out = bytes.to_vec();
        out[..2].copy_from_slice(&p.client_id.to_be_bytes());
        if p.client.transport == Transport::Udp && out.len() > p.udp_limit {
            out.truncate(question_end);
            // Header + question only, TC set: the client retries over TCP.
            out[2] |= 0x02;
            out[6..12].fill(0);
        }
        let d = Decision::Answer {
            to: p.client,
            bytes: out,
        };
        self.stats.upstream(&d, false);
        self.stats.latency.observe(latency);
        d
    }

    /// Queries whose upstream did not answer in time: the next upstream is tried, or the
    /// client gets SERVFAIL. Call at [`Engine::next_timeout`].
    pub fn poll_timeouts(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        while let Some((&(deadline, seq), &key)) = self.timers.iter().next() {
            if deadline > now {
                break;
            }
            let Some(p) = self.remove(&key) else {
                self.timers.remove(&(deadline, seq));
                continue;
            };
            let d = if self.can_retry(&p) {
                self.forward(now, p)
            } else {
                self.servfail(&p)
            };
            self.stats.upstream(&d, true);
            out.push(d);
        }
        out
    }

    fn can_retry(&self, p: &Pending) -> bool {
        p.tried < p.upstreams.len() && p.tried < self.limits.max_attempts
    }

    fn servfail(&self, p: &Pending) -> Decision {
        let bytes = Message::from_vec(&p.query)
            .ok()
            .and_then(|q| self.respond(&q, ResponseCode::ServFail, false, vec![], p.udp_limit));
        match bytes {
            Some(bytes) => Decision::Answer {
                to: p.client,
                bytes,
            },
            None => Decision::Drop,
        }
    }

    /// Send `p` to its next upstream under a fresh ID.
    fn forward(&mut self, now: Instant, mut p: Pending) -> Decision {
        let Some(&addr) = p.upstreams.get(p.tried) else {
            return self.servfail(&p);
        };
        let upstream = Peer {
            addr,
            transport: p.client.transport,
        };
        let mut id = None;
        for _ in 0..16 {
            let candidate = self.rng.next_u32() as u16;
            if !self.pending.contains_key(&(upstream, candidate)) {
                id = Some(candidate);
                break;
            }
        }
        let Some(id) = id else {
            return self.servfail(&p);
        };
        while self.pending.len() >= self.limits.max_pending {
            let Some((_, oldest)) = self.timers.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        let mut bytes = p.query.clone();
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        self.seq += 1;
        let deadline = now.checked_add(self.limits.attempt_timeout).unwrap_or(now);
        p.timer = (deadline, self.seq);
        p.tried += 1;
        let key = (upstream, id);
        self.timers.insert(p.timer, key);
        self.by_client.insert((p.client, p.client_id), key);
        self.pending.insert(key, p);
        Decision::Forward {
            to: upstream,
            bytes,
        }
    }

    fn remove(&mut self, key: &PendingKey) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.timers.remove(&p.timer);
        if self.by_client.get(&(p.client, p.client_id)) == Some(key) {
            self.by_client.remove(&(p.client, p.client_id));
        }
        Some(p)
    }

    /// The largest answer the client takes: 512 without EDNS (RFC 1035), its EDNS size capped
    /// by ours otherwise; TCP is bounded only by the length prefix.
    fn client_limit(&self, client: Peer, query: &Message) -> usize {
        match (client.transport, &query.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(e)) => {
                usize::from(e.max_payload().min(self.limits.max_udp_payload)).max(512)
            }
        }
    }

    /// A response to `query`. RA is always set: the engine recurses for its clients (by
    /// forwarding), whatever RD said. A negative local answer within the network's
    /// domain carries the domain's SOA (RFC 2308); EDNS's DO bit is echoed (RFC 3225).
    fn respond(
        &self,
        query: &Message,
        rcode: ResponseCode,
        authoritative: bool,
        answers: Vec<Record>,
        limit: usize,
    ) -> Option<Vec<u8>> {
        let mut m = Message::new(
            query.metadata.id,
            MessageType::Response,
            query.metadata.op_code,
        );
        m.metadata.recursion_desired = query.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.checking_disabled = query.metadata.checking_disabled;
        m.metadata.authoritative = authoritative;
        m.metadata.response_code = rcode;
        m.queries = query.queries.clone();
        let negative = rcode == ResponseCode::NXDomain
            || (rcode == ResponseCode::NoError && answers.is_empty());
        if authoritative
            && negative
            && let Some(q) = query.queries.first()
        {
            m.authorities
                .extend(self.local.soa_for(&key_of(q.name()), self.limits.ttl));
        }
        m.answers = answers;
        if let Some(qe) = &query.edns {
            let mut e = Edns::new();
            e.set_max_payload(self.limits.max_udp_payload.max(512));
            e.set_dnssec_ok(qe.flags().dnssec_ok);
            m.edns = Some(e);
        }
        let bytes = m.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some(bytes);
        }
        m.answers.clear();
        m.metadata.truncation = true;
        let bytes = m.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some(bytes);
        }
        // The questions echoed in a FORMERR or NOTIMP (a query may hold many) can pass
        // the limit on their own: then the header alone.
        m.queries.clear();
        m.to_vec().ok()
    }
}

fn read_header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    Header::read(&mut BinDecoder::new(bytes)).ok()
}

/// An error for a query we could not parse: ID, opcode and RD echoed, no question.
fn header_only(h: &Header, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut m = Message::new(h.metadata.id, MessageType::Response, h.metadata.op_code);
    m.metadata.recursion_desired = h.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    m.to_vec().ok()
}
