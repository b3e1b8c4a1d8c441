//! nftables change notifications, and which of them are kvnet's own.
//!
//! A NETLINK_NETFILTER socket in group NFNLGRP_NFTABLES receives, for every committed
//! transaction, one message per object it added or deleted (table, chain, rule, set,
//! element, ...), then `NFT_MSG_NEWGEN` with the new generation, the pid and the process
//! name of the task that committed. The kernel sends them under its commit lock, so the
//! messages of two transactions never interleave, and an empty transaction sends none.
//! [`NftWatcher`] groups them into [`Commit`]s.
//!
//! Who committed: NEWGEN's pid is the committing thread's id as the initial pid
//! namespace sees it, and its netlink header carries the port id of the socket the batch
//! came through. kvnet registers its committers while they run ([`own_process`] for an
//! `nft` child, [`own_socket`] for a native batch) and [`is_own`] recognises them by
//! either number: a child by its pid, which is also its socket's port id (the kernel
//! binds a process's netlink socket to the process's pid, as its own pid namespace sees
//! it, when that port id is free, so this also holds inside a container), a batch by its
//! socket's port id. A registration outlives its committer by [`OWN_GRACE`], so
//! notifications read later are still recognised.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netlink_packet_netfilter::nftables::{
    ChainAttribute, GenAttribute, NfTablesMessage, RuleAttribute, SetAttribute, SetElementList,
    TableAttribute,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use rtnetlink::packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload, Nla};
use rtnetlink::sys::protocols::NETLINK_NETFILTER;
use rtnetlink::sys::{Socket, SocketAddr};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::HostError;

/// `NFNLGRP_NFTABLES` (include/uapi/linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFPROTO_INET`: the family of kvnet's table.
pub const NFPROTO_INET: u8 = 1;

/// `NFPROTO_BRIDGE`: the family of kvnet's port filter table.
pub const NFPROTO_BRIDGE: u8 = 7;

/// What kind of object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Table,
    Chain,
    Rule,
    Set,
    Element,
    /// A stateful object or a flowtable.
    Other,
}

/// One object a transaction added or deleted; repeats within a commit are merged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub kind: Kind,
    /// Added (NFT_MSG_NEW*) or deleted (NFT_MSG_DEL*).
    pub added: bool,
    /// NFPROTO_* of the table.
    pub family: u8,
    /// The table's name; None when the message could not be parsed.
    pub table: Option<String>,
}

impl Change {
    /// Whether this change touches table `name` of family inet (a change whose table
    /// is unknown may).
    pub fn may_touch(&self, name: &str) -> bool {
        self.family == NFPROTO_INET && self.table.as_deref().is_none_or(|t| t == name)
    }
}

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The ruleset generation it created.
    pub generation: u32,
    /// The committing thread (initial pid namespace).
    pub pid: u32,
    /// Its process name, at most 15 bytes (`comm`).
    pub comm: String,
    /// The netlink port id of the socket it committed through.
    pub portid: u32,
    pub changes: Vec<Change>,
}

impl Commit {
    /// Whether it touches table `name` of family inet.
    pub fn touches(&self, name: &str) -> bool {
        self.changes.iter().any(|c| c.may_touch(name))
    }
}

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Commit(Commit),
    /// The socket buffer overflowed: notifications were lost, any table may have changed.
    Lost,
}

/// One parsed notification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Change(Change),
    Gen {
        generation: u32,
        pid: u32,
        comm: String,
        portid: u32,
    },
}

/// The table named by attribute 1, which is the table in every object message
/// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_OBJ_TABLE, ...).
fn table_of_nlas<A: Nla>(attrs: &[A]) -> Option<String> {
    let a = attrs.iter().find(|a| a.kind() == 1)?;
    let mut v = vec![0; a.value_len()];
    a.emit_value(&mut v);
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    Some(String::from_utf8_lossy(&v[..end]).into_owned())
}

/// Kind and direction of an nf_tables message type; None for what changes nothing.
fn kind_of(msg_type: u8) -> Option<(Kind, bool)> {
    Some(match msg_type {
        0 => (Kind::Table, true),
        2 => (Kind::Table, false),
        3 => (Kind::Chain, true),
        5 => (Kind::Chain, false),
        6 => (Kind::Rule, true),
        8 => (Kind::Rule, false),
        9 => (Kind::Set, true),
        11 => (Kind::Set, false),
        12 => (Kind::Element, true),
        14 => (Kind::Element, false),
        18 | 22 => (Kind::Other, true),
        20 | 24 => (Kind::Other, false),
        _ => return None,
    })
}

