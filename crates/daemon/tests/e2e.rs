//! End-to-end: kvnetd in a namespace "host", real packets between guest namespaces and a
//! LAN namespace, for every forward mode. Root only.

mod lab;

use kvnet_api::request as req;
use lab::*;

#[test]
#[ignore = "needs root"]
fn default_network_nat_end_to_end() {
    let mut lab = Lab::new();
    // First start defined and autostarted the built-in default network.
    let nets = list(&lab);
    let d = nets
        .iter()
        .find(|n| n.name == "default")
        .expect("default defined");
    assert!(d.active && d.autostart && d.persistent, "{d:?}");
    assert_eq!(d.bridge.as_deref(), Some("virbr0"));
    let xml = lab
        .ok(req::DumpXml {
            network: "default".into(),
            inactive: true,
        })
        .data;
    let xml = xml.as_str().unwrap();
    assert!(xml.contains("<forward mode='nat'"), "{xml}");
    let mac = xml
        .split("<mac address='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("mac generated");
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    let link = ip(&lab.host, "-d link show virbr0");
    assert!(link.contains(mac), "bridge has the XML's MAC: {link}");
    assert!(ip(&lab.host, "addr show virbr0").contains("192.168.122.1/24"));
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv4/ip_forward").1.trim(),
        "1"
    );
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv6/conf/virbr0/disable_ipv6")
            .1
            .trim(),
        "1"
    );

    let g = lab.guest("virbr0", "192.168.122.10", "192.168.122.1");
    assert!(
        ping(&lab.guests[g], "192.168.122.1"),
        "guest reaches the host"
    );
    assert!(
        ping(&lab.guests[g], LAN_PEER),
        "guest reaches the LAN through NAT"
    );
    let src = udp_source_seen_by_lan(&lab, &lab.guests[g]).expect("datagram arrived");
    assert_eq!(
        src.ip().to_string(),
        LAN_HOST,
        "source rewritten to the host's uplink address"
    );
    ip(
        &lab.lan,
        &format!("route add 192.168.122.0/24 via {LAN_HOST}"),
    );
    assert!(
        !ping(&lab.lan, "192.168.122.10"),
        "the LAN cannot open connections to a NAT guest"
    );

    lab.ok(req::Destroy {
        network: "default".into(),
        wait: true,
    });
    assert!(
        !lab.links().contains("virbr0"),
        "bridge removed: {}",
        lab.links()
    );
    assert!(
        !lab.nft_table().contains("virbr0"),
        "rules removed: {}",
        lab.nft_table()
    );
    assert!(!ip(&lab.host, "-4 addr").contains("192.168.122.1"));
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv4/ip_forward").1.trim(),
        "0",
        "ip_forward restored"
    );
    // destroy of an inactive network is an error, and the definition stays
    assert!(
        !lab.call(req::Destroy {
            network: "default".into(),
            wait: true
        })
        .ok
    );
    let d = list(&lab)
        .into_iter()
        .find(|n| n.name == "default")
        .expect("still defined");
    assert!(!d.active && d.persistent);
}

