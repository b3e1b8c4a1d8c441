//! iface-bridge / iface-unbridge end to end, root only: the lab's uplink wan0 becomes a
//! port of a new bridge that takes over its addresses and routes, and back; injected
//! failures at every step roll back to the exact prior state, and so does the next
//! kvnetd after a kill at every step; refusals.

mod lab;

use kvnet_api::request as req;
use lab::*;
use serde_json::Value;

const BR: &str = "kvbr0";

fn ip_json(lab: &Lab, args: &str) -> Vec<Value> {
    serde_json::from_str(&ip(&lab.host, &format!("-j {args}"))).expect("ip -j")
}

/// The host's links (name, MTU, MAC, master), addresses and main-table routes, one
/// sorted line each: equal snapshots mean nothing a user could see has changed.
fn snapshot(lab: &Lab) -> Vec<String> {
    let mut out = Vec::new();
    for l in ip_json(lab, "link show") {
        out.push(format!(
            "link {} mtu {} mac {} master {}",
            l["ifname"], l["mtu"], l["address"], l["master"]
        ));
    }
    for l in ip_json(lab, "addr show") {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            out.push(format!(
                "addr {} {} {}/{} scope {} brd {} noprefixroute {} nodad {}",
                l["ifname"],
                a["family"],
                a["local"],
                a["prefixlen"],
                a["scope"],
                a["broadcast"],
                a["noprefixroute"],
                a["nodad"]
            ));
        }
    }
    for fam in ["-4", "-6"] {
        for mut r in ip_json(lab, &format!("{fam} route show table main")) {
            let o = r.as_object_mut().expect("route object");
            // Carrier state and RA expiry are not ours to restore.
            o.remove("flags");
            o.remove("expires");
            out.push(format!("route {r}"));
        }
    }
    out.sort();
    out
}

/// wan0 as the issue has it: 203.0.113.1/24 plus IPv6, a default route via the LAN
/// in both families, a gateway route with a metric and a static device route.
fn uplink(lab: &Lab) {
    ip(&lab.lan, "addr add fd00:113::2/64 dev lan0 nodad");
    ip(&lab.host, "link set wan0 mtu 1400");
    ip(&lab.lan, "link set lan0 mtu 1400");
    ip(&lab.host, "addr add fd00:113::1/64 dev wan0 nodad");
    ip(&lab.host, "addr add 203.0.113.9/24 dev wan0");
    ip(
        &lab.host,
        &format!("route add default via {LAN_PEER} dev wan0"),
    );
    ip(&lab.host, "route add default via fd00:113::2 dev wan0");
    ip(
        &lab.host,
        &format!("route add 198.51.100.0/24 via {LAN_PEER} dev wan0 metric 50 proto static"),
    );
    ip(
        &lab.host,
        "route add 192.0.2.0/24 dev wan0 scope link src 203.0.113.1",
    );
    // Of the kernel's protocol, but not one the kernel makes for an address: moved too.
    ip(
        &lab.host,
        &format!("route add 10.44.0.0/16 via {LAN_PEER} dev wan0 proto kernel"),
    );
}

fn reachable(lab: &Lab) {
    assert!(ping(&lab.host, LAN_PEER), "host cannot ping the LAN");
    assert!(ping(&lab.lan, LAN_HOST), "LAN cannot ping the host");
    assert!(
        ping(&lab.host, "fd00:113::2"),
        "host cannot ping the LAN (v6)"
    );
    assert!(
        ping(&lab.lan, "fd00:113::1"),
        "LAN cannot ping the host (v6)"
    );
}

fn bridge_req(stp: bool) -> req::IfaceBridge {
    req::IfaceBridge {
        iface: "wan0".into(),
        bridge: BR.into(),
        stp,
        delay: 0,
        start: true,
    }
}

