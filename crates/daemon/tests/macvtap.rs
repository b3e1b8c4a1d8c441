//! Direct (macvtap) networks: a veth pair stands in for the host NIC, its far end in the
//! lab's LAN namespace, where the LAN's own DHCP server (busybox udhcpd) runs. A real
//! QEMU guest on a port kvnet made gets its lease from the LAN; frames written into
//! the macvtaps' devices show what each mode lets through; passthrough, hostdev and
//! bad requests are refused with the reason; a shaped macvtap port carries its rates.
//!
//! The tests take one lock: /dev/tapN is named by interface index, which each lab's
//! namespace counts from 1, so two labs' macvtaps could want the same node.

mod guest;
mod lab;

use guest::{Guest, Image};
use kvnet_api::CreatedPort;
use lab::frames::{self, arp, eth, mac_bytes};
use lab::*;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The LAN's side: 198.51.100.1 on the NIC's far end.
const LAN_GW: &str = "198.51.100.1";

/// A veth `nic` in the host namespace (the "NIC"), its peer `far` in the LAN namespace
/// with 198.51.100.1/24.
fn nic(lab: &Lab, nic: &str, far: &str) {
    ip(
        &lab.host,
        &format!(
            "link add {nic} type veth peer name {far} netns {}",
            lab.lan.name()
        ),
    );
    ip(&lab.host, &format!("link set {nic} up"));
    ip(&lab.lan, &format!("addr add {LAN_GW}/24 dev {far}"));
    ip(&lab.lan, &format!("link set {far} up"));
}

fn direct_xml(name: &str, mode: &str, devs: &[&str]) -> String {
    let ifs: String = devs
        .iter()
        .map(|d| format!("<interface dev='{d}'/>"))
        .collect();
    format!("<network><name>{name}</name><forward mode='{mode}'>{ifs}</forward></network>")
}

fn port_create(lab: &Lab, args: &[&str]) -> CreatedPort {
    let mut all = vec!["port-create"];
    all.extend_from_slice(args);
    all.push("--json");
    let (ok, out) = lab.cli(&all);
    assert!(ok, "{all:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The device path in a created port's redirections (`3<>/dev/tapN`).
fn device(c: &CreatedPort) -> String {
    c.fds[0]
        .split_once("<>")
        .expect("a redirection")
        .1
        .to_string()
}

/// The guest's end of a macvtap, as qemu opens it (non-blocking here). A macvtap
/// carries a 10-byte virtio-net header before each frame.
fn open(c: &CreatedPort) -> File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device(c))
        .unwrap_or_else(|e| panic!("open {}: {e}", device(c)));
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    f
}

const VNET_HDR: usize = 10;

fn send(f: &mut File, frame: &[u8]) {
    let mut b = vec![0u8; VNET_HDR];
    b.extend_from_slice(frame);
    f.write_all(&b).expect("write a frame");
}

