//! Root-only tests that load the rendered scripts with the real `nft` inside
//! network namespaces created (and always deleted) by the test itself; the
//! host's own namespace is never touched.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Instant;

use kvnet_firewall::{
    FwNetwork, normalize_listing, render_add, render_add_new, render_full, render_remove,
    validate_all,
};
use kvnet_host::testns::TestNs;

const TABLE: &str = "kvnet";

/// A network namespace ([`TestNs`]: fails the test unless root, deleted on drop, so a
/// failing test cleans up too).
struct Netns {
    _ns: TestNs,
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let ns = TestNs::with_prefix("kvfw").expect("create network namespace");
        Netns {
            name: ns.name().to_string(),
            _ns: ns,
        }
    }

    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// Runs a command in the namespace and panics with its stderr on failure.
    fn run(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft_script(&self, script: &str) -> Result<(), String> {
        common::nft_script_in(&self.name, script)
    }

    fn apply(&self, script: &str) {
        if let Err(e) = self.nft_script(script) {
            panic!("nft -f failed in {}: {e}\nscript:\n{script}", self.name);
        }
    }

    /// The table, normalized (hash sets list elements in a per-set random order).
    fn list(&self) -> String {
        normalize_listing(&self.run(&["nft", "list", "table", "inet", TABLE]))
    }

    fn has_table(&self) -> bool {
        self.exec(&["nft", "list", "table", "inet", TABLE])
            .status
            .success()
    }
}

fn three() -> Vec<FwNetwork> {
    vec![
        common::nat_default(),
        common::route_v4v6(),
        common::isolated(),
    ]
}

#[test]
#[ignore = "needs root"]
fn full_applies_and_is_reproducible() {
    let ns = Netns::new();
    let nets = three();
    validate_all(&nets).unwrap();
    ns.apply(&render_full(TABLE, &nets));
    let first = ns.list();
    for elem in [
        r#"set est4: element "virbr0" . 192.168.122.0/24"#,
        r#"set src4_dev: element "virbr5" . "wan0" . 192.168.150.0/24"#,
        r#"set svc_in: element "virbr6" . udp . 69"#,
        "set nat4: element 192.168.122.0/24",
    ] {
        assert!(first.contains(elem), "{elem} missing in\n{first}");
    }
    ns.apply(&render_full(TABLE, &nets));
    assert_eq!(ns.list(), first);
    // Replacing drops networks that are no longer listed.
    ns.apply(&render_full(TABLE, &nets[..1]));
    let one = ns.list();
    assert!(!one.contains("virbr5") && one.contains("virbr0"), "{one}");
    // No networks: no table at all.
    ns.apply(&render_full(TABLE, &[]));
    assert!(!ns.has_table());
    ns.apply(&render_full(TABLE, &[]));
}

/// The body of a render_full script, as `nft list table` prints it.
fn rendered_table(nets: &[FwNetwork]) -> String {
    let script = render_full(TABLE, nets);
    let body = script
        .split_once(&format!("delete table inet {TABLE}\n"))
        .unwrap()
        .1;
    normalize_listing(body)
}

#[test]
#[ignore = "needs root"]
fn listing_normalizes_to_the_rendered_script() {
    let ns = Netns::new();
    let mut cases: Vec<Vec<FwNetwork>> = common::all().into_iter().map(|(_, n)| vec![n]).collect();
    cases.push(common::all().into_iter().map(|(_, n)| n).collect());
    for nets in cases {
        ns.apply(&render_full(TABLE, &nets));
        assert_eq!(ns.list(), rendered_table(&nets), "{}", nets[0].name);
    }
    // What the daemon compares at restart: the same state reached by adds.
    let nets: Vec<FwNetwork> = common::all().into_iter().map(|(_, n)| n).collect();
    let other = Netns::new();
    for net in nets.iter().rev() {
        other.apply(&render_add_new_or_add(&other, net));
    }
    assert_eq!(other.list(), rendered_table(&nets));
}

/// The daemon's start: the fast script once the skeleton exists.
fn render_add_new_or_add(ns: &Netns, net: &FwNetwork) -> String {
    if ns.has_table() {
        render_add_new(TABLE, net)
    } else {
        render_add(TABLE, net)
    }
}

