//! `kvnet doctor`'s EVPN check against real FRR: the lab's host namespace is host1 of a
//! two-host fabric, its LAN namespace host2 (VTEPs on lo, routed over the uplink); each
//! runs zebra and bgpd with every path under a temporary directory (nothing in
//! /etc/frr or /var/run/frr), configured from `kvnet fabric-config`. The network's
//! VXLAN port is made by hand, as the overlay would. Root and FRR only.

mod lab;

use kvnet_api::Report;
use lab::frr::Frr;
use lab::*;
use std::time::{Duration, Instant};

const BR: &str = "kvev0";
const FABRIC: &str = "asn = 65000\n\
    [[host]]\nname = \"host1\"\nvtep = \"10.255.0.1\"\n\
    [[host]]\nname = \"host2\"\nvtep = \"10.255.0.2\"\n";

/// The doctor's EVPN findings, as "problem|note culprit".
fn evpn(lab: &Lab) -> (Option<i32>, Vec<String>) {
    let (code, out) = lab.cli_code(&["doctor", "--json"]);
    let r: Report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let found = r
        .findings
        .iter()
        .filter(|f| f.check.as_str() == "evpn")
        .map(|f| {
            format!(
                "{} {}",
                if f.problem { "problem" } else { "note" },
                f.culprit
            )
        })
        .collect();
    (code, found)
}

/// Polls the doctor until `want` holds for its EVPN findings (FRR takes seconds).
fn until(lab: &Lab, what: &str, want: impl Fn(&[String]) -> bool) -> (Option<i32>, Vec<String>) {
    let t0 = Instant::now();
    loop {
        let (code, found) = evpn(lab);
        if want(&found) {
            return (code, found);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "{what}: still {found:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs root"]
fn the_doctor_follows_frr_sessions_and_vnis() {
    have("vtysh", "frr");
    let base = std::env::temp_dir().join(format!("kvnet-evpn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("tmp dir");
    let _base = TempDir(base.clone());
    // kvnetd asks host1's FRR through this wrapper.
    let vtysh = base.join("vtysh");
    std::fs::write(
        &vtysh,
        format!(
            "#!/bin/sh\nexec vtysh --vty_socket {} \"$@\"\n",
            base.join("host1").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&vtysh, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let lab = Lab::with_env(&[("KVNET_VTYSH", vtysh.to_str().expect("utf-8"))]);

    // No fabric file: the doctor does not ask FRR.
    lab.define_and_start(&format!(
        "<network><name>ov</name><bridge name='{BR}'/>\
         <ip address='192.168.160.1' netmask='255.255.255.0'/></network>"
    ));
    assert_eq!(evpn(&lab), (Some(0), vec![]));

    let fabric = lab.daemon.dir.join("etc/fabric.toml");
    std::fs::write(&fabric, "asn = 0\n").expect("fabric");
    let (code, found) = evpn(&lab);
    assert_eq!(code, Some(2));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("fabric.toml: asn: 0 is reserved (RFC 7607)"),
        "{found:?}"
    );
    std::fs::write(&fabric, FABRIC).expect("fabric");

    // Underlay: VTEPs on lo, routed over the lab's uplink (203.0.113.1 <-> .2).
    ip(&lab.host, "addr add 10.255.0.1/32 dev lo");
    ip(&lab.host, "route add 10.255.0.2/32 via 203.0.113.2");
    ip(&lab.lan, "addr add 10.255.0.2/32 dev lo");
    ip(&lab.lan, "route add 10.255.0.1/32 via 203.0.113.1");
    // VNI 100 on the network's bridge here, and on a bridge of host2.
    let vxlan = "link add vxlan100 type vxlan id 100 dstport 4789 nolearning local";
    ip(&lab.host, &format!("{vxlan} 10.255.0.1"));
    ip(&lab.host, &format!("link set vxlan100 master {BR} up"));
    ip(&lab.lan, "link add br100 type bridge");
    ip(&lab.lan, &format!("{vxlan} 10.255.0.2"));
    ip(&lab.lan, "link set vxlan100 master br100 up");
    ip(&lab.lan, "link set br100 up");

    // FRR not running yet.
    let (code, found) = evpn(&lab);
    assert_eq!(code, Some(2));
    assert_eq!(
        found,
        ["problem FRR: Exiting: failed to connect to any daemons."]
    );

    let host2 = Frr::start(&lab.lan, &base.join("host2"), &fabric, "host2");
    let _host1 = Frr::start(&lab.host, &base.join("host1"), &fabric, "host1");
    let (code, _) = until(&lab, "session and VNI 100 learnt", |f| f.is_empty());
    assert_eq!(code, Some(0));

    // host2's bgpd stops: the session goes down, and VNI 100 loses its remote VTEP.
    host2.stop("bgpd");
    let (code, found) = until(&lab, "peer down", |f| {
        f.iter()
            .any(|f| f.starts_with("problem BGP peer host2 (10.255.0.2): "))
    });
    assert_eq!(code, Some(2), "{found:?}");
    assert!(!found[0].ends_with(": Established"), "{found:?}");
    until(&lab, "VNI 100 alone", |f| {
        f.iter()
            .any(|f| f == "note VNI 100 (vxlan100) has no remote VTEP")
    });

    // EVPN turned off on host1: zebra no longer reports VNI 100.
    let (ok, out) = sh(
        &lab.host,
        &format!(
            "vtysh --vty_socket {} -c 'configure terminal' -c 'router bgp 65000' \
             -c 'address-family l2vpn evpn' -c 'no advertise-all-vni'",
            base.join("host1").display()
        ),
    );
    assert!(ok, "{out}");
    let (code, found) = until(&lab, "VNI 100 missing", |f| {
        f.iter().any(|f| f.starts_with("problem VNI 100"))
    });
    assert_eq!(code, Some(2));
    assert!(
        found.contains(&"problem VNI 100 (vxlan100) not in FRR".to_string()),
        "{found:?}"
    );

    // Without the fabric file, a VXLAN port with neither remote nor group still makes
    // the doctor ask FRR; peers are then named by address only.
    std::fs::remove_file(&fabric).expect("rm fabric");
    let (code, found) = evpn(&lab);
    assert_eq!(code, Some(2));
    assert!(
        found.contains(&"problem VNI 100 (vxlan100) not in FRR".to_string()),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("problem BGP peer 10.255.0.2: ")),
        "{found:?}"
    );
}
