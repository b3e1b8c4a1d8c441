//! kvnet's table repairs itself. A task follows the nftables commits
//! ([`NftWatcher`]); when another process deletes kvnet's table (`nft flush ruleset`,
//! `nft delete table`) or changes anything in it, the whole table is rebuilt for every
//! network whose rules belong in it ([`Firewall::rebuild`]): one transaction, connection
//! tracking untouched, so established flows and their NAT go on. The overlay networks'
//! DHCP fence (a bridge table, [`crate::dataplane::fence`]) is watched and rebuilt with it.
//!
//! kvnet's own commits (its `nft` children, its native batches, the teardown thread's)
//! are recognised by their committer ([`nftwatch::is_own`]) and ignored, so a rebuild
//! never triggers another. A process that keeps changing the table gets at most
//! [`BURST`] rebuilds per [`WINDOW`]; the next one waits, and covers everything that
//! happened meanwhile.

use crate::dataplane::firewall::Firewall;
use kvnet_firewall::fence::fence_table;
use kvnet_host::nftwatch::{
    self, Change, Commit, Kind, NFPROTO_BRIDGE, NFPROTO_INET, NftWatcher, Notice,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Rebuilds allowed in any [`WINDOW`].
pub const BURST: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(10);

/// What the commits seen call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Another process changed kvnet's table: rebuild it.
    Tampered {
        what: String,
        pid: u32,
        comm: String,
    },
    /// Changes were missed or could not be read: rebuild if the table is not intact.
    Unsure(String),
}

/// What commit `c` means for kvnet's table `table` (family inet) and its overlay DHCP
/// fence (family bridge); `own` tells whether kvnet made it.
pub fn judge(c: &Commit, table: &str, own: bool) -> Option<Finding> {
    if own {
        return None;
    }
    let fence = fence_table(table);
    let ours: Vec<&Change> = c
        .changes
        .iter()
        .filter(|ch| match ch.family {
            NFPROTO_INET => ch.table.as_deref() == Some(table),
            NFPROTO_BRIDGE => ch.table.as_deref() == Some(&fence),
            _ => false,
        })
        .collect();
    if ours.is_empty() {
        let fence_may = |ch: &&Change| ch.family == NFPROTO_BRIDGE && ch.table.is_none();
        return (c.touches(table) || c.changes.iter().any(|ch| fence_may(&ch)))
            .then(|| Finding::Unsure(format!("unreadable changes by pid {} ({})", c.pid, c.comm)));
    }
    let table_change = |added| {
        ours.iter()
            .any(|ch| ch.kind == Kind::Table && ch.added == added)
    };
    let what = if table_change(false) && !table_change(true) {
        "deleted".to_string()
    } else {
        let mut parts: Vec<String> = ours
            .iter()
            .filter(|ch| ch.kind != Kind::Table)
            .map(|ch| {
                let verb = if ch.added { "added" } else { "deleted" };
                format!("{:?} {verb}", ch.kind).to_lowercase()
            })
            .collect();
        parts.dedup();
        format!("edited ({})", parts.join(", "))
    };
    Some(Finding::Tampered {
        what,
        pid: c.pid,
        comm: c.comm.clone(),
    })
}

/// Folds `next` into `acc`: a change by another process outweighs a doubt, and the
/// first one is the one reported.
pub fn merge(acc: &mut Option<Finding>, next: Option<Finding>) {
    match (&acc, next) {
        (_, None) | (Some(Finding::Tampered { .. }), _) => {}
        (None | Some(Finding::Unsure(_)), Some(n @ Finding::Tampered { .. })) => *acc = Some(n),
        (None, Some(n)) => *acc = Some(n),
        (Some(Finding::Unsure(_)), Some(Finding::Unsure(_))) => {}
    }
}

/// The rebuilds of the last [`WINDOW`].
#[derive(Default)]
pub struct Budget {
    recent: VecDeque<Instant>,
}