#[test]
#[ignore = "needs root"]
fn removing_one_network_leaves_the_others_intact() {
    let ns = Netns::new();
    let plain = common::nat_default();
    let custom = common::nat_address_port();
    ns.apply(&render_add(TABLE, &plain));
    let only_plain = ns.list();
    ns.apply(&render_add_new(TABLE, &custom));
    assert_eq!(ns.list(), rendered_table(&[plain.clone(), custom.clone()]));
    ns.apply(&render_remove(TABLE, &custom));
    assert_eq!(ns.list(), only_plain);
    ns.apply(&render_add_new(TABLE, &custom));
    ns.apply(&render_remove(TABLE, &plain));
    assert_eq!(ns.list(), rendered_table(std::slice::from_ref(&custom)));
    ns.apply(&render_remove(TABLE, &custom));
    assert!(!ns.list().contains("element"), "{}", ns.list());
}

#[test]
#[ignore = "needs root"]
fn add_and_remove_are_idempotent() {
    let ns = Netns::new();
    ns.apply(&render_full(TABLE, &three()));
    let base = ns.list();
    let new = common::nat_ipv6_masq();
    ns.apply(&render_add(TABLE, &new));
    let added = ns.list();
    assert_ne!(added, base);
    assert!(added.contains("chain nat_virbr4 {"), "{added}");
    ns.apply(&render_add(TABLE, &new));
    assert_eq!(ns.list(), added, "second render_add changed the table");
    ns.apply(&render_remove(TABLE, &new));
    assert_eq!(ns.list(), base, "render_remove did not restore the table");
    ns.apply(&render_remove(TABLE, &new));
    assert_eq!(ns.list(), base, "second render_remove changed the table");
}

#[test]
#[ignore = "needs root"]
fn add_new_equals_add_and_refuses_an_existing_network() {
    let ns = Netns::new();
    ns.apply(&render_full(TABLE, &three()));
    let base = ns.list();
    let taken: Vec<String> = three().into_iter().map(|n| n.bridge).collect();
    for (_, net) in common::all()
        .into_iter()
        .filter(|(_, n)| !taken.contains(&n.bridge))
    {
        ns.apply(&render_add(TABLE, &net));
        let via_add = ns.list();
        ns.apply(&render_remove(TABLE, &net));
        assert_eq!(ns.list(), base);
        ns.apply(&render_add_new(TABLE, &net));
        assert_eq!(
            ns.list(),
            via_add,
            "add_new differs from add for {}",
            net.name
        );
        // A second fast add must fail as a whole and change nothing.
        assert!(ns.nft_script(&render_add_new(TABLE, &net)).is_err());
        assert_eq!(ns.list(), via_add);
        ns.apply(&render_remove(TABLE, &net));
    }
    // No skeleton: the fast path fails without leaving anything.
    ns.apply(&render_full(TABLE, &[]));
    assert!(
        ns.nft_script(&render_add_new(TABLE, &common::nat_default()))
            .is_err()
    );
    assert!(!ns.has_table());
}

#[test]
#[ignore = "needs root"]
fn every_fixture_adds_and_removes_cleanly() {
    let ns = Netns::new();
    // render_add must also work on a namespace without the table.
    ns.apply(&render_add(TABLE, &common::nat_default()));
    ns.apply(&render_remove(TABLE, &common::nat_default()));
    let skeleton = ns.list();
    for (name, net) in common::all() {
        ns.apply(&render_add(TABLE, &net));
        assert!(ns.list().len() > skeleton.len(), "{name}");
        ns.apply(&render_remove(TABLE, &net));
        assert_eq!(ns.list(), skeleton, "{name} left something behind");
    }
    // Removing from a namespace that never had the table succeeds too.
    let fresh = Netns::new();
    fresh.apply(&render_remove(TABLE, &common::nat_default()));
    // All fixtures at once, as render_full, then removed one by one.
    let nets: Vec<_> = common::all().into_iter().map(|(_, n)| n).collect();
    ns.apply(&render_full(TABLE, &nets));
    for net in &nets {
        ns.apply(&render_remove(TABLE, net));
    }
    let left = ns.list();
    assert!(!left.contains("jump"), "{left}");
}

#[test]
#[ignore = "needs root"]
fn add_after_full_matches_full() {
    let ns = Netns::new();
    let nets = three();
    ns.apply(&render_full(TABLE, &nets));
    let full = ns.list();
    let other = Netns::new();
    for net in &nets {
        other.apply(&render_add(TABLE, net));
    }
    // Chain and element order in the listing differ; the content must not.
    assert_eq!(other.list(), full);
}

