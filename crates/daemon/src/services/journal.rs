//! The lease journals' durable step, one for the DHCPv4 and DHCPv6 shells. A journal is
//! replayed (and compacted when that drops anything) at start, then appended to: every
//! lease change of a batch of requests goes out in one write and one fsync before any
//! reply of the batch leaves, so a guest never holds an address a crash could forget.
//! While it runs, a journal that outgrows its bound (`kvnet_dhcp::Compaction`: twice as
//! many lines as live records, and over 64 KiB) is rewritten compacted between two
//! batches: written to a temporary file, fsynced and renamed over it, so a crash at any
//! instant leaves either the old file or the new one, each holding every lease
//! acknowledged.
//!
//! When the write fails (disk full, I/O error), the part of the batch that reached the
//! file is cut off again, so that the file holds exactly what was acknowledged; the
//! shell reports the failure to the engine, whose table goes back to the same state; the
//! replies of the requests that changed a lease are dropped and their clients retry; the
//! replies of the others (offers, NAKs, answers to INFORM or Information-request, and
//! renewals answered from a durable record, which promise nothing a crash could break)
//! still leave. The next batch simply tries again, so the network recovers by itself
//! once there is space; the failure, its duration and the replies dropped are logged
//! once when it starts, once a minute while it lasts, and once when it ends.

use super::lock;
use crate::store::{self, Durability};
use anyhow::{Context, Result};
use kvnet_dhcp::Compaction;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// A journal that keeps failing is reported this often.
const FAILING_LOG_EVERY: Duration = Duration::from_secs(60);

/// What a journal did, shared with its service for the metrics.
#[derive(Debug, Clone, Default)]
pub struct JournalStats {
    /// Bytes in the file.
    pub bytes: u64,
    /// Each batch's write and fsync, in seconds.
    pub fsync: kvnet_metrics::Histogram,
    pub failed_writes: u64,
    /// Replies held back because their lease changes could not be written.
    pub dropped_replies: u64,
}

/// A journal open for appending.
pub struct Journal {
    /// None after a compaction: reopened (the new file, or the old one if the rename
    /// did not happen) by the next append.
    file: Option<File>,
    path: PathBuf,
    /// Bytes and lines in the file, all durable: a failed append is cut off again.
    len: u64,
    lines: u64,
    compaction: Compaction,
    /// A compaction failed, maybe after its rename: the directory is fsynced before the
    /// next append counts, or a crash could bring back the old file without it.
    dir_unsynced: bool,
    failing: Option<Failing>,
    stats: Arc<Mutex<JournalStats>>,
}

/// A journal whose appends fail: since when, and what was lost meanwhile.
struct Failing {
    since: Instant,
    logged: Instant,
    /// Replies dropped since it was last logged, and in all.
    dropped: usize,
    dropped_total: usize,
}

/// What one request (or one expiry pass) came to: the journal lines of the lease changes
/// it made, and the replies that depend on them.
pub struct Outcome<R> {
    pub lines: String,
    pub replies: Vec<R>,
}

/// The result of a [`Journal::commit`].
pub struct Committed<R> {
    /// The replies that may leave, in order.
    pub replies: Vec<R>,
    /// Lines made durable.
    pub recorded: usize,
    /// Why nothing was recorded, and how many replies that dropped.
    pub failed: Option<(std::io::Error, usize)>,
}

/// A journal replayed, and its text as found (empty when there is none yet).
pub fn load<T>(path: &Path, replay: fn(&str) -> T) -> Result<(T, String)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    Ok((replay(&text), text))
}

impl Journal {
    /// Its counters, for the service's metrics.
    pub fn stats(&self) -> Arc<Mutex<JournalStats>> {
        self.stats.clone()
    }

