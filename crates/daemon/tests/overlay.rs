//! Overlay networks (`<kvnet:overlay>`), root only: the same definition on two hosts,
//! each with its kvnetd, joined by an underlay link. kvnetd makes the VXLAN port (no
//! learning, neighbour suppression, an MTU that fits the underlay) and keeps DHCP on each
//! host, which hands out only its slice of the range (from the fabric file). Here the
//! test itself installs the flood entries BGP EVPN's type-3 routes would (the FRR lab
//! is in fabric.rs); guests on the two hosts then reach each other across the overlay.

mod lab;

use kvnet_api::request as req;
use lab::*;

const OVERLAY: &str = "<network><name>ov</name><forward mode='nat'/>\
    <bridge name='kvov0'/><mac address='52:54:00:0e:00:01'/>\
    <ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.10' end='10.77.0.49'/></dhcp></ip>\
    <metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>\
    <kvnet:overlay vni='4242' dev='kvul0'/></kvnet:network></metadata></network>";

const FABRIC: &str = "asn = 65000\n\
    [[host]]\nname = \"a\"\nvtep = \"172.31.254.1\"\n\
    [[host]]\nname = \"b\"\nvtep = \"172.31.254.2\"\n";

/// A lab whose kvnetd has the fabric file.
fn host() -> Lab {
    host_with(&[])
}

fn host_with(env: &[(&str, &str)]) -> Lab {
    let setup = Setup {
        shell: vec![format!(
            "mkdir -p $D/etc && printf '%s' '{FABRIC}' > $D/etc/fabric.toml"
        )],
        ..Setup::default()
    };
    Lab::with_setup(env, &setup)
}

fn underlay(a: &Lab, b: &Lab) {
    a.host.veth_to("kvul0", &b.host, "kvul0").unwrap();
    for (lab, n) in [(a, 1), (b, 2)] {
        ip(&lab.host, &format!("addr add 172.31.254.{n}/24 dev kvul0"));
        ip(&lab.host, "link set kvul0 up");
    }
}

/// What EVPN's type-3 routes would install: each host floods to the other.
fn flood(a: &Lab, b: &Lab) {
    for (lab, other) in [(a, 2), (b, 1)] {
        let (ok, out) = sh(
            &lab.host,
            &format!("bridge fdb append 00:00:00:00:00:00 dev kvx4242 dst 172.31.254.{other}"),
        );
        assert!(ok, "{out}");
    }
}

/// `nft flush ruleset` on `lab`'s host; the DHCP fence is back within a few seconds.
fn flush_and_await_fence(lab: &Lab) -> std::time::Duration {
    let (ok, out) = sh(&lab.host, "nft flush ruleset");
    assert!(ok, "{out}");
    within(5, || {
        sh(&lab.host, "nft list set bridge kvnet_overlay overlay")
            .1
            .contains("\"kvx4242\"")
    })
    .expect("the fence is rebuilt after a flush")
}

fn leases(lab: &Lab) -> String {
    lab.cli(&["net-dhcp-leases", "ov"]).1
}

