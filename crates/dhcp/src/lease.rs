//! Lease records, the in-memory table, and the journal format (pure functions).
//!
//! The journal is a text file of JSON lines, one [`LeaseRecord`] each, appended in the
//! order the engine emits `Persist` effects. A record replaces whatever the table held for
//! its address, so replaying the lines in order rebuilds the table. Field names follow
//! libvirt's lease `.status` file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use kvnet_model::MacAddr;
use serde::{Deserialize, Serialize};

use crate::journal::Unrecorded;

/// Whether the address is held by the client or only remembered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Held until `expiry` (0 = forever).
    Bound,
    /// Given back (RELEASE, DECLINE, conflict, or moved); `expiry` is when it was freed.
    /// Kept so the same client gets the address again, and so reuse goes oldest first.
    Released,
}

/// One address's lease. Field order matters: every encoded record starts with
/// `{"ip-address":`, which [`replay`] uses to salvage a record glued to a torn one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LeaseRecord {
    pub ip_address: Ipv4Addr,
    pub mac_address: MacAddr,
    /// Option 61 as `01:52:54:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Unix seconds; 0 = infinite (only meaningful while bound).
    pub expiry_time: u64,
    pub state: LeaseState,
}

impl LeaseRecord {
    /// Bound and not expired at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.state == LeaseState::Bound && (self.expiry_time == 0 || self.expiry_time > now)
    }

    /// The same binding but for its expiry: renewing it changes nothing else.
    pub(crate) fn same_binding(&self, other: &LeaseRecord) -> bool {
        LeaseRecord {
            expiry_time: other.expiry_time,
            ..self.clone()
        } == *other
    }

    /// When the address became (or becomes) free, for oldest-first reuse.
    pub(crate) fn freed_at(&self) -> u64 {
        self.expiry_time
    }

    /// dnsmasq's rule: client ids are compared when both sides have one, MACs otherwise.
    pub(crate) fn belongs_to(&self, mac: MacAddr, client_id: Option<&str>) -> bool {
        match (self.client_id.as_deref(), client_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.mac_address == mac,
        }
    }
}

/// All leases of one network, keyed by address, with an index by MAC and by client id so
/// that finding a client's leases does not scan the table (it holds a record for every
/// address ever leased, tens of thousands on a /16).
#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    by_ip: BTreeMap<Ipv4Addr, LeaseRecord>,
    by_mac: HashMap<MacAddr, BTreeSet<Ipv4Addr>>,
    by_id: HashMap<String, BTreeSet<Ipv4Addr>>,
    /// The engine's changes the shell has not yet reported durable.
    unrecorded: Unrecorded<Ipv4Addr, LeaseRecord>,
}

impl PartialEq for LeaseTable {
    fn eq(&self, other: &Self) -> bool {
        // The indexes are derived from `by_ip`; `unrecorded` is the engine's bookkeeping.
        self.by_ip == other.by_ip
    }
}

impl Eq for LeaseTable {}

impl LeaseTable {
    pub fn new() -> LeaseTable {
        LeaseTable::default()
    }

    /// Apply one journal record (it replaces the address's previous record).
    pub fn apply(&mut self, rec: LeaseRecord) {
        if let Some(old) = self.by_ip.remove(&rec.ip_address) {
            self.unindex(&old);
        }
        self.index(&rec);
        self.by_ip.insert(rec.ip_address, rec);
    }

    /// An engine's change, to be journalled: applied, and remembered until the shell
    /// reports on its journal write ([`LeaseTable::settle`]).
    pub(crate) fn record(&mut self, rec: LeaseRecord) {
        let old = self.by_ip.get(&rec.ip_address);
        self.unrecorded.note(rec.ip_address, || old.cloned());
        self.apply(rec);
    }

    /// Whether the address's record is durable (not changed since the last report).
    pub(crate) fn is_recorded(&self, ip: Ipv4Addr) -> bool {
        !self.unrecorded.contains(&ip)
    }

