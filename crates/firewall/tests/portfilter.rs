//! Root-only: the port filter's table and changes as nft takes them, and the listing
//! read back; each case in a fresh network namespace.

use kvnet_firewall::portfilter::{
    FilterInput, FilterPort, FilterState, parse_listing, render_changes, render_table,
};
use kvnet_host::testns::TestNs;
use kvnet_model::MacAddr;

const TABLE: &str = "kvnet";

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn state(ports: &[(&str, Option<&str>)], bind: &[(&str, &str)]) -> FilterState {
    let input = FilterInput {
        ports: ports
            .iter()
            .map(|(n, m)| FilterPort {
                ifname: n.to_string(),
                mac: m.map(mac),
            })
            .collect(),
        known_macs: vec![mac("52:54:00:00:00:99")],
        bindings: bind
            .iter()
            .map(|(m, a)| (mac(m), a.parse().unwrap()))
            .collect(),
    };
    FilterState::from_input(&input).0
}

fn apply(ns: &TestNs, script: &str) {
    ns.run(|| kvnet_host::nft::apply(script))
        .unwrap_or_else(|e| panic!("{e}\n{script}"));
}

fn installed(ns: &TestNs) -> kvnet_firewall::portfilter::Installed {
    let json = ns
        .run(|| kvnet_host::nft::list_table_json("bridge", TABLE))
        .unwrap()
        .expect("table exists");
    parse_listing(&json).unwrap()
}

#[test]
#[ignore = "needs root"]
fn table_and_changes_apply_and_read_back() {
    let ns = TestNs::with_prefix("kvpf").expect("netns");
    let a = "52:54:00:00:00:0a";
    let s1 = state(
        &[("vnet0", Some(a)), ("tap1", None)],
        &[(a, "10.0.0.10"), (a, "fd00::5054:ff:fe00:a")],
    );
    apply(&ns, &render_table(TABLE, &s1));
    let i = installed(&ns);
    assert!(i.current);
    assert_eq!(i.state, s1);
    assert!(i.learned.is_empty());
    assert_eq!(i.drops.len(), 2);

    // Ports come and go, addresses move: only differences, and the result is exact.
    let s2 = state(
        &[("tap1", None), ("vnet2", Some("52:54:00:00:00:0c"))],
        &[(a, "10.0.0.11")],
    );
    let c = render_changes(TABLE, &s1, &s2, &[]).expect("changes");
    apply(&ns, &c);
    assert_eq!(installed(&ns).state, s2);
    assert_eq!(render_changes(TABLE, &s2, &s2, &[]), None);

    // Rebuilding over an existing table is one transaction that leaves the new state.
    apply(&ns, &render_table(TABLE, &s1));
    assert_eq!(installed(&ns).state, s1);
}
