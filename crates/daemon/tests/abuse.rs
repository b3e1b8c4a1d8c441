//! kvnetd under abuse and restarts, root only, each kvnetd in a namespace of its own:
//! API connections held idle at the open-file limit, a line over the request limit, a
//! client that never reads its replies, a DNS TCP client that never reads its answers,
//! and clients (the library, kvnet-ifup) racing restarts — with the socket bound by
//! kvnetd, and taken over from a socket activator that keeps it across restarts.
//!
//! The sizes can be raised for a long run (bench/abuse.sh): KVNET_ABUSE_IDLE (idle
//! connections), KVNET_ABUSE_REPLIES (requests of the client that never reads),
//! KVNET_ABUSE_RESTARTS. Figures are printed (`--nocapture` shows them).

mod lab;

use kvnet_api::request as req;
use kvnet_api::{NetSummary, Request};
use kvnet_host::testns::TestNs;
use lab::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The socket activator's part (what systemd does): the listening socket as fd 3,
/// LISTEN_FDS=1 and LISTEN_PID = the pid that will be kvnetd's.
const ACTIVATED: &str = r#"[ "$KVNET_FD" = 3 ] || { exec 3<&"$KVNET_FD"; eval "exec $KVNET_FD<&-"; }
unset KVNET_FD; export LISTEN_PID=$$ LISTEN_FDS=1"#;

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "kvnet-abuse-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("run")).expect("scratch dir");
    d
}

fn host_ns() -> TestNs {
    let ns = TestNs::with_prefix("kvt-ab").expect("namespace");
    ip(&ns, "link set lo up");
    ns
}

/// CPU time of `pid` in clock ticks (/proc/PID/stat utime + stime; USER_HZ is 100).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Percent of one core `pid` used over `t`.
fn cpu_percent(pid: u32, t: Duration) -> f64 {
    let t0 = cpu_ticks(pid);
    std::thread::sleep(t);
    (cpu_ticks(pid) - t0) as f64 / t.as_secs_f64()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

/// Sets the soft open-file limit of `pid` (the hard one stays: raising it back would
/// need CAP_SYS_RESOURCE).
fn set_fd_limit(pid: u32, n: usize) {
    let out = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:")])
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "{out:?}");
}

/// The slowest of `n` pings, each on a new connection as the CLI makes them.
fn worst_ping(socket: &Path, n: usize) -> Duration {
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            let r = kvnet_api::call_raw(socket, &req::Ping {}.into()).expect("ping");
            assert!(r.ok);
            let t = t0.elapsed();
            std::thread::sleep(ms(20));
            t
        })
        .max()
        .unwrap_or_default()
}

