//! A lab in network namespaces for end-to-end tests: a "host" namespace running kvnetd
//! with its own temporary dirs, a "LAN" namespace behind an uplink veth, and guest
//! namespaces whose veth host end becomes a bridge port. Everything is created with
//! unique names and removed on drop, also when a test fails; the machine's own
//! namespace is never touched.

#![allow(dead_code)]

pub mod dhcp6;
pub mod frames;
pub mod frr;

use kvnet_api::request as req;
use kvnet_api::{Reply, Request};
use kvnet_host::testns::TestNs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const LAN_HOST: &str = "203.0.113.1";
pub const LAN_PEER: &str = "203.0.113.2";

static N: AtomicU32 = AtomicU32::new(0);

pub fn bin(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_BIN_EXE_kvnetd"));
    let p = d.parent().expect("bin dir").join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// How the lab's kvnetd runs, beyond its environment.
#[derive(Clone, Default)]
pub struct Setup {
    /// kvnetd without path options, in a mount namespace where its default paths are
    /// the lab's dirs (see [`at_default_paths`]).
    pub default_paths: bool,
    /// More kvnetd arguments.
    pub args: Vec<String>,
    /// Shell commands run in kvnetd's own mount namespace before it starts, with `$D`
    /// the lab's dir (e.g. a small tmpfs over `$D/etc`).
    pub shell: Vec<String>,
    /// A command kvnetd is run through, last (after its default paths are mounted),
    /// e.g. setpriv with the restrictions of its systemd unit.
    pub wrapper: Vec<String>,
    /// Another kvnetd than the build's (e.g. one a package installed).
    pub kvnetd: Option<PathBuf>,
}

impl Setup {
    fn kvnetd(&self) -> PathBuf {
        self.kvnetd.clone().unwrap_or_else(|| bin("kvnetd"))
    }
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    setup: Setup,
}

/// The shell that mounts the lab's dirs `etc`, `lib` and `run` of `dir` at kvnetd's
/// default paths /etc/kvnet, /var/lib/kvnet and /run/kvnet, then runs its arguments.
/// Meant for `ip netns exec`, whose child has a mount namespace of its own with
/// propagation to the host's off: the host's files are never touched. A default path
/// the host lacks gets its mount point from a read-only overlay of its parent with a
/// stub directory, so nothing is created on the host either.
pub fn at_default_paths(dir: &Path) -> Vec<String> {
    let script = r#"set -e
D=$1; shift
for m in etc:/etc/kvnet lib:/var/lib/kvnet run:/run/kvnet; do
  src=$D/${m%%:*} dst=${m#*:}
  mkdir -p "$src"
  if [ ! -d "$dst" ]; then
    parent=$(dirname "$dst") stub=$D/stub/$(echo "$dst" | tr / _)
    mkdir -p "$stub/$(basename "$dst")"
    mount -t overlay kvnet-test -o "lowerdir=$stub:$parent" "$parent"
  fi
  mount --bind "$src" "$dst"
done
exec "$@""#;
    sh_with_dir(script, dir)
}

/// `sh -c SCRIPT` with `$1` = `dir`, then the arguments that follow.
fn sh_with_dir(script: &str, dir: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        script.into(),
        "kvnet-lab".into(),
        dir.display().to_string(),
    ]
}

/// The shell that gives its arguments a /dev/net/tun every user may open (mode 0666, as
/// udev leaves it on Debian) when the host's is root's only (a machine without udev):
/// a node of its own, bind-mounted over the host's in the mount namespace of
/// `ip netns exec`. The host's node is not changed.
pub fn user_tun(dir: &Path) -> Vec<String> {
    let script = r#"set -e
D=$1; shift
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  rm -f "$D/tun"; mknod -m 0666 "$D/tun" c 10 200
  mount --bind "$D/tun" /dev/net/tun
fi
exec "$@""#;
    sh_with_dir(script, dir)
}

/// setpriv's arguments that run what follows as nobody:nogroup, without other groups
/// or capabilities (a file capability of an executable still applies).
pub fn as_nobody() -> Vec<String> {
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ]
    .map(str::to_string)
    .to_vec()
}

