//! Port isolation (`<port isolated='yes'/>`, `port-create --isolated`), root only: the
//! bridge port flag on every kind of port, kept across a kvnetd restart, and real QEMU
//! guests on isolated ports that reach the host and a non-isolated guest but not each
//! other.

mod guest;
mod lab;

use guest::{Guest, Image};
use kvnet_api::CreatedPort;
use lab::*;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(90);

/// A NAT network whose ports are isolated, with a fixed address per guest MAC.
fn isolated_net() -> String {
    "<network><name>iso</name><forward mode='nat'/><bridge name='kvi0'/>\
     <port isolated='yes'/>\
     <ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.100' end='10.77.0.200'/>\
     <host mac='52:54:00:77:00:0a' ip='10.77.0.10'/>\
     <host mac='52:54:00:77:00:0b' ip='10.77.0.11'/>\
     <host mac='52:54:00:77:00:0c' ip='10.77.0.12'/>\
     </dhcp></ip></network>"
        .to_string()
}

fn create(lab: &Lab, mac: &str, isolated: Option<&str>) -> CreatedPort {
    let mut args = vec!["port-create", "iso", "--mac", mac, "--json"];
    if let Some(v) = isolated {
        args.extend(["--isolated", v]);
    }
    let (ok, out) = lab.cli(&args);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The kernel's isolated flag of bridge port `ifname`.
fn kernel_isolated(lab: &Lab, ifname: &str) -> bool {
    let out = ip(&lab.host, &format!("-d link show dev {ifname}"));
    assert!(out.contains("master kvi0"), "{out}");
    out.contains("isolated on")
}

#[test]
#[ignore = "needs root"]
fn isolated_ports_reach_the_host_and_open_ports_but_not_each_other() {
    let img = Image::find("isolated_ports_reach_the_host_and_open_ports_but_not_each_other");
    let mut lab = Lab::new();
    lab.define_and_start(&isolated_net());
    let b = create(&lab, "52:54:00:77:00:0b", None);
    let c = create(&lab, "52:54:00:77:00:0c", Some("no"));
    assert!(b.port.isolated && !c.port.isolated, "{b:?} {c:?}");
    assert!(kernel_isolated(&lab, &b.port.ifname));
    assert!(!kernel_isolated(&lab, &c.port.ifname));

    // The flag comes back when a new kvnetd adopts the network and puts the ports back.
    ip(
        &lab.host,
        &format!(
            "link set dev {} type bridge_slave isolated off",
            b.port.ifname
        ),
    );
    lab.restart_daemon();
    assert!(
        kernel_isolated(&lab, &b.port.ifname),
        "restored at adoption"
    );
    let (ok, out) = lab.cli(&["port-list", "iso"]);
    assert!(ok, "{out}");
    let row = |ifname: &str| {
        out.lines()
            .find(|l| l.contains(ifname))
            .unwrap_or_default()
            .to_string()
    };
    // Interface, MAC, kind, queues, isolated, filter, dropped.
    let isolated = |ifname: &str| row(ifname).split_whitespace().nth(4).map(str::to_string);
    assert_eq!(isolated(&b.port.ifname).as_deref(), Some("yes"), "{out}");
    assert_eq!(isolated(&c.port.ifname).as_deref(), Some("no"), "{out}");

    // B (isolated) and C (not) first; then A (isolated) pings B, C and the host.
    let boot = |name: &str, port: &CreatedPort, ping: &str| {
        Guest::boot(
            &img,
            &lab.host,
            name,
            &port.qemu_args,
            &[],
            &[("ping", ping), ("hold", "300")],
            &[],
        )
    };
    let mut gb = boot("vm-b", &b, "10.77.0.1");
    let mut gc = boot("vm-c", &c, "10.77.0.1");
    assert_eq!(gb.lease(BOOT).ip.to_string(), "10.77.0.11");
    assert_eq!(gc.lease(BOOT).ip.to_string(), "10.77.0.12");
    let a = create(&lab, "52:54:00:77:00:0a", None);
    let mut ga = boot("vm-a", &a, "10.77.0.1,10.77.0.12,10.77.0.11");
    assert_eq!(ga.lease(BOOT).ip.to_string(), "10.77.0.10");
    let log = || lab.daemon.log();
    assert_eq!(
        ga.wait_marker("ping 10.77.0.1", STEP),
        "ok",
        "the host\n{}",
        log()
    );
    assert_eq!(
        ga.wait_marker("ping 10.77.0.12", STEP),
        "ok",
        "the open port\n{}",
        log()
    );
    assert_eq!(
        ga.wait_marker("ping 10.77.0.11", STEP),
        "fail",
        "an isolated guest reached another\n{}",
        ip(&lab.host, "-d link show master kvi0")
    );
}

/// Ports made by qemu's script (kvnet-ifup): isolated by the network's setting when
/// kvnetd registers them.
#[test]
#[ignore = "needs root"]
fn a_port_attached_by_qemus_script_is_isolated() {
    let lab = Lab::new();
    lab.define_and_start(&isolated_net());
    ip(&lab.host, "tuntap add dev kvtap9 mode tap");
    let reply = lab.ok(kvnet_api::request::PortAttach {
        network: Some("iso".into()),
        bridge: None,
        ifname: "kvtap9".into(),
        mac: None,
    });
    assert!(kernel_isolated(&lab, "kvtap9"), "{reply:?}");
}