#[test]
#[ignore = "needs root"]
fn bridge_the_uplink_and_back() {
    let lab = Lab::new();
    uplink(&lab);
    reachable(&lab);
    let before = snapshot(&lab);
    let wan0 = ip_json(&lab, "link show wan0").remove(0);

    let (ok, out) = lab.cli(&["iface-bridge", "wan0", BR, "--no-stp"]);
    assert!(ok, "{out}\n{}", lab.daemon.log());
    assert_eq!(
        out,
        format!("Created bridge {BR} with attached device wan0\nBridge {BR} started\n")
    );
    let br = ip_json(&lab, &format!("-d link show {BR}")).remove(0);
    assert_eq!(br["address"], wan0["address"], "bridge has wan0's MAC");
    assert_eq!(br["mtu"], 1400);
    assert_eq!(br["linkinfo"]["info_data"]["stp_state"], 0);
    assert_eq!(br["linkinfo"]["info_data"]["forward_delay"], 0);
    assert_eq!(
        ip_json(&lab, "link show wan0")[0]["master"],
        BR,
        "wan0 is the bridge's port"
    );
    let addrs = ip(&lab.host, &format!("-br addr show {BR}"));
    for a in [
        "203.0.113.1/24",
        "203.0.113.9/24",
        "fd00:113::1/64",
        "fe80::",
    ] {
        assert!(addrs.contains(a), "{a} on the bridge: {addrs}");
    }
    let wan_addrs = ip(&lab.host, "-br addr show wan0");
    assert!(
        !wan_addrs.contains("203.0.113") && !wan_addrs.contains("fd00"),
        "{wan_addrs}"
    );
    let routes = ip(&lab.host, "route show") + &ip(&lab.host, "-6 route show");
    for r in [
        format!("default via {LAN_PEER} dev {BR}"),
        "default via fd00:113::2 dev kvbr0".to_string(),
        format!("198.51.100.0/24 via {LAN_PEER} dev {BR} proto static metric 50"),
        format!("192.0.2.0/24 dev {BR} scope link src 203.0.113.1"),
        format!("10.44.0.0/16 via {LAN_PEER} dev {BR} proto kernel"),
    ] {
        assert!(routes.contains(&r), "{r} in:\n{routes}");
    }
    assert!(
        !routes
            .lines()
            .any(|l| l.contains("dev wan0") && !l.starts_with("fe80::/64")),
        "{routes}"
    );
    reachable(&lab);

    let (ok, out) = lab.cli(&["iface-unbridge", BR]);
    assert!(ok, "{out}\n{}", lab.daemon.log());
    assert_eq!(
        out,
        format!("Device wan0 un-attached from bridge {BR}\nInterface {BR} destroyed\n")
    );
    assert_eq!(snapshot(&lab), before);
    reachable(&lab);

    // With STP (virsh's default) and a delay the bridge gets them.
    lab.ok(req::IfaceBridge {
        iface: "wan0".into(),
        bridge: BR.into(),
        stp: true,
        delay: 3,
        start: true,
    });
    let br = ip_json(&lab, &format!("-d link show {BR}")).remove(0);
    assert_ne!(br["linkinfo"]["info_data"]["stp_state"], 0);
    assert_eq!(br["linkinfo"]["info_data"]["forward_delay"], 300);
    lab.ok(req::IfaceUnbridge { bridge: BR.into() });
    assert_eq!(snapshot(&lab), before);
}

#[test]
#[ignore = "needs root"]
fn a_failure_at_any_step_rolls_back_exactly() {
    for op in ["bridge", "unbridge"] {
        let mut n = 1;
        loop {
            let hook = format!("{op}:{n}");
            let lab = Lab::with_env(&[("KVNET_TEST_IFACE_FAIL_AT", hook.as_str())]);
            uplink(&lab);
            if op == "unbridge" {
                lab.ok(bridge_req(false));
            }
            let before = snapshot(&lab);
            let r = lab.call(if op == "bridge" {
                kvnet_api::Request::from(bridge_req(false))
            } else {
                req::IfaceUnbridge { bridge: BR.into() }.into()
            });
            if r.ok {
                // Past the plan's last step: the hook never fired.
                assert!(n > 8, "{op} plan of only {} steps", n - 1);
                break;
            }
            let err = r.error.unwrap_or_default();
            assert!(
                err.contains(&format!("injected failure (test hook, step {n})"))
                    && err.contains("rolled back")
                    && !err.contains("except"),
                "{hook}: {err}"
            );
            assert_eq!(snapshot(&lab), before, "{hook}: {err}");
            reachable(&lab);
            n += 1;
        }
    }
}

