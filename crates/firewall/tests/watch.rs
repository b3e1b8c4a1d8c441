//! Root-only, live in a namespace: kvnet_host's nftables watcher reports each commit
//! once, with what changed in which table, and tells kvnet's own commits (an `nft`
//! child run through kvnet_host::nft, a native batch) from another process's; the
//! guard table outlives `nft flush ruleset` and dies with its socket.

mod common;

use std::process::Command;
use std::time::Duration;

use kvnet_firewall::{encode_add_new, encode_guard, guard_table, render_full};
use kvnet_host::nftwatch::{Change, Commit, Kind, NFPROTO_INET, NftWatcher, Notice, is_own};
use kvnet_host::testns::TestNs;

const TABLE: &str = "kvnet";

async fn next_commit(w: &mut NftWatcher) -> Commit {
    match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
        Ok(Ok(Notice::Commit(c))) => c,
        other => panic!("expected a commit, got {other:?}"),
    }
}

fn deleted_table(name: &str) -> Change {
    Change {
        kind: Kind::Table,
        added: false,
        family: NFPROTO_INET,
        table: Some(name.into()),
    }
}

#[test]
#[ignore = "needs root"]
fn the_watcher_tells_kvnets_commits_from_other_processes() {
    let ns = TestNs::with_prefix("kvw").expect("create network namespace");
    let (nat, routed) = (common::nat_default(), common::route_v4v6());
    ns.block_on(|| async {
        let mut w = NftWatcher::open().expect("watch");

        kvnet_host::nft::apply(&render_full(TABLE, std::slice::from_ref(&nat))).expect("apply");
        let own_nft = next_commit(&mut w).await;
        assert!(is_own(&own_nft), "{own_nft:?}");
        assert_eq!(own_nft.comm, "nft");
        assert!(own_nft.touches(TABLE));

        kvnet_host::nft::apply_batch(&encode_add_new(TABLE, &routed, 1)).expect("batch");
        let own_batch = next_commit(&mut w).await;
        assert!(is_own(&own_batch), "{own_batch:?}");
        assert_eq!(own_batch.generation, own_nft.generation + 1);
        assert!(
            own_batch
                .changes
                .iter()
                .all(|c| c.kind == Kind::Element && c.added),
            "{own_batch:?}"
        );

        let mut other = Command::new("nft")
            .args(["add", "table", "ip", "other"])
            .spawn()
            .expect("nft");
        other.wait().expect("nft");
        let elsewhere = next_commit(&mut w).await;
        assert!(
            !is_own(&elsewhere) && !elsewhere.touches(TABLE),
            "{elsewhere:?}"
        );

        let mut flush = Command::new("nft")
            .args(["flush", "ruleset"])
            .spawn()
            .expect("nft");
        let pid = flush.id();
        flush.wait().expect("nft");
        let foreign = next_commit(&mut w).await;
        assert!(!is_own(&foreign), "{foreign:?}");
        assert_eq!((foreign.pid, foreign.portid), (pid, pid));
        assert!(
            foreign.changes.contains(&deleted_table(TABLE)),
            "{foreign:?}"
        );
        assert!(
            foreign.changes.contains(&Change {
                family: 2,
                ..deleted_table("other")
            }),
            "{foreign:?}"
        );
        assert!(w.try_next().expect("receive").is_none(), "one commit each");
    });
}

#[test]
#[ignore = "needs root"]
fn the_guard_table_survives_a_flush_and_goes_with_its_socket() {
    let ns = TestNs::with_prefix("kvg").expect("create network namespace");
    let guard = guard_table(TABLE);
    let exists = |t: &str| ns.exec_ok("nft", &["list", "table", "inet", t]).is_ok();
    ns.run(|| {
        kvnet_host::nft::apply(&render_full(TABLE, &[common::nat_default()])).expect("apply");
        let owner = kvnet_host::nft::apply_batch_owned(&encode_guard(TABLE, 1)).expect("guard");
        let listing = ns
            .exec_ok("nft", &["list", "table", "inet", &guard])
            .expect("list guard");
        assert!(listing.contains("flags owner"), "{listing}");
        assert!(
            listing.contains("type nat hook postrouting priority 200"),
            "{listing}"
        );
        assert!(listing.contains("ct state invalid"), "{listing}");
        ns.exec_ok("nft", &["flush", "ruleset"]).expect("flush");
        assert!(
            !exists(TABLE) && exists(&guard),
            "flush passes the guard by"
        );
        assert!(
            ns.exec_ok("nft", &["delete", "table", "inet", &guard])
                .is_err(),
            "another process cannot delete it"
        );
        drop(owner);
        assert!(!exists(&guard), "gone with its socket");
    });
}
