//! Real QEMU guests for end-to-end tests: a Debian cloud kernel and a busybox initramfs
//! (scripts/guest/build-initramfs.sh) whose /init takes a DHCP lease, resolves names,
//! pings addresses and reports each step as a `KVNET ...` line on the serial console
//! (see scripts/guest/init), which the test reads here. Always TCG (no KVM needed).
//!
//! A guest runs in a given namespace (the lab's host namespace, where kvnetd and the
//! bridges are) and is attached by whatever `-netdev`/`-device` arguments the test
//! passes: a TAP the test made ([`tap`] and [`nic`]), the arguments `kvnet port-create`
//! prints, qemu's `script=` hooks or its bridge helper. QEMU runs under `timeout -s KILL`
//! in its own process group, which is killed on drop: no QEMU outlives its test, also
//! when the test fails.

#![allow(dead_code)]

use kvnet_host::testns::TestNs;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static N: AtomicU32 = AtomicU32::new(0);

/// No guest lives longer than this, even if the test process is killed.
const HARD_LIMIT: Duration = Duration::from_secs(600);

/// The kernel and initramfs to boot.
#[derive(Clone, Debug)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("KVNET_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kvnet-test"))
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

impl Image {
    /// The guest image for `test`, which fails unless root and unless QEMU, the kernel and
    /// busybox are there (`scripts/deps.sh test` installs them). The kernel is
    /// `$KVNET_GUEST_KERNEL`, else `$KVNET_TEST_CACHE/kernel/vmlinuz`; the initramfs is
    /// `$KVNET_GUEST_INITRD`, else built (cached) by scripts/guest/build-initramfs.sh.
    pub fn find(test: &str) -> Image {
        kvnet_host::testns::require_root("network namespaces, TAP devices");
        let deps = "run scripts/deps.sh test to install it";
        if Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("{test}: qemu-system-x86_64 missing: {deps}");
        }
        let kernel = std::env::var_os("KVNET_GUEST_KERNEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("kernel/vmlinuz"));
        assert!(
            kernel.exists(),
            "{test}: guest kernel {} missing: {deps}",
            kernel.display()
        );
        let initrd = match std::env::var_os("KVNET_GUEST_INITRD") {
            Some(p) => PathBuf::from(p),
            None => {
                let script = scripts_dir().join("guest/build-initramfs.sh");
                let out = Command::new(&script)
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
                assert!(
                    out.status.success(),
                    "{test}: building the initramfs failed"
                );
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        assert!(
            initrd.exists(),
            "{test}: initramfs {} missing",
            initrd.display()
        );
        Image { kernel, initrd }
    }
}

/// A fresh locally administered MAC in QEMU's range, unique in this test process.
pub fn mac() -> String {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = std::process::id();
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (p >> 8) & 0xff,
        p & 0xff,
        n & 0xff
    )
}

/// Create TAP device `name` in `ns` as a port of `bridge`, up, and return the `-netdev`
/// option that attaches a guest to it.
pub fn tap(ns: &TestNs, name: &str, bridge: &str) -> String {
    for args in [
        format!("tuntap add dev {name} mode tap"),
        format!("link set {name} master {bridge} up"),
    ] {
        let a: Vec<&str> = args.split_whitespace().collect();
        ns.exec_ok("ip", &a).unwrap_or_else(|e| panic!("{e}"));
    }
    format!("tap,id=n0,ifname={name},script=no,downscript=no,vhost=off")
}

/// The `-netdev`/`-device` arguments of a virtio-net NIC with `mac` on `netdev` (a
/// `-netdev` option with id `n0`).
pub fn nic(netdev: &str, mac: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        netdev.into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={mac}"),
    ]
}

/// The kernel command line of guest NAME, without other parameters.
pub fn cmdline(name: &str) -> String {
    format!("console=ttyS0 quiet panic=-1 kvnet.name={name}")
}

fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

/// The guest MAC of the `-device` in `net` (its `mac=`).
fn device_mac(net: &[String]) -> Option<String> {
    net.windows(2)
        .filter(|w| w[0] == "-device")
        .flat_map(|w| w[1].split(','))
        .find_map(|o| o.strip_prefix("mac="))
        .map(str::to_string)
}

/// What the guest's DHCP client got, from its `KVNET lease` line.
#[derive(Debug, Clone)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub router: String,
    pub dns: String,
    pub domain: String,
    /// From QEMU's start to the lease line on the console, measured by the host.
    pub boot_to_lease: Duration,
    /// The guest kernel's uptime at the lease, in seconds.
    pub guest_uptime: String,
}

/// A running QEMU guest; killed on drop.
pub struct Guest {
    pub name: String,
    pub mac: String,
    pub serial: PathBuf,
    child: Option<Child>,
    started: Instant,
}

impl Guest {
    /// Boot `img` in `ns` with hostname `name` and the NIC `net` (`-netdev ... -device
    /// ...` arguments, e.g. from [`nic`] or `kvnet port-create`; the device must set its
    /// `mac=`, which is the guest's). `env` is added to QEMU's environment (its
    /// `script=`s and bridge helper see it). `params` become `kvnet.KEY=VALUE` on the
    /// kernel command line: `lookup` (names, comma-separated), `ping` (addresses),
    /// `hold` (seconds to stay up after `KVNET done`); see scripts/guest/init.
    /// `wrap` is a command that runs its arguments (e.g. as another user, or with other
    /// mounts), put before QEMU; empty for QEMU as root.
    pub fn boot(
        img: &Image,
        ns: &TestNs,
        name: &str,
        net: &[String],
        env: &[(&str, &str)],
        params: &[(&str, &str)],
        wrap: &[String],
    ) -> Guest {
        // Without an option ROM: the NIC's PXE ROM (ipxe-qemu) need not be installed.
        let net: Vec<String> = net
            .iter()
            .map(|a| {
                if a.starts_with("virtio-net") && !a.contains("romfile=") {
                    format!("{a},romfile=")
                } else {
                    a.clone()
                }
            })
            .collect();
        let mut append = cmdline(name);
        for (k, v) in params {
            append.push_str(&format!(" kvnet.{k}={v}"));
        }
        let mut args: Vec<String> = vec!["-kernel".into(), path(&img.kernel)];
        args.extend([
            "-initrd".into(),
            path(&img.initrd),
            "-append".into(),
            append,
        ]);
        args.extend(net);
        Guest::spawn(ns, name, &args, env, wrap)
    }

