//! kvnetd under a service manager, root only, in namespaces of its own: the sd_notify(3)
//! protocol against a socket of the test's own (`NOTIFY_SOCKET`), as systemd's
//! `Type=notify` and `WatchdogSec=` see it.

mod lab;

use lab::*;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The test's end of the notify protocol: a datagram socket at a path of its own.
struct Manager {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Manager {
    fn new(tag: &str) -> Manager {
        let path = std::env::temp_dir().join(format!("kvnet-notify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager { sock, path }
    }

    fn env(&self) -> String {
        self.path.display().to_string()
    }

    /// The messages that arrive within `within`.
    fn messages(&self, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.sock.set_read_timeout(Some(left)).expect("timeout");
            match self.sock.recv(&mut buf) {
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => return out,
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn keepalives(msgs: &[String]) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[test]
#[ignore = "needs root"]
fn ready_once_networks_run_then_keepalives_until_the_loop_hangs() {
    let m = Manager::new("watchdog");
    let notify = m.env();
    // WatchdogSec=0.4: a keep-alive every 200 ms.
    let lab = Lab::with_env(&[
        ("NOTIFY_SOCKET", &notify),
        ("WATCHDOG_USEC", "400000"),
        ("KVNET_TEST_HANG_AT", "list"),
    ]);
    let first = m.messages(Duration::from_millis(1100));
    let ready = first
        .iter()
        .find(|msg| msg.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {first:?}\n{}", lab.daemon.log()));
    // Ready means the built-in network is up (autostart), not only the socket.
    assert!(
        ready.contains("STATUS=1 of 1 networks active, 0 leases"),
        "{ready:?}"
    );
    let alive = keepalives(&first);
    assert!(
        (3..=8).contains(&alive),
        "{alive} keep-alives in 1.1 s: {first:?}"
    );

    // A request that hangs the event loop: the keep-alives stop with it.
    let socket = lab.daemon.socket.clone();
    std::thread::spawn(move || {
        let _ = kvnet_api::call(&socket, kvnet_api::request::List {});
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = m.messages(Duration::from_millis(10));
    let after = m.messages(Duration::from_millis(1200));
    assert_eq!(keepalives(&after), 0, "{after:?}\n{}", lab.daemon.log());
    assert!(lab.daemon.log().contains("hanging kvnetd's event loop"));
}

#[test]
#[ignore = "needs root"]
fn without_a_watchdog_no_keepalives_and_stopping_is_said() {
    let m = Manager::new("status");
    let notify = m.env();
    let mut lab = Lab::with_env(&[("NOTIFY_SOCKET", &notify)]);
    let first = m.messages(Duration::from_millis(300));
    assert!(
        first.iter().any(|msg| msg.starts_with("READY=1\n")),
        "{first:?}"
    );
    // Without WATCHDOG_USEC, no keep-alives.
    assert_eq!(keepalives(&first), 0, "{first:?}");
    lab.daemon.stop();
    let last = m.messages(Duration::from_millis(500));
    assert!(
        last.iter()
            .any(|msg| msg.lines().any(|l| l == "STOPPING=1")),
        "{last:?}"
    );
}

/// The unit's restrictions that can be applied without systemd, around kvnetd: its
/// capability bounding set and no_new_privs (setpriv), ProtectSystem=strict (every
/// mount read-only but /dev, /proc, /sys and kvnetd's three dirs), ProtectHome and
/// PrivateTmp (empty tmpfs over /home, /root and /tmp). All in kvnetd's own mount
/// namespace (`ip netns exec` makes one): the host's mounts are not touched. The
/// seccomp-based ones (SystemCallFilter, RestrictAddressFamilies, MemoryDenyWriteExecute)
/// and DeviceAllow need systemd itself.
fn as_the_unit_runs_it() -> Vec<String> {
    let script = r#"set -e
# (network namespace handles, nsfs, are not mounts of files)
for mp in $(awk '$3 != "nsfs" {print $2}' /proc/self/mounts | sort -u); do
  case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/etc/kvnet|/var/lib/kvnet|/run/kvnet) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
for d in /home /root /tmp; do mount -t tmpfs -o mode=0755 kvnet-private "$d"; done
for d in /usr /etc /var/lib /run /tmp/..; do
  if touch "$d/.kvnet-probe" 2>/dev/null; then echo "$d is writable" >&2; exit 1; fi
done
exec setpriv --no-new-privs --inh-caps=-all \
  --bounding-set=-all,+net_admin,+net_raw,+net_bind_service,+chown "$@""#;
    ["sh", "-c", script, "kvnet-unit"]
        .map(str::to_string)
        .to_vec()
}

/// The capabilities the unit's CapabilityBoundingSet= names, as /proc/PID/status
/// prints them (CAP_CHOWN 0, CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13).
const UNIT_CAPS: u64 = 1 << 0 | 1 << 10 | 1 << 12 | 1 << 13;

#[test]
#[ignore = "needs root"]
fn kvnetd_does_its_work_under_the_units_restrictions() {
    have("busybox", "busybox-static");
    let mut lab = Lab::with_setup(
        &[],
        &Setup {
            default_paths: true,
            wrapper: as_the_unit_runs_it(),
            ..Setup::default()
        },
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", lab.daemon.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    for cap in ["CapBnd:", "CapEff:"] {
        let v = u64::from_str_radix(&field(cap), 16).unwrap();
        assert_eq!(v, UNIT_CAPS, "{cap} {v:x}");
    }
    // The built-in network came up: bridge, firewall, sysctls, DHCP and DNS.
    assert!(lab.nft_table().contains("virbr0"), "{}", lab.nft_table());
    let g = lab.guest("virbr0", "", "");
    let (ok, out) = sh(
        &lab.guests[g],
        "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s /bin/true 2>&1",
    );
    assert!(
        ok && out.contains("obtained"),
        "{out}\n{}",
        lab.daemon.log()
    );
    let h = lab.guest("virbr0", "192.168.122.250", "192.168.122.1");
    let (_, dns) = sh(
        &lab.guests[h],
        // Forwarded to an upstream this namespace cannot reach: SERVFAIL once the
        // engine gives up, well within dig's wait.
        "dig +tries=1 +time=15 @192.168.122.1 kvnet-probe.invalid",
    );
    assert!(dns.contains("status: "), "no DNS answer: {dns}");
    // A TAP port (/dev/net/tun), its record written under /var/lib/kvnet.
    let (ok, out) = lab.cli(&["port-create", "default", "--owner", "nobody"]);
    assert!(ok, "{out}\n{}", lab.daemon.log());
    let (ok, out) = lab.cli(&["port-list", "default"]);
    assert!(ok && out.contains("vnet"), "{out}");
    // A definition written and read back (/etc/kvnet), then a restart adopts both.
    lab.define_and_start(&net_xml("unit", "kvu1", 79, "<forward mode='nat'/>"));
    lab.restart_daemon();
    let active = list(&lab).iter().filter(|n| n.active).count();
    assert_eq!(active, 2, "{}", lab.daemon.log());
    let log = lab.daemon.log();
    assert!(!log.contains("ERROR"), "{log}");
}

/// A scratch root holding the units, kvnetd where they expect it, and the host's
/// systemd units they depend on (sysinit.target, …): systemd-analyze reads only it.
fn unit_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!("kvnet-unitroot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let run = |cmd: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/systemd");
    run(&format!(
        "set -e; R={r}; mkdir -p $R/usr/sbin $R/etc/systemd/system $R/lib/systemd; \
         cp -r /lib/systemd/system $R/lib/systemd/; cp {units}/kvnetd.service {units}/kvnetd.socket \
         $R/etc/systemd/system/; cp {kvnetd} $R/usr/sbin/kvnetd",
        r = root.display(),
        kvnetd = bin("kvnetd").display()
    ));
    root
}

fn analyze(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian package systemd; ./test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn units_verify_and_the_service_is_well_confined() {
    let root = unit_root();
    let r = format!("--root={}", root.display());
    let units = [
        "/etc/systemd/system/kvnetd.service",
        "/etc/systemd/system/kvnetd.socket",
    ];
    // --man=no: the man page comes with the package.
    let (ok, out) = analyze(&[&["verify", "--man=no", &r][..], &units].concat());
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out) = analyze(&["security", "--offline=true", &r, units[0]]);
    let _ = std::fs::remove_dir_all(&root);
    assert!(ok, "{out}");
    let exposure: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for kvnetd.service: ")
                .nth(1)
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    // 3.1 "OK" when written; what remains is kvnetd's work: net admin and raw sockets,
    // writable /proc/sys, the host's network namespace.
    assert!(exposure <= 3.5, "exposure {exposure}:\n{out}");
}

#[test]
#[ignore = "needs root"]
fn under_systemd_logs_go_to_journald_with_their_fields() {
    // journald's end: a datagram socket of the test's own, mounted over journald's
    // socket path in kvnetd's mount namespace only (a tmpfs over /run/systemd there).
    let path = std::env::temp_dir().join(format!("kvnet-journal-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let journal = UnixDatagram::bind(&path).expect("bind the journal socket");
    let shell = format!(
        "mount -t tmpfs kvnet-journal /run/systemd; mkdir /run/systemd/journal; \
         touch /run/systemd/journal/socket; mount --bind {} /run/systemd/journal/socket; \
         export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)",
        path.display()
    );
    let lab = Lab::with_setup(
        &[],
        &Setup {
            shell: vec![shell],
            ..Setup::default()
        },
    );
    journal
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = journal.recv(&mut buf) {
        entries.push(journal_fields(&buf[..n]));
    }
    let _ = std::fs::remove_file(&path);
    let field = |e: &[(String, String)], k: &str| {
        e.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let started = entries
        .iter()
        .find(|e| field(e, "EVENT").as_deref() == Some("started"))
        .unwrap_or_else(|| panic!("no start in the journal: {entries:?}"));
    for (k, v) in [
        ("NETWORK", "default"),
        ("PRIORITY", "6"),
        ("SYSLOG_IDENTIFIER", "kvnetd"),
    ] {
        assert_eq!(field(started, k).as_deref(), Some(v), "{started:?}");
    }
    assert!(
        field(started, "MESSAGE").is_some_and(|m| m.starts_with("started in ")),
        "{started:?}"
    );
    // Nothing went to stderr meanwhile.
    assert_eq!(lab.daemon.log(), "");
}

/// The fields of a datagram of journald's native protocol: `KEY=value` lines, or `KEY`,
/// a newline, the value's length (64 bits, little endian), the value and a newline.
fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(nl) = d.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&d[..nl]).into_owned();
        d = &d[nl + 1..];
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        } else if d.len() >= 8 {
            let len = u64::from_le_bytes(d[..8].try_into().unwrap()) as usize;
            let value = d.get(8..8 + len).unwrap_or_default();
            out.push((line, String::from_utf8_lossy(value).into_owned()));
            d = d.get(8 + len + 1..).unwrap_or_default();
        }
    }
    out
}