#[test]
#[ignore = "needs root"]
fn add_cost_does_not_grow_with_network_count() {
    let ns = Netns::new();
    let first = common::numbered(0);
    let first_script = render_add(TABLE, &first);
    let t0 = Instant::now();
    ns.apply(&first_script);
    let first_time = t0.elapsed();
    let mut last_time = first_time;
    for i in 1..=200 {
        let net = common::numbered(i);
        let script = render_add(TABLE, &net);
        let renamed = script
            .replace(&net.name, &first.name)
            .replace(&net.bridge, &first.bridge)
            .replace(&net.subnets[0].to_string(), &first.subnets[0].to_string());
        assert_eq!(renamed, first_script, "script for network {i} differs");
        let t = Instant::now();
        ns.apply(&script);
        last_time = t.elapsed();
    }
    let listing = ns.list();
    assert_eq!(listing.matches("set cross: element \"kvs").count(), 201);
    eprintln!(
        "nft -f of render_add: network 1 took {first_time:?}, network 201 took {last_time:?}"
    );
    ns.apply(&render_remove(TABLE, &common::numbered(100)));
    assert_eq!(ns.list().matches("set cross: element \"kvs").count(), 200);
}

#[test]
#[ignore = "needs root"]
fn overlapping_nat_subnets_are_refused_by_nft_too() {
    let ns = Netns::new();
    ns.apply(&render_add(TABLE, &common::nat_default()));
    let mut wide = common::numbered(1);
    wide.subnets = vec!["192.168.0.0/16".parse().unwrap()];
    let before = ns.list();
    let err = ns
        .nft_script(&render_add(TABLE, &wide))
        .expect_err("overlap must fail");
    assert!(err.contains("overlap"), "{err}");
    // The failed transaction left nothing behind.
    assert_eq!(ns.list(), before);
}

/// Real packets: two NAT networks, one routed network and a "wan" namespace
/// without routes back to any guest subnet.
mod packets {
    use super::*;

    const PY: &str = r#"
import socket, sys
mode = sys.argv[1]
if mode == "serve":
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 8080)); s.listen(8); s.settimeout(8)
    print("ready", flush=True)
    while True:
        try:
            c, peer = s.accept()
        except socket.timeout:
            break
        c.sendall(peer[0].removeprefix("::ffff:").encode()); c.close()
elif mode == "udp":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", (sys.argv[2], int(sys.argv[3]))); print("sent")
else:
    fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
    c = socket.socket(fam); c.settimeout(3)
    try:
        c.connect((sys.argv[2], 8080)); print("ok " + c.recv(64).decode())
    except ConnectionRefusedError:
        print("refused")
    except OSError as e:
        print("error " + type(e).__name__ + " " + str(e))
