use super::*;

fn route(dest: &str, dev: &str) -> HostRoute {
    HostRoute {
        dest: dest.parse().unwrap(),
        dev: dev.into(),
    }
}

#[test]
fn forwarding_off_is_named_with_its_sysctl() {
    assert!(ip_forward("n", "net/ipv4/ip_forward", "1\n").is_none());
    let f = ip_forward("n", "net/ipv4/ip_forward", "0\n").unwrap();
    assert_eq!(f.culprit, "net.ipv4.ip_forward=0");
    assert!(f.fix.contains("sysctl -w net.ipv4.ip_forward=1"));
    assert!(f.problem);
}

#[test]
fn strict_rp_filter_matters_only_when_a_source_routes_elsewhere() {
    let net: IpNet = "192.168.150.0/24".parse().unwrap();
    let routes = [
        route("192.168.150.0/24", "kvbr0"),
        route("0.0.0.0/0", "eth0"),
    ];
    assert!(rp_filter("n", "kvbr0", 1, 0, &[net], &routes).is_none());
    let split = [
        route("192.168.150.0/24", "kvbr0"),
        route("192.168.150.128/25", "dummy0"),
    ];
    let f = rp_filter("n", "kvbr0", 0, 1, &[net], &split).unwrap();
    assert!(f.detail.contains("192.168.150.128 via dummy0"), "{f:?}");
    assert!(
        rp_filter("n", "kvbr0", 2, 0, &[net], &split).is_none(),
        "loose"
    );
    assert!(
        rp_filter("n", "kvbr0", 0, 0, &[net], &split).is_none(),
        "off"
    );
}

#[test]
fn ss_lines_give_address_device_port_and_process() {
    let udp = "UNCONN 0      0      0.0.0.0%lo:53 0.0.0.0:* users:((\"python3\",pid=14793,fd=4))\n\
               UNCONN 0      0         0.0.0.0:67 0.0.0.0:* users:((\"dnsmasq\",pid=7,fd=3))\n\
               UNCONN 0      0         [::]:547 [::]:*\n";
    let l = parse_ss(udp, false);
    assert_eq!(l.len(), 3);
    assert_eq!(
        l[0],
        Listener {
            tcp: false,
            addr: "0.0.0.0".into(),
            dev: Some("lo".into()),
            port: 53,
            process: "python3".into(),
            pid: Some(14793),
        }
    );
    assert_eq!((l[1].process.as_str(), l[1].pid), ("dnsmasq", Some(7)));
    assert_eq!((l[2].addr.as_str(), l[2].pid), ("::", None));
}

#[test]
fn another_server_hearing_the_bridge_is_named_kvnetd_is_not() {
    let addrs: [IpAddr; 1] = ["192.168.150.1".parse().unwrap()];
    let l = |addr: &str, dev: Option<&str>, port, tcp, pid| Listener {
        tcp,
        addr: addr.into(),
        dev: dev.map(str::to_string),
        port,
        process: "x".into(),
        pid: Some(pid),
    };
    let socks = [
        l("0.0.0.0", Some("kvbr0"), 67, false, 1), // kvnetd itself
        l("0.0.0.0", None, 67, false, 2),          // hears every broadcast
        l("192.168.150.1", None, 53, true, 3),     // on the bridge's address
        l("127.0.0.1", None, 53, false, 4),        // elsewhere
        l("0.0.0.0", None, 53, false, 5),          // kvnetd's bound socket wins
        l("0.0.0.0", Some("eth0"), 67, false, 6),  // another interface
    ];
    let f = listeners("n", "kvbr0", &addrs, &socks, 1);
    let pids: Vec<&str> = f.iter().map(|f| f.culprit.as_str()).collect();
    assert_eq!(
        pids,
        [
            "x (pid 2) on udp 0.0.0.0:67",
            "x (pid 3) on tcp 192.168.150.1:53"
        ]
    );
}

#[test]
fn mtu_mismatches_name_the_port() {
    let br = Mtu {
        name: "kvbr0".into(),
        mtu: 1500,
    };
    let ports = [
        Mtu {
            name: "vnet0".into(),
            mtu: 1500,
        },
        Mtu {
            name: "vnet1".into(),
            mtu: 1400,
        },
    ];
    let f = mtu("n", &br, Some(1500), &ports);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].culprit, "vnet1 mtu 1400 on kvbr0 mtu 1500");
    assert_eq!(mtu("n", &br, Some(9000), &[]).len(), 1);
}

#[test]
fn a_missing_module_is_a_problem_unless_optional() {
    assert_eq!(modules(|_| true), []);
    let f = modules(|f| f.module != "tun" && f.module != "vhost_net");
    assert_eq!(f.len(), 2);
    assert!(f[0].problem && f[0].culprit == "module tun missing");
    assert!(!f[1].problem, "vhost_net only makes guests faster");
}

#[test]
fn br_netfilter_is_a_note() {
    assert!(br_netfilter(BridgeNf::default()).is_none());
    let f = br_netfilter(BridgeNf {
        call_iptables: true,
        call_ip6tables: false,
    })
    .unwrap();
    assert!(!f.problem);
    assert_eq!(
        f.culprit,
        "br_netfilter: net.bridge.bridge-nf-call-iptables=1"
    );
}

#[test]
fn drops_are_grouped_by_location_with_every_kind_they_hit() {
    let rs = kvnet_foreign::Ruleset::parse(include_str!(
        "../../../../foreign/tests/rulesets/docker.json"
    ))
    .unwrap();
    let fw = kvnet_firewall::FwNetwork::from_network(
        &kvnet_model::Network::from_xml(
            "<network><name>default</name><forward mode='nat'/><bridge name='kvbr0'/>\
             <ip address='192.168.150.1' prefix='24'/></network>",
        )
        .unwrap(),
    )
    .unwrap();
    let cx = kvnet_foreign::Context {
        bridge_nf: BridgeNf {
            call_iptables: true,
            call_ip6tables: false,
        },
        ..Default::default()
    };
    let f = foreign_drops(&kvnet_foreign::analyse(&rs, &[fw], &cx), false);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].culprit, "docker: ip filter FORWARD policy drop");
    assert!(
        f[0].detail
            .starts_with("drops kvbr0 on hook forward (priority 0)"),
        "{}",
        f[0].detail
    );
    assert!(f[0].detail.contains("br_netfilter"));
    assert!(f[0].detail.ends_with(
        "forwarded guest->outside, forwarded outside->guest, guest<->guest (bridged, br_netfilter)"
    ));
    assert!(f[0].fix.contains("DOCKER-USER"), "{}", f[0].fix);
}
