//! The main routing table kept in memory from rtnetlink notifications.
//!
//! A start checks a new network's subnets against every host route. Reading the whole
//! table each time (procfs or a dump) costs in proportion to the routes, and every
//! active network adds some, so the 200th start would pay for the 199 before it. The
//! watcher dumps the table once and then follows RTM_NEWROUTE/RTM_DELROUTE, and link
//! events too: when a link goes down or away the kernel flushes its IPv4 routes without
//! any RTM_DELROUTE (IPv6 does announce its deletions).
//!
//! The event socket joins the route groups before the dump, so every change after the
//! dump's snapshot is queued on it. Events that came before the snapshot are applied
//! again afterwards; each one sets a route present or absent, so the last event per
//! route wins, which is what the snapshot shows for those routes anyway.
//!
//! [`RouteWatcher::overlapping`] drains queued events itself before answering, so a route
//! added just before a start is always seen; a background task drains them too, so the
//! socket buffer does not overflow between starts. If it overflows all the same
//! (`ENOBUFS`), the table is dumped again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK};
use rtnetlink::packet_core::{
    NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};
use tokio::io::Interest;

use crate::HostError;
use crate::TABLE_MAIN;
use crate::procroutes::HostRoute;

/// What tells two routes of the main table apart (one entry per next hop).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    dest: IpNet,
    tos: u8,
    metric: u32,
    oif: u32,
    gateway: Option<IpAddr>,
}

struct State {
    events: Socket,
    /// Ordered, so the list (and the route a conflict names) does not vary by run.
    routes: BTreeMap<Key, HostRoute>,
    /// How many of `routes` go through each link (by index).
    per_dev: HashMap<u32, usize>,
    buf: Vec<u8>,
}

/// The calling thread's main-table routes (IPv4 and IPv6), kept current.
pub struct RouteWatcher {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RouteWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RouteWatcher {
    /// Subscribes, dumps the table and spawns the draining task on the current tokio
    /// runtime, in the calling thread's network namespace.
    pub fn start() -> Result<RouteWatcher, HostError> {
        let ctx = |what: &str| format!("route watcher: {what}");
        let mut events =
            Socket::new(NETLINK_ROUTE).map_err(|e| HostError::new(ctx("open socket"), e))?;
        events
            .bind(&SocketAddr::new(
                0,
                RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_LINK,
            ))
            .and_then(|_| events.set_non_blocking(true))
            .map_err(|e| HostError::new(ctx("subscribe"), e))?;
        // Headroom for bursts between two drains; an overflow only costs a new dump.
        let _ = events.set_rx_buf_sz(1 << 20);
        // The task waits on its own descriptor of the socket; reads go through `State`.
        let fd = crate::sys::register_dup(&events, Interest::READABLE)
            .map_err(|e| HostError::new(ctx("register socket"), e))?;
        let mut state = State {
            events,
            routes: BTreeMap::new(),
            per_dev: HashMap::new(),
            buf: Vec::with_capacity(64 * 1024),
        };
        state.resync()?;
        state.drain()?;
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return;
                };
                if let Err(e) = lock(&shared).drain() {
                    tracing::warn!("{e}");
                }
                ready.clear_ready();
            }
        });
        Ok(RouteWatcher { state, task })
    }

    /// The routes that overlap any of `subnets` (contain one, or lie inside one), with
    /// every change the kernel has announced so far. Only those are copied: a start
    /// asks about its own subnets, and copying the whole table would grow with every
    /// network.
    pub fn overlapping(&self, subnets: &[IpNet]) -> Result<Vec<HostRoute>, HostError> {
        let overlaps = |r: &IpNet| {
            subnets
                .iter()
                .any(|s| s.contains(&r.network()) || r.contains(&s.network()))
        };
        let mut st = lock(&self.state);
        st.drain()?;
        Ok(st
            .routes
            .values()
            .filter(|r| overlaps(&r.dest))
            .cloned()
            .collect())
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// Applies every queued event; dumps the table again after an overflow.
    fn drain(&mut self) -> Result<(), HostError> {
        loop {
            self.buf.clear();
            match self.events.recv(&mut self.buf, 0) {
                Ok(n) => {
                    let msgs = std::mem::take(&mut self.buf);
                    for_each_route(&msgs[..n.min(msgs.len())], |flags, m| self.apply(flags, m));
                    self.buf = msgs;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::debug!("route watcher: notifications lost, reading the table again");
                    self.resync()?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HostError::new("route watcher: receive", e)),
            }
        }
    }

    fn apply(&mut self, flags: u16, msg: &RouteNetlinkMessage) {
        let (new, m) = match msg {
            RouteNetlinkMessage::NewRoute(m) => (true, m),
            RouteNetlinkMessage::DelRoute(m) => (false, m),
            RouteNetlinkMessage::DelLink(l) => {
                return self.forget_dev(l.header.index, true);
            }
            RouteNetlinkMessage::NewLink(l) if !l.header.flags.contains(LinkFlags::Up) => {
                return self.forget_dev(l.header.index, false);
            }
            _ => return,
        };
        let Some(entries) = entries(m) else { return };
        if new
            && flags & NLM_F_REPLACE != 0
            && let Some((k, _)) = entries.first()
        {
            let (dest, tos, metric) = (k.dest, k.tos, k.metric);
            let mut gone = Vec::new();
            self.routes.retain(|k, _| {
                let keep = !(k.dest == dest && k.tos == tos && k.metric == metric);
                if !keep {
                    gone.push(k.oif);
                }
                keep
            });
            for oif in gone {
                self.count(oif, -1);
            }
        }
        for (key, route) in entries {
            let oif = key.oif;
            if new {
                if self.routes.insert(key, route).is_none() {
                    self.count(oif, 1);
                }
            } else if self.routes.remove(&key).is_some() {
                self.count(oif, -1);
            }
        }
    }

    /// Drops the routes through a link that went away (`all`) or down (IPv4 only: IPv6
    /// announces the deletions it makes then).
    /// A link that has none costs nothing: every start makes a bridge, announced down
    /// several times before it is up, and a walk of the table for each would grow with
    /// every network.
    fn forget_dev(&mut self, index: u32, all: bool) {
        if self.per_dev.get(&index).is_none_or(|&n| n == 0) {
            return;
        }
        let mut removed = 0;
        self.routes.retain(|k, _| {
            let keep = k.oif != index || !(all || matches!(k.dest, IpNet::V4(_)));
            removed += usize::from(!keep);
            keep
        });
        self.count(index, -(removed as isize));
    }

    fn count(&mut self, oif: u32, delta: isize) {
        let n = self.per_dev.entry(oif).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.per_dev.remove(&oif);
        }
    }

    /// Replaces the table with a fresh dump (IPv4, then IPv6).
    fn resync(&mut self) -> Result<(), HostError> {
        let ctx = "route watcher: dump routes";
        let sock = Socket::new(NETLINK_ROUTE).map_err(|e| HostError::new(ctx, e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| HostError::new(ctx, e))?;
        self.routes.clear();
        self.per_dev.clear();
        for (seq, family) in [(1, AddressFamily::Inet), (2, AddressFamily::Inet6)] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            req.header.table = RouteHeader::RT_TABLE_MAIN;
            let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(req));
            msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            msg.header.sequence_number = seq;
            msg.finalize();
            let mut out = vec![0; msg.buffer_len()];
            msg.serialize(&mut out);
            sock.send(&out, 0).map_err(|e| HostError::new(ctx, e))?;
            let mut buf = Vec::with_capacity(128 * 1024);
            loop {
                buf.clear();
                let n = sock.recv(&mut buf, 0).map_err(|e| HostError::new(ctx, e))?;
                let mut done = None;
                for_each_message(&buf[..n.min(buf.len())], |m| match &m.payload {
                    NetlinkPayload::InnerMessage(inner) => self.apply(0, inner),
                    NetlinkPayload::Done(_) => done = Some(Ok(())),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        done = Some(Err(-e.raw_code()));
                    }
                    _ => {}
                });
                match done {
                    Some(Ok(())) => break,
                    Some(Err(errno)) => {
                        return Err(HostError::netlink(ctx, errno, None));
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}

fn for_each_message(mut buf: &[u8], mut f: impl FnMut(&NetlinkMessage<RouteNetlinkMessage>)) {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return;
        }
        // Messages the parser does not know (other families) are skipped.
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            f(&m);
        }
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
}