"#;

    struct Topo {
        host: Netns,
        guests: Vec<Netns>,
        wan: Netns,
    }

    fn veth(host: &Netns, peer: &Netns, hname: &str, addr: &str, gw: Option<&str>) {
        host.run(&[
            "ip", "link", "add", hname, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ]);
        host.run(&["ip", "link", "set", hname, "up"]);
        peer.run(&["ip", "addr", "add", addr, "dev", "eth0"]);
        peer.run(&["ip", "link", "set", "eth0", "up"]);
        peer.run(&["ip", "link", "set", "lo", "up"]);
        if let Some(gw) = gw {
            peer.run(&["ip", "route", "add", "default", "via", gw]);
        }
    }

    fn setup() -> Topo {
        let host = Netns::new();
        let wan = Netns::new();
        host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        host.run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        veth(&host, &wan, "wan0", "198.51.100.2/24", None);
        host.run(&["ip", "addr", "add", "198.51.100.1/24", "dev", "wan0"]);
        // A second host address, for the custom SNAT network.
        host.run(&["ip", "addr", "add", "198.51.100.3/24", "dev", "wan0"]);
        host.run(&["ip", "addr", "add", "fd00:ff::1/64", "dev", "wan0", "nodad"]);
        wan.run(&["ip", "addr", "add", "fd00:ff::2/64", "dev", "eth0", "nodad"]);
        // The wan knows the routed IPv6 subnets (fd00:2::/64, fd00:3::/64),
        // not fd00:1::/64, which is NATed in the IPv6 test.
        for n in [2, 3] {
            wan.run(&[
                "ip",
                "-6",
                "route",
                "add",
                &format!("fd00:{n}::/64"),
                "via",
                "fd00:ff::1",
            ]);
        }
        let mut guests = Vec::new();
        for (i, br) in ["brA", "brB", "brC"].iter().enumerate() {
            let n = i + 1;
            host.run(&["ip", "link", "add", br, "type", "bridge"]);
            host.run(&["ip", "addr", "add", &format!("10.10.{n}.1/24"), "dev", br]);
            host.run(&["ip", "link", "set", br, "up"]);
            let g = Netns::new();
            let port = format!("vg{n}");
            veth(
                &host,
                &g,
                &port,
                &format!("10.10.{n}.2/24"),
                Some(&format!("10.10.{n}.1")),
            );
            host.run(&["ip", "link", "set", &port, "master", br]);
            host.run(&[
                "ip",
                "addr",
                "add",
                &format!("fd00:{n}::1/64"),
                "dev",
                br,
                "nodad",
            ]);
            g.run(&[
                "ip",
                "addr",
                "add",
                &format!("fd00:{n}::2/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            g.run(&[
                "ip",
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd00:{n}::1"),
            ]);
            guests.push(g);
        }
        Topo { host, guests, wan }
    }

    fn net(name: &str, bridge: &str, mode: kvnet_firewall::FwMode, subnet: &str) -> FwNetwork {
        FwNetwork {
            name: name.into(),
            bridge: bridge.into(),
            subnets: vec![subnet.parse().unwrap()],
            mode,
            ..common::nat_default()
        }
    }

    /// Connects from `client` to `server_ip`:8080 served in `server`; returns
    /// "ok <peer address seen by the server>", "refused" or "error …".
    fn connect(client: &Netns, server: &Netns, server_ip: &str) -> String {
        let mut srv = Command::new("ip")
            .args(["netns", "exec", &server.name, "python3", "-c", PY, "serve"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        {
            use std::io::BufRead;
            let mut r = std::io::BufReader::new(srv.stdout.as_mut().unwrap());
            r.read_line(&mut line).unwrap();
        }
        assert_eq!(line.trim(), "ready");
        let out = client.run(&["python3", "-c", PY, "connect", server_ip]);
        let _ = srv.kill();
        let _ = srv.wait();
        out.trim().to_string()
    }

    /// The socket helper is python3: a missing one fails the test, as a missing `nft` does.
    fn need_python() {
        assert!(
            Command::new("python3")
                .arg("-c")
                .arg("pass")
                .output()
                .is_ok_and(|o| o.status.success()),
            "needs python3 for the socket helper (scripts/deps.sh test installs it)"
        );
    }

    #[test]
    #[ignore = "needs root"]
    fn nat_masquerades_and_isolates_networks_like_libvirt() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let nets = [
            net("a", "brA", Nat, "10.10.1.0/24"),
            net("b", "brB", Nat, "10.10.2.0/24"),
            net("c", "brC", Route, "10.10.3.0/24"),
        ];
        t.host.apply(&render_full(TABLE, &nets));
        let (ga, gb, gc) = (&t.guests[0], &t.guests[1], &t.guests[2]);

        // NAT guest → wan: masqueraded to the host's wan address (wan has no
        // route back to 10.10.1.0/24, so success itself proves the NAT).
        assert_eq!(connect(ga, &t.wan, "198.51.100.2"), "ok 198.51.100.1");
        // NAT → NAT: rejected (ICMP port unreachable → refused, not a timeout).
        assert_eq!(connect(ga, gb, "10.10.2.2"), "refused");
        // Routed → NAT: rejected too.
        assert_eq!(connect(gc, ga, "10.10.1.2"), "refused");
        // NAT → routed: allowed (a routed subnet accepts inbound from
        // anywhere) and masqueraded to brC's address, exactly as libvirt.
        assert_eq!(connect(ga, gc, "10.10.3.2"), "ok 10.10.3.1");
        // Routed guest → wan: forwarded without NAT, so the wan side (no route
        // back) cannot answer: the connection times out.
        assert!(connect(gc, &t.wan, "198.51.100.2").starts_with("error"));

        // After removing network a, brA is no longer firewalled at all: b's
        // guests get through (still masqueraded by b) and c's are not NATed.
        t.host.apply(&render_remove(TABLE, &nets[0]));
        assert_eq!(connect(gb, ga, "10.10.1.2"), "ok 10.10.1.1");
        assert_eq!(connect(gc, ga, "10.10.1.2"), "ok 10.10.3.2");
    }

    #[test]
    #[ignore = "needs root"]
    fn isolated_guests_only_reach_the_host() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let nets = [
            net("a", "brA", Isolated, "10.10.1.0/24"),
            net("b", "brB", Nat, "10.10.2.0/24"),
        ];
        t.host.apply(&render_full(TABLE, &nets));
        let (ga, gb) = (&t.guests[0], &t.guests[1]);
        assert_eq!(connect(ga, &t.host, "10.10.1.1"), "ok 10.10.1.2");
        assert_eq!(connect(ga, &t.wan, "198.51.100.2"), "refused");
        assert_eq!(connect(ga, gb, "10.10.2.2"), "refused");
        assert_eq!(connect(gb, ga, "10.10.1.2"), "refused");
        assert_eq!(connect(gb, &t.wan, "198.51.100.2"), "ok 198.51.100.1");
    }

    #[test]
    #[ignore = "needs root"]
    fn forward_dev_restricts_nat_egress_and_routed_ingress() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let mut a = net("a", "brA", Nat, "10.10.1.0/24");
        a.forward_dev = Some("wan0".into());
        let mut b = net("b", "brB", Nat, "10.10.2.0/24");
        b.forward_dev = Some("eth9".into());
        let mut c = net("c", "brC", Route, "10.10.3.0/24");
        c.forward_dev = Some("wan0".into());
        t.host.apply(&render_full(TABLE, &[a, b, c]));
        let (ga, gb, gc) = (&t.guests[0], &t.guests[1], &t.guests[2]);
        assert_eq!(connect(ga, &t.wan, "198.51.100.2"), "ok 198.51.100.1");
        // b may only leave through eth9.
        assert_eq!(connect(gb, &t.wan, "198.51.100.2"), "refused");
        // c only admits what comes in through wan0: not a's guests.
        assert_eq!(connect(ga, gc, "10.10.3.2"), "refused");
    }

    #[test]
    #[ignore = "needs root"]
    fn custom_snat_next_to_plain_masquerade() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let mut a = net("a", "brA", Nat, "10.10.1.0/24");
        let snat = "198.51.100.3".parse().unwrap();
        a.nat_addresses = Some((snat, snat));
        a.nat_ports = Some((2000, 3000));
        let b = net("b", "brB", Nat, "10.10.2.0/24");
        // Started one after the other, as the daemon does.
        t.host.apply(&render_add(TABLE, &b));
        t.host.apply(&render_add_new(TABLE, &a));
        let (ga, gb) = (&t.guests[0], &t.guests[1]);
        assert_eq!(connect(ga, &t.wan, "198.51.100.2"), "ok 198.51.100.3");
        assert_eq!(connect(gb, &t.wan, "198.51.100.2"), "ok 198.51.100.1");
        assert_eq!(connect(ga, gb, "10.10.2.2"), "refused");
        // Removing the custom network leaves the plain one working.
        t.host.apply(&render_remove(TABLE, &a));
        assert_eq!(connect(gb, &t.wan, "198.51.100.2"), "ok 198.51.100.1");
        assert_eq!(
            connect(ga, &t.wan, "198.51.100.2").split(' ').next(),
            Some("error")
        );
    }

    #[test]
    #[ignore = "needs root"]
    fn ipv6_nat_and_routed_subnets() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let dual = |name: &str, br: &str, mode, n: u8| FwNetwork {
            subnets: vec![
                format!("10.10.{n}.0/24").parse().unwrap(),
                format!("fd00:{n}::/64").parse().unwrap(),
            ],
            ipv6: true,
            ..net(name, br, mode, "10.10.0.0/24")
        };
        let mut a = dual("a", "brA", Nat, 1);
        a.nat_ipv6 = true;
        // b NATs IPv4 only: its IPv6 subnet is routed.
        let b = dual("b", "brB", Nat, 2);
        let c = dual("c", "brC", Route, 3);
        t.host.apply(&render_full(TABLE, &[a, b, c]));
        let (ga, gb, gc) = (&t.guests[0], &t.guests[1], &t.guests[2]);
        assert_eq!(connect(ga, &t.wan, "fd00:ff::2"), "ok fd00:ff::1");
        assert_eq!(connect(&t.wan, gc, "fd00:3::2"), "ok fd00:ff::2");
        assert_eq!(connect(&t.wan, gb, "fd00:2::2"), "ok fd00:ff::2");
        assert_eq!(connect(gb, gc, "fd00:3::2"), "ok fd00:2::2");
        // a's IPv6 is NATed: only replies come in, from anywhere.
        assert_eq!(connect(gc, ga, "fd00:1::2"), "refused");
        // IPv4 is unchanged by IPv6 being on.
        assert_eq!(connect(ga, gb, "10.10.2.2"), "refused");
    }

    #[test]
    #[ignore = "needs root"]
    fn service_ports_are_counted_by_the_input_rule() {
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let a = net("a", "brA", Nat, "10.10.1.0/24");
        t.host.apply(&render_full(TABLE, &[a]));
        let ga = &t.guests[0];
        for port in ["53", "67", "5353"] {
            assert_eq!(
                ga.run(&["python3", "-c", PY, "udp", "10.10.1.1", port])
                    .trim(),
                "sent"
            );
        }
        let input = t
            .host
            .run(&["nft", "list", "chain", "inet", TABLE, "input"]);
        // DNS and DHCP are accepted; 5353 is not a service of the network.
        assert!(input.contains("counter packets 2 "), "{input}");
    }

    #[test]
    #[ignore = "needs root"]
    fn port_forwards_reach_guests_from_outside_the_host_and_their_network() {
        use kvnet_firewall::{FwForward, Proto, render_forwards};
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        // A second guest on brA, the one the forwards go to first.
        let second = Netns::new();
        veth(&t.host, &second, "vg1b", "10.10.1.3/24", Some("10.10.1.1"));
        t.host.run(&["ip", "link", "set", "vg1b", "master", "brA"]);
        let fwd = |address: Option<&str>, guest: &str| FwForward {
            proto: Proto::Tcp,
            address: address.map(|a| a.parse().unwrap()),
            ports: (8080, 8080),
            guest: guest.parse().unwrap(),
            guest_port: 8080,
        };
        let mut a = net("a", "brA", Nat, "10.10.1.0/24");
        a.forwards = vec![fwd(None, "10.10.1.3")];
        let mut b = net("b", "brB", Nat, "10.10.2.0/24");
        // A given host address wins over every address.
        b.forwards = vec![fwd(Some("198.51.100.3"), "10.10.2.2")];
        t.host.apply(&render_full(TABLE, &[a.clone(), b]));
        let (ga, gb) = (&t.guests[0], &t.guests[1]);

        // From outside: the guest sees the client's own address.
        assert_eq!(connect(&t.wan, &second, "198.51.100.1"), "ok 198.51.100.2");
        assert_eq!(connect(&t.wan, gb, "198.51.100.3"), "ok 198.51.100.2");
        // From the host itself, to one of its addresses.
        assert_eq!(connect(&t.host, &second, "198.51.100.1"), "ok 198.51.100.1");
        // Hairpin: a guest of the same network, through the host's address on the
        // bridge; the source is the host's, so the reply comes back through it.
        assert_eq!(connect(ga, &second, "10.10.1.1"), "ok 10.10.1.1");
        // The guests' own addresses stay unreachable from outside (NAT).
        assert!(connect(&t.wan, ga, "10.10.1.2").starts_with("error"));

        // The guest moves: only its elements change, live.
        let moved = vec![fwd(None, "10.10.1.2")];
        t.host
            .apply(&render_forwards(TABLE, "brA", &a.forwards, &moved));
        assert_eq!(connect(&t.wan, ga, "198.51.100.1"), "ok 198.51.100.2");
        // Removed: refused again (the host has nothing listening on 8080).
        t.host.apply(&render_forwards(TABLE, "brA", &moved, &[]));
        assert_eq!(connect(&t.wan, ga, "198.51.100.1"), "refused");
    }

    #[test]
    #[ignore = "needs root"]
    fn ipv6_forwards_reach_nat66_guests() {
        use kvnet_firewall::{FwForward, Proto};
        need_python();
        let t = setup();
        use kvnet_firewall::FwMode::*;
        let mut a = FwNetwork {
            subnets: vec![
                "10.10.1.0/24".parse().unwrap(),
                "fd00:1::/64".parse().unwrap(),
            ],
            ipv6: true,
            nat_ipv6: true,
            ..net("a", "brA", Nat, "10.10.1.0/24")
        };
        a.forwards = vec![FwForward {
            proto: Proto::Tcp,
            address: Some("fd00:ff::1".parse().unwrap()),
            ports: (8080, 8080),
            guest: "fd00:1::2".parse().unwrap(),
            guest_port: 8080,
        }];
        t.host.apply(&render_full(TABLE, &[a]));
        let ga = &t.guests[0];
        // The wan has no route to fd00:1::/64 (NATed): only the forward gets it there.
        assert_eq!(connect(&t.wan, ga, "fd00:ff::1"), "ok fd00:ff::2");
        assert!(connect(&t.wan, ga, "fd00:1::2").starts_with("error"));
    }
}
