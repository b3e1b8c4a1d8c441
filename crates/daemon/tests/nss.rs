//! Guest names on the host through the NSS module: kvnetd keeps RUN_DIR/nss-hosts, and
//! glibc's own `getent`, loading libnss_kvnet.so.2 with an nsswitch.conf of the test's,
//! resolves lease hostnames, static hosts and `<dns><host>` names. Each `getent` runs in
//! a mount namespace of its own (`ip netns exec`) where the lab's run dir is mounted at
//! /run/kvnet and the test's nsswitch.conf over /etc/nsswitch.conf: the host's files are
//! never touched. Root only.

mod lab;

use kvnet_api::request as req;
use lab::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NET: &str = "<network><name>nssnet</name><forward mode='nat'/><bridge name='kvnss0'/>\
    <domain name='lab.test'/>\
    <dns><host ip='192.168.140.50'><hostname>db</hostname></host>\
    <host ip='fd00:140::50'><hostname>db6</hostname></host></dns>\
    <ip address='192.168.140.1' prefix='24'><dhcp>\
    <range start='192.168.140.100' end='192.168.140.120'/>\
    <host mac='52:54:00:aa:bb:20' name='web' ip='192.168.140.20'/></dhcp></ip></network>";

/// A directory with libnss_kvnet.so.2 (the cdylib the workspace build leaves next to
/// kvnetd) and the test's nsswitch.conf.
fn module_dir(lab: &Lab) -> PathBuf {
    let so = bin("libnss_kvnet.so");
    let d = lab.daemon.dir.join("nss");
    std::fs::create_dir_all(&d).expect("nss dir");
    std::fs::copy(&so, d.join("libnss_kvnet.so.2")).expect("copy module");
    // No `dns`: a miss must not reach the machine's resolvers.
    std::fs::write(d.join("nsswitch.conf"), "hosts: files kvnet\n").expect("nsswitch.conf");
    d
}

