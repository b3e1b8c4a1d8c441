//! The Debian package (scripts/package.sh): what it holds, lintian's verdict, an install
//! into a scratch root with dpkg, and an upgrade from one build to the next under a
//! running NAT network whose guest pings the LAN throughout. Root only.
//!
//! Real: dpkg unpacks, records the conffile and runs the maintainer scripts (chrootless,
//! with DPKG_ROOT naming the scratch root, as for any other root), so setcap and
//! deb-systemd-helper's enabling happen there for real. Simulated: the service manager.
//! No systemd runs here, and the scripts leave the services of another root alone, so
//! the test does what postinst's `deb-systemd-invoke restart kvnetd.service` makes
//! systemd do with the unit's KillMode=process and no ExecStop — SIGTERM to kvnetd
//! alone, wait for it to exit, start the new binary — and, for `remove`, the stop.
//! The two builds are the same binaries packed with two versions. kvnetd runs from the
//! scratch root in the lab's namespaces, on the lab's dirs (not the root's /etc/kvnet).

mod lab;

use kvnet_host::testns::require_root;
use lab::*;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

struct Debs {
    /// An earlier build: this version with `~old`, which sorts before it.
    old: PathBuf,
    new: PathBuf,
}

/// Both packages, packed once per test run from the debug build test.sh made (no
/// compile here; gzip -1, as the contents are what is tested).
fn debs() -> &'static Debs {
    static DEBS: OnceLock<Debs> = OnceLock::new();
    DEBS.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb");
        let _ = std::fs::remove_dir_all(&out);
        let bins = bin("kvnetd").parent().expect("bin dir").to_path_buf();
        for b in ["kvnet", "kvnet-ifup", "kvnet-ifdown", "kvnet-bridge-helper"] {
            bin(b);
        }
        let build = |version: &str| {
            let path = run(Command::new(workspace().join("scripts/package.sh"))
                .arg("--bin-dir")
                .arg(&bins)
                .args(["--version", version, "--out"])
                .arg(&out)
                .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
                .env("DPKG_DEB_COMPRESSOR_LEVEL", "1"));
            PathBuf::from(path.trim())
        };
        let v = env!("CARGO_PKG_VERSION");
        Debs {
            old: build(&format!("{v}~old")),
            new: build(v),
        }
    })
}

/// A scratch root with an empty dpkg database, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("kvnet-pkg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(dir.join("var/lib/dpkg").join(d)).expect("admin dir");
        }
        std::fs::write(dir.join("var/lib/dpkg/status"), "").expect("status");
        Root(dir)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p.trim_start_matches('/'))
    }

    /// dpkg on this root. Its database knows none of the host's packages, so
    /// dependencies are not checked here (`depends_are_installed` checks them against
    /// the host's).
    fn dpkg(&self, args: &[&str]) -> String {
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.0.display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args))
    }

    fn query(&self, format: &str) -> String {
        run(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.path("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", format, "kvnet"]))
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file the package should hold: the binaries, units, conffile, docs, lintian's
/// overrides, completions and a page per checked-in man page.
fn expected_files() -> Vec<String> {
    let mut want: Vec<String> = [
        "etc/kvnet/bridge.conf",
        "lib/systemd/system/kvnetd.service",
        "lib/systemd/system/kvnetd.socket",
        "usr/bin/kvnet",
        "usr/bin/kvnet-ifdown",
        "usr/bin/kvnet-ifup",
        "usr/lib/x86_64-linux-gnu/libnss_kvnet.so.2",
        "usr/libexec/kvnet-bridge-helper",
        "usr/sbin/kvnetd",
        "usr/share/bash-completion/completions/kvnet",
        "usr/share/doc/kvnet/changelog.gz",
        "usr/share/doc/kvnet/copyright",
        "usr/share/fish/vendor_completions.d/kvnet.fish",
        "usr/share/lintian/overrides/kvnet",
        "usr/share/zsh/vendor-completions/_kvnet",
    ]
    .map(String::from)
    .to_vec();
    for page in std::fs::read_dir(workspace().join("contrib/man")).expect("contrib/man") {
        let name = page
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8");
        let section = name.rsplit('.').next().expect("a section").to_string();
        want.push(format!("usr/share/man/man{section}/{name}.gz"));
    }
    want.sort();
    want
}

fn depends_are_installed(deb: &Path) {
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"));
    for dep in depends.trim().split(", ") {
        let name = dep.split_whitespace().next().expect("a package name");
        let status = run(Command::new("dpkg-query").args(["-W", "-f", "${Status}", name]));
        assert!(status.contains("ok installed"), "{name}: {status}");
    }
}

