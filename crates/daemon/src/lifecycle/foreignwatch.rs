//! Keeps kvnet's changes in other firewalls in place: a task follows nftables
//! commits to tables other than kvnet's (Docker restarting, `ufw reload`, firewalld
//! before 2.0 flushing iptables' tables on start and reload) and firewalld's D-Bus
//! signals (`Reloaded`, which drops runtime zone bindings, and its starts), and has
//! [`Foreign::recheck`] re-apply what the networks need. kvnet's own commits are
//! ignored ([`nftwatch::is_own`]), a burst of commits costs one recheck, and
//! rechecks are rate-limited like the table's repairs ([`fwrepair::Budget`]).

use super::fwrepair::Budget;
use crate::dataplane::foreign::Foreign;
use futures::StreamExt;
use kvnet_host::firewalld::Event;
use kvnet_host::nftwatch::{self, NftWatcher, Notice};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Commits of one burst are gathered this long before a recheck.
const SETTLE: Duration = Duration::from_millis(100);

/// Whether a notice may concern other firewalls: a commit by another process that
/// touches a table not in `own` (or one whose tables could not be read).
fn concerns(n: &Notice, own: &[kvnet_foreign::TableId]) -> bool {
    match n {
        Notice::Lost => true,
        Notice::Commit(c) if nftwatch::is_own(c) => false,
        Notice::Commit(c) => c.changes.iter().any(|ch| match &ch.table {
            None => true,
            Some(t) => !own
                .iter()
                .any(|o| &o.name == t && o.family == nftwatch::family_name(ch.family)),
        }),
    }
}

/// Starts the task, which also keeps the other tables' cache valid (in `report` mode
/// that is all it does: [`Foreign::recheck`] changes nothing there).
pub async fn spawn(foreign: Foreign) -> Option<tokio::task::JoinHandle<()>> {
    let mut nft = match NftWatcher::open() {
        Ok(w) => w,
        Err(e) => {
            warn!("{e}: kvnet's rules in other firewalls are not re-added when others remove them");
            return None;
        }
    };
    foreign.set_watched().await;
    let fwd = foreign.firewalld().await;
    let mut events = match &fwd {
        Some(f) => f
            .events()
            .await
            .inspect_err(|e| warn!("{e}: firewalld reloads are not followed"))
            .ok(),
        None => None,
    };
    Some(tokio::spawn(async move {
        let own = foreign.own_tables().to_vec();
        let mut budget = Budget::default();
        loop {
            let (why, rebind) = tokio::select! {
                n = nft.next() => match n {
                    Ok(n) if concerns(&n, &own) => ("a change to other tables", false),
                    Ok(_) => continue,
                    Err(e) => {
                        warn!("{e}; kvnet's rules in other firewalls are no longer re-added");
                        return;
                    }
                },
                Some(ev) = async { match events.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                } } => match ev {
                    Event::Reloaded => ("a firewalld reload", true),
                    Event::Started => ("firewalld's start", true),
                    Event::Stopped => {
                        foreign.firewalld_stopped().await;
                        continue;
                    }
                },
            };
            foreign.invalidate().await;
            tokio::time::sleep(SETTLE).await;
            while let Ok(Some(_)) = nft.try_next() {}
            if let Err(wait) = budget.take(Instant::now()) {
                debug!("other firewalls keep changing: next check in {wait:?}");
                tokio::time::sleep(wait).await;
                while let Ok(Some(_)) = nft.try_next() {}
                let _ = budget.take(Instant::now());
            }
            foreign.recheck(why, rebind).await;
        }
    }))
}
