//! The journal line format shared by the DHCPv4 and DHCPv6 lease journals: one JSON
//! record per line, each starting with its `ip-address` field; when a journal is
//! rewritten compacted while it is appended to ([`Compaction`]); and the lease changes
//! not yet reported durable ([`Unrecorded`]).

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How every record's line starts, so a record appended to a torn line can be found.
const RECORD_START: &str = "{\"ip-address\":";

/// One journal line, newline included, so appending it is the whole write.
pub(crate) fn encode<R: Serialize>(rec: &R) -> String {
    // Serializing plain strings, numbers and addresses cannot fail.
    let mut s = serde_json::to_string(rec).unwrap_or_default();
    s.push('\n');
    s
}

/// The records of a journal's text, in order. Lines that do not parse (a write torn by a
/// crash) are skipped; when a torn line was followed by an append without a newline in
/// between, the record glued to its end is still recovered.
pub(crate) fn records<R: DeserializeOwned>(text: &str) -> impl Iterator<Item = R> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            serde_json::from_str::<R>(line).ok().or_else(|| {
                line.rfind(RECORD_START)
                    .filter(|&i| i > 0)
                    .and_then(|i| serde_json::from_str(&line[i..]).ok())
            })
        })
}

/// A journal may grow to this size before it is compacted, however little it holds: a
/// rewrite costs two fsyncs and a rename, so it is worth it only after a few hundred
/// appended lines (each of which cost an fsync of its own).
pub const COMPACTION_FLOOR: u64 = 64 << 10;
/// A compaction that failed (a full disk) is tried again after this many seconds.
const COMPACTION_RETRY: u64 = 30;

/// When a journal being appended to is rewritten compacted: once it has more than twice
/// as many lines as the table has records (every line is one record, of much the same
/// length), and more than [`COMPACTION_FLOOR`] bytes. The file then stays within about
/// twice its live content, or the floor; a rewrite happens only after at least as many
/// superseded lines were appended as it writes, so compacting at most doubles the bytes
/// written; and a journal that only ever grew by new leases (nothing superseded) is
/// never rewritten. Pure: the sizes and the clock (unix seconds) come in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    retry_at: Option<u64>,
    forced: bool,
}

impl Compaction {
    /// Whether a journal of `bytes` bytes and `lines` lines, for a table of `records`
    /// records, should be compacted at `now`.
    pub fn due(&self, bytes: u64, lines: u64, records: u64, now: u64) -> bool {
        let outgrown = bytes > COMPACTION_FLOOR && lines > records.saturating_mul(2);
        (self.forced || outgrown) && self.retry_at.is_none_or(|t| now >= t)
    }

    /// The file may hold lines that are not live (a failed append could not be cut
    /// off): rewrite it at the next occasion, whatever its size.
    pub fn force(&mut self) {
        self.forced = true;
    }

    /// The journal was rewritten.
    pub fn done(&mut self) {
        *self = Compaction::default();
    }

    /// The rewrite failed at `now`: the old journal stands, try again later.
    pub fn failed(&mut self, now: u64) {
        self.retry_at = Some(now.saturating_add(COMPACTION_RETRY));
    }
}

/// The lease changes an engine made since the shell last reported on its journal write:
/// the record each changed address had before (none if it had none), to put back when
/// the write failed. One entry per address, so it is bounded by the table.
#[derive(Debug, Clone)]
pub(crate) struct Unrecorded<K, R> {
    before: HashMap<K, Option<R>>,
}

impl<K, R> Default for Unrecorded<K, R> {
    fn default() -> Self {
        Unrecorded {
            before: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, R> Unrecorded<K, R> {
    /// `key` is about to change; `old` gives its record as the journal holds it.
    pub(crate) fn note(&mut self, key: K, old: impl FnOnce() -> Option<R>) {
        self.before.entry(key).or_insert_with(old);
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.before.contains_key(key)
    }

    /// Everything noted, forgotten here: to drop once durable, or to put back.
    pub(crate) fn take(&mut self) -> HashMap<K, Option<R>> {
        std::mem::take(&mut self.before)
    }

    /// The changes are durable.
    pub(crate) fn clear(&mut self) {
        self.before.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 10 * COMPACTION_FLOOR;

    #[test]
    fn compaction_waits_for_the_floor_then_for_twice_the_live_lines() {
        let c = Compaction::default();
        // Mostly superseded lines, but small: left alone.
        assert!(!c.due(COMPACTION_FLOOR, 1000, 1, 0));
        assert!(c.due(COMPACTION_FLOOR + 1, 1000, 1, 0));
        // Large: due once it has more than twice as many lines as records.
        assert!(!c.due(BIG, 20_000, 10_000, 0));
        assert!(c.due(BIG, 20_001, 10_000, 0));
        // A journal of new leases only is never rewritten, however large.
        assert!(!c.due(u64::MAX, 1_000_000, 1_000_000, 0));
    }

    #[test]
    fn a_failed_compaction_is_retried_later_not_on_every_batch() {
        let mut c = Compaction::default();
        assert!(c.due(BIG, 100, 1, 100));
        c.failed(100);
        assert!(!c.due(BIG, 100, 1, 100) && !c.due(BIG, 100, 1, 100 + COMPACTION_RETRY - 1));
        assert!(c.due(BIG, 100, 1, 100 + COMPACTION_RETRY));
        // A success clears the back-off.
        c.failed(200);
        c.done();
        assert!(c.due(BIG, 100, 1, 200));
        // A clock going backwards only delays the retry.
        c.failed(500);
        assert!(!c.due(BIG, 100, 1, 400));
        // Forced: due at any size, until done.
        let mut c = Compaction::default();
        c.force();
        assert!(c.due(10, 1, 1, 0));
        c.done();
        assert!(!c.due(10, 1, 1, 0));
    }

    #[test]
    fn unrecorded_keeps_the_first_previous_record_of_each_address() {
        let mut u = Unrecorded::default();
        u.note(1, || Some("journalled"));
        u.note(1, || Some("changed in the same batch"));
        u.note(2, || None);
        assert!(u.contains(&1) && u.contains(&2) && !u.contains(&3));
        let before = u.take();
        assert_eq!(before[&1], Some("journalled"));
        assert_eq!(before[&2], None);
        assert!(!u.contains(&1));
        u.note(3, || None);
        u.clear();
        assert!(!u.contains(&3));
    }
}