#[test]
#[ignore = "needs root"]
fn routed_network_forwards_both_ways_without_rewrite() {
    let mut lab = Lab::new();
    lab.define_and_start(
        "<network><name>routed</name><forward mode='route'/><bridge name='kvr0'/>\
         <mtu size='9000'/>\
         <ip address='192.168.150.1' netmask='255.255.255.0'/>\
         <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'/>\
         <route address='192.168.222.0' prefix='24' gateway='192.168.150.2'/></network>",
    );
    assert!(ip(&lab.host, "link show kvr0").contains("mtu 9000"));
    assert!(ip(&lab.host, "-6 addr show kvr0").contains("2001:db8:ca2:2::1/64"));
    assert!(
        ip(&lab.host, "route").contains("192.168.222.0/24 via 192.168.150.2 dev kvr0"),
        "{}",
        ip(&lab.host, "route")
    );
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv6/conf/all/forwarding")
            .1
            .trim(),
        "1"
    );
    let g = lab.guest("kvr0", "192.168.150.10", "192.168.150.1");
    ip(
        &lab.lan,
        &format!("route add 192.168.150.0/24 via {LAN_HOST}"),
    );
    let src = udp_source_seen_by_lan(&lab, &lab.guests[g]).expect("datagram arrived");
    assert_eq!(
        src.ip().to_string(),
        "192.168.150.10",
        "no source rewrite in route mode"
    );
    assert!(
        ping(&lab.lan, "192.168.150.10"),
        "the LAN reaches a routed guest"
    );
    // IPv6 is routed both ways too.
    ip(
        &lab.guests[g],
        "-6 addr add 2001:db8:ca2:2::10/64 dev eth0 nodad",
    );
    ip(&lab.guests[g], "-6 route add default via 2001:db8:ca2:2::1");
    ip(&lab.host, "-6 addr add 2001:db8:ffff::1/64 dev wan0 nodad");
    ip(&lab.lan, "-6 addr add 2001:db8:ffff::2/64 dev lan0 nodad");
    ip(
        &lab.lan,
        "-6 route add 2001:db8:ca2:2::/64 via 2001:db8:ffff::1",
    );
    let v6 = (0..10).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        sh(&lab.lan, "ping -6 -n -q -c 1 -W 1 2001:db8:ca2:2::10").0
    });
    assert!(v6, "the LAN reaches a routed guest over IPv6");
    lab.ok(req::Destroy {
        network: "routed".into(),
        wait: true,
    });
    assert!(!lab.links().contains("kvr0"));
    assert!(!lab.nft_table().contains("kvr0"));
    assert!(!ip(&lab.host, "route").contains("192.168.222.0"));
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv6/conf/all/forwarding")
            .1
            .trim(),
        "0"
    );
}

#[test]
#[ignore = "needs root"]
fn isolated_network_reaches_only_host_and_peers() {
    let mut lab = Lab::new();
    lab.ok(req::Destroy {
        network: "default".into(),
        wait: true,
    });
    lab.define_and_start(&net_xml("iso", "kvi0", 152, ""));
    let a = lab.guest("kvi0", "192.168.152.10", "192.168.152.1");
    let b = lab.guest("kvi0", "192.168.152.11", "192.168.152.1");
    assert!(
        ping(&lab.guests[a], "192.168.152.1"),
        "guest reaches the host"
    );
    assert!(
        ping(&lab.guests[a], "192.168.152.11"),
        "guests reach each other"
    );
    assert!(
        !ping(&lab.guests[b], LAN_PEER),
        "isolated guest must not reach the LAN"
    );
    assert!(udp_source_seen_by_lan(&lab, &lab.guests[a]).is_none());
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv4/ip_forward").1.trim(),
        "0",
        "isolated needs no forwarding"
    );
    lab.ok(req::Destroy {
        network: "iso".into(),
        wait: true,
    });
    assert!(!lab.links().contains("kvi0"));
}

#[test]
#[ignore = "needs root"]
fn open_network_has_no_rules() {
    let mut lab = Lab::new();
    lab.define_and_start(&net_xml("open", "kvo0", 154, "<forward mode='open'/>"));
    let g = lab.guest("kvo0", "192.168.154.10", "192.168.154.1");
    assert!(
        !lab.nft_table().contains("kvo0"),
        "open mode installs no rules"
    );
    let src = udp_source_seen_by_lan(&lab, &lab.guests[g]).expect("datagram arrived");
    assert_eq!(src.ip().to_string(), "192.168.154.10");
    lab.ok(req::Destroy {
        network: "open".into(),
        wait: true,
    });
    assert!(!lab.links().contains("kvo0"));
}