pub struct Lab {
    pub host: TestNs,
    pub lan: TestNs,
    pub guests: Vec<TestNs>,
    pub daemon: Daemon,
}

/// Run `ip ARGS` in `ns`, panicking with stderr on failure.
pub fn ip(ns: &TestNs, args: &str) -> String {
    let a: Vec<&str> = args.split_whitespace().collect();
    ns.exec_ok("ip", &a).unwrap_or_else(|e| panic!("{e}"))
}

pub fn sh(ns: &TestNs, cmd: &str) -> (bool, String) {
    let out = ns.exec("sh", &["-c", cmd]).expect("exec");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn ping(ns: &TestNs, addr: &str) -> bool {
    sh(ns, &format!("ping -n -q -c 1 -W 1 {addr}")).0
}

impl Daemon {
    fn start(host: &TestNs, dir: &Path, env: &[(&str, &str)], setup: &Setup) -> Daemon {
        Self::spawn(host, dir, env, setup, "", None)
    }

    /// Starts kvnetd in `host` on the dirs under `dir` and waits until it answers. With a
    /// `prelude`, through `sh -c 'PRELUDE; exec kvnetd …'`: the shell sets limits or
    /// hands over the socket `passed` (kept open across exec), then becomes kvnetd.
    pub fn launch(
        host: &TestNs,
        dir: &Path,
        env: &[(&str, &str)],
        prelude: &str,
        passed: Option<std::os::fd::RawFd>,
    ) -> Daemon {
        Self::spawn(host, dir, env, &Setup::default(), prelude, passed)
    }

    fn spawn(
        host: &TestNs,
        dir: &Path,
        env: &[(&str, &str)],
        setup: &Setup,
        prelude: &str,
        passed: Option<std::os::fd::RawFd>,
    ) -> Daemon {
        let socket = dir.join("run/kvnetd.sock");
        let log = dir.join("kvnetd.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", host.name()]);
        if !prelude.is_empty() {
            cmd.args(["sh", "-c", &format!("{prelude}\nexec \"$0\" \"$@\"")]);
        }
        if !setup.shell.is_empty() {
            let script = format!(
                "set -e; D=$1; shift; {}; exec \"$@\"",
                setup.shell.join("; ")
            );
            cmd.args(sh_with_dir(&script, dir));
        }
        if setup.default_paths {
            cmd.args(at_default_paths(dir))
                .args(&setup.wrapper)
                .arg(setup.kvnetd());
        } else {
            cmd.args(&setup.wrapper)
                .arg(setup.kvnetd())
                .arg("--config-dir")
                .arg(dir.join("etc"))
                .arg("--state-dir")
                .arg(dir.join("lib"))
                .arg("--run-dir")
                .arg(dir.join("run"));
        }
        cmd.args(&setup.args)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(fd) = passed {
            kvnet_host::testns::raw::pass_fd(&mut cmd, fd);
        }
        // Owned by a Daemon at once, so that its Drop reaps kvnetd if we panic below.
        let mut d = Daemon {
            child: Some(cmd.spawn().expect("spawn kvnetd")),
            dir: dir.to_path_buf(),
            socket,
            log,
            setup: setup.clone(),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if kvnet_api::call(&d.socket, req::Ping {}).is_ok() {
                return d;
            }
            if let Some(Ok(Some(st))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("kvnetd exited ({st}):\n{}", d.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("kvnetd did not answer:\n{}", d.log());
    }

    /// SIGTERM and wait: networks stay up.
    pub fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Send `sig` and wait for kvnetd to exit.
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
            let _ = c.wait();
        }
    }

    /// kvnetd's pid (`ip netns exec` and the prelude's shell exec it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("kvnetd running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    /// Host namespace with kvnetd running, uplink `wan0` (203.0.113.1/24) to a LAN
    /// namespace (203.0.113.2/24).
    pub fn new() -> Lab {
        Self::with_env(&[])
    }

    pub fn with_env(env: &[(&str, &str)]) -> Lab {
        Self::with_setup(env, &Setup::default())
    }

    pub fn with_setup(env: &[(&str, &str)], setup: &Setup) -> Lab {
        let host = TestNs::with_prefix("kvt-h").expect("host ns");
        let lan = TestNs::with_prefix("kvt-l").expect("lan ns");
        ip(&host, "link set lo up");
        ip(&lan, "link set lo up");
        ip(
            &host,
            &format!(
                "link add wan0 type veth peer name lan0 netns {}",
                lan.name()
            ),
        );
        ip(&host, &format!("addr add {LAN_HOST}/24 dev wan0"));
        ip(&host, "link set wan0 up");
        ip(&lan, &format!("addr add {LAN_PEER}/24 dev lan0"));
        ip(&lan, "link set lan0 up");
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kvnet-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let daemon = Daemon::start(&host, &dir, env, setup);
        Lab {
            host,
            lan,
            guests: Vec::new(),
            daemon,
        }
    }

    /// SIGTERM kvnetd and start a new one on the same dirs, with the same setup but
    /// without the environment (test hooks) of the first.
    pub fn restart_daemon(&mut self) {
        self.daemon.stop();
        let dir = self.daemon.dir.clone();
        let setup = self.daemon.setup.clone();
        let new = Daemon::start(&self.host, &dir, &[], &setup);
        let old = std::mem::replace(&mut self.daemon, new);
        std::mem::forget(old);
    }

    /// Like [`Lab::restart_daemon`], with environment `env` for the new kvnetd.
    pub fn restart_daemon_with(&mut self, env: &[(&str, &str)]) {
        self.daemon.stop();
        let dir = self.daemon.dir.clone();
        let setup = self.daemon.setup.clone();
        let new = Daemon::start(&self.host, &dir, env, &setup);
        std::mem::forget(std::mem::replace(&mut self.daemon, new));
    }

    /// SIGKILL kvnetd, so it saves nothing at exit, and start a new one on the same dirs.
    pub fn crash_daemon(&mut self) {
        if let Some(mut c) = self.daemon.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.restart_daemon();
    }

    /// One request; its reply envelope as it came (the tests read `data` as JSON).
    pub fn call(&self, req: impl Into<Request>) -> Reply {
        kvnet_api::call_raw(&self.daemon.socket, &req.into()).expect("api call")
    }

    pub fn ok(&self, req: impl Into<Request>) -> Reply {
        let req = req.into();
        let r = self.call(req.clone());
        assert!(r.ok, "{req:?} failed: {:?}\n{}", r.error, self.daemon.log());
        r
    }

    /// Run the kvnet CLI against this lab's daemon.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let (code, text) = self.cli_code(args);
        (code == Some(0), text)
    }

    /// Like [`Lab::cli`], with the exit code (None when killed by a signal).
    pub fn cli_code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(bin("kvnet"))
            .arg("--socket")
            .arg(&self.daemon.socket)
            .args(args)
            .output()
            .expect("run kvnet");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    pub fn define_and_start(&self, xml: &str) -> String {
        let r = self.ok(req::Define {
            xml: xml.to_string(),
        });
        let name = r.data["name"].as_str().expect("name").to_string();
        self.ok(req::Start {
            network: name.clone(),
        });
        name
    }

    /// A guest namespace with `eth0` = ADDR/24 (none if empty, for a DHCP client) and a
    /// default route via GW (none if empty); its peer `vg<i>` in the host namespace is
    /// made a port of BRIDGE.
    pub fn guest(&mut self, bridge: &str, addr: &str, gw: &str) -> usize {
        self.guest_with_mac(bridge, addr, gw, None)
    }

    /// [`Lab::guest`] whose `eth0` has `mac` before it is up, so that its first frame
    /// (what a port filter learns) already comes from that MAC.
    pub fn guest_with_mac(
        &mut self,
        bridge: &str,
        addr: &str,
        gw: &str,
        mac: Option<&str>,
    ) -> usize {
        let g = TestNs::with_prefix("kvt-g").expect("guest ns");
        let i = self.guests.len();
        let port = format!("vg{i}");
        ip(
            &self.host,
            &format!(
                "link add {port} type veth peer name eth0 netns {}",
                g.name()
            ),
        );
        if let Some(m) = mac {
            ip(&g, &format!("link set eth0 address {m}"));
        }
        ip(&self.host, &format!("link set {port} master {bridge} up"));
        ip(&g, "link set lo up");
        if !addr.is_empty() {
            ip(&g, &format!("addr add {addr}/24 dev eth0"));
        }
        ip(&g, "link set eth0 up");
        if !gw.is_empty() {
            ip(&g, &format!("route add default via {gw}"));
        }
        self.guests.push(g);
        i
    }

    /// A guest on BRIDGE with `mac` that takes one DHCPv4 lease with busybox udhcpc,
    /// sending `hostname` (option 12); the guest and the address bound (not configured
    /// on its interface).
    pub fn udhcpc_guest(&mut self, bridge: &str, mac: &str, hostname: &str) -> (usize, String) {
        let g = self.guest_with_mac(bridge, "", "", Some(mac));
        let (ok, out) = sh(
            &self.guests[g],
            &format!(
                "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -x hostname:{hostname} \
                 -s /bin/true 2>&1"
            ),
        );
        assert!(ok, "{out}\n{}", self.daemon.log());
        let addr = out
            .lines()
            .find_map(|l| l.split("lease of ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no lease: {out}"))
            .to_string();
        (g, addr)
    }

    pub fn nft_table(&self) -> String {
        sh(&self.host, "nft list table inet kvnet").1
    }

    pub fn links(&self) -> String {
        ip(&self.host, "-br link")
    }
}

