use super::*;

const THREE: &str = r#"
asn = 65000
[[host]]
name = "host1"
vtep = "10.255.0.1"
[[host]]
name = "host2"
vtep = "10.255.0.2"
[[host]]
name = "host3"
vtep = "10.255.0.3"
"#;

fn with_rr(rr: &str) -> String {
    format!("route-reflectors = [{rr}]\n{THREE}")
}

/// The error of `text`, as shown to people.
fn err(text: &str) -> String {
    Fabric::parse(text).unwrap_err().to_string()
}

/// A fabric file with one line of the three-host one replaced.
fn edited(from: &str, to: &str) -> String {
    assert!(THREE.contains(from), "{from}");
    THREE.replacen(from, to, 1)
}

#[test]
fn the_three_host_fabric_parses() {
    let f = Fabric::parse(THREE).unwrap();
    assert_eq!(f.asn, 65000);
    assert!(f.route_reflectors.is_empty());
    assert_eq!(f.hosts.len(), 3);
    assert_eq!(
        f.hosts[1],
        FabricHost {
            name: "host2".into(),
            vtep: Ipv4Addr::new(10, 255, 0, 2)
        }
    );
    assert_eq!(f.host("host3").unwrap().vtep, Ipv4Addr::new(10, 255, 0, 3));
    assert_eq!(f.host("HOST3").unwrap().name, "host3");
    assert!(f.host("host4").is_none());
    let (i, h) = f.by_vtep(Ipv4Addr::new(10, 255, 0, 3)).unwrap();
    assert_eq!((i, h.name.as_str()), (2, "host3"));
    assert!(f.by_vtep(Ipv4Addr::new(10, 255, 0, 9)).is_none());
}

#[test]
fn one_host_and_the_largest_asn_are_allowed() {
    let f =
        Fabric::parse("asn = 4294967295\n[[host]]\nname = \"a\"\nvtep = \"192.0.2.1\"\n").unwrap();
    assert_eq!(f.asn, u32::MAX);
    assert!(f.peers("a").unwrap().is_empty());
}

#[test]
fn reflectors_are_named_like_their_hosts() {
    let f = Fabric::parse(&with_rr("\"HOST1\"")).unwrap();
    assert_eq!(f.route_reflectors, ["host1"]);
    let f = Fabric::parse(&with_rr("")).unwrap();
    assert!(f.route_reflectors.is_empty(), "empty list = full mesh");
}

#[test]
fn asn_out_of_range_or_reserved_is_refused() {
    for (asn, why) in [
        ("0", "asn: 0 is reserved"),
        ("23456", "asn: 23456 is AS_TRANS"),
        ("-1", "asn: -1 is not in 1..=4294967295"),
        ("4294967296", "asn: 4294967296 is not in 1..=4294967295"),
    ] {
        let e = err(&edited("asn = 65000", &format!("asn = {asn}")));
        assert!(e.starts_with(why), "{asn}: {e}");
    }
    assert!(err(&edited("asn = 65000", "asn = \"65000\"")).contains("asn"));
    assert!(err(&edited("asn = 65000", "")).contains("asn"), "missing");
}

#[test]
fn a_fabric_without_hosts_is_refused() {
    assert_eq!(
        err("asn = 65000\n"),
        "host: the fabric needs at least one [[host]]"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let e = err(&format!("color = \"red\"\n{THREE}"));
    assert!(e.contains("color"), "{e}");
    let e = err(&edited(
        "vtep = \"10.255.0.2\"",
        "vtep = \"10.255.0.2\"\nasn = 1",
    ));
    assert!(e.contains("asn"), "{e}");
    let e = err(&edited("name = \"host1\"", "name = \"host1\"\nmac = \"x\""));
    assert!(e.contains("mac"), "{e}");
    // The TOML parser's message names the line.
    assert!(err("asn = = 1").contains("line 1"), "{}", err("asn = = 1"));
}

#[test]
fn bad_host_names_are_refused_with_the_host() {
    let long = "a".repeat(64);
    for (name, why) in [
        ("", "host[1].name: \"\" must have 1 to 63 characters"),
        (long.as_str(), "must have 1 to 63 characters (it has 64)"),
        ("host_1", "'_' is not allowed"),
        ("host.example", "'.' is not allowed"),
        ("hôte", "'ô' is not allowed"),
        ("-host", "must not begin or end with '-'"),
        ("host-", "must not begin or end with '-'"),
    ] {
        let e = err(&edited("name = \"host1\"", &format!("name = \"{name}\"")));
        assert!(e.starts_with("host[1].name: "), "{name}: {e}");
        assert!(e.contains(why), "{name}: {e}");
    }
    assert!(
        Fabric::parse(&edited(
            "name = \"host1\"",
            &format!("name = \"{}\"", "a".repeat(63))
        ))
        .is_ok()
    );
}

#[test]
fn bad_vteps_are_refused_with_the_host() {
    for (vtep, why) in [
        ("10.255.0", "\"10.255.0\" is not an IPv4 address"),
        ("fd00::1", "\"fd00::1\" is not an IPv4 address"),
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),
        (
            "255.255.255.255",
            "255.255.255.255 is the broadcast address",
        ),
        ("239.1.1.1", "239.1.1.1 is a multicast address"),
        ("127.0.0.2", "127.0.0.2 is a loopback address"),
        ("240.0.0.1", "240.0.0.1 is reserved"),
    ] {
        let e = err(&edited(
            "vtep = \"10.255.0.2\"",
            &format!("vtep = \"{vtep}\""),
        ));
        assert_eq!(
            e,
            format!("host[2].vtep: {}", e.split_once(": ").unwrap().1)
        );
        assert!(
            e.starts_with(&format!("host[2].vtep: {why}")),
            "{vtep}: {e}"
        );
    }
}

