//! Root-only tests; each works inside its own throw-away network namespace.

use std::io::Read;
use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use kvnet_host::testns::TestNs;
use kvnet_host::{BridgeSpec, LinkAddress, LinkRoute, Netlink, Route, nft, sysctl};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x09, 0x33, 0x55];

fn spec(name: &str) -> BridgeSpec {
    BridgeSpec {
        name: name.to_string(),
        mac: Some(MAC),
        mtu: Some(9000),
        stp: true,
        forward_delay_cs: 0,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root"]
fn bridge_create_and_read_back() {
    let ns = TestNs::new().unwrap();
    let index = ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let index = nl.create_bridge(&spec("virbr3")).await.unwrap();
        let link = nl.link("virbr3").await.unwrap().expect("bridge exists");
        assert_eq!(link.index, index);
        assert_eq!(link.kind.as_deref(), Some("bridge"));
        assert_eq!(link.mac, Some(MAC));
        assert_eq!(link.mtu, 9000);
        assert!(!link.up, "created down");
        assert_eq!(link.master, None);
        // STP start raises the delay to the kernel minimum, as libvirt sees it.
        assert_eq!(nl.bridge_settings(index).await.unwrap(), (true, 200));
        assert!(nl.links().await.unwrap().iter().any(|l| l.name == "lo"));
        assert_eq!(nl.link_by_index(index).await.unwrap(), Some(link));
        assert_eq!(nl.link("nosuch0").await.unwrap(), None);

        let err = nl.create_bridge(&spec("virbr3")).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "create bridge virbr3: File exists (os error 17)"
        );
        assert_eq!(err.errno(), Some(libc::EEXIST));
        index
    });
    let json = ns
        .exec_ok("ip", &["-d", "-j", "link", "show", "virbr3"])
        .unwrap();
    for needle in [
        format!("\"ifindex\":{index}"),
        "\"mtu\":9000".to_string(),
        "\"address\":\"52:54:00:09:33:55\"".to_string(),
        "\"info_kind\":\"bridge\"".to_string(),
        "\"stp_state\":1".to_string(),
        "\"forward_delay\":200".to_string(),
    ] {
        assert!(json.contains(&needle), "{needle} not in {json}");
    }
    assert!(!json.contains("\"UP\""), "bridge should be down: {json}");
}

#[test]
#[ignore = "needs root"]
fn bridge_without_stp_keeps_short_delay() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let s = BridgeSpec {
            stp: false,
            forward_delay_cs: 150,
            mac: None,
            mtu: None,
            ..spec("br-nostp")
        };
        let i = nl.create_bridge(&s).await.unwrap();
        assert_eq!(nl.bridge_settings(i).await.unwrap(), (false, 150));
        assert_eq!(nl.link("br-nostp").await.unwrap().unwrap().mtu, 1500);
    });
}

#[test]
#[ignore = "needs root"]
fn reconcile_is_noop_then_corrects_drift() {
    let ns = TestNs::new().unwrap();
    let s = spec("virbr4");
    let index = ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let index = nl.create_bridge(&s).await.unwrap();
        assert_eq!(nl.reconcile_bridge(&s).await.unwrap(), Vec::<String>::new());
        index
    });
    ns.exec_ok(
        "ip",
        &[
            "link",
            "set",
            "virbr4",
            "mtu",
            "1400",
            "address",
            "02:00:00:00:00:01",
        ],
    )
    .unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let changes = nl.reconcile_bridge(&s).await.unwrap();
        assert_eq!(
            changes,
            vec![
                "mac 02:00:00:00:00:01 -> 52:54:00:09:33:55",
                "mtu 1400 -> 9000"
            ]
        );
        let link = nl.link("virbr4").await.unwrap().unwrap();
        assert_eq!((link.mac, link.mtu), (Some(MAC), 9000));
        assert!(nl.reconcile_bridge(&s).await.unwrap().is_empty());

        // STP off with a zero delay needs two messages (see reconcile_bridge).
        let off = BridgeSpec {
            stp: false,
            ..s.clone()
        };
        assert_eq!(
            nl.reconcile_bridge(&off).await.unwrap(),
            vec!["stp on -> off", "forward_delay 200 -> 0"]
        );
        assert_eq!(nl.bridge_settings(index).await.unwrap(), (false, 0));
        assert_eq!(
            nl.reconcile_bridge(&s).await.unwrap(),
            vec!["stp off -> on", "forward_delay 0 -> 200"]
        );
        assert_eq!(nl.bridge_settings(index).await.unwrap(), (true, 200));
        assert!(nl.reconcile_bridge(&s).await.unwrap().is_empty());

        let err = nl.reconcile_bridge(&spec("absent0")).await.unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
        nl.create_veth("notabr0", "notabr1").await.unwrap();
        let err = nl.reconcile_bridge(&spec("notabr0")).await.unwrap_err();
        assert!(err.to_string().contains("veth"), "{err}");
    });
}

