//! DHCPv6 lease records, the table and the journal format: the v4 design (JSON lines,
//! a record replaces its address's previous one, expiry never journalled), in a file of
//! its own.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use kvnet_model::MacAddr;
use serde::{Deserialize, Serialize};

use crate::journal::Unrecorded;

pub use crate::lease::LeaseState;

/// One address's lease, keyed by the client's DUID and the IA's IAID. Every encoded
/// record starts with `{"ip-address":`, which [`replay`] uses to salvage a record glued
/// to a torn one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LeaseRecord {
    pub ip_address: Ipv6Addr,
    /// The client's DUID as `00:01:…`.
    pub duid: String,
    pub iaid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Unix seconds; 0 = infinite. For a released record, when it was freed.
    pub expiry_time: u64,
    pub state: LeaseState,
}

impl LeaseRecord {
    /// Bound and not expired at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.state == LeaseState::Bound && (self.expiry_time == 0 || self.expiry_time > now)
    }

    pub(crate) fn is_of(&self, duid: &str, iaid: u32) -> bool {
        self.duid == duid && self.iaid == iaid
    }
}

/// All DHCPv6 leases of one network, by address. Lookups by client scan it: the table
/// holds one record per address ever leased from the ranges, hundreds in practice.
#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    by_ip: BTreeMap<Ipv6Addr, LeaseRecord>,
    /// The engine's changes the shell has not yet reported durable.
    unrecorded: Unrecorded<Ipv6Addr, LeaseRecord>,
}

impl PartialEq for LeaseTable {
    fn eq(&self, other: &Self) -> bool {
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
        self.by_ip.insert(rec.ip_address, rec);
    }

    /// An engine's change, to be journalled (see the v4 table's).
    pub(crate) fn record(&mut self, rec: LeaseRecord) {
        let old = self.by_ip.get(&rec.ip_address);
        self.unrecorded.note(rec.ip_address, || old.cloned());
        self.apply(rec);
    }

    pub(crate) fn is_recorded(&self, ip: Ipv6Addr) -> bool {
        !self.unrecorded.contains(&ip)
    }

    /// The shell's report on the journal write (see the v4 table's).
    pub(crate) fn settle(&mut self, durable: bool) {
        if durable {
            self.unrecorded.clear();
            return;
        }
        for (ip, old) in self.unrecorded.take() {
            match old {
                Some(rec) => self.apply(rec),
                None => {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }

    pub fn get(&self, ip: Ipv6Addr) -> Option<&LeaseRecord> {
        self.by_ip.get(&ip)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.by_ip.values()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

/// One journal line, newline included.
pub fn encode_record(rec: &LeaseRecord) -> String {
    crate::journal::encode(rec)
}

/// Rebuild the table from a journal's text, skipping lines torn by a crash (and
/// salvaging a record appended to a torn line). Later records win.
pub fn replay(text: &str) -> LeaseTable {
    let mut table = LeaseTable::new();
    for rec in crate::journal::records(text) {
        table.apply(rec);
    }
    table
}

/// The whole table as a fresh journal; write it to a temporary file and rename.
pub fn compact(table: &LeaseTable) -> String {
    table.iter().map(encode_record).collect()
}

/// One IPv6 row of `net-dhcp-leases`: the v4 row's fields (the DUID in `client-id`,
/// as virsh lists it) plus the IAID. `mac-address` is absent when the DUID names none
/// (only DUID-LL and DUID-LLT carry one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LeaseView {
    pub expiry_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<MacAddr>,
    pub ip_address: Ipv6Addr,
    pub prefix: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub client_id: String,
    pub iaid: u32,
}
