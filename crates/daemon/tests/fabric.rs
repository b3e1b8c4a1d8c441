//! Networks across hosts, the whole story (issue 15), as a root test: scripts/fabric-demo.sh
//! with this build's binaries — three hosts in namespaces, each with FRR (configured by
//! `kvnet fabric-config`) and its own kvnetd, one overlay NAT network, guests on each:
//! leases from each host's slice, reach across hosts, NAT through each guest's own host,
//! a guest's move (pings every 10 ms, under a second without traffic), a kvnetd killed
//! and restarted under traffic (nothing lost), a host's FRR stopped (only its guests
//! lose the other hosts). The script exits 0 only when every check held.

mod lab;

use lab::*;

#[test]
#[ignore = "needs root"]
fn three_hosts_with_frr_and_kvnetd_hold_every_check() {
    kvnet_host::testns::require_root("network namespaces, FRR and kvnetd for three hosts");
    have("vtysh", "frr");
    have("iperf3", "iperf3");
    have("busybox", "busybox-static");
    let bins = bin("kvnetd");
    let bins = bins.parent().expect("the binaries' directory");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(root.join("scripts/fabric-demo.sh"))
        .current_dir(&root)
        .env("KVNET_BIN_DIR", bins)
        .output()
        .expect("run scripts/fabric-demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success() && text.contains("every check held"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
}
