//! Anti-spoofing (`<kvnet:filterref filter='clean-traffic'/>`, `port-create --filter`),
//! root only. Guests in namespaces on veth links kvnet did not create (their MAC
//! learned from their first frame, then locked) take leases with udhcpc and talk,
//! honestly and then with a changed MAC, someone else's address or a forged ARP; a
//! port-create'd TAP, written to by the test as its guest, sends crafted frames: a
//! DHCP server reply, a router advertisement, ARP for another guest, wrong MAC, wrong
//! address — each dropped and counted in port-list — while its honest ARP is answered.

mod lab;

use kvnet_api::{CreatedPort, Port};
use lab::frames::*;
use lab::*;
use std::io::Write;
use std::time::{Duration, Instant};

const NET: &str = "<network><name>pf</name>\
    <metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>\
    <kvnet:filterref filter='clean-traffic'/></kvnet:network></metadata>\
    <forward mode='nat'/><bridge name='kvf0'/>\
    <ip address='10.78.0.1' prefix='24'><dhcp><range start='10.78.0.100' end='10.78.0.200'/>\
    <host mac='52:54:00:78:00:0a' ip='10.78.0.10'/></dhcp></ip>\
    <ip family='ipv6' address='fd78::1' prefix='64'/></network>";

const HOST_MAC_PREFIX: &str = "52:54:00:78:00:";

/// A guest namespace on a veth that kvnet did not create, its MAC set before the link is
/// up: its first frame (the one the filter learns) is from that MAC.
fn veth_guest(lab: &mut Lab, mac: &str) -> usize {
    lab.guest_with_mac("kvf0", "", "", Some(mac))
}

/// udhcpc's lease for guest `g`, configured on its eth0.
fn lease(lab: &Lab, g: usize) -> String {
    let (ok, out) = sh(
        &lab.guests[g],
        "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s /bin/true 2>&1",
    );
    assert!(ok, "{out}\n{}", lab.daemon.log());
    let addr = out
        .lines()
        .find_map(|l| l.split("lease of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease: {out}"))
        .to_string();
    ip(&lab.guests[g], &format!("addr add {addr}/24 dev eth0"));
    addr
}

/// Dropped frames of a port (learned or not), from the kernel's counter.
fn kernel_drops(lab: &Lab, port: &str) -> u64 {
    let (_, out) = sh(
        &lab.host,
        &format!("nft list counter bridge kvnet port_{port}"),
    );
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter for {port}: {out}"))
}