#[test]
#[ignore = "needs root"]
fn an_overlay_joins_two_hosts_and_each_host_serves_its_own_guests() {
    have("busybox", "busybox-static");
    let (mut a, mut b) = (host(), host());
    underlay(&a, &b);
    a.define_and_start(OVERLAY);
    b.define_and_start(OVERLAY);

    // The VXLAN port, as EVPN wants it; the guests' MTU leaves room for its headers.
    let d = sh(&a.host, "ip -d link show kvx4242").1;
    for want in [
        "mtu 1450",
        "master kvov0",
        "vxlan id 4242 local 172.31.254.1 dev kvul0",
        "dstport 4789",
        "nolearning",
        "learning off",
        "neigh_suppress on",
    ] {
        assert!(d.contains(want), "{want}: {d}");
    }
    let fence = sh(&a.host, "nft list table bridge kvnet_overlay").1;
    assert!(
        fence.contains("elements = { \"kvx4242\" }")
            && fence.contains("oifname @overlay udp dport { 67, 68, 546, 547 } drop"),
        "DHCP is kept off the VXLAN port: {fence}"
    );
    let live = a.cli(&["net-dumpxml", "ov"]).1;
    assert!(live.contains("<mtu size='1450'/>"), "{live}");

    flood(&a, &b);

    // Each guest's lease comes from its own host's half of the range: DHCP does not
    // cross the overlay (b's server would otherwise answer a's guest too).
    let (ga, addr_a) = a.udhcpc_guest("kvov0", "52:54:00:0e:00:0a", "ga");
    let (gb, addr_b) = b.udhcpc_guest("kvov0", "52:54:00:0e:00:0b", "gb");
    assert_eq!(addr_a, "10.77.0.10", "a's slice starts the range");
    assert_eq!(addr_b, "10.77.0.30", "b's slice is the second half");
    assert!(leases(&a).contains("52:54:00:0e:00:0a") && !leases(&a).contains("52:54:00:0e:00:0b"));
    assert!(leases(&b).contains("52:54:00:0e:00:0b") && !leases(&b).contains("52:54:00:0e:00:0a"));

    // The guests reach each other across the overlay, full-sized frames included.
    ip(&a.guests[ga], &format!("addr add {addr_a}/24 dev eth0"));
    ip(&b.guests[gb], &format!("addr add {addr_b}/24 dev eth0"));
    for g in [&a.guests[ga], &b.guests[gb]] {
        ip(g, "link set eth0 mtu 1450");
    }
    let (ok, out) = sh(
        &a.guests[ga],
        &format!("ping -c 3 -W 2 -M do -s 1422 {addr_b}"),
    );
    assert!(ok, "{out}");

    // Someone flushes the ruleset on both hosts: the fence comes back with kvnet's
    // table, and DHCP still stays on each host.
    for lab in [&a, &b] {
        let back = flush_and_await_fence(lab);
        eprintln!("fence back {back:?} after the flush (polled every 100 ms)");
    }
    let (_, addr_b2) = b.udhcpc_guest("kvov0", "52:54:00:0e:00:0c", "gb2");
    assert_eq!(addr_b2, "10.77.0.31", "from b's slice");
    assert!(!leases(&a).contains("52:54:00:0e:00:0c"), "{}", leases(&a));

    // A restart adopts the port as it is; a destroy removes it, the other host keeps its own.
    let index = sh(&a.host, "cat /sys/class/net/kvx4242/ifindex").1;
    a.restart_daemon();
    assert_eq!(sh(&a.host, "cat /sys/class/net/kvx4242/ifindex").1, index);
    a.ok(req::Destroy {
        network: "ov".into(),
        wait: true,
    });
    assert!(!a.links().contains("kvx4242"), "{}", a.links());
    // The last overlay took its fence table with it.
    let (ok, fence) = sh(&a.host, "nft list table bridge kvnet_overlay");
    assert!(!ok, "{fence}");
    assert!(b.links().contains("kvx4242"));
}

/// An open network puts no rules in kvnet's table, yet as an overlay it needs the DHCP
/// fence all the same: made at start, rebuilt after a flush by itself, deleted at stop.
#[test]
#[ignore = "needs root"]
fn an_open_overlay_keeps_dhcp_on_each_host_without_kvnets_table() {
    have("busybox", "busybox-static");
    // kvnet's table goes as soon as the built-in network does.
    let idle = [("KVNET_IDLE_TABLE", "0")];
    let (mut a, mut b) = (host_with(&idle), host_with(&idle));
    underlay(&a, &b);
    let xml = OVERLAY.replace("<forward mode='nat'/>", "<forward mode='open'/>");
    // Without the built-in NAT network, kvnet's table has nothing in it.
    for lab in [&a, &b] {
        lab.ok(req::Destroy {
            network: "default".into(),
            wait: true,
        });
    }
    a.define_and_start(&xml);
    b.define_and_start(&xml);
    flood(&a, &b);
    let gone = within(5, || !sh(&a.host, "nft list table inet kvnet").0);
    assert!(
        gone.is_some(),
        "it went with the last network that needed it"
    );
    // The fence alone is rebuilt: there is no inet table to notice missing.
    for lab in [&a, &b] {
        flush_and_await_fence(lab);
    }
    let (ga, addr_a) = a.udhcpc_guest("kvov0", "52:54:00:0e:01:0a", "oa");
    let (gb, addr_b) = b.udhcpc_guest("kvov0", "52:54:00:0e:01:0b", "ob");
    assert_eq!(
        (addr_a.as_str(), addr_b.as_str()),
        ("10.77.0.10", "10.77.0.30")
    );
    assert!(!leases(&a).contains("52:54:00:0e:01:0b"), "{}", leases(&a));
    ip(&a.guests[ga], &format!("addr add {addr_a}/24 dev eth0"));
    ip(&b.guests[gb], &format!("addr add {addr_b}/24 dev eth0"));
    let (ok, out) = sh(&a.guests[ga], &format!("ping -c 2 -W 2 {addr_b}"));
    assert!(ok, "{out}");
    a.ok(req::Destroy {
        network: "ov".into(),
        wait: true,
    });
    let (ok, fence) = sh(&a.host, "nft list table bridge kvnet_overlay");
    assert!(!ok, "deleted with the last overlay: {fence}");
}

