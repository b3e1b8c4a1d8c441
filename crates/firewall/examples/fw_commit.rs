//! Root only: in a fresh network namespace, starts N NAT networks (200, or
//! `KVNET_FW_NETWORKS`) one by one through the daemon's fast path
//! (`encode_add_new` sent with `kvnet_host::nft::apply_batch`) and prints the
//! commit time of the 1st, the middle one and the Nth: the median and the
//! lower quartile over 9 rounds of the 10 networks around each, as single
//! commits take 0.1-0.6 ms and the machine may be shared (the quartile
//! suffers less from preemption). Then removes the last 10 natively
//! (`encode_remove`), the daemon's teardown. Run as
//! `cargo run --release -p kvnet-firewall --example fw_commit`.

use std::time::{Duration, Instant};

use kvnet_firewall::{FwMode, FwNetwork, encode_add_new, encode_remove, render_add};
use kvnet_host::testns::TestNs;

const TABLE: &str = "kvnet";
const ROUNDS: usize = 9;

fn networks() -> u32 {
    std::env::var("KVNET_FW_NETWORKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n >= 20)
        .unwrap_or(200)
}

fn numbered(i: u32) -> FwNetwork {
    FwNetwork {
        name: format!("net{i}"),
        bridge: format!("kvs{i}"),
        mode: FwMode::Nat,
        forward_dev: None,
        subnets: vec![
            format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
                .parse()
                .expect("valid subnet"),
        ],
        nat_ipv6: false,
        nat_addresses: None,
        nat_ports: None,
        ipv6: false,
        dhcpv4: true,
        dhcpv6: false,
        dns: true,
        tftp: false,
        forwards: Vec::new(),
    }
}

/// One round: a fresh namespace, the skeleton through nft (as the daemon's
/// first start does), then the networks natively; returns each commit time,
/// then the removal times of the last 10.
fn round(n: u32) -> (Vec<Duration>, Vec<Duration>) {
    let ns = TestNs::with_prefix("kvfwc").expect("create network namespace (root?)");
    let skeleton = render_add(TABLE, &numbered(n + 1));
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nft");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), skeleton.as_bytes())
        .expect("write script");
    assert!(child.wait().expect("nft").success(), "nft -f failed");
    let timed = |batch: Vec<u8>| {
        ns.run(|| {
            let t = Instant::now();
            kvnet_host::nft::apply_batch(&batch).expect("apply batch");
            t.elapsed()
        })
    };
    let adds = (1..=n)
        .map(|i| timed(encode_add_new(TABLE, &numbered(i), i * 1024)))
        .collect();
    let removes = (n - 9..=n)
        .rev()
        .map(|i| timed(encode_remove(TABLE, &numbered(i), 1)))
        .collect();
    (adds, removes)
}

fn main() {
    let n = networks();
    let (rounds, removes): (Vec<Vec<Duration>>, Vec<Vec<Duration>>) =
        (0..ROUNDS).map(|_| round(n)).unzip();
    // The median and lower quartile of networks lo..=hi of every round, in ms.
    let stats = |of: &[Vec<Duration>], lo: usize, hi: usize| {
        let mut v: Vec<Duration> = of.iter().flat_map(|r| &r[lo - 1..hi]).copied().collect();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(v[v.len() / 2]), ms(v[v.len() / 4]))
    };
    let (first_med, first_q1) = stats(&rounds, 1, 10);
    let mid = n as usize / 2;
    for (k, lo, hi) in [
        (1, 1, 10),
        (mid, mid - 4, mid + 5),
        (n as usize, n as usize - 9, n as usize),
    ] {
        let (med, q1) = stats(&rounds, lo, hi);
        println!(
            "network {k:>4} ({lo}-{hi}): median {med:.3} ms ({:.2}x), \
             lower quartile {q1:.3} ms ({:.2}x)",
            med / first_med,
            q1 / first_q1
        );
    }
    let (med, q1) = stats(&removes, 1, 10);
    println!(
        "removing networks {}-{n}: median {med:.3} ms, lower quartile {q1:.3} ms",
        n - 9
    );
}