    /// The shell's report on the journal write of the changes since the last one: once
    /// durable they are forgotten; when the write failed, the table goes back to what
    /// the journal holds. Returns whether anything was put back.
    pub(crate) fn settle(&mut self, durable: bool) -> bool {
        if durable {
            self.unrecorded.clear();
            return false;
        }
        let before = self.unrecorded.take();
        let any = !before.is_empty();
        for (ip, old) in before {
            match old {
                Some(rec) => self.apply(rec),
                None => {
                    self.remove(ip);
                }
            }
        }
        any
    }

    fn index(&mut self, rec: &LeaseRecord) {
        self.by_mac
            .entry(rec.mac_address)
            .or_default()
            .insert(rec.ip_address);
        if let Some(id) = &rec.client_id {
            self.by_id
                .entry(id.clone())
                .or_default()
                .insert(rec.ip_address);
        }
    }

    fn unindex(&mut self, rec: &LeaseRecord) {
        if let Some(set) = self.by_mac.get_mut(&rec.mac_address) {
            set.remove(&rec.ip_address);
            if set.is_empty() {
                self.by_mac.remove(&rec.mac_address);
            }
        }
        if let Some(id) = &rec.client_id
            && let Some(set) = self.by_id.get_mut(id)
        {
            set.remove(&rec.ip_address);
            if set.is_empty() {
                self.by_id.remove(id);
            }
        }
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&LeaseRecord> {
        self.by_ip.get(&ip)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.by_ip.values()
    }

    /// The records that belong to the client (`LeaseRecord::belongs_to`), by address.
    pub(crate) fn owned_by(&self, mac: MacAddr, client_id: Option<&str>) -> Vec<&LeaseRecord> {
        // A record belongs either by equal client ids or by equal MACs, so the union of
        // the two index entries holds every candidate.
        let mut ips: BTreeSet<Ipv4Addr> = self.by_mac.get(&mac).cloned().unwrap_or_default();
        if let Some(set) = client_id.and_then(|id| self.by_id.get(id)) {
            ips.extend(set);
        }
        ips.into_iter()
            .filter_map(|ip| self.by_ip.get(&ip))
            .filter(|r| r.belongs_to(mac, client_id))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    pub(crate) fn remove(&mut self, ip: Ipv4Addr) -> Option<LeaseRecord> {
        let rec = self.by_ip.remove(&ip)?;
        self.unindex(&rec);
        Some(rec)
    }

    pub(crate) fn retain(&mut self, mut f: impl FnMut(&LeaseRecord) -> bool) {
        let gone: Vec<Ipv4Addr> = self
            .by_ip
            .values()
            .filter(|r| !f(r))
            .map(|r| r.ip_address)
            .collect();
        for ip in gone {
            self.remove(ip);
        }
    }
}

/// One journal line, newline included, so appending it is the whole write.
pub fn encode_record(rec: &LeaseRecord) -> String {
    crate::journal::encode(rec)
}

/// Rebuild the table from a journal's text. Lines that do not parse (a write torn by a
/// crash) are skipped; when a torn line was followed by an append without a newline in
/// between, the record glued to its end is still recovered. Later records win.
pub fn replay(text: &str) -> LeaseTable {
    let mut table = LeaseTable::new();
    for rec in crate::journal::records(text) {
        table.apply(rec);
    }
    table
}

/// The whole table as a fresh journal (one line per address). Write it to a temporary
/// file and rename it over the journal, e.g. at start-up after [`replay`].
pub fn compact(table: &LeaseTable) -> String {
    table.iter().map(encode_record).collect()
}

/// One row of `net-dhcp-leases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LeaseView {
    /// Unix seconds; 0 = infinite.
    pub expiry_time: u64,
    pub mac_address: MacAddr,
    pub ip_address: Ipv4Addr,
    pub prefix: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}
