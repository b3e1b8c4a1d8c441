//! `net-event` and the hook scripts, as a user meets them: the CLI's event stream while
//! a network starts, hands out a lease, gets a forward and stops; libvirt-style hook
//! scripts in CONFIG_DIR/hooks run with their arguments and the network's XML, a
//! failing `start begin` hook refuses the start, and kvnet's `lease` hook gets the
//! lease. Root only.

mod lab;

use lab::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "<network><name>ev</name><forward mode='nat'/><bridge name='kve0'/>\
    <ip address='192.168.70.1' prefix='24'><dhcp>\
    <range start='192.168.70.100' end='192.168.70.150'/></dhcp></ip></network>";

/// Polls `f` until it holds or 10 s pass.
fn until(mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn lease(lab: &mut Lab, mac: &str, hostname: &str) -> String {
    lab.udhcpc_guest("kve0", mac, hostname).1
}

#[test]
#[ignore = "needs root"]
fn net_event_streams_lifecycle_lease_port_and_forward_events() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    let r = lab.ok(kvnet_api::request::Define {
        xml: NET.to_string(),
    });
    assert!(r.ok);
    let out = lab.daemon.dir.join("events.out");
    let mut watcher = Command::new(bin("kvnet"))
        .arg("--socket")
        .arg(lab.daemon.dir.join("run/kvnetd.sock"))
        .args(["net-event", "ev", "--loop", "--timeout", "20"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kvnet net-event");
    // The subscription is in place once a first event comes through.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, o) = lab.cli(&["net-start", "ev"]);
    assert!(ok, "{o}");
    let addr = lease(&mut lab, "52:54:00:00:07:01", "vm1");
    let (ok, o) = lab.cli(&[
        "net-forward-add",
        "ev",
        "--proto",
        "tcp",
        "--port",
        "2222",
        "--to",
        "vm1:22",
    ]);
    assert!(ok, "{o}");
    let (ok, o) = lab.cli(&[
        "port-create",
        "ev",
        "--ifname",
        "kvetap0",
        "--mac",
        "52:54:00:00:07:09",
    ]);
    assert!(ok, "{o}");
    let (ok, o) = lab.cli(&["port-delete", "kvetap0"]);
    assert!(ok, "{o}");
    let (ok, o) = lab.cli(&["net-destroy", "ev"]);
    assert!(ok, "{o}");
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(until(|| read().contains("Stopped")), "{}", read());
    let _ = watcher.kill();
    let _ = watcher.wait();
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    let want = [
        "event 'lifecycle' for network ev: Started".to_string(),
        format!("event 'lease' for network ev: added {addr} 52:54:00:00:07:01 vm1"),
        "event 'forward' for network ev: added tcp *:2222 -> vm1:22".to_string(),
        "event 'port' for network ev: created 52:54:00:00:07:09 kvetap0".to_string(),
        "event 'port' for network ev: deleted kvetap0".to_string(),
        "event 'lifecycle' for network ev: Stopped".to_string(),
    ];
    let mut at = 0;
    for w in &want {
        let found = lines[at..].iter().position(|l| l == w);
        assert!(found.is_some(), "{w:?} not in order in:\n{text}");
        at += found.unwrap() + 1;
    }

    // Without --loop: the first event, then exit; --event filters.
    let (ok, o) = lab.cli(&["net-event", "--event", "lease", "--timeout", "1"]);
    assert!(ok && o.is_empty(), "{o}");
    let (ok, o) = lab.cli(&["net-event", "--event", "nonsense"]);
    assert!(!ok && o.contains("unknown event 'nonsense'"), "{o}");
}

#[test]
#[ignore = "needs root"]
fn hook_scripts_run_like_libvirts_and_a_failing_start_hook_refuses_the_start() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    let hooks = lab.daemon.dir.join("etc/hooks");
    let log = lab.daemon.dir.join("hooks.log");
    std::fs::create_dir_all(hooks.join("network.d")).unwrap();
    let script = |path: &std::path::Path, body: &str| {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let l = log.display();
    // libvirt's single script, then the network.d ones in name order.
    script(
        &hooks.join("network"),
        &format!(
            "read -r first; echo \"main $* $first ${{KVNET_LEASE_ADDRESS:-}} ${{KVNET_LEASE_HOSTNAME:-}}\" >> {l}"
        ),
    );
    script(
        &hooks.join("network.d/10-second"),
        &format!("echo \"second $*\" >> {l}"),
    );
    // Writable by others: never run (it would run as root).
    let unsafe_hook = hooks.join("network.d/20-unsafe");
    script(&unsafe_hook, &format!("echo unsafe >> {l}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&unsafe_hook, std::fs::Permissions::from_mode(0o777)).unwrap();

    lab.define_and_start(NET);
    let addr = lease(&mut lab, "52:54:00:00:07:02", "web");
    let (ok, o) = lab.cli(&["net-destroy", "ev"]);
    assert!(ok, "{o}");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        until(|| read().contains("second ev stopped end -")),
        "{}\n{}",
        read(),
        lab.daemon.log()
    );
    let text = read();
    for want in [
        "main ev start begin - <network>".to_string(),
        "second ev start begin -".to_string(),
        "main ev started begin - <network>".to_string(),
        format!("main ev lease added - {addr} web"),
        "main ev stopped end - <network>".to_string(),
    ] {
        // Words compared: a lease hook's stdin is empty, its `first` too.
        let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.lines().any(|l| words(l).starts_with(&words(&want))),
            "{want:?} missing:\n{text}"
        );
    }
    assert!(!text.contains("unsafe"), "{text}");
    assert!(
        lab.daemon.log().contains("20-unsafe skipped"),
        "{}",
        lab.daemon.log()
    );

    // A start begin hook that fails refuses the start, saying which and why.
    script(
        &hooks.join("network.d/05-veto"),
        "[ \"$2 $3\" = \"start begin\" ] && { echo 'not today' >&2; exit 3; }; exit 0",
    );
    let (ok, o) = lab.cli(&["net-start", "ev"]);
    assert!(!ok, "{o}");
    assert!(
        o.contains("05-veto refused the start") && o.contains("not today"),
        "{o}"
    );
    let (_, info) = lab.cli(&["net-info", "ev"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Active:") && l.ends_with("no")),
        "{info}"
    );
}
