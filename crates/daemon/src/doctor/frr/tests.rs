//! On vtysh output captured from FRR 8.4 (`../testdata/capture-frr.sh`).

use super::*;

const MESH: &str = "asn = 65000\n\
    [[host]]\nname = \"host1\"\nvtep = \"10.255.0.1\"\n\
    [[host]]\nname = \"host2\"\nvtep = \"10.255.0.2\"\n\
    [[host]]\nname = \"host3\"\nvtep = \"10.255.0.3\"\n";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../testdata/", $name)).to_string()
    };
}

fn fabric(text: &str) -> Fabric {
    Fabric::parse(text).unwrap()
}

fn rr() -> Fabric {
    fabric(&format!("route-reflectors = [\"host1\"]\n{MESH}"))
}

fn vni(vni: u32, network: &str) -> OverlayVni {
    OverlayVni {
        vni,
        network: network.into(),
        device: format!("vxlan{vni}"),
    }
}

fn answered(summary: String, vnis: String) -> Frr {
    Frr::Answered { summary, vnis }
}

/// (problem, culprit) of each finding.
fn brief(f: &[Finding]) -> Vec<(bool, String)> {
    assert!(f.iter().all(|f| f.check == Check::Evpn));
    f.iter().map(|f| (f.problem, f.culprit.clone())).collect()
}

#[test]
fn a_healthy_full_mesh_gives_nothing() {
    let frr = answered(
        fixture!("mesh-host1-summary.json"),
        fixture!("mesh-host1-vni.json"),
    );
    assert_eq!(judge(Some(&fabric(MESH)), &frr, &[vni(100, "lab")]), []);
    let frr = answered(
        fixture!("mesh-host3-summary.json"),
        fixture!("mesh-host3-vni.json"),
    );
    assert_eq!(judge(Some(&fabric(MESH)), &frr, &[vni(100, "lab")]), []);
}

#[test]
fn route_reflection_is_healthy_on_the_reflector_and_its_client() {
    let frr = answered(
        fixture!("rr-host1-summary.json"),
        fixture!("rr-host1-vni.json"),
    );
    assert_eq!(judge(Some(&rr()), &frr, &[vni(100, "lab")]), []);
    // Host 3 peers with host 1 only and still learns host 2's VTEP.
    let frr = answered(
        fixture!("rr-host3-summary.json"),
        fixture!("rr-host3-vni.json"),
    );
    assert_eq!(judge(Some(&rr()), &frr, &[vni(100, "lab")]), []);
}

#[test]
fn a_peer_that_is_down_is_named_with_its_state() {
    let frr = answered(
        fixture!("mesh-host1-peer-down-summary.json"),
        fixture!("mesh-host1-peer-down-vni.json"),
    );
    let f = judge(Some(&fabric(MESH)), &frr, &[vni(100, "lab")]);
    assert_eq!(
        brief(&f),
        [(true, "BGP peer host2 (10.255.0.2): Idle".to_string())]
    );
    assert!(f[0].fix.contains("FRR runs on host2"), "{}", f[0].fix);
    assert!(f[0].fix.contains("ping -I 10.255.0.1 10.255.0.2"));
    assert_eq!(f[0].network, None);
}

#[test]
fn a_fabric_host_without_a_session_is_named() {
    let four = format!("{MESH}[[host]]\nname = \"host4\"\nvtep = \"10.255.0.4\"\n");
    let frr = answered(
        fixture!("mesh-host1-summary.json"),
        fixture!("mesh-host1-vni.json"),
    );
    let f = judge(Some(&fabric(&four)), &frr, &[]);
    assert_eq!(
        brief(&f),
        [(true, "no BGP session with host4 (10.255.0.4)".to_string())]
    );
    assert!(f[0].fix.contains("kvnet fabric-config"));
    // A client only needs its reflector: host 3 of the RR fabric is fine with host 4
    // added, the reflector misses it.
    let four_rr = format!("route-reflectors = [\"host1\"]\n{four}");
    let client = answered(
        fixture!("rr-host3-summary.json"),
        fixture!("rr-host3-vni.json"),
    );
    assert_eq!(judge(Some(&fabric(&four_rr)), &client, &[]), []);
    let reflector = answered(
        fixture!("rr-host1-summary.json"),
        fixture!("rr-host1-vni.json"),
    );
    let f = judge(Some(&fabric(&four_rr)), &reflector, &[]);
    assert_eq!(
        brief(&f),
        [(true, "no BGP session with host4 (10.255.0.4)".to_string())]
    );
    assert!(f[0].detail.contains("host4 is a peer of this host"));
}