/// Frames (without the header) that arrive within `d`.
fn frames(f: &mut File, d: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        match f.read(&mut buf) {
            Ok(n) if n > VNET_HDR => out.push(buf[VNET_HDR..n].to_vec()),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    out
}

fn mac_of(c: &CreatedPort) -> [u8; 6] {
    mac_bytes(c.port.mac.as_deref().expect("a MAC"))
}

/// A broadcast ARP request from the port's guest for the LAN's gateway.
fn who_has_gateway(f: &mut File, c: &CreatedPort, ip: [u8; 4]) {
    let mac = mac_of(c);
    send(
        f,
        &eth([0xff; 6], mac, 0x0806, &arp(1, mac, ip, [198, 51, 100, 1])),
    );
}

fn is_arp_from(frame: &[u8], src: [u8; 6]) -> bool {
    frame.len() >= 42 && frame[12..14] == [8, 6] && frame[6..12] == src
}

fn is_arp_reply_to(frame: &[u8], dst: [u8; 6]) -> bool {
    frame.len() >= 42 && frame[12..14] == [8, 6] && frame[20..22] == [0, 2] && frame[0..6] == dst
}

fn link_exists(lab: &Lab, name: &str) -> bool {
    lab.host
        .exec("ip", &["link", "show", "dev", name])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn dumpxml(lab: &Lab, net: &str) -> String {
    let (ok, out) = lab.cli(&["net-dumpxml", net]);
    assert!(ok, "{out}");
    out
}

/// The README's path: `kvnet port-create` on a bridge-mode macvtap network, qemu run
/// with exactly what it printed (descriptor 3 opened on /dev/tapN by the shell), the
/// guest's lease from the LAN's DHCP server and a ping to the LAN.
#[test]
#[ignore = "needs root"]
fn qemu_guest_on_macvtap_gets_its_lease_from_the_lan() {
    let test = "qemu_guest_on_macvtap_gets_its_lease_from_the_lan";
    let img = Image::find(test);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    nic(&lab, "mvnic0", "mvfar0");
    let dir = temp_dir("udhcpd", &lab.lan);
    let conf = dir.join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 198.51.100.50\nend 198.51.100.60\ninterface mvfar0\nlease_file {}\n\
             option subnet 255.255.255.0\noption router {LAN_GW}\n",
            dir.join("leases").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("leases"), b"").unwrap();
    let mut udhcpd = std::process::Command::new("ip")
        .args(["netns", "exec", lab.lan.name(), "busybox", "udhcpd", "-f"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("busybox udhcpd");
    lab.define_and_start(&direct_xml("lan", "bridge", &["mvnic0"]));

    let c = port_create(&lab, &["lan"]);
    let args = c.qemu_args.join(" ");
    assert!(
        args.contains("tap,id=net0,fd=3,vhost=") && !args.contains("ifname="),
        "{args}"
    );
    assert_eq!(c.fds, [format!("3<>{}", device(&c))]);
    assert_eq!(c.port.parent.as_deref(), Some("mvnic0"));
    // What a user types: qemu with the arguments, and the shell opening descriptor 3.
    let wrap: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        format!("exec \"$@\" {}", c.fds.join(" ")),
        "sh".into(),
    ];
    let mut g = Guest::boot(
        &img,
        &lab.host,
        "vm-macvtap",
        &c.qemu_args,
        &[],
        &[("ping", LAN_GW)],
        &wrap,
    );
    let lease = g.lease(Duration::from_secs(240));
    let ip = lease.ip.to_string();
    assert!(
        ip.starts_with("198.51.100.5") || ip == "198.51.100.60",
        "lease {ip} from the LAN"
    );
    assert_eq!(lease.router, LAN_GW);
    g.wait_marker(&format!("ping {LAN_GW} ok"), Duration::from_secs(90));
    let xml = dumpxml(&lab, "lan");
    assert!(
        xml.contains("<network connections='1'>")
            && xml.contains("<interface dev='mvnic0' connections='1'/>"),
        "{xml}"
    );
    g.kill();
    let _ = udhcpd.kill();
    let _ = udhcpd.wait();

    let (ok, out) = lab.cli(&["port-delete", &c.port.ifname]);
    assert!(ok, "{out}");
    assert!(!link_exists(&lab, &c.port.ifname), "the macvtap is deleted");
    assert!(!dumpxml(&lab, "lan").contains("connections="));
}

#[test]
#[ignore = "needs root"]
fn macvtap_modes_pools_and_refusals() {
    kvnet_host::testns::require_root("network namespaces, macvtap devices");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new();
    nic(&lab, "mvnic0", "mvfar0");

    // Bridge mode: guests on one device reach each other and the LAN.
    lab.define_and_start(&direct_xml("mvb", "bridge", &["mvnic0"]));
    let a = port_create(&lab, &["mvb"]);
    let b = port_create(&lab, &["mvb", "--owner", "nobody"]);
    assert_eq!(
        (a.port.ifname.as_str(), b.port.ifname.as_str()),
        ("macvtap0", "macvtap1")
    );
    let (mut fa, mut fb) = (open(&a), open(&b));
    who_has_gateway(&mut fa, &a, [198, 51, 100, 70]);
    let seen_a = frames(&mut fa, Duration::from_secs(1));
    let seen_b = frames(&mut fb, Duration::from_millis(300));
    assert!(
        seen_a.iter().any(|f| is_arp_reply_to(f, mac_of(&a))),
        "the LAN answers a"
    );
    assert!(
        seen_b.iter().any(|f| is_arp_from(f, mac_of(&a))),
        "bridge mode: b sees a's broadcast"
    );
    // The port's owner, not only root, can open its device (as its qemu will).
    let dev_b = device(&b);
    let (ok, out) = sh(
        &lab.host,
        &format!(
            "setpriv --reuid nobody --regid nogroup --clear-groups sh -c 'exec 3<>{dev_b} && echo opened'"
        ),
    );
    assert!(ok && out.contains("opened"), "nobody opens {dev_b}: {out}");
    let dev_a = device(&a);
    let (ok, _) = sh(
        &lab.host,
        &format!("setpriv --reuid nobody --regid nogroup --clear-groups sh -c 'exec 3<>{dev_a}'"),
    );
    assert!(!ok, "a's device is root's alone");
    let xml = dumpxml(&lab, "mvb");
    assert!(
        xml.contains("<network connections='2'>")
            && xml.contains("<interface dev='mvnic0' connections='2'/>"),
        "{xml}"
    );
    let (ok, list) = lab.cli(&["port-list", "mvb"]);
    assert!(
        ok && list.contains("Device") && list.contains("macvtap") && list.contains("mvnic0"),
        "{list}"
    );

    // Refusals that name the reason.
    for (args, why) in [
        (
            vec!["mvb", "--ip", "198.51.100.9"],
            "--ip and --filter need a bridge",
        ),
        (
            vec!["mvb", "--isolated", "yes"],
            "--isolated needs a bridge",
        ),
        (
            vec!["mvb", "--portgroup", "nosuch"],
            "network 'mvb' has no portgroup 'nosuch' (its portgroups: none)",
        ),
        (
            vec!["mvb", "--mac", a.port.mac.as_deref().unwrap()],
            "is already used on network 'mvb'",
        ),
    ] {
        let mut all = vec!["port-create"];
        all.extend(args);
        let (ok, out) = lab.cli(&all);
        assert!(!ok && out.contains(why), "{all:?}: {out}");
    }

    // A restart adopts the network: the macvtaps (and the guests' open descriptors) stay.
    let before = lab
        .host
        .exec_ok("ip", &["-o", "link", "show", "dev", "macvtap0"])
        .unwrap();
    lab.restart_daemon();
    let after = lab
        .host
        .exec_ok("ip", &["-o", "link", "show", "dev", "macvtap0"])
        .unwrap();
    assert_eq!(
        before.split(':').next(),
        after.split(':').next(),
        "same link after the restart"
    );
    who_has_gateway(&mut fa, &a, [198, 51, 100, 70]);
    assert!(
        frames(&mut fa, Duration::from_secs(1))
            .iter()
            .any(|f| is_arp_reply_to(f, mac_of(&a))),
        "a still reaches the LAN after the restart"
    );
    drop((fa, fb));
    for p in [&a, &b] {
        let (ok, out) = lab.cli(&["port-delete", &p.port.ifname]);
        assert!(ok, "{out}");
    }
    lab.ok(kvnet_api::request::Destroy {
        network: "mvb".into(),
        wait: true,
    });

    // Private mode: the LAN still answers, the other guest sees nothing of a's.
    lab.define_and_start(&direct_xml("mvp", "private", &["mvnic0"]));
    let a = port_create(&lab, &["mvp"]);
    let b = port_create(&lab, &["mvp"]);
    let (mut fa, mut fb) = (open(&a), open(&b));
    who_has_gateway(&mut fa, &a, [198, 51, 100, 71]);
    send(
        &mut fa,
        &eth(
            mac_of(&b),
            mac_of(&a),
            0x0806,
            &arp(2, mac_of(&a), [198, 51, 100, 71], [198, 51, 100, 72]),
        ),
    );
    let seen_a = frames(&mut fa, Duration::from_secs(1));
    let seen_b = frames(&mut fb, Duration::from_millis(500));
    assert!(
        seen_a.iter().any(|f| is_arp_reply_to(f, mac_of(&a))),
        "the LAN answers a"
    );
    assert!(
        !seen_b.iter().any(|f| is_arp_from(f, mac_of(&a))),
        "private mode: b sees nothing of a: {seen_b:?}"
    );
    drop((fa, fb));
    lab.ok(kvnet_api::request::Destroy {
        network: "mvp".into(),
        wait: true,
    });
    let (ok, out) = lab.cli(&["net-start", "mvp"]);
    assert!(ok, "{out}");
    for p in [&a, &b] {
        assert!(
            link_exists(&lab, &p.port.ifname),
            "{} kept over a stop and start",
            p.port.ifname
        );
        let (ok, out) = lab.cli(&["port-delete", &p.port.ifname]);
        assert!(ok, "{out}");
    }

    // Passthrough: one port per device; its MAC goes back at port-delete.
    nic(&lab, "mvnic1", "mvfar1");
    let own_mac = lab
        .host
        .exec_ok("cat", &["/sys/class/net/mvnic1/address"])
        .unwrap_or_default();
    lab.define_and_start(&direct_xml("mvpt", "passthrough", &["mvnic1"]));
    let p = port_create(&lab, &["mvpt"]);
    assert_eq!(p.port.parent.as_deref(), Some("mvnic1"));
    let (ok, out) = lab.cli(&["port-create", "mvpt"]);
    assert!(
        !ok && out.contains(
            "network 'mvpt' requires exclusive access to its devices (mvnic1), and none is free"
        ),
        "{out}"
    );
    let (ok, out) = lab.cli(&["port-delete", &p.port.ifname]);
    assert!(ok, "{out}");
    let (ok, now) = sh(&lab.host, "cat /sys/class/net/mvnic1/address");
    assert!(
        ok && now.trim() == own_mac.trim(),
        "mvnic1 has its MAC back: {now} vs {own_mac}"
    );

    // A pool whose devices are all missing, and hostdev on a device without VFs.
    lab.ok(kvnet_api::request::Define {
        xml: direct_xml("mvnone", "vepa", &["nosuchnic0"]),
    });
    let (ok, out) = lab.cli(&["net-start", "mvnone"]);
    assert!(
        !ok && out.contains("none of its devices (nosuchnic0) exists on the host"),
        "{out}"
    );
    lab.ok(kvnet_api::request::Define {
        xml: "<network><name>vfs</name><forward mode='hostdev' managed='yes'><pf dev='mvnic0'/></forward></network>".into(),
    });
    let (ok, out) = lab.cli(&["net-start", "vfs"]);
    assert!(
        !ok && out.contains(
            "assigns SR-IOV virtual functions of mvnic0 to guests, and mvnic0 is not a PCI device"
        ),
        "{out}"
    );
    lab.ok(kvnet_api::request::Define {
        xml: "<network><name>vfpool</name><forward mode='passthrough'><pf dev='mvnic0'/></forward></network>".into(),
    });
    let (ok, out) = lab.cli(&["net-start", "vfpool"]);
    assert!(
        !ok && out.contains("takes its devices from mvnic0's SR-IOV virtual functions, but mvnic0 is not a PCI device"),
        "{out}"
    );
    lab.ok(kvnet_api::request::Define {
        xml: "<network><name>pci</name><forward mode='hostdev' managed='yes'>\
              <address type='pci' domain='0' bus='0x7f' slot='0x1f' function='0x7'/></forward></network>"
            .into(),
    });
    let (ok, out) = lab.cli(&["net-start", "pci"]);
    assert!(
        !ok && out.contains("none of its PCI devices (0000:7f:1f.7) exists on the host"),
        "{out}"
    );
}

/// A guest standing in for qemu on macvtap port `c` (see [`frames::relay_guest`]).
fn relay_guest(c: &CreatedPort, addr: &str) -> frames::RelayGuest {
    let mac = c.port.mac.as_deref().expect("a MAC");
    frames::relay_guest("kvt-mq", open(c), true, mac, addr)
}

/// What a restart must leave as is: `dev`'s qdiscs and classes, without counters.
fn tc_state(lab: &Lab, dev: &str) -> String {
    sh(
        &lab.host,
        &format!("tc qdisc show dev {dev}; tc class show dev {dev}"),
    )
    .1
}

/// `tc` classes of `dev` in the host namespace.
fn classes(lab: &Lab, dev: &str) -> String {
    sh(&lab.host, &format!("tc class show dev {dev}")).1
}

/// A macvtap port with `--inbound 1000 --outbound 500` carries its averages (±10 %,
/// iperf3 between the guest and the LAN): what the guest sends leaves through the
/// macvtap's egress (HTB), what it receives through the IFB its ingress redirects to.
///
/// The guest is a namespace whose frames a relay writes into and reads from the port's
/// /dev/tapN, the path a QEMU guest's frames take (a write enters the macvtap's
/// transmit queue, a read takes what its receive handler queued after its ingress), so
/// no QEMU is needed. (The macvtap's netdev used as a plain interface with /dev/tapN
/// closed goes through the same qdiscs, checked by hand with iperf3, but is not what a
/// guest uses.) Then: a portgroup update reaches a port taking the default portgroup,
/// a restart changes nothing, port-delete takes the IFB, and a floor or a hostdev
/// port's rates are refused.
#[test]
#[ignore = "needs root"]
fn a_shaped_macvtap_port_carries_its_average_each_way() {
    have("iperf3", "iperf3");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new();
    nic(&lab, "mvqnic0", "mvqfar0");
    lab.define_and_start(
        "<network><name>mvq</name><forward mode='bridge'><interface dev='mvqnic0'/></forward>\
         <portgroup name='slow' default='yes'><bandwidth><inbound average='300'/>\
         <outbound average='200'/></bandwidth></portgroup></network>",
    );
    let c = port_create(&lab, &["mvq", "--inbound", "1000", "--outbound", "500"]);
    assert_eq!(c.port.portgroup.as_deref(), Some("slow"));
    let mv = c.port.ifname.clone();
    let ifb = format!("ifb-{mv}");
    // Outbound on the macvtap's egress, inbound on the IFB (the other way from a TAP).
    assert!(
        classes(&lab, &mv).contains("rate 4Mbit"),
        "{}",
        classes(&lab, &mv)
    );
    assert!(
        classes(&lab, &ifb).contains("rate 8Mbit"),
        "{}",
        classes(&lab, &ifb)
    );
    let g = relay_guest(&c, "198.51.100.30");
    assert!(
        (0..5).any(|_| ping(&g.ns, LAN_GW)),
        "the guest cannot reach the LAN\n{}\n{}",
        sh(&lab.host, &format!("tc -s qdisc show dev {mv}; ip -s link")).1,
        lab.daemon.log()
    );
    within(
        iperf(&lab.lan, LAN_GW, &g.ns, 5211, true),
        1000.0,
        "inbound",
    );
    within(
        iperf(&lab.lan, LAN_GW, &g.ns, 5212, false),
        500.0,
        "outbound",
    );

    // A port taking the default portgroup, then a live update of that portgroup.
    let d = port_create(&lab, &["mvq"]);
    let dv = d.port.ifname.clone();
    let difb = format!("ifb-{dv}");
    assert!(
        classes(&lab, &dv).contains("rate 1600Kbit"),
        "{}",
        classes(&lab, &dv)
    );
    assert!(
        classes(&lab, &difb).contains("rate 2400Kbit"),
        "{}",
        classes(&lab, &difb)
    );
    let (ok, out) = lab.cli(&[
        "net-update",
        "mvq",
        "modify",
        "portgroup",
        "<portgroup name='slow' default='yes'><bandwidth><inbound average='600'/>\
         <outbound average='200'/></bandwidth></portgroup>",
        "--live",
    ]);
    assert!(ok, "{out}");
    assert!(
        classes(&lab, &difb).contains("rate 4800Kbit"),
        "{}",
        classes(&lab, &difb)
    );
    // The explicit rates stay.
    assert!(
        classes(&lab, &ifb).contains("rate 8Mbit"),
        "{}",
        classes(&lab, &ifb)
    );

    // Adopted at a restart: nothing changed.
    let before = (tc_state(&lab, &mv), tc_state(&lab, &ifb));
    lab.restart_daemon();
    assert_eq!((tc_state(&lab, &mv), tc_state(&lab, &ifb)), before);
    let log = lab.daemon.log();
    let after = log.rsplit("kvnetd stopping").next().unwrap();
    assert!(!after.contains("traffic control change"), "{log}");

    // port-delete takes the macvtap and its IFB.
    drop(g);
    let (ok, out) = lab.cli(&["port-delete", &mv]);
    assert!(ok, "{out}");
    assert!(
        !link_exists(&lab, &mv) && !link_exists(&lab, &ifb),
        "{}",
        lab.links()
    );

    // Refusals: a floor (no bridge, no classes), and any rate on a hostdev port.
    let (ok, out) = lab.cli(&["port-create", "mvq", "--inbound", "100,,,50"]);
    assert!(
        !ok && out.contains("a floor needs a bridge's traffic classes"),
        "{out}"
    );
    lab.ok(kvnet_api::request::Define {
        xml: "<network><name>mvqvf</name><forward mode='hostdev' managed='yes'><pf dev='mvqnic0'/></forward></network>".into(),
    });
    let (ok, out) = lab.cli(&["port-create", "mvqvf", "--outbound", "100"]);
    assert!(
        !ok && out.contains("a hostdev port is a virtual function the guest drives itself"),
        "{out}"
    );
}