/// A network with bridge BR and 192.168.THIRD.1/24 with a DHCP range; FORWARD is its
/// `<forward>` element, if any.
pub fn net_xml(name: &str, br: &str, third: u8, forward: &str) -> String {
    format!(
        "<network><name>{name}</name>{forward}<bridge name='{br}'/>\
         <ip address='192.168.{third}.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.{third}.100' end='192.168.{third}.200'/></dhcp></ip></network>"
    )
}

/// Every network, as `list` returns them.
pub fn list(lab: &Lab) -> Vec<kvnet_api::NetSummary> {
    serde_json::from_value(lab.ok(req::List {}).data).expect("list")
}

/// Send one UDP datagram from `from` to LAN_PEER and return the source address the LAN
/// saw, or None if it never arrived.
pub fn udp_source_seen_by_lan(lab: &Lab, from: &TestNs) -> Option<SocketAddr> {
    let port =
        40000 + (std::process::id() % 10000) as u16 + N.fetch_add(1, Ordering::SeqCst) as u16;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let recv = s.spawn(move || {
            lab.lan.run(|| {
                let sock = UdpSocket::bind((LAN_PEER, port)).expect("bind lan");
                sock.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                tx.send(()).expect("ready");
                let mut buf = [0u8; 16];
                sock.recv_from(&mut buf).ok().map(|(_, a)| a)
            })
        });
        rx.recv().expect("receiver ready");
        from.run(|| {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind guest");
            for _ in 0..3 {
                let _ = sock.send_to(b"kvnet", (LAN_PEER, port));
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        recv.join().expect("receiver")
    })
}

/// The answer the upstream gives to every A query.
pub const UPSTREAM_A: [u8; 4] = [198, 51, 100, 7];

/// The upstream's reply to `q`: one A record for an A question, else no answer.
pub fn upstream_reply(q: &[u8]) -> Option<Vec<u8>> {
    // Header, then the question's name up to its root label, then type and class.
    let end = q.iter().skip(12).position(|&b| b == 0)? + 12 + 5;
    if end > q.len() {
        return None;
    }
    let is_a = q[end - 4..end - 2] == [0, 1];
    let mut r = q[..end].to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..12].copy_from_slice(&[0, u8::from(is_a), 0, 0, 0, 0]);
    if is_a {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&UPSTREAM_A);
    }
    Some(r)
}