#[test]
fn peers_and_router_ids_outside_the_fabric_are_reported() {
    let two = "asn = 65000\n\
        [[host]]\nname = \"host1\"\nvtep = \"10.255.0.1\"\n\
        [[host]]\nname = \"host3\"\nvtep = \"10.255.0.3\"\n";
    let frr = answered(
        fixture!("mesh-host1-summary.json"),
        fixture!("mesh-host1-vni.json"),
    );
    assert_eq!(
        brief(&judge(Some(&fabric(two)), &frr, &[])),
        [(false, "BGP peer 10.255.0.2".to_string())]
    );
    let others = "asn = 65000\n\
        [[host]]\nname = \"a\"\nvtep = \"10.9.0.1\"\n\
        [[host]]\nname = \"b\"\nvtep = \"10.9.0.2\"\n";
    let f = judge(Some(&fabric(others)), &frr, &[]);
    assert_eq!(
        brief(&f),
        [
            (false, "BGP peer 10.255.0.2".to_string()),
            (false, "BGP peer 10.255.0.3".to_string()),
            (true, "BGP router id 10.255.0.1".to_string()),
        ]
    );
}

#[test]
fn an_expected_vni_missing_from_frr_is_a_problem_of_its_network() {
    let frr = answered(
        fixture!("mesh-host1-summary.json"),
        fixture!("mesh-host1-vni.json"),
    );
    let f = judge(
        Some(&fabric(MESH)),
        &frr,
        &[vni(100, "lab"), vni(300, "other")],
    );
    assert_eq!(
        brief(&f),
        [(true, "VNI 300 (vxlan300) not in FRR".to_string())]
    );
    assert_eq!(f[0].network.as_deref(), Some("other"));
    assert!(f[0].fix.contains("vxlan300 is up"));
}

#[test]
fn a_vni_no_other_host_has_is_a_note() {
    // VNI 200 exists on host 1 only.
    let frr = answered(
        fixture!("mesh-host1-summary.json"),
        fixture!("mesh-host1-vni.json"),
    );
    let f = judge(Some(&fabric(MESH)), &frr, &[vni(200, "solo")]);
    assert_eq!(
        brief(&f),
        [(false, "VNI 200 (vxlan200) has no remote VTEP".to_string())]
    );
    assert_eq!(f[0].network.as_deref(), Some("solo"));
    // A one-host fabric has nobody to learn from: no note (only the missing instance).
    let one = "asn = 65000\n[[host]]\nname = \"host1\"\nvtep = \"10.255.0.1\"\n";
    let frr = answered("{}".into(), fixture!("mesh-host1-vni.json"));
    let f = judge(Some(&fabric(one)), &frr, &[vni(200, "solo")]);
    assert_eq!(brief(&f), [(true, "FRR: no BGP EVPN instance".to_string())]);
}

#[test]
fn frr_missing_down_or_unconfigured_is_one_problem() {
    let f = judge(Some(&fabric(MESH)), &Frr::NoVtysh, &[vni(100, "lab")]);
    assert_eq!(brief(&f), [(true, "FRR: vtysh not found".to_string())]);
    assert!(f[0].fix.contains("apt-get install frr"));
    let down = fixture!("frr-down.stderr");
    let f = judge(Some(&fabric(MESH)), &Frr::Failed(down), &[]);
    assert_eq!(
        brief(&f),
        [(
            true,
            "FRR: Exiting: failed to connect to any daemons.".to_string()
        )]
    );
    let f = judge(
        Some(&fabric(MESH)),
        &Frr::Failed("bgpd is not running\n".into()),
        &[],
    );
    assert_eq!(brief(&f), [(true, "FRR: bgpd is not running".to_string())]);
    // bgpd without `router bgp`, and zebra without EVPN (it prints nothing).
    let f = judge(
        Some(&fabric(MESH)),
        &answered("{}".into(), String::new()),
        &[vni(100, "lab")],
    );
    assert_eq!(
        brief(&f),
        [
            (true, "FRR: no BGP EVPN instance".to_string()),
            (true, "VNI 100 (vxlan100) not in FRR".to_string()),
        ]
    );
}

