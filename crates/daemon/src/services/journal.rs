//! The lease journals' durable step, one for the DHCPv4 and DHCPv6 shells. A journal is
//! replayed (and compacted when that drops anything) at start, then appended to: every
//! lease change of a batch of requests goes out in one write and one fsync before any
//! reply of the batch leaves, so a guest never holds an address a crash could forget.
//!
//! When the write fails (disk full, I/O error), the replies of the requests that changed
//! a lease are dropped and their clients retry; the replies of the others (offers, NAKs,
//! answers to INFORM or Information-request, which promise nothing a crash could break)
//! still leave.

use crate::store::{self, Durability};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A journal open for appending.
pub struct Journal {
    file: File,
    path: PathBuf,
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
                file,
                path: path.to_path_buf(),
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the batch's lease changes durable with one write and one fsync, then hand
    /// back the replies that may leave (see the module docs). A blocking write on the
    /// daemon's thread: one per batch, and it keeps the ordering trivially right.
    pub fn commit<R>(&mut self, batch: Vec<Outcome<R>>) -> Committed<R> {
        let lines: String = batch.iter().map(|o| o.lines.as_str()).collect();
        let recorded = lines.lines().count();
        let res = if lines.is_empty() {
            Ok(())
        } else {
            self.file
                .write_all(lines.as_bytes())
                .and_then(|()| self.file.sync_data())
        };
        match res {
            Ok(()) => Committed {
                replies: batch.into_iter().flat_map(|o| o.replies).collect(),
                recorded,
                failed: None,
            },
            Err(e) => {
                let (changed, kept): (Vec<_>, Vec<_>) =
                    batch.into_iter().partition(|o| !o.lines.is_empty());
                Committed {
                    replies: kept.into_iter().flat_map(|o| o.replies).collect(),
                    recorded: 0,
                    failed: Some((e, changed.iter().map(|o| o.replies.len()).sum())),
                }
            }
        }
    }
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
        let mut j = Journal {
            file: std::fs::OpenOptions::new()
                .append(true)
                .open("/dev/full")
                .unwrap(),
            path: "/dev/full".into(),
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
        // A batch without lease changes never touches the disk.
        let c = j.commit(vec![Outcome {
            lines: String::new(),
            replies: vec!["offer"],
        }]);
        assert_eq!(c.replies, ["offer"]);
        assert!(c.failed.is_none());
    }
}