impl Budget {
    /// Spends one rebuild at `now`, or says how long until one is allowed.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        match self.recent.front() {
            Some(&oldest) if self.recent.len() >= BURST => {
                Err(WINDOW - now.saturating_duration_since(oldest))
            }
            _ => {
                self.recent.push_back(now);
                Ok(())
            }
        }
    }
}

fn assess(n: &Notice, table: &str) -> Option<Finding> {
    match n {
        Notice::Commit(c) => judge(c, table, nftwatch::is_own(c)),
        Notice::Lost => Some(Finding::Unsure("nftables notifications lost".into())),
    }
}

/// Folds in every notice already received, so a burst of commits costs one rebuild.
fn drain(w: &mut NftWatcher, table: &str, acc: &mut Option<Finding>) {
    loop {
        match w.try_next() {
            Ok(Some(n)) => merge(acc, assess(&n, table)),
            Ok(None) => return,
            Err(e) => {
                warn!("{e}");
                return;
            }
        }
    }
}

/// The next finding; None when the watcher fails.
async fn next_finding(w: &mut NftWatcher, table: &str) -> Option<Finding> {
    loop {
        let n = match w.next().await {
            Ok(n) => n,
            Err(e) => {
                error!("{e}; kvnet's table is no longer repaired when changed");
                return None;
            }
        };
        let mut found = assess(&n, table);
        drain(w, table, &mut found);
        if found.is_some() {
            return found;
        }
    }
}