#[test]
#[ignore = "needs root"]
fn the_package_holds_what_it_should_lintian_accepts_it_and_it_installs() {
    require_root("dpkg into a scratch root, setcap");
    let deb = &debs().new;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("kvnet_{version}_amd64.deb")
    );

    // Contents: exactly the expected files, root's, nothing setuid or setgid.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (f[0], f[1], f[5].trim_start_matches("./"));
        assert_eq!(owner, "root/root", "{line}");
        assert!(!mode.contains(['s', 'S']), "setuid or setgid: {line}");
        match &mode[..1] {
            "d" => assert_eq!(mode, "drwxr-xr-x", "{line}"),
            "-" => {
                let exec = path.starts_with("usr/bin/")
                    || path.starts_with("usr/sbin/")
                    || path.starts_with("usr/libexec/");
                let want = if exec { "-rwxr-xr-x" } else { "-rw-r--r--" };
                assert_eq!(mode, want, "{line}");
                files.push(path.to_string());
            }
            _ => panic!("neither a file nor a directory: {line}"),
        }
    }
    files.sort();
    assert_eq!(files, expected_files());
    let conffiles = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/kvnet/bridge.conf");
    depends_are_installed(deb);

    // lintian at every level: any tag not overridden (with its reason) in
    // contrib/debian/lintian-overrides fails, and so does an override no tag uses.
    let out = Command::new("lintian")
        .args(["--info", "--display-experimental", "--pedantic"])
        .args(["--fail-on", "error,warning,info,pedantic,experimental"])
        .arg(deb)
        .output()
        .expect("lintian (scripts/deps.sh test installs it)");
    let tags = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tags.trim().is_empty(),
        "lintian:\n{tags}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Installed: the files, the helper's capability, the units enabled, the conffile.
    let root = Root::new("install");
    root.dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(
        root.query("${Status} ${Version}"),
        format!("install ok installed {version}")
    );
    for f in expected_files() {
        assert!(root.path(&f).is_file(), "{f} not installed");
    }
    let caps = run(Command::new("getcap").arg(root.path("usr/libexec/kvnet-bridge-helper")));
    assert!(caps.trim_end().ends_with(" cap_net_admin=ep"), "{caps}");
    for (wants, unit) in [
        ("multi-user.target.wants", "kvnetd.service"),
        ("sockets.target.wants", "kvnetd.socket"),
    ] {
        let link = root.path(&format!("etc/systemd/system/{wants}/{unit}"));
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{link:?}: {e}"));
        assert_eq!(target, Path::new("/lib/systemd/system").join(unit));
    }
    assert!(
        root.query("${Conffiles}")
            .contains("/etc/kvnet/bridge.conf")
    );
    let unit = std::fs::read_to_string(root.path("lib/systemd/system/kvnetd.service")).unwrap();
    for line in ["ExecStart=/usr/sbin/kvnetd", "KillMode=process"] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    assert!(
        !unit.contains("ExecStop"),
        "an ExecStop would run at every restart"
    );

    // The installed helper, pointed at the installed ACL, denies a bridge.
    let (ours, _qemu) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let fd = ours.as_raw_fd();
    let mut helper = Command::new(root.path("usr/libexec/kvnet-bridge-helper"));
    helper
        .args(["--br=virbr0", &format!("--fd={fd}")])
        .env("KVNET_BRIDGE_CONF", root.path("etc/kvnet/bridge.conf"));
    kvnet_host::testns::raw::pass_fd(&mut helper, fd);
    let out = helper.output().expect("run the helper");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("access to bridge virbr0 denied by"),
        "{err}"
    );
}

