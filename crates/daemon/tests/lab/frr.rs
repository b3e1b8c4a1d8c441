//! FRR's zebra and bgpd for a lab host, with every path under a directory of the test's
//! (nothing in /etc/frr or /var/run/frr), configured by `kvnet fabric-config`.

use super::{bin, sh};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// FRR's zebra and bgpd of one host, stopped on drop (also when the test fails: the
/// namespace going away would not stop them).
pub struct Frr {
    dir: PathBuf,
}

impl Frr {
    pub fn start(ns: &kvnet_host::testns::TestNs, dir: &Path, fabric: &Path, host: &str) -> Frr {
        std::fs::create_dir_all(dir).expect("frr dir");
        let frr = Frr {
            dir: dir.to_path_buf(),
        };
        let conf = std::process::Command::new(bin("kvnet"))
            .args(["fabric-config", "--host", host, "--fabric"])
            .arg(fabric)
            .output()
            .expect("kvnet fabric-config");
        assert!(conf.status.success(), "{conf:?}");
        std::fs::write(dir.join("frr.conf"), &conf.stdout).expect("frr.conf");
        std::fs::write(dir.join("empty.conf"), "").expect("empty.conf");
        // The daemons drop to user frr.
        let d = dir.display();
        let (ok, out) = sh(
            ns,
            &format!(
                "set -e; chmod 755 {d}/..; chown -R frr:frr {d}; \
                 c='-d -P 0 --vty_socket {d} -z {d}/zserv.api -f {d}/empty.conf'; \
                 /usr/lib/frr/zebra $c -i {d}/zebra.pid --log file:{d}/zebra.log; \
                 /usr/lib/frr/bgpd $c -i {d}/bgpd.pid --log file:{d}/bgpd.log; \
                 vtysh --vty_socket {d} -f {d}/frr.conf"
            ),
        );
        assert!(ok, "FRR for {host}: {out}");
        frr
    }

    pub fn pid(&self, daemon: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("{daemon}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGTERM `daemon` and wait until it is gone.
    pub fn stop(&self, daemon: &str) {
        let Some(pid) = self.pid(daemon) else { return };
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while nix::sys::signal::kill(pid, None).is_ok() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = std::fs::remove_file(self.dir.join(format!("{daemon}.pid")));
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop("bgpd");
        self.stop("zebra");
    }
}