/// DHCPv6 is fenced like DHCPv4: a guest's Solicit (multicast, flooded to every host
/// carrying the VNI without the fence) is answered by its own host alone, from that
/// host's half of the IPv6 range.
#[test]
#[ignore = "needs root"]
fn dhcpv6_stays_on_each_host_and_hands_out_its_slice() {
    use lab::dhcp6::dhclient6;
    let (mut a, mut b) = (host(), host());
    underlay(&a, &b);
    let xml = OVERLAY.replace(
        "</ip>",
        "</ip><ip family='ipv6' address='fd00:77::1' prefix='64'><dhcp>\
         <range start='fd00:77::100' end='fd00:77::1ff'/></dhcp></ip>",
    );
    a.define_and_start(&xml);
    b.define_and_start(&xml);
    flood(&a, &b);
    let half = |addr: std::net::Ipv6Addr| {
        let last = addr.segments()[7];
        assert!((0x100..=0x1ff).contains(&last), "{addr} is in the range");
        if last < 0x180 { "a" } else { "b" }
    };
    let ga = a.guest6("kvov0", "52:54:00:0e:02:0a");
    let gb = b.guest6("kvov0", "52:54:00:0e:02:0b");
    let addr_a = dhclient6(&a, ga).unwrap_or_else(|| panic!("{}", a.daemon.log()));
    let addr_b = dhclient6(&b, gb).unwrap_or_else(|| panic!("{}", b.daemon.log()));
    assert_eq!((half(addr_a), half(addr_b)), ("a", "b"));
    let leases6 = |lab: &Lab| lab.cli(&["net-dhcp-leases", "ov"]).1;
    assert!(
        !leases6(&a).contains(&addr_b.to_string()),
        "{}",
        leases6(&a)
    );
    assert!(
        !leases6(&b).contains(&addr_a.to_string()),
        "{}",
        leases6(&b)
    );
}

#[test]
#[ignore = "needs root"]
fn an_overlay_is_refused_when_it_cannot_fit_or_its_host_is_not_in_the_fabric() {
    let (a, b) = (host(), host());
    underlay(&a, &b);
    // A network MTU the underlay cannot carry with VXLAN's headers.
    a.ok(req::Define {
        xml: OVERLAY.replace(
            "<bridge name='kvov0'/>",
            "<bridge name='kvov0'/><mtu size='1500'/>",
        ),
    });
    let (ok, out) = a.cli(&["net-start", "ov"]);
    assert!(
        !ok && out.contains("<mtu size='1500'> does not fit the underlay: its MTU 1500 less VXLAN's 50 bytes leaves 1450"),
        "{out}"
    );
    assert!(!a.links().contains("kvov0"), "nothing left: {}", a.links());
    // A VTEP the fabric does not list.
    ip(&b.host, "addr add 172.31.254.9/24 dev kvul0");
    b.ok(req::Define {
        xml: OVERLAY.replace("dev='kvul0'", "dev='kvul0' local='172.31.254.9'"),
    });
    let (ok, out) = b.cli(&["net-start", "ov"]);
    assert!(
        !ok && out.contains("this host's VTEP 172.31.254.9 is not a host of the fabric"),
        "{out}"
    );
    // An underlay that does not exist.
    b.ok(req::Define {
        xml: OVERLAY.replace("dev='kvul0'", "dev='nosuch0'"),
    });
    let (ok, out) = b.cli(&["net-start", "ov"]);
    assert!(
        !ok && out.contains("underlay interface nosuch0 does not exist"),
        "{out}"
    );
}