/// A minimal upstream DNS server on LAN_PEER:53 (run it in the LAN namespace), UDP and TCP, until `stop` is set.
pub fn upstream(stop: &AtomicBool) {
    let udp = UdpSocket::bind((LAN_PEER, 53)).expect("bind upstream");
    udp.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let tcp = TcpListener::bind((LAN_PEER, 53)).expect("listen upstream");
    tcp.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = udp.recv_from(&mut buf)
            && let Some(r) = upstream_reply(&buf[..n])
        {
            let _ = udp.send_to(&r, from);
        }
        if let Ok((mut c, _)) = tcp.accept() {
            c.set_nonblocking(false).expect("blocking");
            c.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(r) = upstream_reply(&q) {
                let mut msg = (r.len() as u16).to_be_bytes().to_vec();
                msg.extend_from_slice(&r);
                let _ = c.write_all(&msg);
            }
        }
    }
}

/// Run `f` while [`upstream`] serves in the LAN namespace, then stop it.
pub fn with_upstream<R>(lab: &Lab, f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let up = s.spawn(|| lab.lan.run(|| upstream(&stop)));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        stop.store(true, Ordering::SeqCst);
        up.join().expect("upstream");
        r.unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Fails the test unless `program` (from Debian package `package`) is installed: the
/// root tests must not pass without testing anything.
pub fn have(program: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "command -v {program} || [ -x /usr/sbin/{program} ] || [ -x /sbin/{program} ]"
            ),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "needs {program} (package {package}; scripts/deps.sh test installs it)"
    );
}

