//! Snapshot tests for what a single network's XML plan (tests/plans.rs)
//! cannot show: several networks in one table, a custom table name, the
//! stop and fast-start scripts, and the 200th network's script. Compared
//! with tests/snapshots/*.nft; UPDATE_SNAPSHOTS=1 rewrites them after an
//! intended change.

mod common;

use std::path::PathBuf;

use kvnet_firewall::{render_add, render_add_new, render_full, render_remove, validate_all};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.nft"));
    common::golden(&path, actual);
}

#[test]
fn several_networks_snapshot() {
    let nets: Vec<_> = common::all().into_iter().map(|(_, n)| n).collect();
    validate_all(&nets).unwrap();
    check("several.full", &render_full("kvnet", &nets));
}

#[test]
fn custom_table_snapshot() {
    check(
        "custom_table.add",
        &render_add("kvnet_test", &common::nat_default()),
    );
}

/// A plain network's elements and a custom-NAT network's chain: removed
/// elements first, then the chain; the fast start creates the chain before
/// the map element that jumps to it.
#[test]
fn remove_and_add_new_snapshots() {
    let plain = common::nat_default();
    let custom = common::nat_address_port();
    check("nat_default.remove", &render_remove("kvnet", &plain));
    check("nat_address_port.remove", &render_remove("kvnet", &custom));
    check(
        "nat_address_port.add_new",
        &render_add_new("kvnet", &custom),
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

/// The anti-spoofing table (family bridge), whole: a port with a known MAC and two
/// addresses, a learning port, and the changes when the first goes and a lease comes.
#[test]
fn port_filter_snapshots() {
    use kvnet_firewall::portfilter::{
        FilterInput, FilterPort, FilterState, render_changes, render_table,
    };
    let mac = |s: &str| s.parse().unwrap();
    let input = |ports: Vec<FilterPort>, bindings: &[(&str, &str)]| {
        let i = FilterInput {
            known_macs: ports.iter().filter_map(|p| p.mac).collect(),
            ports,
            bindings: bindings
                .iter()
                .map(|(m, a)| (mac(m), a.parse().unwrap()))
                .collect(),
        };
        FilterState::from_input(&i).0
    };
    let vnet0 = FilterPort {
        ifname: "vnet0".into(),
        mac: Some(mac("52:54:00:00:00:0a")),
    };
    let tap0 = FilterPort {
        ifname: "tap0".into(),
        mac: None,
    };
    let before = input(
        vec![vnet0, tap0.clone()],
        &[
            ("52:54:00:00:00:0a", "192.168.122.10"),
            ("52:54:00:00:00:0a", "fd00::5054:ff:fe00:a"),
        ],
    );
    check("portfilter.table", &render_table("kvnet", &before));
    let after = input(vec![tap0], &[("52:54:00:00:00:0b", "192.168.122.101")]);
    check(
        "portfilter.changes",
        &render_changes("kvnet", &before, &after, &[]).unwrap(),
    );
}