    /// Replay the journal at `path`, rewrite it compacted if that drops anything, and
    /// open it for appending.
    pub fn open<T>(
        path: &Path,
        replay: fn(&str) -> T,
        compact: fn(&T) -> String,
    ) -> Result<(T, Journal)> {
        let (table, text) = load(path, replay)?;
        // Compacting costs two fsyncs; only pay them when there is something to drop.
        let compacted = compact(&table);
        if compacted != text {
            store::write_atomic(path, compacted.as_bytes(), 0o600, Durability::Durable)
                .with_context(|| format!("compact {}", path.display()))?;
        }
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        // A new journal's directory entry must be durable before leases go into it.
        if created && let Some(dir) = path.parent() {
            store::fsync_dir(dir)?;
        }
        Ok((
            table,
            Journal {
                file: Some(file),
                path: path.to_path_buf(),
                len: compacted.len() as u64,
                lines: compacted.lines().count() as u64,
                compaction: Compaction::default(),
                dir_unsynced: false,
                failing: None,
                stats: Arc::new(Mutex::new(JournalStats {
                    bytes: compacted.len() as u64,
                    ..JournalStats::default()
                })),
            },
        ))
    }

    /// Make the batch's lease changes durable with one write and one fsync, then hand
    /// back the replies that may leave (see the module docs). A blocking write on the
    /// daemon's thread: one per batch, and it keeps the ordering trivially right. A
    /// failing write returns at once, so a full disk stalls no other network.
    pub fn commit<R>(&mut self, batch: Vec<Outcome<R>>) -> Committed<R> {
        let lines: String = batch.iter().map(|o| o.lines.as_str()).collect();
        let recorded = lines.lines().count();
        let res = if lines.is_empty() {
            Ok(())
        } else {
            let t = Instant::now();
            let r = self.append(lines.as_bytes(), recorded as u64);
            let mut st = lock(&self.stats);
            st.fsync.observe(t.elapsed().as_secs_f64());
            st.bytes = self.len;
            r
        };
        match res {
            Ok(()) => {
                if recorded > 0 {
                    self.recovered();
                }
                Committed {
                    replies: batch.into_iter().flat_map(|o| o.replies).collect(),
                    recorded,
                    failed: None,
                }
            }
            Err(e) => {
                let (changed, kept): (Vec<_>, Vec<_>) =
                    batch.into_iter().partition(|o| !o.lines.is_empty());
                let dropped = changed.iter().map(|o| o.replies.len()).sum();
                {
                    let mut st = lock(&self.stats);
                    st.failed_writes += 1;
                    st.dropped_replies += dropped as u64;
                }
                self.failed(&e, dropped);
                Committed {
                    replies: kept.into_iter().flat_map(|o| o.replies).collect(),
                    recorded: 0,
                    failed: Some((e, dropped)),
                }
            }
        }
    }

