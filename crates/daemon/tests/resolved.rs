//! `<domain register='yes'>` against systemd-resolved's D-Bus API: a stand-in for
//! resolved (the real one would take over the machine's /etc/resolv.conf) owns
//! `org.freedesktop.resolve1` on a private bus and records the calls; kvnetd registers
//! the network's DNS server and `~domain` for its bridge at start, and reverts the link
//! at destroy, as libvirt does. Root only.

mod lab;

use lab::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct FakeResolved {
    calls: Arc<Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.freedesktop.resolve1.Manager")]
impl FakeResolved {
    #[zbus(name = "SetLinkDNS")]
    fn set_link_dns(&self, link: i32, addrs: Vec<(i32, Vec<u8>)>) {
        let a: Vec<String> = addrs.iter().map(|(f, b)| format!("{f}:{b:?}")).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("SetLinkDNS {link} {}", a.join(" ")));
    }

    #[zbus(name = "SetLinkDomains")]
    fn set_link_domains(&self, link: i32, domains: Vec<(String, bool)>) {
        let d: Vec<String> = domains.iter().map(|(n, r)| format!("{n}:{r}")).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("SetLinkDomains {link} {}", d.join(" ")));
    }

    #[zbus(name = "SetLinkDefaultRoute")]
    fn set_link_default_route(&self, link: i32, on: bool) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("SetLinkDefaultRoute {link} {on}"));
    }

    #[zbus(name = "RevertLink")]
    fn revert_link(&self, link: i32) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("RevertLink {link}"));
    }
}

/// A private bus anyone may own names on; its address, and the daemon's pid.
fn private_bus(dir: &std::path::Path) -> (String, u32) {
    std::fs::create_dir_all(dir).unwrap();
    let bus = dir.join("bus");
    std::fs::write(
        dir.join("bus.conf"),
        format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
             <busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
             <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n",
            bus.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("dbus-daemon")
        .arg(format!("--config-file={}", dir.join("bus.conf").display()))
        .args(["--fork", "--nopidfile", "--print-pid"])
        .output()
        .expect("dbus-daemon");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pid");
    (format!("unix:path={}", bus.display()), pid)
}

#[test]
#[ignore = "needs root"]
fn register_yes_registers_the_dns_and_domain_with_resolved_and_destroy_reverts_it() {
    have("dbus-daemon", "dbus-daemon");
    let dir = std::env::temp_dir().join(format!("kvnet-resolved-{}", std::process::id()));
    let (bus, bus_pid) = private_bus(&dir);
    struct Kill(u32, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _bus = Kill(bus_pid, dir.clone());
    // The stand-in serves from a runtime of its own for the whole test.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _conn = rt.block_on({
        let (bus, calls) = (bus.clone(), calls.clone());
        async move {
            zbus::connection::Builder::address(bus.as_str())
                .unwrap()
                .name("org.freedesktop.resolve1")
                .unwrap()
                .serve_at("/org/freedesktop/resolve1", FakeResolved { calls })
                .unwrap()
                .build()
                .await
                .expect("own org.freedesktop.resolve1")
        }
    });
    let lab = Lab::with_env(&[("DBUS_SYSTEM_BUS_ADDRESS", &bus)]);
    let got = || calls.lock().unwrap().clone();
    // The lab's 'default' network does not ask for it: nothing registered.
    assert!(got().is_empty(), "{:?}", got());
    lab.define_and_start(
        "<network><name>reg</name><forward mode='nat'/><bridge name='kvr1'/>\
         <domain name='reg.test' localOnly='yes' register='yes'/>\
         <ip address='192.168.71.1' prefix='24'/>\
         <ip family='ipv6' address='fd00:71::1' prefix='64'/></network>",
    );
    let index: i32 = ip(&lab.host, "-o link show kvr1")
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let v6 = format!(
        "{:?}",
        "fd00:71::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(
        got(),
        [
            format!("SetLinkDNS {index} 2:[192, 168, 71, 1] 10:{v6}"),
            format!("SetLinkDomains {index} reg.test:true"),
            format!("SetLinkDefaultRoute {index} false"),
        ],
        "{}",
        lab.daemon.log()
    );
    let (ok, out) = lab.cli(&["net-destroy", "reg"]);
    assert!(ok, "{out}");
    let t0 = Instant::now();
    while !got().iter().any(|c| c.starts_with("RevertLink"))
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got().last().cloned(), Some(format!("RevertLink {index}")));
    assert!(
        lab.daemon
            .log()
            .contains("reg.test registered with systemd-resolved on kvr1")
    );
    drop(lab);
}