/// What iface-bridge moves: addresses with scope, flags and broadcast, and routes
/// with gateway, metric, scope, protocol, source and onlink, as read and re-added.
#[test]
#[ignore = "needs root"]
fn link_addresses_and_routes_round_trip() {
    let ns = TestNs::new().unwrap();
    ns.exec_ok(
        "ip",
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
    )
    .unwrap();
    for cmd in [
        "addr add 10.1.0.1/24 dev v0",
        "addr add 10.1.0.9/24 brd 10.1.0.255 dev v0",
        "addr add 10.2.0.1/24 dev v0 noprefixroute scope link",
        "addr add fd00:1::1/64 dev v0 nodad",
        "link set v0 up",
        "route add default via 10.1.0.254 dev v0 metric 7",
        "route add 10.9.0.0/16 dev v0 src 10.1.0.9 proto static",
        "route add 10.8.0.0/16 via 172.16.0.1 dev v0 onlink",
        "route add 10.7.0.0/16 nexthop via 10.1.0.2 dev v0 nexthop via 10.1.0.3 dev v0",
    ] {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        ns.exec_ok("ip", &args).unwrap();
    }
    let show = |what: &str| {
        let args: Vec<&str> = what.split_whitespace().collect();
        ns.exec_ok("ip", &args).unwrap()
    };
    let (addrs, routes) = ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let v0 = nl.link("v0").await.unwrap().unwrap().index;
        let addrs = nl.link_addresses(v0).await.unwrap();
        let find_addr = |a: &str| -> &LinkAddress {
            addrs
                .iter()
                .find(|x| x.addr == net(a))
                .unwrap_or_else(|| panic!("{a} in {addrs:?}"))
        };
        assert_eq!(find_addr("10.1.0.1/24").broadcast, None);
        assert_eq!(
            find_addr("10.1.0.9/24").broadcast,
            Some("10.1.0.255".parse().unwrap())
        );
        let l = find_addr("10.2.0.1/24");
        assert_eq!((l.scope, l.flags), (253, 0x200));
        assert_eq!(find_addr("fd00:1::1/64").flags, 0x02);
        let routes = nl.link_routes(v0).await.unwrap();
        let find = |d: &str| -> LinkRoute {
            routes
                .iter()
                .find(|r| r.dest == net(d))
                .unwrap_or_else(|| panic!("{d} in {routes:#?}"))
                .clone()
        };
        assert_eq!(find("0.0.0.0/0").metric, Some(7));
        assert_eq!(find("10.9.0.0/16").prefsrc, Some(ip("10.1.0.9")));
        assert_eq!(
            (find("10.9.0.0/16").proto, find("10.9.0.0/16").scope),
            (4, 253)
        );
        assert!(find("10.8.0.0/16").onlink);
        assert!(!routes.iter().any(|r| r.dest == net("10.7.0.0/16")));
        assert_eq!(
            nl.other_link_routes(v0).await.unwrap(),
            vec!["10.7.0.0/16 (multipath)".to_string()]
        );
        (addrs, routes)
    });
    // A multipath route cannot be moved (iface-bridge refuses it): out of the way.
    show("route del 10.7.0.0/16");
    let before = (
        show("-j addr show v0"),
        show("-j route show"),
        show("-j -6 route show"),
    );
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let v0 = nl.link("v0").await.unwrap().unwrap().index;
        let moved: Vec<&LinkRoute> = routes.iter().filter(|r| r.proto != 2).collect();
        for r in &moved {
            nl.del_link_route(v0, r).await.unwrap();
        }
        for x in addrs.iter().rev() {
            nl.del_address(v0, x.addr).await.unwrap();
        }
        for x in &addrs {
            nl.add_link_address(v0, x).await.unwrap();
        }
        for r in &moved {
            nl.add_link_route(v0, r).await.unwrap();
        }
    });
    assert_eq!(
        (
            show("-j addr show v0"),
            show("-j route show"),
            show("-j -6 route show")
        ),
        before
    );
}