/// kvnet's table outlives its last network for `KVNET_IDLE_TABLE` seconds (a network
/// stopped and started again keeps the fast start path), then goes: an idle host keeps
/// no NAT hooks for kvnet. A start brings it back.
#[test]
#[ignore = "needs root"]
fn the_table_outlives_its_last_network_for_a_while_then_goes() {
    let lab = Lab::with_env(&[("KVNET_IDLE_TABLE", "2")]);
    let table = || sh(&lab.host, "nft list table inet kvnet");
    lab.ok(req::Destroy {
        network: "default".into(),
        wait: true,
    });
    let guard = || sh(&lab.host, "nft list table inet kvnet_guard").0;
    let (kept, _) = table();
    assert!(
        kept && guard(),
        "kept, with its guard, right after the last network's teardown"
    );
    let t0 = std::time::Instant::now();
    while table().0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "still there after 10 s:\n{}",
            lab.daemon.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        t0.elapsed() >= std::time::Duration::from_secs(1),
        "not before its time"
    );
    assert!(!guard(), "the guard goes with the table");
    lab.ok(req::Start {
        network: "default".into(),
    });
    assert!(table().1.contains("\"virbr0\""), "{}", table().1);
}

#[test]
#[ignore = "needs root"]
fn bridge_mode_uses_the_host_bridge_as_is() {
    let mut lab = Lab::new();
    let xml =
        "<network><name>lanbr</name><forward mode='bridge'/><bridge name='kvlan0'/></network>";
    lab.ok(req::Define { xml: xml.into() });
    let r = lab.call(req::Start {
        network: "lanbr".into(),
    });
    assert!(
        !r.ok && r.error.as_deref().unwrap_or("").contains("does not exist"),
        "{r:?}"
    );
    // Put the uplink on a host bridge, as an admin would for a LAN bridge.
    ip(&lab.host, "link add kvlan0 type bridge");
    ip(&lab.host, &format!("addr del {LAN_HOST}/24 dev wan0"));
    ip(&lab.host, "link set wan0 master kvlan0");
    ip(&lab.host, &format!("addr add {LAN_HOST}/24 dev kvlan0"));
    ip(&lab.host, "link set kvlan0 up");
    let before = lab.nft_table();
    lab.ok(req::Start {
        network: "lanbr".into(),
    });
    let g = lab.guest("kvlan0", "203.0.113.50", "");
    assert!(
        ping(&lab.guests[g], LAN_PEER),
        "guest is on the LAN segment"
    );
    assert_eq!(
        kvnet_firewall::normalize_listing(&lab.nft_table()),
        kvnet_firewall::normalize_listing(&before),
        "bridge mode adds no rules"
    );
    lab.ok(req::Destroy {
        network: "lanbr".into(),
        wait: true,
    });
    assert!(
        lab.links().contains("kvlan0"),
        "the host's bridge is not kvnet's to delete"
    );
}

#[test]
#[ignore = "needs root"]
fn traffic_between_two_nat_networks_is_rejected() {
    let mut lab = Lab::new();
    lab.define_and_start(&net_xml("na", "kva0", 160, "<forward mode='nat'/>"));
    lab.define_and_start(&net_xml("nb", "kvb0", 161, "<forward mode='nat'/>"));
    let a = lab.guest("kva0", "192.168.160.10", "192.168.160.1");
    let b = lab.guest("kvb0", "192.168.161.10", "192.168.161.1");
    assert!(ping(&lab.guests[a], LAN_PEER));
    assert!(
        !ping(&lab.guests[a], "192.168.161.10"),
        "nat → nat must be rejected"
    );
    assert!(
        !ping(&lab.guests[b], "192.168.160.10"),
        "nat → nat must be rejected"
    );
    // overlapping subnet cannot start next to an active one, and leaves no trace
    let r = lab.call(req::Create {
        xml: net_xml("nc", "kvc0", 160, "<forward/>"),
    });
    assert!(
        !r.ok && r.error.as_deref().unwrap().contains("overlaps"),
        "{r:?}"
    );
    assert!(!lab.links().contains("kvc0"));
    assert!(!list(&lab).iter().any(|n| n.name == "nc"));
}