fn item(msg: &NfTablesMessage, family: u8, portid: u32) -> Option<Item> {
    use NfTablesMessage as M;
    // The table's name, from the attribute of type `$variant`.
    macro_rules! named {
        ($attrs:expr, $variant:path) => {
            $attrs.iter().find_map(|a| match a {
                $variant(n) => Some(n.clone()),
                _ => None,
            })
        };
    }
    let table = match msg {
        M::NewTable(m) | M::DeleteTable(m) => named!(m.attributes, TableAttribute::Name),
        M::NewChain(m) | M::DeleteChain(m) => named!(m.attributes, ChainAttribute::Table),
        M::NewRule(m) | M::DeleteRule(m) => named!(m.attributes, RuleAttribute::Table),
        M::NewSet(m) | M::DeleteSet(m) => named!(m.attributes, SetAttribute::Table),
        M::NewSetElement(m) | M::DeleteSetElement(m) => {
            named!(m.attributes, SetElementList::Table)
        }
        M::NewObject(a) | M::DeleteObject(a) | M::NewFlowTable(a) | M::DeleteFlowTable(a) => {
            table_of_nlas(a)
        }
        M::NewGen(g) => {
            let (mut generation, mut pid, mut comm) = (0, 0, String::new());
            for a in &g.attributes {
                match a {
                    GenAttribute::Id(v) => generation = *v,
                    GenAttribute::ProcPid(v) => pid = *v,
                    GenAttribute::ProcName(v) => comm.clone_from(v),
                    _ => {}
                }
            }
            return Some(Item::Gen {
                generation,
                pid,
                comm,
                portid,
            });
        }
        _ => return None,
    };
    let (kind, added) = kind_of(msg.message_type().into())?;
    Some(Item::Change(Change {
        kind,
        added,
        family,
        table,
    }))
}

/// The nf_tables notifications in `buf` (one datagram), in order. A message the parser
/// refuses still counts, as a change of an unknown table.
fn parse(mut buf: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    while let Ok(b) = NetlinkBuffer::new_checked(buf) {
        let len = b.length() as usize;
        let (msg_type, portid) = (b.message_type(), b.port_number());
        let payload = b.payload();
        if msg_type >> 8 == NFNL_SUBSYS_NFTABLES {
            let family = payload.first().copied().unwrap_or(0);
            match NetlinkMessage::<NetfilterMessage>::deserialize(&buf[..len]) {
                Ok(NetlinkMessage {
                    payload:
                        NetlinkPayload::InnerMessage(NetfilterMessage {
                            inner: NetfilterMessageInner::NfTables(m),
                            ..
                        }),
                    ..
                }) => out.extend(item(&m, family, portid)),
                _ => {
                    if let Some((kind, added)) = kind_of(msg_type as u8) {
                        out.push(Item::Change(Change {
                            kind,
                            added,
                            family,
                            table: None,
                        }));
                    }
                }
            }
        }
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// Groups notifications into commits: the changes up to each NEWGEN.
#[derive(Default)]
struct Assembler {
    changes: Vec<Change>,
}

impl Assembler {
    fn push(&mut self, item: Item) -> Option<Commit> {
        match item {
            Item::Change(c) => {
                // A flush of a big ruleset announces every rule: keep each kind of change
                // once per table.
                if !self.changes.contains(&c) {
                    self.changes.push(c);
                }
                None
            }
            Item::Gen {
                generation,
                pid,
                comm,
                portid,
            } => Some(Commit {
                generation,
                pid,
                comm,
                portid,
                changes: std::mem::take(&mut self.changes),
            }),
        }
    }
}

/// The calling thread's network namespace's nftables commits, as they happen.
pub struct NftWatcher {
    sock: Socket,
    fd: AsyncFd<OwnedFd>,
    asm: Assembler,
    ready: VecDeque<Notice>,
    buf: Vec<u8>,
}

impl NftWatcher {
    /// Subscribes, in the calling thread's network namespace, on the current tokio
    /// runtime. Commits from then on are reported.
    pub fn open() -> Result<NftWatcher, HostError> {
        let ctx = |what: &str| format!("nftables watcher: {what}");
        let mut sock =
            Socket::new(NETLINK_NETFILTER).map_err(|e| HostError::new(ctx("open socket"), e))?;
        sock.bind(&SocketAddr::new(0, 0))
            .and_then(|()| sock.add_membership(NFNLGRP_NFTABLES))
            .and_then(|()| sock.set_non_blocking(true))
            .map_err(|e| HostError::new(ctx("subscribe"), e))?;
        // A flush of a big ruleset announces every rule and element; an overflow is
        // reported as Notice::Lost.
        let _ = sock.set_rx_buf_sz(4 << 20);
        let fd = crate::sys::register_dup(&sock, Interest::READABLE)
            .map_err(|e| HostError::new(ctx("register socket"), e))?;
        Ok(NftWatcher {
            sock,
            fd,
            asm: Assembler::default(),
            ready: VecDeque::new(),
            buf: Vec::with_capacity(256 * 1024),
        })
    }

    /// The next commit (or loss), waiting for it.
    pub async fn next(&mut self) -> Result<Notice, HostError> {
        loop {
            if let Some(n) = self.try_next()? {
                return Ok(n);
            }
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| HostError::new("nftables watcher: wait", e))?;
            guard.clear_ready();
        }
    }

    /// The next commit (or loss) already received, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Notice>, HostError> {
        while self.ready.is_empty() {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, 0) {
                Ok(n) => {
                    for it in parse(&self.buf[..n.min(self.buf.len())]) {
                        if let Some(c) = self.asm.push(it) {
                            self.ready.push_back(Notice::Commit(c));
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.asm = Assembler::default();
                    self.ready.push_back(Notice::Lost);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HostError::new("nftables watcher: receive", e)),
            }
        }
        Ok(self.ready.pop_front())
    }
}

/// How long a committer stays recognised after it finished.
pub const OWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// A process: its pid, and its socket's port id.
    Process(u32),
    /// A socket's port id.
    Port(u32),
}

