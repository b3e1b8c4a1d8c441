//! Guest ports end to end, root only: port-create/list/delete through kvnetd and the
//! CLI, the qemu script= hooks (kvnet-ifup/kvnet-ifdown) and the bridge helper driven
//! the way qemu drives it, all inside the lab's namespaces.

mod lab;

use kvnet_api::request as req;
use kvnet_api::{CreatedPort, Port, PortKind};
use lab::*;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;

const N2: &str = "<network><name>n2</name><forward mode='nat'/><bridge name='kvbr2'/>\
    <mtu size='9000'/><ip address='192.168.50.1' netmask='255.255.255.0'/></network>";

fn create(lab: &Lab, network: &str, ifname: Option<&str>, mac: Option<&str>) -> kvnet_api::Reply {
    lab.call(req::PortCreate {
        network: network.into(),
        ifname: ifname.map(str::to_string),
        mac: mac.map(str::to_string),
        owner: None,
        group: None,
        queues: None,
        isolated: None,
        ..Default::default()
    })
}

fn ports(lab: &Lab, network: &str) -> Vec<Port> {
    serde_json::from_value(
        lab.ok(req::PortList {
            network: network.into(),
        })
        .data,
    )
    .expect("ports")
}

fn link(lab: &Lab, name: &str) -> Option<String> {
    let (ok, out) = sh(&lab.host, &format!("ip -d link show {name}"));
    ok.then_some(out)
}