/// Whether the peer closed `s` within `t` (what it sent before is read and dropped).
fn closed_within(s: &mut impl Read, t: Duration) -> bool {
    let t0 = Instant::now();
    let mut buf = [0u8; 65536];
    while t0.elapsed() < t {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    false
}

#[test]
#[ignore = "needs root"]
fn idle_connections_at_the_fd_limit_cost_no_cpu_and_others_are_served() {
    let n = knob("KVNET_ABUSE_IDLE", 2000);
    // This test holds the client ends.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
        .expect("setrlimit");
    assert!(
        hard as usize > n + 100,
        "hard fd limit {hard} too low for {n}"
    );
    let ns = host_ns();
    let dir = scratch("idle");
    let d = Daemon::launch(&ns, &dir, &[], "ulimit -n 1024", None);
    assert!(
        d.log()
            .contains("open-file limit 1024: at most 256 API connections"),
        "{}",
        d.log()
    );
    let pid = d.pid();
    let t0 = Instant::now();
    let idle: Vec<UnixStream> = (0..n)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    let connected = t0.elapsed();
    std::thread::sleep(ms(500));
    let cpu = cpu_percent(pid, Duration::from_secs(2));
    let worst = worst_ping(&d.socket, 20);
    let fds = fd_count(pid);
    println!(
        "{n} idle connections (connected in {connected:?}) under a 1024 fd limit: kvnetd \
         {cpu:.1} % CPU over 2 s, {fds} descriptors open, slowest of 20 pings {worst:?}"
    );
    assert!(cpu < 5.0, "{cpu} %");
    assert!(worst < ms(100), "{worst:?}");
    assert!(fds < 400, "{fds} descriptors: the cap is 256 connections");

    // At the limit itself (descriptors taken by something else): accept fails with
    // EMFILE while clients queue. The loop backs off, logs a line per doubling, and
    // serves the queue once descriptors are free again.
    set_fd_limit(pid, 10);
    let queued: Vec<UnixStream> = (0..100)
        .map(|_| {
            let s = UnixStream::connect(&d.socket).expect("connect");
            (&s).write_all(b"{\"op\":\"ping\"}\n").expect("send");
            s
        })
        .collect();
    std::thread::sleep(ms(500));
    let cpu_emfile = cpu_percent(pid, Duration::from_secs(3));
    let lines = d.log().matches("api accept failed").count();
    set_fd_limit(pid, 1024);
    let t0 = Instant::now();
    for s in &queued {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("reply");
        assert!(line.contains("\"ok\":true"), "{line}");
    }
    let recovered = t0.elapsed();
    println!(
        "at EMFILE with 100 clients queued: kvnetd {cpu_emfile:.1} % CPU over 3 s, {lines} \
         log lines; all 100 answered {recovered:?} after descriptors were free again"
    );
    assert!(cpu_emfile < 5.0, "{cpu_emfile} %");
    assert!((1..=10).contains(&lines), "{lines} lines:\n{}", d.log());
    assert!(d.log().contains("api accepting again"), "{}", d.log());
    drop(idle);
}

#[test]
#[ignore = "needs root"]
fn a_line_over_the_request_limit_runs_nothing_after_it() {
    let lab = Lab::new();
    let destroy = r#"{"op":"destroy","network":"default","wait":false}"#;
    for payload in [
        // 4 MiB + 1 bytes, then a request on the next line.
        format!("{}\n{destroy}\n", " ".repeat((4 << 20) + 1)),
        // A request that starts before the 4 MiB cut and ends after it.
        format!("{}{destroy}\n", " ".repeat((4 << 20) - 10)),
    ] {
        let s = UnixStream::connect(&lab.daemon.socket).expect("connect");
        let writer = {
            let s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = (&s).write_all(payload.as_bytes());
            })
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reply = String::new();
        let _ = BufReader::new(&s).read_line(&mut reply);
        assert!(
            reply.is_empty() || reply.contains("request longer than 4194304 bytes"),
            "{reply}"
        );
        assert!(closed_within(&mut &s, Duration::from_secs(5)));
        writer.join().unwrap();
    }
    let nets: Vec<NetSummary> = serde_json::from_value(lab.ok(req::List {}).data).unwrap();
    assert!(nets.iter().any(|n| n.name == "default" && n.active));
    assert!(lab.daemon.log().contains("request longer than"));
}

#[test]
#[ignore = "needs root"]
fn a_client_that_never_reads_does_not_delay_others() {
    let n = knob("KVNET_ABUSE_REPLIES", 10_000);
    let lab = Lab::new();
    let greedy = UnixStream::connect(&lab.daemon.socket).expect("connect");
    let t0 = Instant::now();
    let writer = {
        let s = greedy.try_clone().unwrap();
        let all = "{\"op\":\"list\"}\n".repeat(n);
        std::thread::spawn(move || {
            let _ = (&s).write_all(all.as_bytes());
        })
    };
    std::thread::sleep(ms(300));
    let worst = worst_ping(&lab.daemon.socket, 50);
    // Only once the write timeout (5 s) has passed: reading earlier would take replies.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(t0.elapsed()));
    greedy.set_read_timeout(Some(ms(100))).unwrap();
    let closed = closed_within(&mut &greedy, Duration::from_secs(2));
    println!(
        "a client sending {n} requests and reading no reply: slowest of 50 pings meanwhile \
         {worst:?}; its connection closed: {closed}"
    );
    assert!(worst < ms(100), "{worst:?}");
    assert!(closed, "the client that never reads is still connected");
    assert!(lab.daemon.log().contains("took no reply"));
    writer.join().unwrap();
}