#[test]
#[ignore = "needs root"]
fn addresses_add_list_delete() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let br = nl.create_bridge(&spec("virbr5")).await.unwrap();
        let v4 = net("192.168.122.1/24");
        let v6 = net("fd00:122::1/64");
        for a in [v4, v4, v6, v6] {
            nl.add_address(br, a).await.unwrap();
        }
        let mut got = nl.addresses(br).await.unwrap();
        got.sort();
        assert_eq!(got, vec![v4, v6]);
        assert!(
            nl.addresses(1).await.unwrap().is_empty(),
            "lo has none in a new netns"
        );
        nl.del_address(br, v4).await.unwrap();
        nl.del_address(br, v4).await.unwrap();
        assert_eq!(nl.addresses(br).await.unwrap(), vec![v6]);
        nl.add_address(br, v4).await.unwrap();
    });
    let json = ns
        .exec_ok("ip", &["-j", "-4", "addr", "show", "virbr5"])
        .unwrap();
    assert!(json.contains("\"broadcast\":\"192.168.122.255\""), "{json}");
    assert!(json.contains("\"scope\":\"global\""), "{json}");
}

#[test]
#[ignore = "needs root"]
fn routes_add_list_delete() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let br = nl.create_bridge(&spec("virbr6")).await.unwrap();
        nl.add_address(br, net("192.168.50.1/24")).await.unwrap();
        nl.add_address(br, net("fd00:50::1/64")).await.unwrap();
        // A gateway must be reachable through an up device.
        nl.set_up(br, true).await.unwrap();
        let mut v4 = Route::new(net("10.20.0.0/16"), Some(ip("192.168.50.2")), Some(br));
        v4.metric = Some(100);
        let v6 = Route::new(net("fd00:99::/48"), None, Some(br));
        for r in [&v4, &v4, &v6, &v6] {
            nl.add_route(r).await.unwrap();
        }
        let routes = nl.routes().await.unwrap();
        assert!(routes.contains(&v4), "{routes:#?}");
        let got6 = routes
            .iter()
            .find(|r| r.dest == v6.dest)
            .expect("v6 route listed");
        assert_eq!((got6.oif, got6.proto, got6.table), (Some(br), 3, 254));
        assert!(
            routes
                .iter()
                .any(|r| r.dest == net("192.168.50.0/24") && r.proto == 2),
            "kernel prefix route listed: {routes:#?}"
        );
        // A route of another protocol is not ours to delete; proto 0 matches any.
        let mut other = v4.clone();
        other.proto = 4;
        nl.del_route(&other).await.unwrap();
        assert!(nl.routes().await.unwrap().contains(&v4));
        other.proto = 0;
        nl.del_route(&other).await.unwrap();
        assert!(!nl.routes().await.unwrap().contains(&v4));
        for r in [&v4, &v6, &v6] {
            nl.del_route(r).await.unwrap();
        }
        let routes = nl.routes().await.unwrap();
        assert!(
            !routes
                .iter()
                .any(|r| r.dest == v4.dest || r.dest == v6.dest)
        );

        let off_link = Route::new(net("10.30.0.0/16"), Some(ip("172.31.0.1")), None);
        let err = nl.add_route(&off_link).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("add route 10.30.0.0/16 via 172.31.0.1: "),
            "{err}"
        );
        assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
    });
    let out = ns.exec_ok("ip", &["route"]).unwrap();
    assert!(!out.contains("10.20.0.0"), "{out}");
}

#[test]
#[ignore = "needs root"]
fn veth_master_and_delete() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let br = nl.create_bridge(&spec("virbr7")).await.unwrap();
        let vm = nl.create_veth("vnet7", "vnet7p").await.unwrap();
        nl.set_mtu(vm, 9000).await.unwrap();
        nl.set_master(vm, Some(br)).await.unwrap();
        nl.set_up(vm, true).await.unwrap();
        let port = nl.link("vnet7").await.unwrap().unwrap();
        assert_eq!(
            (port.master, port.up, port.kind.as_deref()),
            (Some(br), true, Some("veth"))
        );
        // The explicit MAC survives a port joining.
        assert_eq!(nl.link("virbr7").await.unwrap().unwrap().mac, Some(MAC));
        nl.set_master(vm, None).await.unwrap();
        assert_eq!(nl.link("vnet7").await.unwrap().unwrap().master, None);

        // The kernel's extended-ack text reaches the error message.
        let br2 = nl.create_bridge(&spec("virbr7b")).await.unwrap();
        let err = nl.set_master(br2, Some(br)).await.unwrap_err();
        assert_eq!(err.errno(), Some(libc::ELOOP), "{err}");
        assert!(
            err.to_string()
                .contains("(Can not enslave a bridge to a bridge)"),
            "{err}"
        );

        nl.set_master(vm, Some(br)).await.unwrap();
        nl.delete_link(br).await.unwrap();
        assert_eq!(nl.link("virbr7").await.unwrap(), None);
        assert_eq!(nl.link("vnet7").await.unwrap().unwrap().master, None);
        nl.delete_link(br).await.unwrap();
        nl.delete_link(vm).await.unwrap();
        assert_eq!(nl.link("vnet7p").await.unwrap(), None, "peer goes with it");
    });
}