#[test]
#[ignore = "needs root"]
fn port_create_list_delete_across_restarts() {
    let mut lab = Lab::new();
    let r = lab.ok(req::PortCreate {
        network: "default".into(),
        ifname: None,
        mac: None,
        owner: Some("nobody".into()),
        group: Some("0".into()),
        queues: Some(2),
        isolated: None,
        ..Default::default()
    });
    let c: CreatedPort = serde_json::from_value(r.data).unwrap();
    assert_eq!(c.port.ifname, "vnet0");
    assert_eq!(c.port.kind, PortKind::Persistent);
    assert_eq!(c.port.queues, 2);
    let mac = c.port.mac.clone().unwrap();
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    // The port's qemu runs as nobody: /dev/vhost-net is missing here, and where it
    // exists (root:kvm, 0660) nobody may not open it either; either way it is said why.
    let why = c.vhost_off.clone().expect("vhost-net off, with a reason");
    assert!(
        why.contains("does not exist") || why.contains("cannot be opened by nobody"),
        "{why}"
    );
    let args = c.qemu_args.join(" ");
    assert!(
        args.contains("ifname=vnet0,script=no,downscript=no,vhost=off,queues=2")
            && args.contains(&format!("mac={mac}")),
        "{args}"
    );
    let l = link(&lab, "vnet0").expect("vnet0 exists");
    for want in [
        "master virbr0",
        ",UP",
        "tun type tap",
        "vnet_hdr on",
        "multi_queue",
        "persist on",
        "user nobody",
        "group root",
    ] {
        assert!(l.contains(want), "{want}: {l}");
    }
    assert!(l.contains(&format!("link/ether fe{}", &mac[2..])), "{l}");

    // A second network with its own MTU; an explicit name and MAC.
    lab.define_and_start(N2);
    let r = create(&lab, "n2", Some("guest1"), Some("52:54:00:00:00:99"));
    assert!(r.ok, "{r:?}");
    let l = link(&lab, "guest1").unwrap();
    assert!(
        l.contains("mtu 9000") && l.contains("master kvbr2") && l.contains("fe:54:00:00:00:99"),
        "{l}"
    );
    // MACs in use and names taken are refused, naming who has them.
    let e = create(&lab, "n2", None, Some("52:54:00:00:00:99"))
        .error
        .unwrap();
    assert!(
        e.contains("52:54:00:00:00:99") && e.contains("'n2'") && e.contains("port guest1"),
        "{e}"
    );
    sh(
        &lab.host,
        "bridge fdb add 52:54:00:00:00:77 dev guest1 master static",
    );
    let e = create(&lab, "n2", None, Some("52:54:00:00:00:77"))
        .error
        .unwrap();
    assert!(
        e.contains("52:54:00:00:00:77") && e.contains("guest1") && e.contains("forwarding table"),
        "{e}"
    );
    let e = create(&lab, "n2", Some("vnet0"), None).error.unwrap();
    assert!(e.contains("vnet0 already exists"), "{e}");
    let e = create(&lab, "n2", None, Some("01:00:5e:00:00:01"))
        .error
        .unwrap();
    assert!(e.contains("multicast"), "{e}");

    let (ok, out) = lab.cli(&["port-list", "n2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Interface") && out.contains("MAC address"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("guest1")
            && l.contains("52:54:00:00:00:99")
            && l.contains("persistent")),
        "{out}"
    );

    // The registry survives a clean restart and a kill -9.
    lab.restart_daemon();
    assert_eq!(ports(&lab, "n2").len(), 1);
    lab.crash_daemon();
    assert_eq!(ports(&lab, "n2")[0].ifname, "guest1");
    assert_eq!(ports(&lab, "default")[0].ifname, "vnet0");

    // Destroy keeps the persistent TAP, detached; start puts it back.
    lab.ok(req::Destroy {
        network: "n2".into(),
        wait: true,
    });
    let l = link(&lab, "guest1").expect("persistent TAP kept");
    assert!(!l.contains("master"), "{l}");
    lab.ok(req::Start {
        network: "n2".into(),
    });
    assert!(link(&lab, "guest1").unwrap().contains("master kvbr2"));
    // After a reboot the TAP is gone: the next start makes it again.
    lab.ok(req::Destroy {
        network: "n2".into(),
        wait: true,
    });
    ip(&lab.host, "link del guest1");
    lab.ok(req::Start {
        network: "n2".into(),
    });
    let l = link(&lab, "guest1").expect("re-created");
    assert!(
        l.contains("master kvbr2") && l.contains("persist on") && l.contains("fe:54:00:00:00:99"),
        "{l}"
    );

    // A link of the port's name that is not a TAP is not taken over.
    lab.ok(req::Destroy {
        network: "n2".into(),
        wait: true,
    });
    ip(&lab.host, "link del guest1");
    ip(&lab.host, "link add guest1 type veth peer name guest1p");
    let w = lab
        .ok(req::Start {
            network: "n2".into(),
        })
        .warnings
        .join("\n");
    assert!(w.contains("guest1 exists and is not a TAP device"), "{w}");
    assert!(!link(&lab, "guest1").unwrap().contains("master"));
    ip(&lab.host, "link del guest1");

    let e = lab
        .call(req::Undefine {
            network: "n2".into(),
        })
        .error
        .unwrap();
    assert!(e.contains("guest1") && e.contains("port-delete"), "{e}");
    lab.ok(req::PortDelete {
        network: None,
        ifname: "guest1".into(),
    });
    assert!(link(&lab, "guest1").is_none());
    assert!(ports(&lab, "n2").is_empty());
    lab.ok(req::Undefine {
        network: "n2".into(),
    });
    let (ok, out) = lab.cli(&["port-delete", "--network", "default", "vnet0"]);
    assert!(ok && out.contains("Port vnet0 deleted"), "{out}");
    assert!(link(&lab, "vnet0").is_none());
    let (ok, out) = lab.cli(&["port-delete", "vnet0"]);
    assert!(!ok && out.contains("no network has a port vnet0"), "{out}");
}

fn hook(lab: &Lab, prog: &str, ifname: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", lab.host.name()])
        .arg(bin(prog))
        .arg(ifname)
        .env("KVNET_SOCKET", &lab.daemon.socket)
        .envs(env.iter().copied())
        .output()
        .expect("run hook");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[ignore = "needs root"]
fn qemu_script_hooks_attach_and_detach() {
    let lab = Lab::new();
    ip(&lab.host, "tuntap add dev tap9 mode tap");
    let (ok, out) = hook(&lab, "kvnet-ifup", "tap9", &[]);
    assert!(ok, "{out}");
    let l = link(&lab, "tap9").unwrap();
    assert!(l.contains("master virbr0") && l.contains(",UP"), "{l}");
    let p = ports(&lab, "default");
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].ifname.as_str(), p[0].kind),
        ("tap9", PortKind::Script)
    );
    assert_eq!(p[0].mac, None);

    let (ok, out) = hook(&lab, "kvnet-ifdown", "tap9", &[]);
    assert!(ok, "{out}");
    assert!(!link(&lab, "tap9").unwrap().contains("master"));
    assert!(ports(&lab, "default").is_empty());
    let (ok, out) = hook(&lab, "kvnet-ifdown", "tap9", &[]);
    assert!(
        !ok && out.contains("kvnet-ifdown: cannot detach tap9"),
        "{out}"
    );

    let (ok, out) = hook(&lab, "kvnet-ifup", "tap9", &[("KVNET_NETWORK", "nope")]);
    assert!(
        !ok && out.contains("kvnet-ifup: cannot attach tap9 to network 'nope'")
            && out.contains("not found"),
        "{out}"
    );
    lab.ok(req::Define {
        xml: N2.to_string(),
    });
    let (ok, out) = hook(&lab, "kvnet-ifup", "tap9", &[("KVNET_NETWORK", "n2")]);
    assert!(!ok && out.contains("not active"), "{out}");
    let (ok, out) = hook(
        &lab,
        "kvnet-ifup",
        "tap9",
        &[("KVNET_SOCKET", "/nonexistent/sock")],
    );
    assert!(!ok && out.contains("cannot reach kvnetd"), "{out}");
    let (ok, out) = hook(&lab, "kvnet-ifup", "wan0", &[]);
    assert!(!ok && out.contains("not an existing TAP"), "{out}");

    // A TAP that vanished without its downscript is forgotten.
    let (ok, out) = hook(&lab, "kvnet-ifup", "tap9", &[]);
    assert!(ok, "{out}");
    ip(&lab.host, "link del tap9");
    assert!(ports(&lab, "default").is_empty());
}