/// Retried for a moment: the filter follows a new lease or link within milliseconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn guests_on_unregistered_links_are_locked_to_their_mac_and_addresses() {
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let a = veth_guest(&mut lab, &format!("{HOST_MAC_PREFIX}0a"));
    let b = veth_guest(&mut lab, &format!("{HOST_MAC_PREFIX}0b"));
    eventually("both links filtered", || {
        let t = sh(&lab.host, "nft list set bridge kvnet filtered").1;
        t.contains("vg0") && t.contains("vg1")
    });
    let addr_a = lease(&lab, a);
    assert_eq!(addr_a, "10.78.0.10", "the static host");
    let addr_b = lease(&lab, b);
    // Honest traffic flows: to the host, between guests, over IPv6 SLAAC (EUI-64).
    eventually("a reaches the host", || ping(&lab.guests[a], "10.78.0.1"));
    eventually("b reaches a", || ping(&lab.guests[b], &addr_a));
    assert!(ping(&lab.guests[a], &addr_b), "a reaches b");
    ip(
        &lab.guests[a],
        "-6 addr add fd78::5054:ff:fe78:a/64 dev eth0 nodad",
    );
    eventually("a reaches the host over IPv6", || {
        ping(&lab.guests[a], "fd78::1")
    });
    let learned = sh(&lab.host, "nft list set bridge kvnet mac").1;
    assert!(learned.contains("\"vg1\" . 52:54:00:78:00:0b"), "{learned}");
    let before = kernel_drops(&lab, "vg1");

    // b takes a's address: its packets go nowhere, and count.
    ip(&lab.guests[b], "addr add 10.78.0.10/32 dev eth0");
    assert!(
        !sh(
            &lab.guests[b],
            "ping -n -q -c 2 -W 1 -I 10.78.0.10 10.78.0.1"
        )
        .0
    );
    ip(&lab.guests[b], "addr del 10.78.0.10/32 dev eth0");
    // An address nobody has, IPv6 too.
    ip(&lab.guests[b], "-6 addr add fd78::99/64 dev eth0 nodad");
    assert!(!sh(&lab.guests[b], "ping -n -q -c 1 -W 1 -I fd78::99 fd78::1").0);
    // A gratuitous ARP claiming a's address leaves the host's neighbour entry alone.
    let (_, _) = sh(
        &lab.guests[b],
        "busybox arping -U -c 2 -s 10.78.0.10 -I eth0 10.78.0.10",
    );
    let neigh = ip(&lab.host, "neigh show 10.78.0.10 dev kvf0");
    assert!(!neigh.contains("52:54:00:78:00:0b"), "poisoned: {neigh}");
    let spoofed = kernel_drops(&lab, "vg1") - before;
    assert!(spoofed >= 4, "only {spoofed} drops counted");

    // b changes its MAC: locked out; back to its own, it talks again.
    ip(&lab.guests[b], "link set eth0 address 52:54:00:78:00:ee");
    assert!(!sh(&lab.guests[b], "ping -n -q -c 2 -W 1 10.78.0.1").0);
    ip(&lab.guests[b], "link set eth0 address 52:54:00:78:00:0b");
    eventually("b is back", || ping(&lab.guests[b], "10.78.0.1"));

    // A restarted kvnetd keeps what ports learned and their counters.
    let drops = kernel_drops(&lab, "vg1");
    lab.restart_daemon();
    assert!(ping(&lab.guests[b], &addr_a));
    assert!(kernel_drops(&lab, "vg1") >= drops);
    let learned = sh(&lab.host, "nft list set bridge kvnet mac").1;
    assert!(learned.contains("\"vg1\" . 52:54:00:78:00:0b"), "{learned}");

    // Someone flushes the ruleset: the filter is back at once, and still locks.
    sh(&lab.host, "nft flush ruleset");
    eventually("filter rebuilt", || {
        sh(&lab.host, "nft list set bridge kvnet filtered")
            .1
            .contains("vg1")
    });
    eventually("b talks again", || ping(&lab.guests[b], &addr_a));
    ip(&lab.guests[b], "link set eth0 address 52:54:00:78:00:ee");
    assert!(!sh(&lab.guests[b], "ping -n -q -c 2 -W 1 10.78.0.1").0);
    ip(&lab.guests[b], "link set eth0 address 52:54:00:78:00:0b");
    assert!(
        lab.daemon
            .log()
            .contains("port filter table bridge kvnet changed by pid")
    );

    // A link that goes away forgets its MAC; one that comes back under the name learns anew.
    ip(&lab.host, "link del vg1");
    eventually("vg1 forgotten", || {
        !sh(&lab.host, "nft list set bridge kvnet mac")
            .1
            .contains("vg1")
    });

    // Destroying the last filtered network removes the table.
    lab.ok(kvnet_api::request::Destroy {
        network: "pf".into(),
        wait: true,
    });
    eventually("table removed", || {
        !sh(&lab.host, "nft list tables").1.contains("bridge kvnet")
    });
}

fn port_row(lab: &Lab, ifname: &str) -> Port {
    let (ok, out) = lab.cli(&["port-list", "pf", "--json"]);
    assert!(ok, "{out}");
    let ports: Vec<Port> = serde_json::from_str(&out).unwrap();
    ports
        .into_iter()
        .find(|p| p.ifname == ifname)
        .unwrap_or_else(|| panic!("no {ifname}: {out}"))
}

