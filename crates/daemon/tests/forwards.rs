//! Port forwards into a NAT network's guests, as a user makes them with the CLI:
//! reachable from the LAN, from the host itself and from another guest of the network
//! (hairpin), following a guest whose address changes, kept in the definition across
//! a restart and a destroy/start, refused with a clear error when wrong. Root only.

mod lab;

use kvnet_host::testns::TestNs;
use lab::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const NET: &str = "<network><name>fwd</name><forward mode='nat'/><bridge name='kvf0'/>\
    <ip address='192.168.60.1' prefix='24'><dhcp>\
    <range start='192.168.60.100' end='192.168.60.150'/></dhcp></ip></network>";

/// A guest that takes a DHCP lease for `mac` sending `hostname`, and configures it.
fn dhcp_guest(lab: &mut Lab, mac: &str, hostname: &str) -> (usize, String) {
    let (g, addr) = lab.udhcpc_guest("kvf0", mac, hostname);
    ip(&lab.guests[g], &format!("addr add {addr}/24 dev eth0"));
    ip(&lab.guests[g], "route add default via 192.168.60.1");
    (g, addr)
}

/// Serves TCP `port` in `ns`: each connection gets "TAG PEER-ADDRESS".
fn serve(ns: &TestNs, port: u16, tag: &'static str) {
    let l = ns.run(|| TcpListener::bind(("0.0.0.0", port)).expect("listen"));
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(format!("{tag} {peer}").as_bytes());
        }
    });
}

/// What a connection from `ns` to ADDR:PORT is answered, or the error.
fn connect(ns: &TestNs, addr: &str, port: u16) -> String {
    let addr = format!("{addr}:{port}").parse().unwrap();
    ns.run(
        || match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            }
            Err(e) => format!("error: {e}"),
        },
    )
}

/// Polls until `f` gives `want` (a forward follows its guest asynchronously).
fn eventually(want: &str, mut f: impl FnMut() -> String) -> String {
    let t0 = Instant::now();
    loop {
        let got = f();
        if got == want || t0.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn a_forward_reaches_its_guest_from_everywhere_and_follows_it() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let (a, a_addr) = dhcp_guest(&mut lab, "52:54:00:00:00:01", "vm1");
    serve(&lab.guests[a], 22, "A");
    let b = lab.guest("kvf0", "192.168.60.50", "192.168.60.1");

    let (ok, out) = lab.cli(&[
        "net-forward-add",
        "fwd",
        "--proto",
        "tcp",
        "--port",
        "2222",
        "--to",
        "vm1:22",
    ]);
    assert!(ok, "{out}\n{}", lab.daemon.log());
    assert!(out.contains(&format!("guest at {a_addr}")), "{out}");

    // From the LAN, from the host, and from a guest of the same network.
    assert_eq!(connect(&lab.lan, LAN_HOST, 2222), format!("A {LAN_PEER}"));
    assert_eq!(connect(&lab.host, LAN_HOST, 2222), format!("A {LAN_HOST}"));
    assert_eq!(
        connect(&lab.guests[b], "192.168.60.1", 2222),
        "A 192.168.60.1",
        "hairpin: the reply must come back through the host"
    );

    let (ok, out) = lab.cli(&["net-forward-list", "fwd"]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.contains("2222")).unwrap_or_default();
    for cell in ["tcp", "*", "vm1", "22", a_addr.as_str(), "active"] {
        assert!(row.contains(cell), "{out}");
    }
    let (ok, xml) = lab.cli(&["net-dumpxml", "fwd", "--inactive"]);
    assert!(ok, "{xml}");
    assert!(
        xml.contains("<kvnet:forward proto=\"tcp\" port=\"2222\" to=\"vm1\" toPort=\"22\"/>"),
        "{xml}"
    );

    // The guest is re-created (new MAC, same name): the newest lease owns the name,
    // and the forward follows it with no command.
    let (c, c_addr) = dhcp_guest(&mut lab, "52:54:00:00:00:02", "vm1");
    assert_ne!(c_addr, a_addr);
    serve(&lab.guests[c], 22, "C");
    let got = eventually(&format!("C {LAN_PEER}"), || {
        connect(&lab.lan, LAN_HOST, 2222)
    });
    assert_eq!(got, format!("C {LAN_PEER}"), "{}", lab.daemon.log());
    assert!(lab.daemon.log().contains(&format!("now goes to {c_addr}")));

    // A restart adopts the table as it is, forwards included.
    lab.restart_daemon();
    assert_eq!(connect(&lab.lan, LAN_HOST, 2222), format!("C {LAN_PEER}"));
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(
        connect(&lab.lan, LAN_HOST, 2222),
        format!("C {LAN_PEER}"),
        "{}\n{}",
        lab.cli(&["net-forward-list", "fwd"]).1,
        lab.cli(&["net-dhcp-leases", "fwd"]).1
    );
    assert!(
        !lab.daemon.log().contains("firewall rules rebuilt"),
        "{}",
        lab.daemon.log()
    );
    // Destroyed, the forward goes with the network's rules; started, it is back.
    let (ok, out) = lab.cli(&["net-destroy", "fwd", "--wait"]);
    assert!(ok, "{out}");
    assert!(!lab.nft_table().contains("2222"), "{}", lab.nft_table());
    let (ok, out) = lab.cli(&["net-start", "fwd"]);
    assert!(ok, "{out}");
    // The test's guests are plain veths, not kvnet ports: put them back on the bridge.
    for i in 0..lab.guests.len() {
        ip(&lab.host, &format!("link set vg{i} master kvf0 up"));
    }
    assert_eq!(
        eventually(&format!("C {LAN_PEER}"), || connect(
            &lab.lan, LAN_HOST, 2222
        )),
        format!("C {LAN_PEER}")
    );

    let (ok, out) = lab.cli(&[
        "net-forward-remove",
        "fwd",
        "--proto",
        "tcp",
        "--port",
        "2222",
    ]);
    assert!(ok, "{out}");
    // The kernel deletes map elements a grace period after the verb returns.
    let gone = || !lab.nft_table().contains("2222");
    let t0 = Instant::now();
    while !gone() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone(), "{}", lab.nft_table());
    assert!(connect(&lab.lan, LAN_HOST, 2222).starts_with("error"));
    let (ok, xml) = lab.cli(&["net-dumpxml", "fwd", "--inactive"]);
    assert!(ok && !xml.contains("kvnet:forward"), "{xml}");
}