#[test]
#[ignore = "needs root"]
fn sysctl_is_per_thread_netns() {
    let ns = TestNs::new().unwrap();
    let key = "net.ipv4.ip_forward";
    let host_before = sysctl::read(key).unwrap();
    let want = if host_before == "1" { "0" } else { "1" };
    let host_file = std::fs::File::open(sysctl::path(key)).unwrap();
    let ns_file = ns.run(|| {
        assert_eq!(sysctl::read(key).unwrap(), "0", "fresh netns default");
        sysctl::write(key, want).unwrap();
        assert_eq!(sysctl::read(key).unwrap(), want);
        assert!(!sysctl::ensure(key, want).unwrap());
        // A file opened on the host thread keeps reading the host's value here.
        assert_eq!(read_file(host_file).trim(), host_before);
        // Threads spawned from inside inherit the namespace.
        let inner = std::thread::spawn(|| sysctl::read("net/ipv4/ip_forward").unwrap());
        assert_eq!(inner.join().unwrap(), want);

        sysctl::write(&sysctl::iface_key("ipv6", "lo", "disable_ipv6"), "1").unwrap();
        let err = sysctl::write("net/ipv6/conf/nosuch0/accept_ra", "0").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("write sysctl net/ipv6/conf/nosuch0/accept_ra=0: ")
        );
        std::fs::File::open(sysctl::path(key)).unwrap()
    });
    // The namespace is bound at open time, whichever thread reads.
    assert_eq!(read_file(ns_file).trim(), want);
    assert_eq!(
        sysctl::read(key).unwrap(),
        host_before,
        "host value untouched"
    );
    assert_eq!(ns.exec_ok("sysctl", &["-n", key]).unwrap().trim(), want);
    assert_eq!(
        ns.exec_ok("sysctl", &["-n", "net.ipv6.conf.lo.disable_ipv6"])
            .unwrap()
            .trim(),
        "1"
    );
}