/// kvnet's committers: registered while they run, kept for a grace period after.
#[derive(Default)]
struct OwnSet {
    entries: Vec<(Who, Option<Instant>)>,
}

impl OwnSet {
    fn add(&mut self, who: Who) {
        self.entries.push((who, None));
    }

    fn release(&mut self, who: Who, now: Instant) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|(w, end)| *w == who && end.is_none())
        {
            e.1 = Some(now + OWN_GRACE);
        }
    }

    fn contains(&mut self, pid: u32, portid: u32, now: Instant) -> bool {
        self.entries.retain(|(_, end)| end.is_none_or(|t| t > now));
        self.entries.iter().any(|(w, _)| match *w {
            Who::Process(p) => p == pid || p == portid,
            Who::Port(p) => p == portid,
        })
    }
}

static OWN: Mutex<OwnSet> = Mutex::new(OwnSet {
    entries: Vec::new(),
});

fn own_set() -> std::sync::MutexGuard<'static, OwnSet> {
    OWN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered committer; dropping it starts its grace period.
#[must_use]
pub struct Own(Who);

impl Drop for Own {
    fn drop(&mut self) {
        own_set().release(self.0, Instant::now());
    }
}

/// Registers process `pid` (a child about to commit) as kvnet's own.
pub fn own_process(pid: u32) -> Own {
    own_set().add(Who::Process(pid));
    Own(Who::Process(pid))
}

/// Binds the netlink socket `fd` (to the port id the kernel picks) and registers that
/// port id as kvnet's own.
pub fn own_socket(fd: &impl AsFd) -> Result<Own, HostError> {
    use nix::sys::socket::{NetlinkAddr, bind, getsockname};
    let raw = fd.as_fd().as_raw_fd();
    let portid = bind(raw, &NetlinkAddr::new(0, 0))
        .and_then(|()| getsockname::<NetlinkAddr>(raw))
        .map_err(|e| HostError::new("nftables netlink socket: bind", std::io::Error::from(e)))?
        .pid();
    own_set().add(Who::Port(portid));
    Ok(Own(Who::Port(portid)))
}

/// Whether `c` was committed by one of kvnet's registered committers.
pub fn is_own(c: &Commit) -> bool {
    own_set().contains(c.pid, c.portid, Instant::now())
}

/// `inet`, `ip`, ... for NFPROTO_* `family`, for messages.
pub fn family_name(family: u8) -> String {
    match family {
        0 => "any".into(),
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        f => format!("family {f}"),
    }
}

#[cfg(test)]
mod tests;
