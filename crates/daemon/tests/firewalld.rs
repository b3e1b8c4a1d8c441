//! kvnet's networks under firewalld 1.3.3 (Debian 12), run in the lab's host namespace
//! with a private system bus (tests/lab/firewalld.sh): kvnetd puts the bridge in its
//! `kvnet` zone (created through firewalld's D-Bus config API), so DHCP, DNS and NAT
//! pass firewalld's rejects; the binding is what does it (taken away, DNS and NAT
//! fail); after `firewall-cmd --reload`, which drops runtime bindings, kvnetd binds
//! the bridge again; at destroy it takes it out of the zone. `<bridge zone>` names a
//! zone of the admin's; a zone that does not exist fails the start.
//! Root only.

mod lab;

use kvnet_api::request as req;
use kvnet_host::testns::TestNs;
use lab::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BR: &str = "kvfd0";

/// firewalld and its bus, stopped on drop.
struct Firewalld {
    child: Child,
    dir: PathBuf,
}

impl Firewalld {
    fn start(host: &TestNs, dir: &Path) -> Firewalld {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/firewalld.sh");
        let log = std::fs::File::create(dir.join("firewalld.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", host.name(), "sh", script])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn firewalld");
        let fw = Firewalld {
            child,
            dir: dir.to_path_buf(),
        };
        let t0 = Instant::now();
        while fw.cmd(&["--state"]).1.trim() != "running" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "firewalld did not start:\n{}",
                std::fs::read_to_string(dir.join("firewalld.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        fw
    }

    fn bus(&self) -> String {
        format!("unix:path={}", self.dir.join("bus").display())
    }

    /// `firewall-cmd ARGS` on this firewalld's bus.
    fn cmd(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("firewall-cmd")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus())
            .output()
            .expect("firewall-cmd");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn zone_of(&self, iface: &str) -> String {
        self.cmd(&[&format!("--get-zone-of-interface={iface}")])
            .1
            .trim()
            .to_string()
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        if let Ok(p) = std::fs::read_to_string(self.dir.join("dbus.pid"))
            && let Ok(p) = p.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nat_xml(zone: &str) -> String {
    format!(
        "<network><name>fwd</name><forward mode='nat'/><bridge name='{BR}'{zone}/>\
         <dns><host ip='192.168.151.9'><hostname>h.test</hostname></host></dns>\
         <ip address='192.168.151.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.151.100' end='192.168.151.150'/></dhcp></ip></network>"
    )
}

fn dns_works(g: &TestNs) -> bool {
    let (ok, out) = sh(g, "dig +time=1 +tries=1 +short @192.168.151.1 h.test");
    ok && out.trim() == "192.168.151.9"
}

/// One DHCP exchange from a fresh guest; the address it got.
fn dhcp(lab: &mut Lab) -> String {
    let g = lab.guest(BR, "", "");
    let (ok, out) = sh(
        &lab.guests[g],
        "busybox udhcpc -q -n -f -i eth0 -t 4 -T 1 -s /bin/true 2>&1 | grep -o 'lease of [0-9.]*'",
    );
    assert!(ok, "no DHCP lease through firewalld:\n{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("lease of "))
        .unwrap_or("")
        .to_string()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lab_with_firewalld() -> (Lab, Firewalld) {
    have("firewalld", "firewalld");
    have("dbus-daemon", "dbus-daemon");
    have("dig", "dnsutils");
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = &N;
    let dir = std::env::temp_dir().join(format!(
        "kvnet-firewalld-{}-{}",
        std::process::id(),
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bus = format!("unix:path={}", dir.join("bus").display());
    let mut lab = Lab::with_env(&[("DBUS_SYSTEM_BUS_ADDRESS", &bus)]);
    let fw = Firewalld::start(&lab.host, &dir);
    // kvnetd follows firewalld's signals from its start on.
    lab.restart_daemon_with(&[("DBUS_SYSTEM_BUS_ADDRESS", &bus)]);
    (lab, fw)
}

#[test]
#[ignore = "needs root"]
fn dhcp_dns_and_nat_pass_firewalld_also_after_a_reload() {
    let (mut lab, fw) = lab_with_firewalld();
    lab.define_and_start(&nat_xml(""));
    assert_eq!(fw.zone_of(BR), "kvnet", "{}", lab.daemon.log());
    let g = lab.guest(BR, "192.168.151.10", "192.168.151.1");
    assert!(dns_works(&lab.guests[g]), "DNS through firewalld");
    assert!(ping(&lab.guests[g], LAN_PEER), "NAT through firewalld");
    assert!(
        dhcp(&mut lab).starts_with("192.168.151."),
        "DHCP through firewalld"
    );
    // The zone is what lets it through: out of it, the default zone rejects.
    assert!(
        fw.cmd(&["--zone=kvnet", &format!("--remove-interface={BR}")])
            .0
    );
    assert!(!dns_works(&lab.guests[g]), "DNS rejected outside the zone");
    assert!(
        !ping(&lab.guests[g], LAN_PEER),
        "forwarding rejected outside the zone"
    );
    // A reload drops runtime bindings; kvnetd binds the bridge again.
    assert!(fw.cmd(&["--reload"]).0);
    until("the bridge back in its zone", || fw.zone_of(BR) == "kvnet");
    assert!(dns_works(&lab.guests[g]), "DNS after the reload");
    assert!(ping(&lab.guests[g], LAN_PEER), "NAT after the reload");
    assert!(
        dhcp(&mut lab).starts_with("192.168.151."),
        "DHCP after the reload"
    );
    let (ok, out) = lab.cli(&["doctor", "fwd"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("firewalld: interface {BR} in zone kvnet")),
        "{out}"
    );
    // kvnet's zone is permanent, the binding runtime only; the stop undoes it.
    assert!(fw.cmd(&["--permanent", "--get-zones"]).1.contains("kvnet"));
    lab.ok(req::Destroy {
        network: "fwd".into(),
        wait: true,
    });
    assert_eq!(fw.zone_of(BR), "no zone");
}

#[test]
#[ignore = "needs root"]
fn bridge_zone_names_the_admins_zone_and_a_missing_one_fails_the_start() {
    let (lab, fw) = lab_with_firewalld();
    lab.define_and_start(&nat_xml(" zone='trusted'"));
    assert_eq!(fw.zone_of(BR), "trusted");
    lab.ok(req::Destroy {
        network: "fwd".into(),
        wait: true,
    });
    lab.ok(req::Define {
        xml: nat_xml(" zone='nope'"),
    });
    let r = lab.call(req::Start {
        network: "fwd".into(),
    });
    let e = r.error.unwrap_or_default();
    assert!(!r.ok && e.contains("firewalld has no zone 'nope'"), "{e}");
    // Nothing half-applied: no bridge, no binding.
    assert!(!lab.links().contains(BR), "{}", lab.links());
    assert_eq!(fw.zone_of(BR), "no zone");
}