    /// Append and fsync; on failure, cut the file back to what it held.
    fn append(&mut self, bytes: &[u8], lines: u64) -> std::io::Result<()> {
        if self.dir_unsynced {
            sync_dir(&self.path)?;
            self.dir_unsynced = false;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new().append(true).open(&self.path)?;
                let len = f.metadata()?.len();
                if len != self.len {
                    // The rename of a failed compaction happened: the compacted file.
                    self.len = len;
                    self.lines = std::fs::read(&self.path)?
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count() as u64;
                }
                self.file.insert(f)
            }
        };
        match file.write_all(bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.lines += lines;
                Ok(())
            }
            Err(e) => {
                // A partial line, or whole lines whose replies are dropped and which the
                // engine forgets: neither may stay. Shrinking needs no space.
                if let Err(t) = file.set_len(self.len).and_then(|()| file.sync_data()) {
                    warn!(
                        "cannot cut {} back to {} bytes after a failed write: {t}; it is rewritten from memory at the next compaction",
                        self.path.display(),
                        self.len
                    );
                    self.compaction.force();
                }
                Err(e)
            }
        }
    }

    /// Rewrite the journal compacted if it has outgrown its bound, for a table of
    /// `records` records. `live` gives the table as a journal (`compact`): between
    /// batches, after the engine was told how the last commit went, it is exactly what
    /// the journal holds. Done on the service's thread: 14 ms for 10,000 leases, and only
    /// after as many superseded lines were appended (figures in RELIABILITY.md). Not
    /// tried while appends fail: it would need the space they lack.
    pub fn compact_if_due(&mut self, now: u64, records: usize, live: impl FnOnce() -> String) {
        if self.failing.is_some()
            || !self
                .compaction
                .due(self.len, self.lines, records as u64, now)
        {
            return;
        }
        let t0 = Instant::now();
        let text = live();
        let was = self.len;
        // The old file stays until the rename: a crash meanwhile loses nothing.
        let res = store::write_atomic(&self.path, text.as_bytes(), 0o600, Durability::Durable);
        // Whatever happened, appends go to the file now at the path.
        self.file = None;
        match res {
            Ok(()) => {
                self.len = text.len() as u64;
                lock(&self.stats).bytes = self.len;
                self.lines = text.lines().count() as u64;
                self.compaction.done();
                debug!(
                    "compacted {} from {was} to {} bytes in {} ms",
                    self.path.display(),
                    self.len,
                    t0.elapsed().as_millis()
                );
            }
            Err(e) => {
                self.compaction.failed(now);
                self.dir_unsynced = true;
                warn!(
                    "cannot compact {} ({was} bytes): {e:#}; it keeps growing until a retry succeeds",
                    self.path.display()
                );
            }
        }
    }

    fn failed(&mut self, e: &std::io::Error, dropped: usize) {
        let path = self.path.display();
        let now = Instant::now();
        let Some(f) = &mut self.failing else {
            warn!(
                "cannot record lease changes in {path}: {e}; {dropped} replies dropped, and the replies needing a new record will be until it can (the clients retry)"
            );
            self.failing = Some(Failing {
                since: now,
                logged: now,
                dropped: 0,
                dropped_total: dropped,
            });
            return;
        };
        f.dropped += dropped;
        f.dropped_total += dropped;
        if now.duration_since(f.logged) >= FAILING_LOG_EVERY {
            warn!(
                "still cannot record lease changes in {path} after {} s: {e}; {} replies dropped in the last {} s",
                f.since.elapsed().as_secs(),
                f.dropped,
                now.duration_since(f.logged).as_secs()
            );
            f.logged = now;
            f.dropped = 0;
        }
    }

    fn recovered(&mut self) {
        if let Some(f) = self.failing.take() {
            info!(
                "lease changes are recorded in {} again after {} s; {} replies were dropped meanwhile",
                self.path.display(),
                f.since.elapsed().as_secs(),
                f.dropped_total
            );
        }
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new("/")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<Outcome<&'static str>> {
        vec![
            Outcome {
                lines: String::new(),
                replies: vec!["offer"],
            },
            Outcome {
                lines: "ack-line\n".into(),
                replies: vec!["ack"],
            },
            Outcome {
                lines: String::new(),
                replies: vec!["nak"],
            },
            Outcome {
                lines: "expiry-line\n".into(),
                replies: vec![],
            },
        ]
    }

    #[test]
    fn replies_leave_after_their_lines_are_durable() {
        let (_d, paths) = store::testdir::paths();
        let path = paths.lease_journal("n");
        let (text, mut j) = Journal::open(&path, |t| t.to_string(), |t| t.clone()).unwrap();
        assert_eq!(text, "");
        let c = j.commit(batch());
        assert_eq!(c.replies, ["offer", "ack", "nak"]);
        assert_eq!(c.recorded, 2);
        assert!(c.failed.is_none());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ack-line\nexpiry-line\n"
        );
        // Replayed and compacted at the next open: the replay decides what survives.
        let (text, _) = Journal::open(
            &path,
            |t| t.lines().next().unwrap_or("").to_string(),
            |t| format!("{t}\n"),
        )
        .unwrap();
        assert_eq!(text, "ack-line");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ack-line\n");
    }

    #[test]
    fn a_failed_write_drops_only_the_replies_that_needed_it() {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        let mut j = Journal {
            file: Some(full),
            path: "/dev/full".into(),
            len: 0,
            lines: 0,
            compaction: Compaction::default(),
            dir_unsynced: false,
            failing: None,
            stats: Arc::default(),
        };
        let c = j.commit(batch());
        assert_eq!(
            c.replies,
            ["offer", "nak"],
            "offers and NAKs promise nothing"
        );
        let (e, dropped) = c.failed.expect("the write failed");
        assert_eq!(e.raw_os_error(), Some(28), "ENOSPC");
        assert_eq!((dropped, c.recorded), (1, 0));
        {
            let st = lock(&j.stats);
            assert_eq!((st.failed_writes, st.dropped_replies), (1, 1));
            assert_eq!(st.fsync.count(), 1);
        }
        // A batch without lease changes never touches the disk.
        let c = j.commit(vec![Outcome {
            lines: String::new(),
            replies: vec!["offer"],
        }]);
        assert_eq!(c.replies, ["offer"]);
        assert!(c.failed.is_none());
        assert!(
            j.failing.is_some(),
            "still failing: nothing was written since"
        );
        // Nor is a compaction tried while appends fail.
        j.compact_if_due(0, 0, || unreachable!("no compaction of a failing journal"));
    }

    /// A journal of `n`-line records keyed by their first word, like the engines': a
    /// later line for a key replaces the earlier one.
    fn replay(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| Some((l.split_once(' ')?.0.to_string(), l.to_string())))
            .collect()
    }

    fn compact(t: &std::collections::BTreeMap<String, String>) -> String {
        t.values().map(|l| format!("{l}\n")).collect()
    }

    fn line(key: usize, n: usize) -> Outcome<usize> {
        Outcome {
            lines: format!("{key:05} renewal {n:010} {}\n", "x".repeat(500)),
            replies: vec![n],
        }
    }

    #[test]
    fn a_running_journal_is_compacted_past_its_bound_and_loses_nothing() {
        let (_d, paths) = store::testdir::paths();
        let path = paths.lease_journal("n");
        let (mut table, mut j) = Journal::open(&path, replay, compact).unwrap();
        // 20 clients renewing over and over: the table stays at 20 lines.
        let mut sizes = Vec::new();
        for n in 0..1000 {
            let o = line(n % 20, n);
            table.extend(replay(&o.lines));
            let c = j.commit(vec![o]);
            assert_eq!(c.replies, [n]);
            j.compact_if_due(0, table.len(), || compact(&table));
            sizes.push(std::fs::metadata(&path).unwrap().len());
        }
        let live = compact(&table).len() as u64;
        let max = *sizes.iter().max().unwrap();
        assert!(
            max <= kvnet_dhcp::COMPACTION_FLOOR + 600,
            "{max} bytes, {live} live"
        );
        assert!(sizes.windows(2).any(|w| w[1] < w[0]), "never compacted");
        assert_eq!(j.len, std::fs::metadata(&path).unwrap().len());
        // Every append after a compaction went to the new file; a restart finds it all.
        let (again, _) = Journal::open(&path, replay, compact).unwrap();
        assert_eq!(again, table);
    }

    #[test]
    fn a_failed_compaction_leaves_the_old_journal_and_appends_go_on() {
        let (_d, paths) = store::testdir::paths();
        let path = paths.lease_journal("n");
        let (mut table, mut j) = Journal::open(&path, replay, compact).unwrap();
        let mut n = 0;
        while j.len <= kvnet_dhcp::COMPACTION_FLOOR {
            let o = line(n % 10, n);
            table.extend(replay(&o.lines));
            assert!(j.commit(vec![o]).failed.is_none());
            n += 1;
        }
        // The temporary file cannot be created: the compaction fails, the journal stays.
        let tmp = path.with_file_name(".n.jsonl.tmp");
        std::fs::create_dir(&tmp).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        j.compact_if_due(100, table.len(), || compact(&table));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert!(j.dir_unsynced);
        // Not retried on the next batch, but later.
        let o = line(0, n);
        table.extend(replay(&o.lines));
        assert!(j.commit(vec![o]).failed.is_none());
        assert!(!j.dir_unsynced, "the directory was fsynced first");
        j.compact_if_due(101, table.len(), || unreachable!("retried at once"));
        std::fs::remove_dir(&tmp).unwrap();
        j.compact_if_due(1000, table.len(), || compact(&table));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), compact(&table));
        let o = line(3, n + 1);
        table.extend(replay(&o.lines));
        assert!(j.commit(vec![o]).failed.is_none());
        assert_eq!(Journal::open(&path, replay, compact).unwrap().0, table);
    }
}
