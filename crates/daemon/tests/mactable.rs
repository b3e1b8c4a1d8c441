//! `<bridge macTableManager='libvirt'>`, root only: kvnet keeps the bridge's forwarding
//! table, as libvirt does. Learning and unicast flooding are off on the guest ports, and
//! each guest's MAC has a static entry on its port. Through TAPs the test writes to as
//! the guests: a guest's ARP is answered (through its static entry), the second guest
//! sees neither that answer nor frames to a MAC nobody has; all of it back after a
//! kvnetd restart.

mod lab;

use kvnet_api::CreatedPort;
use lab::frames::*;
use lab::*;
use std::io::Write;
use std::time::Duration;

const NET: &str = "<network><name>mt</name><forward mode='nat'/>\
    <bridge name='kvmt0' macTableManager='libvirt'/>\
    <ip address='10.80.0.1' prefix='24'/></network>";

fn create(lab: &Lab, mac: &str) -> CreatedPort {
    let (ok, out) = lab.cli(&["port-create", "mt", "--mac", mac, "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

/// The port's flags and its static entries, as `bridge` shows them.
fn kernel_state(lab: &Lab, port: &str) -> (String, String) {
    let link = sh(&lab.host, &format!("bridge -d link show dev {port}")).1;
    let fdb = sh(&lab.host, &format!("bridge fdb show dev {port}")).1;
    (link, fdb)
}

fn assert_managed(lab: &Lab, port: &str, mac: &str) {
    let (link, fdb) = kernel_state(lab, port);
    assert!(
        link.contains("learning off") && link.contains("flood off"),
        "{port}: {link}"
    );
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(mac) && l.contains("master kvmt0") && l.contains("static")),
        "{port}: {fdb}"
    );
}

#[test]
#[ignore = "needs root"]
fn kvnet_keeps_the_forwarding_table_and_nothing_floods() {
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let (ma, mb) = ("52:54:00:80:00:0a", "52:54:00:80:00:0b");
    let a = create(&lab, ma);
    let b = create(&lab, mb);
    assert_managed(&lab, &a.port.ifname, ma);
    assert_managed(&lab, &b.port.ifname, mb);

    let mut ta = open_tap(&lab, &a.port.ifname);
    let mut tb = open_tap(&lab, &b.port.ifname);
    let me = mac_bytes(ma);
    let host_ip = [10, 80, 0, 1];
    let ask = eth([0xff; 6], me, 0x0806, &arp(1, me, [10, 80, 0, 10], host_ip));
    std::thread::sleep(Duration::from_millis(300));
    frames_for(&mut tb, Duration::from_millis(200));
    // a's traffic flows: the host's ARP reply reaches a through its static entry.
    let mut answered = false;
    for _ in 0..10 {
        ta.write_all(&ask).unwrap();
        if arp_reply_seen(&mut ta, me, host_ip) {
            answered = true;
            break;
        }
    }
    assert!(answered, "no ARP reply for the guest\n{}", lab.daemon.log());
    // The host sends to a MAC no port has (a static neighbour): nothing floods.
    ip(
        &lab.host,
        "neigh replace 10.80.0.99 lladdr 52:54:00:80:00:99 dev kvmt0",
    );
    let _ = sh(&lab.host, "ping -n -q -c 3 -i 0.2 -W 1 10.80.0.99");
    let seen = frames_for(&mut tb, Duration::from_millis(500));
    let to = |m: [u8; 6]| seen.iter().filter(|f| f.get(..6) == Some(&m[..])).count();
    assert_eq!(to(me), 0, "b saw frames for a");
    assert_eq!(to(mac_bytes("52:54:00:80:00:99")), 0, "b saw floods");

    // A new kvnetd puts the table back as it was (the ports are plugged again).
    drop((ta, tb));
    sh(
        &lab.host,
        &format!("bridge link set dev {} learning on flood on", a.port.ifname),
    );
    lab.restart_daemon();
    assert_managed(&lab, &a.port.ifname, ma);
    assert_managed(&lab, &b.port.ifname, mb);
}