/// Run `cmd` (after `prelude`, e.g. a mount over the index) with the module enabled;
/// exit code (None if killed by a signal) and output.
fn with_module(lab: &Lab, m: &Path, prelude: &str, cmd: &str) -> (Option<i32>, String) {
    let m = m.display();
    let script = format!(
        "set -e; mount --bind {m}/nsswitch.conf /etc/nsswitch.conf; {prelude}; \
         set +e; LD_LIBRARY_PATH={m} {cmd}"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", lab.host.name()])
        .args(at_default_paths(&lab.daemon.dir))
        .args(["sh", "-c", &script])
        .output()
        .expect("run getent");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn getent(lab: &Lab, m: &Path, args: &str) -> (Option<i32>, String) {
    with_module(lab, m, ":", &format!("getent {args}"))
}

fn index(lab: &Lab) -> String {
    std::fs::read_to_string(lab.daemon.dir.join("run/nss-hosts")).unwrap_or_default()
}

/// Wait until the index has a line for `name`; its address.
fn wait_for(lab: &Lab, name: &str) -> String {
    let t0 = Instant::now();
    loop {
        let idx = index(lab);
        let found = idx
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string));
        if let Some(a) = found {
            return a;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{name} never reached the index:\n{idx}\n{}",
            lab.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root"]
fn getent_resolves_guest_names_through_the_module() {
    have("busybox", "busybox-static");
    have("getent", "libc-bin");
    let mut lab = Lab::new();
    let m = module_dir(&lab);
    lab.define_and_start(NET);
    // Names from the definition are in the index as soon as the network is up.
    assert_eq!(wait_for(&lab, "db"), "192.168.140.50");
    let meta = std::fs::metadata(lab.daemon.dir.join("run/nss-hosts")).expect("index");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o644
    );

    let g = lab.guest("kvnss0", "", "");
    let (ok, out) = sh(
        &lab.guests[g],
        "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -x hostname:vm1 -s /bin/true",
    );
    assert!(ok, "udhcpc got no lease:\n{out}");
    let t0 = Instant::now();
    let vm1 = wait_for(&lab, "vm1");
    let lag = t0.elapsed();
    eprintln!("index had vm1 {lag:?} after udhcpc's exit");
    assert!(lag < Duration::from_secs(2), "index updated after {lag:?}");
    assert!(vm1.starts_with("192.168.140.1"), "{vm1}");
    assert_eq!(wait_for(&lab, "vm1.lab.test"), vm1);

    let (code, out) = getent(&lab, &m, "hosts vm1");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&format!("{vm1} ")), "{out}");
    // Any user: the index is readable by all (as kvnetd.service's run dir is 0755).
    let nobody = as_nobody().join(" ");
    let (code, out) = with_module(&lab, &m, ":", &format!("{nobody} getent hosts vm1"));
    assert_eq!(code, Some(0), "as nobody: {out}");
    assert!(out.starts_with(&format!("{vm1} ")), "as nobody: {out}");
    let (code, out) = getent(&lab, &m, "ahosts VM1.lab.test");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{vm1} ")), "{out}");
    let (code, out) = getent(&lab, &m, "hosts db");
    assert_eq!(
        (code, out.split_whitespace().next()),
        (Some(0), Some("192.168.140.50")),
        "{out}"
    );
    let (code, out) = getent(&lab, &m, "hosts web.lab.test");
    assert_eq!(
        (code, out.split_whitespace().next()),
        (Some(0), Some("192.168.140.20")),
        "{out}"
    );
    // IPv6 through gethostbyname2 (getent hosts) and getaddrinfo (ahostsv6).
    let (code, out) = getent(&lab, &m, "hosts db6.lab.test");
    assert_eq!(
        (code, out.split_whitespace().next()),
        (Some(0), Some("fd00:140::50")),
        "{out}"
    );
    let (code, out) = getent(&lab, &m, "ahostsv6 db6");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("fd00:140::50 "), "{out}");
    // An IPv4-only name asked for IPv6 (ahostsv6 sets AI_V4MAPPED): glibc maps it.
    let (code, out) = getent(&lab, &m, "ahostsv6 web");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("::ffff:192.168.140.20 "), "{out}");
    assert_eq!(getent(&lab, &m, "hosts nosuch").0, Some(2));
    assert_eq!(getent(&lab, &m, "hosts vm1.other.test").0, Some(2));

    // A live net-update: the new name is in the index at once.
    lab.ok(req::Update {
        network: "nssnet".into(),
        command: kvnet_model::UpdateCommand::AddLast,
        section: kvnet_model::UpdateSection::DnsHost,
        xml: "<host ip='192.168.140.60'><hostname>cache</hostname></host>".into(),
        parent_index: None,
        live: true,
        config: false,
    });
    assert_eq!(wait_for(&lab, "cache.lab.test"), "192.168.140.60");
    let (code, out) = getent(&lab, &m, "hosts cache");
    assert_eq!(
        (code, out.split_whitespace().next()),
        (Some(0), Some("192.168.140.60")),
        "{out}"
    );

    // Bad indexes over the real one: "not found", exit 2, never a signal or a hang.
    let d = lab.daemon.dir.display().to_string();
    let bad = [
        ("garbage", format!("head -c 65536 /dev/urandom > {d}/bad")),
        ("empty", format!(": > {d}/bad")),
        ("torn", format!("head -c 40 {d}/run/nss-hosts > {d}/bad")),
        (
            "huge",
            format!(
                "{{ head -c 28 {d}/run/nss-hosts; head -c 5000000 /dev/zero; cat {d}/run/nss-hosts; }} > {d}/bad"
            ),
        ),
        ("directory", ":".to_string()),
    ];
    for (what, make) in &bad {
        let (ok, out) = sh(&lab.host, make);
        assert!(ok, "{what}: {out}");
        let over = match *what {
            "directory" => {
                "mount -t tmpfs kvnet-test /run/kvnet; mkdir /run/kvnet/nss-hosts".into()
            }
            _ => format!("mount --bind {d}/bad /run/kvnet/nss-hosts"),
        };
        let t0 = Instant::now();
        let (code, out) = with_module(
            &lab,
            &m,
            &over,
            "getent hosts vm1; echo rc=$?; getent ahosts vm1",
        );
        assert!(out.contains("rc=2"), "{what}: {out}");
        assert_eq!(code, Some(2), "{what}: {out}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}: slow");
        let _ = std::fs::remove_file(format!("{d}/bad"));
    }
    // A FIFO at the path must not block the lookup (open is non-blocking).
    let (code, out) = with_module(
        &lab,
        &m,
        &format!("rm -f {d}/fifo; mkfifo {d}/fifo; mount --bind {d}/fifo /run/kvnet/nss-hosts"),
        "timeout 5 getent hosts vm1",
    );
    assert_eq!(code, Some(2), "fifo: {out}");

    // A restarted kvnetd rewrites the index once it has adopted the network.
    std::fs::remove_file(lab.daemon.dir.join("run/nss-hosts")).expect("remove index");
    lab.restart_daemon();
    assert_eq!(wait_for(&lab, "vm1"), vm1);
    assert_eq!(wait_for(&lab, "db"), "192.168.140.50");

    // A stopped network's names leave the index.
    lab.ok(req::Destroy {
        network: "nssnet".into(),
        wait: false,
    });
    let t0 = Instant::now();
    while index(&lab).contains("vm1") {
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", index(&lab));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(getent(&lab, &m, "hosts vm1").0, Some(2));
    assert_eq!(getent(&lab, &m, "hosts db").0, Some(2));
}