    /// Boot with no kernel: the firmware boots from the NIC in `net` (`-netdev`/`-device`
    /// arguments, as for [`Guest::boot`]) through its iPXE option ROM, from what DHCP
    /// and TFTP give it. SeaBIOS and iPXE write to the serial console too.
    pub fn pxe(ns: &TestNs, name: &str, net: &[String]) -> Guest {
        let mut args: Vec<String> = ["-boot", "n"].map(String::from).to_vec();
        args.extend(net.iter().cloned());
        Guest::spawn(ns, name, &args, &[], &[])
    }

    /// QEMU (TCG, 256 MiB, serial console to a log) in `ns` with `args`.
    fn spawn(
        ns: &TestNs,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        wrap: &[String],
    ) -> Guest {
        let mac = device_mac(args).unwrap_or_else(|| panic!("no mac= in {args:?}"));
        let n = N.fetch_add(1, Ordering::SeqCst);
        let serial =
            std::env::temp_dir().join(format!("kvnet-guest-{}-{n}.log", std::process::id()));
        let out = std::fs::File::create(&serial).expect("serial log");
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", &HARD_LIMIT.as_secs().to_string()])
            .args(["ip", "netns", "exec", ns.name()])
            .args(wrap)
            .arg("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-m", "256"])
            .args([
                "-nographic",
                "-nodefaults",
                "-serial",
                "stdio",
                "-no-reboot",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("serial log"))
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().expect("spawn qemu");
        Guest {
            name: name.to_string(),
            mac,
            serial,
            child: Some(child),
            started: Instant::now(),
        }
    }

    /// The serial console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    fn find(&self, prefix: &str) -> Option<String> {
        let key = format!("KVNET {prefix}");
        let console = self.console();
        // Only whole lines: QEMU may have written half of the last one so far.
        let done = console.rfind('\n').map_or("", |end| &console[..end]);
        done.lines().find_map(|l| {
            let i = l.find(&key)?;
            Some(l[i + key.len()..].trim().to_string())
        })
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Wait up to `timeout` for the first console line `KVNET PREFIX...` and return what
    /// follows PREFIX, trimmed. Panics with the console on a timeout or if the guest is
    /// gone first.
    pub fn wait_marker(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_any(&[prefix], timeout).1
    }

    /// Like [`Guest::wait_marker`] for whichever of `prefixes` comes first: its index and
    /// what follows it.
    pub fn wait_any(&mut self, prefixes: &[&str], timeout: Duration) -> (usize, String) {
        let t0 = Instant::now();
        loop {
            // Checked before the marker, so a line written just before the exit is seen.
            let gone = self.exited();
            for (i, p) in prefixes.iter().enumerate() {
                if let Some(rest) = self.find(p) {
                    return (i, rest);
                }
            }
            assert!(
                self.find("done").is_none(),
                "guest {} is done without `KVNET {prefixes:?}`; console:\n{}",
                self.name,
                self.console()
            );
            assert!(
                !gone,
                "guest {} exited before `KVNET {prefixes:?}`; console:\n{}",
                self.name,
                self.console()
            );
            assert!(
                t0.elapsed() < timeout,
                "guest {}: no `KVNET {prefixes:?}` within {timeout:?}; console:\n{}",
                self.name,
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the DHCP lease; panics if the guest got none.
    pub fn lease(&mut self, timeout: Duration) -> Lease {
        let (i, rest) = self.wait_any(&["lease ", "nolease", "error"], timeout);
        assert_eq!(
            i,
            0,
            "guest {} got no lease; console:\n{}",
            self.name,
            self.console()
        );
        let boot_to_lease = self.started.elapsed();
        let field = |k: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap_or_default()
                .to_string()
        };
        Lease {
            ip: field("ip")
                .parse()
                .unwrap_or_else(|_| panic!("bad lease line: {rest}")),
            prefix: field("mask")
                .parse()
                .unwrap_or_else(|_| panic!("bad lease line: {rest}")),
            router: field("router"),
            dns: field("dns"),
            domain: field("domain"),
            boot_to_lease,
            guest_uptime: field("uptime"),
        }
    }

    /// Wait up to `timeout` for QEMU to exit by itself; its exit status, or None if it
    /// still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut()?.try_wait().expect("wait qemu") {
                // Reaped: nothing left to kill on drop.
                self.child = None;
                return Some(st);
            }
            if t0.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop QEMU the clean way (SIGTERM, so it runs its `downscript=` and closes its
    /// TAP) and wait for it; panics with the console if it is not gone within `timeout`.
    pub fn shutdown(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        self.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "guest {}: QEMU still runs {timeout:?} after SIGTERM; console:\n{}",
                self.name,
                self.console()
            )
        })
    }

    /// Kill QEMU (and the `timeout` around it) now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "guest {} console ({}):\n{}",
                self.name,
                self.serial.display(),
                self.console()
            );
        } else {
            let _ = std::fs::remove_file(&self.serial);
        }
    }
}
