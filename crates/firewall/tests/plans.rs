//! Golden plans, in the manner of libvirt's networkxml2firewalltest: each
//! network definition tests/plans/NAME.xml has beside it exactly what kvnet
//! installs for it, to be read against libvirt's rules:
//!
//! * NAME.nft: `render_add`, the script a start applies when kvnet's table
//!   does not exist yet (the first network on a host, or the fallback when
//!   the fast path fails). Chosen over `render_full` because it is what a
//!   start sends, and it still shows the whole table a lone network needs:
//!   the fixed skeleton, then this network's elements.
//! * NAME.batch: `encode_add_new`, the netlink batch of the daemon's fast
//!   start once the table exists, decoded by `common::batch` (one line per
//!   message, nested attributes indented, keys decoded with the key types
//!   the script declares).
//!
//! A network whose role installs no rules has only NAME.nft, saying so.
//! UPDATE_SNAPSHOTS=1 rewrites the expected files; review them before
//! committing.

mod common;

use std::path::PathBuf;

use common::batch;
use kvnet_firewall::{FwNetwork, encode_add_new, render_add};

const TABLE: &str = "kvnet";

fn path(name: &str, ext: &str) -> PathBuf {
    common::plans_dir().join(format!("{name}.{ext}"))
}

fn batch_text(net: &FwNetwork, script: &str) -> String {
    let keys = batch::key_types(script);
    format!(
        "# encode_add_new(\"{TABLE}\", {}, seq 1)\n{}",
        net.name,
        batch::render(&encode_add_new(TABLE, net, 1), &keys)
    )
}

#[test]
fn every_plan_matches_its_expected_rules() {
    let names = common::plan_names();
    assert!(!names.is_empty());
    for name in &names {
        let def = common::definition(name);
        let Some(net) = FwNetwork::from_network(&def) else {
            common::golden(
                &path(name, "nft"),
                &format!("# {}: no firewall rules\n", def.name),
            );
            assert!(!path(name, "batch").exists(), "{name}: stale .batch");
            continue;
        };
        net.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let script = render_add(TABLE, &net);
        common::golden(&path(name, "nft"), &script);
        common::golden(&path(name, "batch"), &batch_text(&net, &script));
    }
}

#[test]
fn every_expected_file_has_its_plan() {
    let names = common::plan_names();
    for entry in std::fs::read_dir(common::plans_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let (stem, ext) = file.rsplit_once('.').unwrap();
        assert!(
            ext == "xml" || names.iter().any(|n| n == stem),
            "{file} has no {stem}.xml"
        );
    }
}