const DNS_NET: &str = "<network><name>dnsab</name><bridge name='kvdab0'/>\
    <domain name='ab.test' localOnly='yes'/>\
    <dns><host ip='192.168.131.50'><hostname>db</hostname></host></dns>\
    <ip address='192.168.131.1' prefix='24'/></network>";

/// A DNS query for db.ab.test A with `id`, framed for TCP.
fn dns_query(id: u16) -> Vec<u8> {
    let mut q = vec![0, 0];
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["db", "ab", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let len = (q.len() - 2) as u16;
    q[..2].copy_from_slice(&len.to_be_bytes());
    q
}

#[test]
#[ignore = "needs root"]
fn a_dns_tcp_client_that_never_reads_is_disconnected() {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
    have("dig", "dnsutils");
    let mut lab = Lab::new();
    lab.define_and_start(DNS_NET);
    let g = lab.guest("kvdab0", "192.168.131.10", "");
    let g = &lab.guests[g];
    let t0 = Instant::now();
    let (mut greedy, writer) = g.run(|| {
        // A small receive window fills at once.
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        socket::setsockopt(&fd, sockopt::RcvBuf, &2048).expect("rcvbuf");
        socket::connect(fd.as_raw_fd(), &SockaddrIn::new(192, 168, 131, 1, 53)).expect("connect");
        let s = std::net::TcpStream::from(fd);
        let w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let queries: Vec<u8> = (0..20_000u16).flat_map(dns_query).collect();
            let _ = (&w).write_all(&queries);
        });
        (s, writer)
    });
    std::thread::sleep(ms(500));
    // Others are answered meanwhile.
    let (ok, out) = sh(
        g,
        "dig +tcp +time=2 +tries=1 +short @192.168.131.1 db.ab.test A",
    );
    assert!(ok && out.trim() == "192.168.131.50", "{out}");
    // The write timeout is 5 s, the idle timeout 10 s: closed in between.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(t0.elapsed()));
    greedy.set_read_timeout(Some(ms(100))).unwrap();
    assert!(
        closed_within(&mut greedy, Duration::from_secs(2)),
        "still connected after {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    writer.join().unwrap();
}

/// What 4 clients calling kvnetd in a loop saw while it was restarted `n` times with
/// `sig`: requests answered, failures, the longest restart.
struct Round {
    answered: u32,
    failures: Vec<String>,
    longest: Duration,
}