/// Polls `cond` every 100 ms for up to `secs`; the time it took, or None.
fn within(secs: u64, mut cond: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(secs) {
        if cond() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// The same with BGP EVPN: two hosts with FRR configured by `kvnet fabric-config`, VTEPs
/// on lo routed over the underlay link, one overlay NAT network defined identically on
/// both (`dev='lo'`). FRR alone tells each host where the other's guests are; a guest
/// moving between hosts is reached again within a second and keeps its address.
#[test]
#[ignore = "needs root"]
fn an_overlay_over_frr_evpn_carries_guests_and_a_move() {
    use lab::frr::Frr;
    have("busybox", "busybox-static");
    have("vtysh", "frr");
    let fabric = "asn = 65000\n\
        [[host]]\nname = \"a\"\nvtep = \"10.255.0.1\"\n\
        [[host]]\nname = \"b\"\nvtep = \"10.255.0.2\"\n";
    let setup = Setup {
        shell: vec![format!(
            "mkdir -p $D/etc && printf '%s' '{fabric}' > $D/etc/fabric.toml"
        )],
        ..Setup::default()
    };
    let (mut a, mut b) = (Lab::with_setup(&[], &setup), Lab::with_setup(&[], &setup));
    a.host.veth_to("kvul0", &b.host, "kvul0").unwrap();
    for (lab, n, other) in [(&a, 1, 2), (&b, 2, 1)] {
        ip(&lab.host, &format!("addr add 172.31.254.{n}/24 dev kvul0"));
        ip(&lab.host, "link set kvul0 up");
        ip(&lab.host, &format!("addr add 10.255.0.{n}/32 dev lo"));
        ip(
            &lab.host,
            &format!("route add 10.255.0.{other}/32 via 172.31.254.{other}"),
        );
    }
    let net = OVERLAY.replace("dev='kvul0'", "dev='lo'");
    a.define_and_start(&net);
    b.define_and_start(&net);
    let base = std::env::temp_dir().join(format!("kvnet-ovfrr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let _base = TempDir(base.clone());
    let _fa = Frr::start(
        &a.host,
        &base.join("a"),
        &a.daemon.dir.join("etc/fabric.toml"),
        "a",
    );
    let _fb = Frr::start(
        &b.host,
        &base.join("b"),
        &b.daemon.dir.join("etc/fabric.toml"),
        "b",
    );
    // Each host's flood list gets the other's VTEP from its type-3 route.
    for (lab, other) in [(&a, 2), (&b, 1)] {
        let flood = format!("00:00:00:00:00:00 dst 10.255.0.{other}");
        let took = within(40, || {
            sh(&lab.host, "bridge fdb show dev kvx4242")
                .1
                .contains(&flood)
        });
        assert!(
            took.is_some(),
            "{}",
            sh(&lab.host, "bridge fdb show dev kvx4242").1
        );
    }

    let (g1, addr1) = a.udhcpc_guest("kvov0", "52:54:00:0e:00:11", "g1");
    let (g2, addr2) = b.udhcpc_guest("kvov0", "52:54:00:0e:00:12", "g2");
    let (g3, addr3) = b.udhcpc_guest("kvov0", "52:54:00:0e:00:13", "g3");
    for (lab, g, addr) in [(&a, g1, &addr1), (&b, g2, &addr2), (&b, g3, &addr3)] {
        ip(&lab.guests[g], &format!("addr add {addr}/24 dev eth0"));
        ip(&lab.guests[g], "link set eth0 mtu 1450");
    }
    let reach =
        |from: &kvnet_host::testns::TestNs, to: &str| sh(from, &format!("ping -c 1 -W 1 {to}")).0;
    let state = |lab: &Lab| {
        format!(
            "{}\n{}\n{}",
            sh(&lab.host, "bridge fdb show br kvov0").1,
            sh(&lab.host, "ip neigh show dev kvov0").1,
            sh(&lab.host, "ip -d link show kvx4242; ip route").1
        )
    };
    assert!(
        within(10, || reach(&a.guests[g1], &addr2)).is_some(),
        "g1 reaches g2\nA:\n{}\nB:\n{}",
        state(&a),
        state(&b)
    );
    assert!(reach(&b.guests[g3], &addr1), "g3 reaches g1");
    // Each guest goes out through its own host's NAT (the anycast gateway): each lab's
    // LAN sees the datagram from its host's uplink address.
    for (lab, g) in [(&a, g1), (&b, g2)] {
        ip(&lab.guests[g], "route add default via 10.77.0.1");
        let src = udp_source_seen_by_lan(lab, &lab.guests[g]).expect("datagram arrived");
        assert_eq!(src.ip().to_string(), LAN_HOST, "NATed by its own host");
    }

    // g3 moves from b to a: its port goes on b, a new one with its MAC and address comes
    // on a; g2 (on b) reaches it again through the overlay, within a second.
    ip(&b.host, &format!("link del vg{g3}"));
    let moved = a.guest_with_mac("kvov0", &addr3, "", Some("52:54:00:0e:00:13"));
    ip(&a.guests[moved], "link set eth0 mtu 1450");
    // The guest speaks first, as a migrated guest does (a gratuitous ARP).
    let _ = sh(
        &a.guests[moved],
        &format!("busybox arping -U -c 1 -I eth0 {addr3}"),
    );
    let took = within(5, || reach(&b.guests[g2], &addr3));
    let took = took.expect("g2 reaches the moved g3");
    eprintln!("traffic to the moved guest resumed after {took:?}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    // Its lease moves with it: a's server acks its address (init-reboot).
    let (ok, out) = sh(
        &a.guests[moved],
        &format!("busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -r {addr3} -s /bin/true 2>&1"),
    );
    assert!(ok && out.contains(&format!("lease of {addr3}")), "{out}");
}