fn repair(fw: &Firewall, finding: &Finding, noticed: Instant) {
    let table = fw.table();
    let what = match finding {
        Finding::Tampered { what, pid, comm } => format!("{what} by pid {pid} ({comm})"),
        Finding::Unsure(why) => match fw.is_intact() {
            Ok(true) => return debug!("table inet {table} checked after {why}: intact"),
            Ok(false) => format!("found changed after {why}"),
            Err(e) => format!("unreadable ({e:#}) after {why}"),
        },
    };
    let names = fw.wanted_names();
    if names.is_empty() && !fw.fence().wanted() {
        return debug!("table inet {table} {what}: no network needs it");
    }
    // The fence first: the rebuild below only reports the inet table.
    if let Err(e) = fw.fence().rebuild() {
        error!("the overlay networks' DHCP fence could not be rebuilt: {e:#}");
    }
    match fw.rebuild() {
        Ok(n) => info!(
            "table inet {table} {what}: rebuilt for {n} networks ({}) in {:.1} ms",
            names.join(", "),
            noticed.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => error!("table inet {table} {what}, and rebuilding it failed: {e:#}"),
    }
}

/// Follows `w`'s commits and repairs `fw`'s table, on the current tokio runtime.
pub fn spawn(mut w: NftWatcher, fw: Firewall) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut budget = Budget::default();
        let table = fw.table().to_string();
        while let Some(found) = next_finding(&mut w, &table).await {
            let noticed = Instant::now();
            // A start before the rebuild must not trust the table.
            fw.invalidate();
            let mut found = Some(found);
            if let Err(wait) = budget.take(noticed) {
                if let Some(Finding::Tampered { what, pid, comm }) = &found {
                    warn!(
                        "table inet {table} {what} by pid {pid} ({comm}), again: \
                         next rebuild in {:.1} s",
                        wait.as_secs_f64()
                    );
                }
                tokio::time::sleep(wait).await;
                drain(&mut w, &table, &mut found);
                let _ = budget.take(Instant::now());
            }
            if let Some(f) = &found {
                repair(&fw, f, noticed);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(changes: &[(Kind, bool, u8, Option<&str>)]) -> Commit {
        Commit {
            generation: 7,
            pid: 1234,
            comm: "nft".into(),
            portid: 1234,
            changes: changes
                .iter()
                .map(|&(kind, added, family, table)| Change {
                    kind,
                    added,
                    family,
                    table: table.map(str::to_string),
                })
                .collect(),
        }
    }

    fn tampered(what: &str) -> Option<Finding> {
        Some(Finding::Tampered {
            what: what.into(),
            pid: 1234,
            comm: "nft".into(),
        })
    }

    const INET: u8 = NFPROTO_INET;

    #[test]
    fn a_flush_or_delete_by_another_process_is_a_deletion() {
        let flush = commit(&[
            (Kind::Rule, false, INET, Some("kvnet")),
            (Kind::Set, false, INET, Some("kvnet")),
            (Kind::Table, false, INET, Some("kvnet")),
            (Kind::Table, false, 2, Some("filter")),
        ]);
        assert_eq!(judge(&flush, "kvnet", false), tampered("deleted"));
        assert_eq!(judge(&flush, "kvnet", true), None, "kvnet's own");
        assert_eq!(judge(&flush, "other", false), None);
    }

    #[test]
    fn edits_name_what_changed() {
        let edit = commit(&[
            (Kind::Rule, true, INET, Some("kvnet")),
            (Kind::Element, false, INET, Some("kvnet")),
        ]);
        assert_eq!(
            judge(&edit, "kvnet", false),
            tampered("edited (rule added, element deleted)")
        );
        let recreated = commit(&[
            (Kind::Table, false, INET, Some("kvnet")),
            (Kind::Table, true, INET, Some("kvnet")),
            (Kind::Chain, true, INET, Some("kvnet")),
        ]);
        assert_eq!(
            judge(&recreated, "kvnet", false),
            tampered("edited (chain added)")
        );
    }

    #[test]
    fn the_overlay_fence_is_watched_too() {
        let c = commit(&[(Kind::Table, false, NFPROTO_BRIDGE, Some("kvnet_overlay"))]);
        assert_eq!(judge(&c, "kvnet", false), tampered("deleted"));
        let c = commit(&[(Kind::Element, false, NFPROTO_BRIDGE, Some("kvnet_overlay"))]);
        assert_eq!(
            judge(&c, "kvnet", false),
            tampered("edited (element deleted)")
        );
        let c = commit(&[(Kind::Rule, true, NFPROTO_BRIDGE, Some("kvnet"))]);
        assert_eq!(
            judge(&c, "kvnet", false),
            None,
            "the port filter's own table"
        );
    }

    #[test]
    fn other_families_and_tables_are_left_alone() {
        let c = commit(&[
            (Kind::Table, false, 2, Some("kvnet")),
            (Kind::Rule, true, INET, Some("filter")),
        ]);
        assert_eq!(judge(&c, "kvnet", false), None);
    }

    #[test]
    fn an_unreadable_change_that_may_be_ours_calls_for_a_check() {
        let c = commit(&[(Kind::Rule, true, INET, None)]);
        assert!(matches!(
            judge(&c, "kvnet", false),
            Some(Finding::Unsure(_))
        ));
        assert_eq!(
            judge(&commit(&[(Kind::Rule, true, 2, None)]), "kvnet", false),
            None
        );
    }

    #[test]
    fn a_change_outweighs_a_doubt_and_the_first_change_is_kept() {
        let mut acc = None;
        merge(&mut acc, None);
        assert_eq!(acc, None);
        merge(&mut acc, Some(Finding::Unsure("lost".into())));
        merge(&mut acc, tampered("deleted"));
        merge(&mut acc, tampered("edited (rule added)"));
        merge(&mut acc, Some(Finding::Unsure("later".into())));
        assert_eq!(acc, tampered("deleted"));
    }

    #[test]
    fn rebuilds_are_limited_to_a_burst_per_window() {
        let t0 = Instant::now();
        let mut b = Budget::default();
        for i in 0..BURST {
            assert_eq!(b.take(t0 + Duration::from_millis(i as u64)), Ok(()));
        }
        let t = t0 + Duration::from_secs(1);
        assert_eq!(b.take(t), Err(WINDOW - Duration::from_secs(1)));
        assert_eq!(b.take(t0 + WINDOW), Ok(()), "the oldest aged out");
        assert!(b.take(t0 + WINDOW).is_err());
    }
}