#[test]
fn output_that_is_not_json_is_reported_not_trusted() {
    let frr = answered("% Unknown command".into(), "% Unknown command".into());
    let f = judge(Some(&fabric(MESH)), &frr, &[]);
    assert_eq!(f.len(), 2);
    assert!(f[0].culprit.contains("show bgp l2vpn evpn summary json"));
    assert_eq!(f[0].detail, "vtysh said: % Unknown command");
    assert!(f[1].culprit.contains("show evpn vni json"));
}

#[test]
fn the_fabric_file_error_is_passed_on() {
    let f = bad_fabric("/etc/kvnet/fabric.toml", "asn: 0 is reserved (RFC 7607)");
    assert_eq!(
        f.culprit,
        "/etc/kvnet/fabric.toml: asn: 0 is reserved (RFC 7607)"
    );
    assert!(f.problem);
}

#[test]
fn vxlan_links_give_their_vni_and_bridge() {
    // `ip -j -d link show type vxlan` (iproute2 6.1): vxlan100 in br100, vxlan7 alone.
    let links = parse_vxlan_links(&fixture!("ip-link-vxlan.json")).unwrap();
    assert_eq!(
        links,
        [
            VxlanLink {
                name: "vxlan100".into(),
                vni: 100,
                master: Some("br100".into()),
                evpn: true,
            },
            VxlanLink {
                name: "vxlan7".into(),
                vni: 7,
                master: None,
                evpn: true,
            },
        ]
    );
    assert_eq!(parse_vxlan_links("[ ]\n").unwrap(), []);
    assert_eq!(parse_vxlan_links("").unwrap(), []);
    // A single VXLAN device (external, many VNIs) has no id: left out.
    let external =
        r#"[{"ifname":"vxlan0","linkinfo":{"info_kind":"vxlan","info_data":{"external":true}}}]"#;
    assert_eq!(parse_vxlan_links(external).unwrap(), []);
    assert!(parse_vxlan_links("oops").is_err());
    // A static remote or a multicast group: not EVPN's.
    let fixed = r#"[{"ifname":"vx1","linkinfo":{"info_data":{"id":1,"remote":"192.0.2.9"}}},
        {"ifname":"vx2","linkinfo":{"info_data":{"id":2,"group":"239.1.1.1"}}}]"#;
    let l = parse_vxlan_links(fixed).unwrap();
    assert_eq!((l[0].evpn, l[1].evpn), (false, false));
}

#[test]
fn without_a_fabric_file_only_frr_and_the_vnis_are_judged() {
    // host1's FRR, judged without knowing the fabric: nothing about hosts.
    let frr = answered(
        fixture!("mesh-host1-peer-down-summary.json"),
        fixture!("mesh-host1-peer-down-vni.json"),
    );
    let f = judge(
        None,
        &frr,
        &[vni(100, "lab"), vni(200, "solo"), vni(300, "x")],
    );
    assert_eq!(
        brief(&f),
        [
            (true, "BGP peer 10.255.0.2: Idle".to_string()),
            (false, "VNI 200 (vxlan200) has no remote VTEP".to_string()),
            (true, "VNI 300 (vxlan300) not in FRR".to_string()),
        ]
    );
    let f = judge(None, &Frr::NoVtysh, &[vni(100, "lab")]);
    assert!(
        f[0].detail
            .starts_with("networks have VXLAN ports that only EVPN"),
        "{f:?}"
    );
}