/// A fresh scratch directory for test `tag` in guest `g`.
pub fn temp_dir(tag: &str, g: &TestNs) -> TempDir {
    let dir = std::env::temp_dir().join(format!("kvnet-{tag}-{}", g.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// A directory removed with everything in it when dropped (a failed test's too).
pub struct TempDir(pub std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client's run in `g` with its files in `dir`: under `ip netns exec` the shell has a
/// mount namespace of its own, where tmpfs covers the clients' state directories and an
/// empty file covers /etc/resolv.conf.
pub fn isolated_client(g: &TestNs, dir: &std::path::Path, cmd: &str) -> (bool, String) {
    let d = dir.display();
    sh(
        g,
        &format!(
            "set -e; : > {d}/resolv.conf; mount --bind {d}/resolv.conf /etc/resolv.conf; \
             for m in /run /var/lib/dhcp /var/lib/dhcpcd; do \
             [ -d $m ] && mount -t tmpfs kvnet-test $m; done; {cmd}"
        ),
    )
}

/// Goodput in kB/s (1000 bytes) of `iperf3 -c` from `client` to `server_addr` in
/// `server`, after a second omitted for slow start; `reverse`: the server sends.
pub fn iperf(server: &TestNs, server_addr: &str, client: &TestNs, port: u16, reverse: bool) -> f64 {
    let (ok, out) = sh(
        server,
        &format!("iperf3 -s -1 -D -B {server_addr} -p {port}"),
    );
    assert!(ok, "iperf3 server: {out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = if reverse { "-R" } else { "" };
    let (ok, out) = sh(
        client,
        &format!("iperf3 -c {server_addr} -p {port} -t 4 -O 1 -J {r}"),
    );
    assert!(ok, "iperf3 client: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
        / 8000.0
}

/// `measured` within ±10 % of `target` (kB/s).
pub fn within(measured: f64, target: f64, what: &str) {
    let dev = (measured - target) / target;
    eprintln!(
        "{what}: {measured:.0} kB/s for {target:.0} kB/s ({:+.1} %)",
        dev * 100.0
    );
    assert!(
        dev.abs() <= 0.10,
        "{what}: {measured:.0} kB/s, target {target:.0} kB/s"
    );
}