/// Run the bridge helper as qemu does: one end of a socket pair inherited as --fd=N.
/// Returns success, stderr and the TAP file it sent, if any.
fn bridge_helper(lab: &Lab, conf: &Path, fd_arg: Option<&str>) -> (bool, String, Option<OwnedFd>) {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let raw: RawFd = theirs.as_raw_fd();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.host.name()])
        .arg(bin("kvnet-bridge-helper"))
        .arg("--use-vnet")
        .arg("--br=virbr0")
        .arg(fd_arg.map_or_else(|| format!("--fd={raw}"), str::to_string))
        .env("KVNET_BRIDGE_CONF", conf)
        .env("KVNET_SOCKET", &lab.daemon.socket);
    kvnet_host::testns::raw::pass_fd(&mut cmd, raw);
    let out = cmd.output().expect("run helper");
    drop(theirs);
    let mut buf = [0u8; 1];
    // CLOEXEC: a child another test spawns meanwhile must not keep the TAP open.
    let (n, got) = kvnet_host::testns::raw::recv_fd(&ours, &mut buf).expect("recvmsg");
    if got.is_some() {
        assert_eq!(n, 1, "one byte of payload, like qemu-bridge-helper");
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        got,
    )
}

fn taps(lab: &Lab) -> Vec<String> {
    ip(&lab.host, "-br link")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("tap"))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn bridge_helper_speaks_qemus_protocol() {
    let lab = Lab::new();
    let allow = lab.daemon.dir.join("allow.conf");
    let deny = lab.daemon.dir.join("deny.conf");
    std::fs::write(&allow, "# test\nallow virbr0\n").unwrap();
    std::fs::write(&deny, "allow all\ndeny virbr0\n").unwrap();

    let (ok, err, fd) = bridge_helper(&lab, &deny, None);
    assert!(
        !ok && err.contains("access to bridge virbr0 denied"),
        "{err}"
    );
    assert!(fd.is_none());
    assert!(taps(&lab).is_empty(), "no TAP left behind");
    let (ok, err, _) = bridge_helper(&lab, &lab.daemon.dir.join("missing.conf"), None);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let (ok, err, _) = bridge_helper(&lab, &allow, Some("--fd=0"));
    assert!(!ok && err.contains("not a Unix socket"), "{err}");

    let (ok, err, fd) = bridge_helper(&lab, &allow, None);
    assert!(ok, "{err}");
    let fd = fd.expect("TAP file received");
    let t = taps(&lab);
    assert_eq!(t.len(), 1, "{t:?}");
    let l = link(&lab, &t[0]).unwrap();
    assert!(
        l.contains("master virbr0") && l.contains(",UP") && l.contains("vnet_hdr on"),
        "{l}"
    );
    assert!(l.contains("link/ether fe:"), "{l}");
    let p = ports(&lab, "default");
    assert_eq!(p.len(), 1);
    assert_eq!((&p[0].ifname, p[0].kind), (&t[0], PortKind::Helper));
    // qemu closing its file removes the TAP; the port goes with it.
    drop(fd);
    assert!(taps(&lab).is_empty());
    assert!(ports(&lab, "default").is_empty());
}