#[test]
#[ignore = "needs root"]
fn daemon_restart_adopts_running_networks_untouched() {
    let mut lab = Lab::new();
    let g = lab.guest("virbr0", "192.168.122.10", "192.168.122.1");
    let idx_before = ip(&lab.host, "-o link show virbr0");
    let rules_before = kvnet_firewall::normalize_listing(&lab.nft_table());
    lab.daemon.stop();
    // Networks keep running while the daemon is away.
    assert!(ping(&lab.guests[g], LAN_PEER));
    lab.restart_daemon();
    let d = list(&lab)
        .into_iter()
        .find(|n| n.name == "default")
        .unwrap();
    assert!(d.active);
    assert_eq!(
        ip(&lab.host, "-o link show virbr0").split(':').next(),
        idx_before.split(':').next(),
        "same bridge"
    );
    assert_eq!(
        kvnet_firewall::normalize_listing(&lab.nft_table()),
        rules_before
    );
    // Adopted as it was, not rebuilt (which would look the same).
    assert!(
        !lab.daemon.log().contains("firewall rules rebuilt"),
        "{}",
        lab.daemon.log()
    );
    assert!(ping(&lab.guests[g], LAN_PEER));
    // A bridge that vanished while the daemon was down is cleaned up and reported.
    lab.daemon.stop();
    ip(&lab.host, "link del virbr0");
    lab.restart_daemon();
    assert!(
        !list(&lab)
            .iter()
            .find(|n| n.name == "default")
            .unwrap()
            .active
    );
    assert!(!lab.nft_table().contains("virbr0"));
    assert!(
        lab.daemon.log().contains("vanished"),
        "{}",
        lab.daemon.log()
    );
}