#[test]
#[ignore = "needs root"]
fn crafted_spoofing_from_a_created_port_is_dropped_and_counted() {
    let lab = Lab::new();
    // Unfiltered network: only the port asks for the filter.
    lab.define_and_start(&NET.replace("<kvnet:filterref filter='clean-traffic'/>", ""));
    let mac = format!("{HOST_MAC_PREFIX}0c");
    let (ok, out) = lab.cli(&[
        "port-create",
        "pf",
        "--mac",
        &mac,
        "--filter",
        "clean-traffic",
        "--ip",
        "10.78.0.50",
        "--json",
    ]);
    assert!(ok, "{out}");
    let c: CreatedPort = serde_json::from_str(&out).unwrap();
    assert_eq!(c.port.filter.as_str(), "clean-traffic");
    // An address off the network is refused, nothing created.
    let (ok, out) = lab.cli(&[
        "port-create",
        "pf",
        "--filter",
        "clean-traffic",
        "--ip",
        "10.1.2.3",
    ]);
    assert!(
        !ok && out.contains("10.1.2.3 is not on network 'pf'"),
        "{out}"
    );
    // A port that opts out is not filtered.
    let (ok, out) = lab.cli(&["port-create", "pf", "--filter", "none", "--json"]);
    assert!(ok, "{out}");
    let free: CreatedPort = serde_json::from_str(&out).unwrap();
    let set = sh(&lab.host, "nft list set bridge kvnet filtered").1;
    assert!(
        set.contains(&c.port.ifname) && !set.contains(&free.port.ifname),
        "{set}"
    );

    let mut tap = open_tap(&lab, &c.port.ifname);
    let me = mac_bytes(&mac);
    let bcast = [0xff; 6];
    let host_ip = [10, 78, 0, 1];
    let mine = [10, 78, 0, 50];
    // Honest: an ARP request from its own MAC and address is answered.
    let ask = eth(bcast, me, 0x0806, &arp(1, me, mine, host_ip));
    eventually("honest ARP answered", || {
        tap.write_all(&ask).unwrap();
        arp_reply_seen(&mut tap, me, host_ip)
    });
    assert_eq!(port_row(&lab, &c.port.ifname).dropped, Some(0));

    let other = mac_bytes("52:54:00:78:00:0a");
    let spoofs: Vec<(&str, Vec<u8>)> = vec![
        (
            "DHCP server reply",
            eth(bcast, me, 0x0800, &ipv4_udp(mine, [255; 4], 67, 68)),
        ),
        ("router advertisement", {
            let mut ll = [0u8; 16];
            ll[0] = 0xfe;
            ll[1] = 0x80;
            ll[15] = 0x0c;
            eth([0x33, 0x33, 0, 0, 0, 1], me, 0x86dd, &ipv6_ra(ll))
        }),
        (
            "ARP for another guest's address",
            eth(bcast, me, 0x0806, &arp(2, me, [10, 78, 0, 10], host_ip)),
        ),
        (
            "another MAC",
            eth(bcast, other, 0x0800, &ipv4_udp(mine, [255; 4], 5000, 5000)),
        ),
        (
            "another address",
            eth(
                bcast,
                me,
                0x0800,
                &ipv4_udp([10, 78, 0, 51], [255; 4], 5000, 5000),
            ),
        ),
    ];
    for (i, (what, frame)) in spoofs.iter().enumerate() {
        tap.write_all(frame).unwrap();
        let row = port_row(&lab, &c.port.ifname);
        assert_eq!(
            row.dropped,
            Some(i as u64 + 1),
            "{what} not counted: {row:?}"
        );
    }
    // The forged ARP did not reach the host's neighbour table.
    let neigh = ip(&lab.host, "neigh show 10.78.0.10 dev kvf0");
    assert!(!neigh.contains(&mac), "poisoned: {neigh}");
    let (ok, out) = lab.cli(&["port-list", "pf"]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.contains(&c.port.ifname)).unwrap();
    assert!(
        line.contains("clean-traffic") && line.trim_end().ends_with('5'),
        "{out}"
    );

    // port-delete takes it out of the filter.
    drop(tap);
    let (ok, out) = lab.cli(&["port-delete", &c.port.ifname]);
    assert!(ok, "{out}");
    let set = sh(&lab.host, "nft list tables").1;
    assert!(
        !set.contains("bridge kvnet"),
        "nothing filtered, no table: {set}"
    );
}
