//! Metrics (`kvnetd --metrics`) and `kvnet net-stats`, root only: a NAT network whose
//! guest takes a lease and asks DNS, scraped over loopback TCP and a Unix socket; the
//! text passes `promtool check metrics` (Debian's, extracted by scripts/deps.sh) and
//! holds what happened; a non-loopback address is refused.

mod lab;

use lab::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

const NET: &str = "<network><name>m</name><forward mode='nat'/><bridge name='kvm0'/>\
    <domain name='lab' localOnly='yes'/>\
    <ip address='10.79.0.1' prefix='24'><dhcp><range start='10.79.0.100' end='10.79.0.199'/>\
    </dhcp></ip></network>";

/// GET `path` over `stream`, the whole answer.
fn get(mut s: impl Read + Write, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: kvnetd\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn scrape_tcp(lab: &Lab, path: &str) -> String {
    lab.host.run(|| {
        let s = std::net::TcpStream::connect("127.0.0.1:9125").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        get(s, path)
    })
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn promtool() -> PathBuf {
    std::env::var_os("KVNET_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kvnet-test"))
        .join("promtool")
}

#[test]
#[ignore = "needs root"]
fn scraped_metrics_are_valid_and_count_what_happened() {
    let dir = TempDir(std::env::temp_dir().join(format!("kvnet-metrics-{}", std::process::id())));
    std::fs::create_dir_all(&*dir).expect("socket dir");
    let sock = dir.join("metrics.sock");
    let mut lab = Lab::with_env(&[("KVNET_METRICS", "127.0.0.1:9125")]);
    lab.define_and_start(NET);
    let (g, addr) = lab.udhcpc_guest("kvm0", "52:54:00:79:00:01", "vm1");
    ip(&lab.guests[g], &format!("addr add {addr}/24 dev eth0"));
    let (ok, out) = sh(
        &lab.guests[g],
        "dig +time=2 +tries=1 @10.79.0.1 nothere.lab A",
    );
    assert!(ok, "{out}");
    // Traffic out through NAT to the LAN: the firewall's counters see it.
    ip(&lab.guests[g], "route add default via 10.79.0.1");
    assert!(ping(&lab.guests[g], "203.0.113.2"));
    std::thread::sleep(Duration::from_millis(1100)); // the counters are read once a second

    let answer = scrape_tcp(&lab, "/metrics");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("Content-Type: text/plain; version=0.0.4"),
        "{answer}"
    );
    let text = body(&answer);
    for (series, at_least) in [
        ("kvnet_network_active{network=\"m\",bridge=\"kvm0\"}", 1.0),
        ("kvnet_dhcp_leases_active{network=\"m\",family=\"v4\"}", 1.0),
        (
            "kvnet_dhcp_pool_addresses{network=\"m\",family=\"v4\"}",
            100.0,
        ),
        (
            "kvnet_dhcp_received_total{network=\"m\",family=\"v4\",type=\"discover\"}",
            1.0,
        ),
        (
            "kvnet_dhcp_replies_total{network=\"m\",family=\"v4\",kind=\"ack\"}",
            1.0,
        ),
        ("kvnet_dns_queries_total{network=\"m\"}", 1.0),
        (
            "kvnet_dns_answers_total{network=\"m\",source=\"local\"}",
            1.0,
        ),
        (
            "kvnet_dhcp_journal_fsync_seconds_count{network=\"m\",family=\"v4\"}",
            1.0,
        ),
        ("kvnet_network_start_seconds_count", 1.0),
        (
            "kvnet_firewall_packets_total{network=\"m\",path=\"forwarded-out\"}",
            1.0,
        ),
        (
            "kvnet_firewall_packets_total{network=\"m\",path=\"forwarded-in\"}",
            1.0,
        ),
        ("kvnet_firewall_nat_connections_total{network=\"m\"}", 1.0),
        ("process_open_fds", 5.0),
        ("process_resident_memory_bytes", 1e6),
    ] {
        let v = value(text, series);
        assert!(
            v >= at_least,
            "{series} = {v}, expected at least {at_least}"
        );
    }
    // Prometheus' own checker takes it (lint problems are reported on stdout).
    let (clean, said) = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text);
    assert!(clean, "promtool: {said}\n{text}");

    // Anything but GET /metrics gets nothing.
    assert!(scrape_tcp(&lab, "/other").starts_with("HTTP/1.1 404"));

    // net-stats: the same numbers for a person, and as JSON.
    let (ok, out) = lab.cli(&["net-stats", "m"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 active, 99 free of 100"), "{out}");
    assert!(out.contains(&addr) && out.contains("vm1"), "{out}");
    let (ok, out) = lab.cli(&["net-stats", "m", "--json"]);
    assert!(ok, "{out}");
    let s: kvnet_api::NetStats = serde_json::from_str(&out).unwrap();
    assert_eq!(s.dhcp[0].counters.acks, 1);
    assert!(s.dns.unwrap().local >= 1);

    // A Unix socket works too; a non-loopback address is refused at start.
    lab.restart_daemon_with(&[("KVNET_METRICS", &format!("unix:{}", sock.display()))]);
    let answer = lab.host.run(|| {
        let s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        get(s, "/metrics")
    });
    assert!(
        body(&answer).contains("kvnet_network_active{network=\"m\""),
        "{answer}"
    );
    let out = std::process::Command::new(bin("kvnetd"))
        .args([
            "--metrics",
            "0.0.0.0:9125",
            "--run-dir",
            "/nonexistent/kvnet-m",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a loopback address"),
        "{err}"
    );
}

trait WithStdin {
    fn output_with_stdin(&mut self, input: &str) -> (bool, String);
}

impl WithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &str) -> (bool, String) {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // promtool exits 0 with lint problems printed: those count as failures too.
        (out.status.success() && text.trim().is_empty(), text)
    }
}