#[test]
#[ignore = "needs root"]
fn wrong_forwards_are_refused_and_change_nothing() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    dhcp_guest(&mut lab, "52:54:00:00:00:01", "vm1");
    let add = |args: &[&str]| {
        let mut a = vec!["net-forward-add", "fwd"];
        a.extend_from_slice(args);
        lab.cli(&a)
    };
    assert!(add(&["--proto", "tcp", "--port", "8080", "--to", "vm1:80"]).0);
    let before = lab.cli(&["net-dumpxml", "fwd", "--inactive"]).1;
    let table = lab.nft_table();
    for (args, want) in [
        (
            vec!["--proto", "tcp", "--port", "8080", "--to", "vm1"],
            "host port 8080 is already forwarded (tcp *:8080 -> vm1:80)",
        ),
        (
            vec!["--proto", "tcp", "--port", "9000-9001", "--to", "vm1:80"],
            "host ports 9000-9001 (2) and guest ports 80 (1) differ in size",
        ),
        (
            vec!["--proto", "tcp", "--port", "9000", "--to", "nosuch"],
            "no guest 'nosuch' on network 'fwd': no lease or static host has that name",
        ),
        (
            vec!["--proto", "tcp", "--port", "9000", "--to", "10.9.9.9"],
            "guest address 10.9.9.9 is not on this network",
        ),
        (
            vec!["--proto", "tcp", "--port", "0", "--to", "vm1"],
            "port 0 is not valid",
        ),
        (
            vec!["--proto", "sctp", "--port", "9000", "--to", "vm1"],
            "unknown protocol 'sctp'",
        ),
    ] {
        let (ok, out) = add(&args);
        assert!(!ok, "{args:?} was accepted");
        assert!(out.contains(want), "{args:?}: {out}");
    }
    assert_eq!(lab.cli(&["net-dumpxml", "fwd", "--inactive"]).1, before);
    assert_eq!(lab.nft_table(), table);
    let (ok, out) = lab.cli(&[
        "net-forward-remove",
        "fwd",
        "--proto",
        "udp",
        "--port",
        "8080",
    ]);
    assert!(
        !ok && out.contains("network 'fwd' has no forward of udp *:8080"),
        "{out}"
    );

    // A host port belongs to one network.
    lab.define_and_start(&net_xml("other", "kvf1", 61, "<forward mode='nat'/>"));
    let (ok, out) = lab.cli(&[
        "net-forward-add",
        "other",
        "--proto",
        "tcp",
        "--port",
        "8080",
        "--to",
        "192.168.61.5",
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("already forwarded by network 'fwd'"), "{out}");
    // A process of the host's own listening on the port is warned about.
    let _l = lab
        .host
        .run(|| TcpListener::bind(("0.0.0.0", 7070)).expect("listen"));
    let (ok, out) = lab.cli(&[
        "net-forward-add",
        "other",
        "--proto",
        "tcp",
        "--port",
        "7070",
        "--to",
        "192.168.61.5",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: a host process listens on tcp port 7070"),
        "{out}"
    );
}