fn read_file(mut f: std::fs::File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

#[test]
#[ignore = "needs root"]
fn nft_apply_and_list_in_netns() {
    let ns = TestNs::new().unwrap();
    ns.run(|| {
        assert_eq!(nft::list_table("inet", "t").unwrap(), None);
        // nft 1.0.6 rejects the one-line form `{ chain c { ...; } }`: a chain
        // block must be followed by a newline or `;` before the closing brace.
        let err = nft::apply("table inet t { chain c { type filter hook forward priority 0; } }");
        if let Err(e) = err {
            assert!(e.to_string().contains("syntax error"), "{e}");
            nft::apply("table inet t {\n chain c { type filter hook forward priority 0; }\n}\n")
                .unwrap();
        }
        let t = nft::list_table("inet", "t").unwrap().expect("table exists");
        assert!(t.contains("chain c"), "{t}");
        assert!(t.contains("hook forward priority filter"), "{t}");
        let err = nft::apply("table inet t { bogus }").unwrap_err();
        assert!(
            err.to_string().starts_with("nft apply: exit status: 1: "),
            "{err}"
        );
        assert!(err.to_string().contains("Error"), "{err}");
    });
    let tables = ns.exec_ok("nft", &["list", "tables"]).unwrap();
    assert!(tables.contains("table inet t"), "{tables}");
}

#[test]
#[ignore = "needs root"]
fn time_network_start() {
    let ns = TestNs::new().unwrap();
    let report = ns.block_on(|| async {
        let mut steps = Vec::new();
        let t0 = Instant::now();
        let mut lap = |name: &str, t: &mut Instant| {
            steps.push(format!("{name} {}us", t.elapsed().as_micros()));
            *t = Instant::now();
        };
        let mut t = Instant::now();
        let nl = Netlink::connect().await.unwrap();
        lap("connect", &mut t);
        let s = spec("virbr0");
        let br = nl.create_bridge(&s).await.unwrap();
        lap("create_bridge", &mut t);
        for (k, v) in [("accept_ra", "0"), ("autoconf", "0")] {
            sysctl::write(&sysctl::iface_key("ipv6", "virbr0", k), v).unwrap();
        }
        lap("bridge sysctls", &mut t);
        nl.add_address(br, net("192.168.122.1/24")).await.unwrap();
        nl.add_address(br, net("fd00:122::1/64")).await.unwrap();
        lap("2 addresses", &mut t);
        nl.set_up(br, true).await.unwrap();
        lap("up", &mut t);
        let r = Route::new(net("10.122.0.0/16"), Some(ip("192.168.122.2")), Some(br));
        nl.add_route(&r).await.unwrap();
        lap("route", &mut t);
        sysctl::ensure("net.ipv4.ip_forward", "1").unwrap();
        lap("ip_forward", &mut t);
        nft::apply(
            "table inet kvnet {\n\
             chain postrouting { type nat hook postrouting priority srcnat; \
             ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade; }\n\
             chain forward { type filter hook forward priority filter; \
             iifname \"virbr0\" ip saddr 192.168.122.0/24 accept; \
             oifname \"virbr0\" ct state established,related accept; }\n}\n",
        )
        .unwrap();
        lap("nft", &mut t);
        let total = t0.elapsed().as_micros();
        format!("network start total {total}us: {}", steps.join(", "))
    });
    println!("{report}");
    eprintln!("{report}");
}

#[test]
#[ignore = "needs root"]
fn route_watcher_follows_ip_route() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let sh = |cmd: &str| {
            let args: Vec<&str> = cmd.split_whitespace().collect();
            ns.exec_ok("ip", &args).unwrap();
        };
        sh("link add rw0 type bridge");
        sh("link set rw0 up");
        sh("addr add 10.9.0.1/24 dev rw0");
        let w = kvnet_host::routewatch::RouteWatcher::start().unwrap();
        let has = |dest: &str| {
            let dest = net(dest);
            w.overlapping(&[dest])
                .unwrap()
                .iter()
                .any(|r| r.dest == dest && r.dev == "rw0")
        };
        // The kernel queues notifications before it acks `ip`, and routes() reads them
        // first; the short poll only guards against a slow runtime.
        let eventually = |dest: &str, present: bool| {
            let t = Instant::now();
            while has(dest) != present {
                assert!(
                    t.elapsed().as_secs() < 2,
                    "{dest} should be {}",
                    if present { "present" } else { "absent" }
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        eventually("10.9.0.0/24", true);
        sh("route add 10.10.0.0/16 dev rw0");
        sh("-6 route add 2001:db8:5::/64 dev rw0");
        eventually("10.10.0.0/16", true);
        eventually("2001:db8:5::/64", true);
        sh("route del 10.10.0.0/16 dev rw0");
        eventually("10.10.0.0/16", false);

        // Two routes to one prefix: deleting one leaves the other.
        sh("route add 10.12.0.0/16 dev rw0 metric 10");
        sh("route add 10.12.0.0/16 dev rw0 metric 20");
        sh("route del 10.12.0.0/16 dev rw0 metric 10");
        eventually("10.12.0.0/16", true);

        // Only the main table counts.
        sh("route add 10.11.0.0/16 dev rw0 table 100");
        assert!(!has("10.11.0.0/16"));

        // Down, the link loses its routes; the IPv4 ones go without RTM_DELROUTE.
        sh("link set rw0 down");
        eventually("10.12.0.0/16", false);
        eventually("2001:db8:5::/64", false);
        sh("link set rw0 up");
        sh("route add 10.13.0.0/16 dev rw0");
        sh("-6 route add 2001:db8:6::/64 dev rw0");
        eventually("10.13.0.0/16", true);
        eventually("2001:db8:6::/64", true);

        // The kernel deletes a link's routes with it.
        let everything = [net("0.0.0.0/0"), net("::/0")];
        assert!(
            w.overlapping(&everything)
                .unwrap()
                .iter()
                .any(|r| r.dev == "rw0")
        );
        sh("link del rw0");
        for dest in ["10.13.0.0/16", "2001:db8:6::/64"] {
            eventually(dest, false);
        }
        let all = w.overlapping(&everything).unwrap();
        assert!(all.iter().all(|r| r.dev != "rw0"));
    });
}