#[test]
fn duplicate_names_and_vteps_are_refused() {
    let e = err(&edited("name = \"host3\"", "name = \"Host1\""));
    assert_eq!(
        e,
        "host[3].name: host1 is already a host (names are case-insensitive)"
    );
    let e = err(&edited("vtep = \"10.255.0.3\"", "vtep = \"10.255.0.1\""));
    assert_eq!(e, "host[3].vtep: 10.255.0.1 is already host host1's VTEP");
}

#[test]
fn reflectors_must_be_hosts_listed_once() {
    assert_eq!(
        err(&with_rr("\"host9\"")),
        "route-reflectors: \"host9\" is not a [[host]] of the fabric"
    );
    assert_eq!(
        err(&with_rr("\"host1\", \"host1\"")),
        "route-reflectors: \"host1\" is listed twice"
    );
}

#[test]
fn frr_config_of_an_unknown_host_lists_the_hosts() {
    let f = Fabric::parse(THREE).unwrap();
    assert_eq!(
        f.frr_config("host9").unwrap_err().to_string(),
        "no host host9 in the fabric (hosts: host1, host2, host3)"
    );
}

#[test]
fn full_mesh_peers_with_every_other_host() {
    let f = Fabric::parse(THREE).unwrap();
    assert_eq!(
        f.frr_config("host1").unwrap(),
        "\
frr defaults datacenter
hostname host1
!
router bgp 65000
 bgp router-id 10.255.0.1
 no bgp default ipv4-unicast
 neighbor VTEP peer-group
 neighbor VTEP remote-as internal
 neighbor VTEP update-source 10.255.0.1
 neighbor 10.255.0.2 peer-group VTEP
 neighbor 10.255.0.3 peer-group VTEP
 !
 address-family l2vpn evpn
  neighbor VTEP activate
  advertise-all-vni
 exit-address-family
exit
"
    );
    let h2 = f.frr_config("host2").unwrap();
    assert!(h2.contains(" bgp router-id 10.255.0.2\n"));
    assert!(h2.contains(
        " neighbor 10.255.0.1 peer-group VTEP\n neighbor 10.255.0.3 peer-group VTEP\n !"
    ));
}

#[test]
fn a_reflector_serves_every_other_host_and_clients_peer_only_with_it() {
    let f = Fabric::parse(&with_rr("\"host1\"")).unwrap();
    assert_eq!(
        f.frr_config("host1").unwrap(),
        "\
frr defaults datacenter
hostname host1
!
router bgp 65000
 bgp router-id 10.255.0.1
 no bgp default ipv4-unicast
 neighbor VTEP peer-group
 neighbor VTEP remote-as internal
 neighbor VTEP update-source 10.255.0.1
 neighbor 10.255.0.2 peer-group VTEP
 neighbor 10.255.0.3 peer-group VTEP
 !
 address-family l2vpn evpn
  neighbor VTEP activate
  neighbor 10.255.0.2 route-reflector-client
  neighbor 10.255.0.3 route-reflector-client
  advertise-all-vni
 exit-address-family
exit
"
    );
    assert_eq!(
        f.frr_config("host3").unwrap(),
        "\
frr defaults datacenter
hostname host3
!
router bgp 65000
 bgp router-id 10.255.0.3
 no bgp default ipv4-unicast
 neighbor VTEP peer-group
 neighbor VTEP remote-as internal
 neighbor VTEP update-source 10.255.0.3
 neighbor 10.255.0.1 peer-group VTEP
 !
 address-family l2vpn evpn
  neighbor VTEP activate
  advertise-all-vni
 exit-address-family
exit
"
    );
}

#[test]
fn two_reflectors_peer_with_each_other_as_plain_neighbours() {
    let f = Fabric::parse(&with_rr("\"host1\", \"host2\"")).unwrap();
    let h1 = f.frr_config("host1").unwrap();
    assert!(h1.contains(" neighbor 10.255.0.2 peer-group VTEP\n"));
    assert!(!h1.contains("10.255.0.2 route-reflector-client"), "{h1}");
    assert!(h1.contains("  neighbor 10.255.0.3 route-reflector-client\n"));
    let peers: Vec<_> = f
        .peers("host3")
        .unwrap()
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(peers, ["host1", "host2"]);
}