/// Transmitted and received, from ping's summary.
fn ping_counts(summary: &str) -> (u32, u32) {
    let line = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no summary: {summary}"));
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

#[test]
#[ignore = "needs root"]
fn an_upgrade_restarts_kvnetd_and_the_guests_ping_never_stops() {
    let debs = debs();
    let root = Root::new("upgrade");
    root.dpkg(&["-i", debs.old.to_str().unwrap()]);
    let setup = Setup {
        kvnetd: Some(root.path("usr/sbin/kvnetd")),
        ..Setup::default()
    };
    // The built-in default NAT network (virbr0) is up at the first start.
    let mut lab = Lab::with_setup(&[], &setup);
    let g = lab.guest("virbr0", "192.168.122.10", "192.168.122.1");
    assert!(ping(&lab.guests[g], LAN_PEER), "the guest reaches the LAN");
    let bridge = ip(&lab.host, "-o link show virbr0");
    let old_pid = lab.daemon.pid();

    // 100 pings a second for 8 s, across the whole upgrade.
    let pinger = Command::new("ip")
        .args(["netns", "exec", lab.guests[g].name()])
        .args([
            "ping", "-n", "-q", "-i", "0.01", "-c", "800", "-W", "1", LAN_PEER,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    // The new files replace the old under the running kvnetd, then the postinst runs.
    root.dpkg(&["-i", debs.new.to_str().unwrap()]);
    let unpacked = t0.elapsed();
    // What `deb-systemd-invoke restart kvnetd.service` has systemd do.
    lab.restart_daemon();
    let restarted = t0.elapsed();
    let out = pinger.wait_with_output().expect("ping's summary");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        t0.elapsed() > restarted + Duration::from_millis(200),
        "ping ended before the restart was over: {summary}"
    );
    let (sent, received) = ping_counts(&summary);
    println!(
        "upgrade: dpkg -i {:.2} s, kvnetd restarted after {:.2} s; ping {received}/{sent}",
        unpacked.as_secs_f64(),
        restarted.as_secs_f64()
    );
    assert!(sent >= 700 && received == sent, "{summary}");
    assert_eq!(root.query("${Version}"), env!("CARGO_PKG_VERSION"));
    assert_ne!(lab.daemon.pid(), old_pid, "a new kvnetd runs");
    assert_eq!(
        ip(&lab.host, "-o link show virbr0"),
        bridge,
        "the same bridge"
    );
    let nets = list(&lab);
    assert!(
        nets.iter().any(|n| n.name == "default" && n.active),
        "{nets:?}"
    );

    // remove: prerm has systemd stop kvnetd (SIGTERM), then dpkg removes the files;
    // the network stays up.
    lab.daemon.stop();
    root.dpkg(&["-r", "kvnet"]);
    assert!(!root.path("usr/sbin/kvnetd").exists());
    assert!(
        root.path("etc/kvnet/bridge.conf").exists(),
        "conffiles stay"
    );
    assert!(ping(&lab.guests[g], LAN_PEER), "networks stay up");

    // purge: configuration and state go, and the units' enablement.
    std::fs::create_dir_all(root.path("etc/kvnet/networks")).unwrap();
    std::fs::write(root.path("etc/kvnet/networks/x.xml"), "<network/>").unwrap();
    std::fs::create_dir_all(root.path("var/lib/kvnet/leases")).unwrap();
    root.dpkg(&["-P", "kvnet"]);
    for gone in [
        "etc/kvnet",
        "var/lib/kvnet",
        "etc/systemd/system/multi-user.target.wants/kvnetd.service",
    ] {
        assert!(!root.path(gone).exists(), "{gone} left after purge");
    }
    assert!(ping(&lab.guests[g], LAN_PEER), "networks stay up");
}

/// The maintainer scripts' calls where systemd runs, which no other test reaches (a
/// scratch root never has them call systemd): every command they run is a stub that
/// logs its arguments, in a mount namespace where /run/systemd/system exists and
/// /etc/systemd is a tmpfs, so nothing of the host's is touched. postrm purge is left
/// to the scratch-root test: it removes /etc/kvnet.
#[test]
#[ignore = "needs root"]
fn where_systemd_runs_the_scripts_start_restart_and_stop_as_debhelpers_would() {
    require_root("a mount namespace");
    let dir = std::env::temp_dir().join(format!("kvnet-pkg-scripts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for stub in [
        "setcap",
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
    ] {
        let path = dir.join("bin").join(stub);
        std::fs::write(&path, format!("#!/bin/sh\necho \"{stub} $*\" >>\"$LOG\"\n")).unwrap();
        run(Command::new("chmod").arg("+x").arg(&path));
    }
    let script = |name: &str, args: &[&str]| -> Vec<String> {
        let log = dir.join("log");
        let _ = std::fs::remove_file(&log);
        let shell = "mount -t tmpfs kvnet-test /run && mkdir -p /run/systemd/system && \
                     mount -t tmpfs kvnet-test /etc/systemd && exec sh \"$@\"";
        run(Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                shell,
                "sh",
            ])
            .arg(workspace().join("contrib/debian").join(name))
            .args(args)
            .env("LOG", &log)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", dir.join("bin").display()),
            )
            .env_remove("DPKG_ROOT"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().map(String::from).collect()
    };
    let invoked = |calls: &[String]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.starts_with("deb-systemd-invoke"))
            .cloned()
            .collect()
    };

    let install = script("postinst", &["configure", ""]);
    assert!(
        install.contains(&"setcap cap_net_admin+ep /usr/libexec/kvnet-bridge-helper".into()),
        "{install:?}"
    );
    for unit in ["kvnetd.socket", "kvnetd.service"] {
        assert!(
            install.contains(&format!("deb-systemd-helper enable {unit}")),
            "{install:?}"
        );
    }
    assert!(install.contains(&"systemctl --system daemon-reload".into()));
    assert_eq!(
        invoked(&install),
        [
            "deb-systemd-invoke start kvnetd.socket",
            "deb-systemd-invoke start kvnetd.service"
        ]
    );
    // An upgrade: the old kvnetd is not stopped first, the socket is never restarted.
    assert!(script("prerm", &["upgrade", "0.1.0"]).is_empty());
    let upgrade = script("postinst", &["configure", "0.1.0~old"]);
    assert_eq!(
        invoked(&upgrade),
        [
            "deb-systemd-invoke start kvnetd.socket",
            "deb-systemd-invoke restart kvnetd.service"
        ]
    );
    assert_eq!(
        script("prerm", &["remove"]),
        ["deb-systemd-invoke stop kvnetd.service kvnetd.socket"]
    );
    assert_eq!(
        script("postrm", &["remove"]),
        [
            "systemctl --system daemon-reload",
            "deb-systemd-helper mask kvnetd.service kvnetd.socket"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