#[test]
#[ignore = "needs root"]
fn failed_start_leaves_no_trace() {
    // A firewall that cannot be applied makes start fail after the bridge exists.
    let lab = Lab::with_env(&[("KVNET_NFT", "/bin/false")]);
    let r = lab.call(req::Create {
        xml: net_xml("bad", "kvx0", 170, "<forward/>"),
    });
    assert!(!r.ok, "{r:?}");
    assert!(
        !lab.links().contains("kvx0"),
        "rolled back: {}",
        lab.links()
    );
    assert!(!ip(&lab.host, "-4 addr").contains("192.168.170.1"));
    assert_eq!(
        sh(&lab.host, "cat /proc/sys/net/ipv4/ip_forward").1.trim(),
        "0"
    );
    // a bridge name taken by another kind of link
    ip(&lab.host, "link add kvy0 type veth peer name kvy0p");
    let r = lab.call(req::Create {
        xml: net_xml("taken", "kvy0", 171, ""),
    });
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("taken by a host link"),
        "{r:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn cli_verbs_against_the_daemon() {
    let lab = Lab::new();
    let file = lab.daemon.dir.join("lab1.xml");
    std::fs::write(&file, net_xml("lab1", "kvl1", 180, "<forward mode='nat'/>")).unwrap();
    let f = file.to_str().unwrap();
    let (ok, out) = lab.cli(&["net-define", f]);
    assert!(ok && out.contains("Network lab1 defined from"), "{out}");
    let (_, out) = lab.cli(&["net-list", "--all"]);
    assert!(
        out.contains(" lab1      inactive   no          yes"),
        "{out}"
    );
    let (ok, out) = lab.cli(&["net-start", "lab1"]);
    assert!(ok && out.contains("Network lab1 started"), "{out}");
    let (_, out) = lab.cli(&["net-info", "lab1"]);
    assert!(
        out.contains("Active:         yes") && out.contains("Bridge:         kvl1"),
        "{out}"
    );
    let (_, uuid) = lab.cli(&["net-uuid", "lab1"]);
    let (_, name) = lab.cli(&["net-name", uuid.trim()]);
    assert_eq!(name.trim(), "lab1");
    let (ok, out) = lab.cli(&[
        "net-update",
        "lab1",
        "add",
        "ip-dhcp-host",
        "<host mac='52:54:00:aa:bb:cc' name='vm1' ip='192.168.180.50'/>",
        "--live",
        "--config",
    ]);
    assert!(ok, "{out}");
    let (_, xml) = lab.cli(&["net-dumpxml", "lab1"]);
    assert!(
        xml.contains("<host mac='52:54:00:aa:bb:cc' name='vm1' ip='192.168.180.50'/>"),
        "{xml}"
    );
    // net-edit: the editor changes the definition, which is re-validated and saved.
    let out = std::process::Command::new(bin("kvnet"))
        .args([
            "--socket",
            lab.daemon.socket.to_str().unwrap(),
            "net-edit",
            "lab1",
        ])
        .env("EDITOR", "sed -i s/192.168.180.50/192.168.180.60/")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("XML configuration edited"),
        "{out:?}"
    );
    let (_, xml) = lab.cli(&["net-dumpxml", "--inactive", "lab1"]);
    assert!(xml.contains("ip='192.168.180.60'"), "{xml}");
    let out = std::process::Command::new(bin("kvnet"))
        .args([
            "--socket",
            lab.daemon.socket.to_str().unwrap(),
            "net-edit",
            "lab1",
        ])
        .env("EDITOR", "sed -i s/192.168.180.60/10.0.0.1/")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a host outside the subnet is refused: {out:?}"
    );
    let (ok, out) = lab.cli(&["net-autostart", "lab1"]);
    assert!(ok && out.contains("marked as autostarted"), "{out}");
    let (_, out) = lab.cli(&["net-list", "--autostart", "--name"]);
    assert!(out.lines().any(|l| l == "lab1"), "{out}");
    let (_, json) = lab.cli(&["net-list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v.as_array().unwrap().iter().any(|n| n["name"] == "lab1"));
    let (ok, _) = lab.cli(&["net-undefine", "lab1"]);
    assert!(ok);
    let (_, out) = lab.cli(&["net-list", "--transient", "--name"]);
    assert!(
        out.lines().any(|l| l == "lab1"),
        "running network became transient: {out}"
    );
    let (ok, _) = lab.cli(&["net-destroy", "lab1"]);
    assert!(ok);
    let (_, out) = lab.cli(&["net-list", "--all", "--name"]);
    assert!(
        !out.lines().any(|l| l == "lab1"),
        "transient network gone: {out}"
    );
    // A bad file is refused with its name and line, and nothing is defined.
    std::fs::write(
        &file,
        "<network>\n<name>bad</name>\n<bridge name='this-name-is-far-too-long'/>\n</network>\n",
    )
    .unwrap();
    let (ok, out) = lab.cli(&["net-define", f]);
    assert!(
        !ok && out.contains("lab1.xml") && out.contains("line 3"),
        "{out}"
    );
    // A second daemon on the same run dir refuses to start and changes nothing.
    let d = &lab.daemon.dir;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", lab.host.name()])
        .arg(bin("kvnetd"))
        .args(["--config-dir", d.join("etc").to_str().unwrap()])
        .args(["--state-dir", d.join("lib").to_str().unwrap()])
        .args(["--run-dir", d.join("run").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another kvnetd"),
        "{out:?}"
    );
    assert!(lab.cli(&["net-list"]).0, "the first daemon still serves");
    // Without a daemon the CLI says so and how to start one.
    let out = std::process::Command::new(bin("kvnet"))
        .args(["--socket", "/nonexistent/kvnetd.sock", "net-list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the daemon running"));
}

#[test]
#[ignore = "needs root"]
fn destroy_returns_at_once_and_restart_finishes_interrupted_teardown() {
    let mut lab = Lab::new();
    // Without --wait the reply comes before the kernel has deleted the bridge; an
    // immediate start of the same network still works (it waits for the teardown).
    for _ in 0..3 {
        lab.ok(req::Destroy {
            network: "default".into(),
            wait: false,
        });
        lab.ok(req::Start {
            network: "default".into(),
        });
    }
    let g = lab.guest("virbr0", "192.168.122.10", "192.168.122.1");
    assert!(ping(&lab.guests[g], LAN_PEER));
    // A daemon killed during a teardown leaves the status marked stopping: the next
    // daemon finishes the job.
    let status = lab.daemon.dir.join("run/networks/default.json");
    let text = std::fs::read_to_string(&status).unwrap();
    if let Some(mut c) = lab.daemon.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    std::fs::write(
        &status,
        text.replace("\"stopping\": false", "\"stopping\": true"),
    )
    .unwrap();
    lab.restart_daemon();
    assert!(!lab.links().contains("virbr0"), "{}", lab.links());
    assert!(!lab.nft_table().contains("virbr0"));
    assert!(!status.exists());
    assert!(
        !list(&lab)
            .iter()
            .find(|n| n.name == "default")
            .unwrap()
            .active
    );
}