/// glibc's own calls into the module, from a C program (crates/nss/tests/glibc_probe.c):
/// gethostbyname2_r's ERANGE retries with every buffer size, 8 threads of getaddrinfo at
/// once, and the time of one getaddrinfo with 1,000 guests in the index. In a private
/// mount namespace (`unshare -m`) with a tmpfs over /run and the test's nsswitch.conf.
#[test]
#[ignore = "needs root"]
fn glibc_retries_small_buffers_and_threads_share_the_module() {
    kvnet_host::testns::require_root("mounts in a private mount namespace");
    have("unshare", "util-linux");
    let d = std::env::temp_dir().join(format!("kvnet-nss-glibc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nss/tests/glibc_probe.c");
    let probe = d.join("probe");
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-pthread", "-o"])
        .arg(&probe)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(bin("libnss_kvnet.so"), d.join("libnss_kvnet.so.2")).expect("module");
    std::fs::write(d.join("nsswitch.conf"), "hosts: files kvnet\n").expect("nsswitch");
    let mut b = nss_kvnet::index::Builder::default();
    for i in 0..1000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        b.add(&format!("guest-{i}"), ip.into(), Some("lab.test"));
    }
    std::fs::write(d.join("index"), b.build().0).expect("index");
    let run = |args: &str| {
        let dd = d.display();
        let script = format!(
            "set -e; mount -t tmpfs kvnet-test /run; mkdir /run/kvnet; \
             cp {dd}/index /run/kvnet/nss-hosts; \
             mount --bind {dd}/nsswitch.conf /etc/nsswitch.conf; \
             LD_LIBRARY_PATH={dd} {dd}/probe {args}"
        );
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
            .expect("unshare");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "probe {args}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let out = run("erange guest-500.lab.test");
    assert!(out.ends_with("guest-500.lab.test 10.0.1.244"), "{out}");
    assert_eq!(run("threads guest-7 2000"), "failed 0");
    let us: f64 = run("time guest-999 20000").parse().expect("time");
    let files: f64 = run("time localhost 20000").parse().expect("time");
    eprintln!("getaddrinfo through the module: {us:.2} µs (a name from /etc/hosts: {files:.2} µs)");
    assert!(us < 1000.0, "{us} µs");
    let _ = std::fs::remove_dir_all(&d);
}