/// kvnetd killed (SIGKILL, by a test hook) right after any step of an iface-bridge or
/// -unbridge, before it could record that step: the next kvnetd undoes the change — or,
/// when only the bridge's deletion was left, finishes it — so the NIC always has its
/// addresses and routes.
#[test]
#[ignore = "needs root"]
fn a_kill_after_any_step_is_undone_at_the_next_start() {
    for op in ["bridge", "unbridge"] {
        let mut n = 1;
        let mut finished_at = None;
        loop {
            let hook = format!("{op}:{n}");
            let mut lab = Lab::with_env(&[("KVNET_TEST_IFACE_KILL_AFTER", hook.as_str())]);
            uplink(&lab);
            let unbridged = snapshot(&lab);
            if op == "unbridge" {
                lab.ok(bridge_req(false));
            }
            let before = snapshot(&lab);
            let request = if op == "bridge" {
                kvnet_api::Request::from(bridge_req(false))
            } else {
                req::IfaceUnbridge { bridge: BR.into() }.into()
            };
            match kvnet_api::call_raw(&lab.daemon.socket, &request) {
                Ok(r) if r.ok => {
                    // Past the plan's last step: the hook never fired.
                    assert!(n > 8, "{op} plan of only {} steps", n - 1);
                    break;
                }
                Ok(r) => panic!("{hook}: {:?}\n{}", r.error, lab.daemon.log()),
                Err(_) => {} // killed before its reply
            }
            assert!(
                lab.daemon.dir.join("run/iface-change.json").exists(),
                "{hook}: no record left"
            );
            lab.restart_daemon();
            let log = lab.daemon.log();
            let after = snapshot(&lab);
            if after == before {
                assert!(log.contains("undid the interrupted"), "{hook}:\n{log}");
            } else {
                assert_eq!((op, &after), ("unbridge", &unbridged), "{hook}:\n{log}");
                assert!(log.contains("finished the interrupted"), "{hook}:\n{log}");
                finished_at = Some(n);
            }
            reachable(&lab);
            assert!(!lab.daemon.dir.join("run/iface-change.json").exists());
            n += 1;
        }
        // Only an unbridge killed after its last step (deleting the bridge) is finished.
        assert_eq!(finished_at, (op == "unbridge").then_some(n - 1), "{op}");
        eprintln!(
            "{op}: killed after each of its {} steps, recovered each time",
            n - 1
        );
    }
}

#[test]
#[ignore = "needs root"]
fn refusals() {
    let lab = Lab::new();
    let bridge = |iface: &str, br: &str| {
        let r = lab.call(req::IfaceBridge {
            iface: iface.into(),
            bridge: br.into(),
            stp: true,
            delay: 0,
            start: true,
        });
        assert!(!r.ok, "{iface} -> {br} accepted");
        r.error.unwrap_or_default()
    };
    assert_eq!(
        bridge("nope0", BR),
        "no such interface 'nope0'",
        "missing interface"
    );
    assert_eq!(bridge("lo", BR), "interface lo is a loopback interface");
    ip(&lab.host, "link add kvtaken type veth peer name kvtaken1");
    assert_eq!(
        bridge("wan0", "kvtaken"),
        "interface kvtaken already exists"
    );
    assert!(bridge("wan0", "bad/name").contains("invalid bridge name 'bad/name'"));
    ip(&lab.host, "link add kvother type bridge");
    ip(&lab.host, "link set kvtaken master kvother");
    assert_eq!(
        bridge("kvtaken", BR),
        "interface kvtaken is already enslaved to kvother"
    );
    assert_eq!(bridge("kvother", BR), "interface kvother is a bridge");
    ip(
        &lab.host,
        &format!(
            "route add 10.45.0.0/16 nexthop via {LAN_PEER} dev wan0 nexthop via 203.0.113.3 dev wan0"
        ),
    );
    assert_eq!(
        bridge("wan0", BR),
        "interface wan0 has routes kvnet cannot move: 10.45.0.0/16 (multipath)"
    );
    ip(&lab.host, "route del 10.45.0.0/16");
    let (ok, out) = lab.cli(&["iface-bridge", "lo", BR]);
    assert!(
        !ok && out.contains("failed to bridge interface lo into kvbr0"),
        "{out}"
    );
    // Nothing was left behind.
    assert!(!lab.links().contains(BR));

    // Unbridge: not a bridge, used by an active network, TAP ports.
    let unbridge = |br: &str| {
        let r = lab.call(req::IfaceUnbridge { bridge: br.into() });
        assert!(!r.ok, "unbridge {br} accepted");
        r.error.unwrap_or_default()
    };
    assert_eq!(unbridge("wan0"), "interface wan0 is not a bridge");
    lab.ok(bridge_req(false));
    let bridged = snapshot(&lab);
    let net = lab.define_and_start(&format!(
        "<network><name>lanbr</name><forward mode='bridge'/><bridge name='{BR}'/></network>"
    ));
    assert_eq!(
        unbridge(BR),
        format!("bridge {BR} is used by the active network 'lanbr': destroy it first")
    );
    lab.ok(req::Destroy {
        network: net,
        wait: true,
    });
    ip(&lab.host, "tuntap add kvtap0 mode tap");
    ip(&lab.host, &format!("link set kvtap0 master {BR}"));
    assert_eq!(
        unbridge(BR),
        format!("bridge {BR} has other ports besides wan0: kvtap0 (detach them first)")
    );
    ip(&lab.host, "link del kvtap0");
    assert_eq!(snapshot(&lab), bridged);
    lab.ok(req::IfaceUnbridge { bridge: BR.into() });
    assert!(!lab.links().contains(BR));
}