fn for_each_route(buf: &[u8], mut f: impl FnMut(u16, &RouteNetlinkMessage)) {
    for_each_message(buf, |m| {
        if let NetlinkPayload::InnerMessage(inner) = &m.payload {
            f(m.header.flags, inner);
        }
    });
}

/// One entry per next hop of a main-table IPv4/IPv6 route; any type (unicast,
/// unreachable, …) counts, as in procfs.
fn entries(msg: &RouteMessage) -> Option<Vec<(Key, HostRoute)>> {
    let mut dest = None;
    let mut table = u32::from(msg.header.table);
    let mut metric = 0;
    let mut hops = Vec::new();
    let mut oif = 0;
    let mut gateway = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dest = addr(a),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Gateway(a) => gateway = addr(a),
            RouteAttribute::MultiPath(nhs) => {
                for nh in nhs {
                    let gw = nh.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(a) => addr(a),
                        _ => None,
                    });
                    hops.push((nh.interface_index, gw));
                }
            }
            _ => {}
        }
    }
    if table != TABLE_MAIN {
        return None;
    }
    let dest = match (dest, msg.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u16; 8]),
        _ => return None,
    };
    let dest = IpNet::new(dest, msg.header.destination_prefix_length)
        .ok()?
        .trunc();
    if hops.is_empty() {
        hops.push((oif, gateway));
    }
    Some(
        hops.into_iter()
            .map(|(oif, gateway)| {
                let key = Key {
                    dest,
                    tos: msg.header.tos,
                    metric,
                    oif,
                    gateway,
                };
                (
                    key,
                    HostRoute {
                        dest,
                        dev: dev_name(oif),
                    },
                )
            })
            .collect(),
    )
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The device's name now (one ioctl); "*" without a device, as procfs shows it.
fn dev_name(index: u32) -> String {
    if index == 0 {
        return "*".into();
    }
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes the call may write.
    let p = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if p.is_null() {
        // Already gone: its routes are about to be deleted too.
        return format!("#{index}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