fn restarts_under_load(
    d: &mut Daemon,
    respawn: impl Fn() -> Daemon,
    n: usize,
    sig: nix::sys::signal::Signal,
) -> Round {
    let socket = d.socket.clone();
    let stop = AtomicBool::new(false);
    let answered = AtomicU32::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let mut longest = Duration::ZERO;
    std::thread::scope(|s| {
        for i in 0..4 {
            let (socket, stop, answered, failures) = (&socket, &stop, &answered, &failures);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r: Request = if i % 2 == 0 {
                        req::Ping {}.into()
                    } else {
                        req::List {}.into()
                    };
                    match kvnet_api::call_raw(socket, &r) {
                        Ok(r) if r.ok => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{:?}", r.error)),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            });
        }
        for _ in 0..n {
            std::thread::sleep(ms(300));
            let t0 = Instant::now();
            d.signal(sig);
            // The old one's Drop would remove the dirs the next one uses.
            std::mem::forget(std::mem::replace(d, respawn()));
            longest = longest.max(t0.elapsed());
        }
        std::thread::sleep(ms(300));
        stop.store(true, Ordering::SeqCst);
    });
    Round {
        answered: answered.load(Ordering::SeqCst),
        failures: failures.into_inner().unwrap(),
        longest,
    }
}

#[test]
#[ignore = "needs root"]
fn clients_wait_out_restarts_on_a_socket_kept_by_an_activator() {
    use nix::sys::signal::Signal;
    let restarts = knob("KVNET_ABUSE_RESTARTS", 5);
    let ns = host_ns();
    let dir = scratch("activation");
    // The activator's socket, as systemd's kvnetd.socket holds it.
    let listener = UnixListener::bind(dir.join("run/kvnetd.sock")).expect("bind");
    let fd = listener.as_raw_fd();
    let fd_var = fd.to_string();
    let respawn = || Daemon::launch(&ns, &dir, &[("KVNET_FD", &fd_var)], ACTIVATED, Some(fd));
    let mut d = respawn();
    assert!(
        d.log().contains("serving the socket systemd passed"),
        "{}",
        d.log()
    );
    // A stop (systemctl restart): what kvnetd accepted is answered, the rest waits on
    // the socket for the next kvnetd.
    let r = restarts_under_load(&mut d, respawn, restarts, Signal::SIGTERM);
    println!(
        "{restarts} restarts (SIGTERM) on a kept socket, 4 clients calling in a loop: \
         {} answered, {} failed, longest restart {:?}",
        r.answered,
        r.failures.len(),
        r.longest
    );
    assert!(r.failures.is_empty(), "{:?}\n{}", r.failures, d.log());
    assert!(r.answered > 100, "{}", r.answered);
    assert!(d.socket.exists(), "the activator's socket stays");
    // A kill: a request kvnetd had read may have run, so its client is told (never
    // retried); every other client waits for the next kvnetd.
    let kills = restarts.div_ceil(2);
    let r = restarts_under_load(&mut d, respawn, kills, Signal::SIGKILL);
    println!(
        "{kills} kills (SIGKILL) on a kept socket, 4 clients calling in a loop: {} answered, \
         {} failed (requests in progress at the kill)",
        r.answered,
        r.failures.len()
    );
    assert!(r.failures.len() <= 4 * kills, "{:?}", r.failures);
    for f in &r.failures {
        assert!(
            f.contains("without replying") || f.contains("reset by peer"),
            "a client failed otherwise than by a kill in the middle of its request: {f}"
        );
    }
}

/// kvnet-ifup as qemu runs it for a guest's TAP.
fn ifup(ns: &str, socket: &Path, tap: &str) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("kvnet-ifup"))
        .arg(tap)
        .env("KVNET_SOCKET", socket)
        .output()
        .expect("run kvnet-ifup");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root"]
fn a_guest_start_racing_a_restart_succeeds() {
    let restarts = knob("KVNET_ABUSE_RESTARTS", 5);
    let mut lab = Lab::new();
    let taps: Vec<String> = (0..8).map(|i| format!("tap{i}")).collect();
    for t in &taps {
        ip(&lab.host, &format!("tuntap add dev {t} mode tap"));
    }
    let socket = lab.daemon.socket.clone();
    let host = lab.host.name().to_string();
    let stop = AtomicBool::new(false);
    let (mut runs, mut failures) = (0, Vec::new());
    std::thread::scope(|s| {
        let guests = s.spawn(|| {
            // Guests starting one after another (attaching twice is harmless).
            let mut n = 0;
            let mut failed = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (ok, err) = ifup(&host, &socket, &taps[n % taps.len()]);
                if !ok {
                    failed.push(err);
                }
                n += 1;
            }
            (n, failed)
        });
        for _ in 0..restarts {
            std::thread::sleep(ms(300));
            lab.restart_daemon();
        }
        std::thread::sleep(ms(300));
        stop.store(true, Ordering::SeqCst);
        (runs, failures) = guests.join().unwrap();
    });
    println!(
        "kvnet-ifup in a loop across {restarts} restarts of kvnetd: {runs} runs, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(runs > restarts, "{runs}");
    let ports: Vec<kvnet_api::Port> = serde_json::from_value(
        lab.ok(req::PortList {
            network: "default".into(),
        })
        .data,
    )
    .unwrap();
    assert_eq!(ports.len(), taps.len(), "{ports:?}");
}
