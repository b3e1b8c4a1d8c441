//! Snapshot tests: rendered scripts are compared with tests/snapshots/*.nft.
//! Run with UPDATE_SNAPSHOTS=1 to rewrite them after an intended change.

mod common;

use std::path::PathBuf;

use kvnet_firewall::{render_add, render_add_new, render_full, render_remove, validate_all};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.nft"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert!(
        expected == actual,
        "snapshot {} differs (UPDATE_SNAPSHOTS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn per_network_snapshots() {
    for (name, net) in common::all() {
        check(
            &format!("{name}.full"),
            &render_full("kvnet", std::slice::from_ref(&net)),
        );
        check(&format!("{name}.add"), &render_add("kvnet", &net));
        check(&format!("{name}.add_new"), &render_add_new("kvnet", &net));
        check(&format!("{name}.remove"), &render_remove("kvnet", &net));
    }
}

#[test]
fn several_networks_snapshot() {
    let nets: Vec<_> = common::all().into_iter().map(|(_, n)| n).collect();
    validate_all(&nets).unwrap();
    check("several.full", &render_full("kvnet", &nets));
}

#[test]
fn empty_and_custom_table_snapshots() {
    check("empty.full", &render_full("kvnet", &[]));
    check(
        "custom_table.add",
        &render_add("kvnet_test", &common::nat_default()),
    );
}

#[test]
fn add_script_does_not_depend_on_network_count() {
    // render_add only sees one network, so network #200's script is network
    // #1's with other names; the root test checks the same on a real table.
    let (first, later) = (common::numbered(1), common::numbered(200));
    let rename = render_add("kvnet", &later)
        .replace(&later.name, &first.name)
        .replace(&later.bridge, &first.bridge)
        .replace(&later.subnets[0].to_string(), &first.subnets[0].to_string());
    assert_eq!(rename, render_add("kvnet", &first));
}
