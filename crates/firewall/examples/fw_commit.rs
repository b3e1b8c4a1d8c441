//! Root only: in a fresh network namespace, starts 200 NAT networks one by
//! one through the daemon's fast path (`encode_add_new` sent with
//! `kvnet_host::nft::apply_batch`) and prints the commit time of the 1st,
//! 100th and 200th: the median and the lower quartile over 9 rounds of the
//! networks around it (1-10, 96-105, 191-200), as single commits take
//! 0.1-0.6 ms and the machine may be shared (the quartile suffers less from
//! preemption). Run as
//! `cargo run --release -p kvnet-firewall --example fw_commit`.

use std::time::{Duration, Instant};

use kvnet_firewall::{FwMode, FwNetwork, encode_add_new, render_add};
use kvnet_host::testns::TestNs;

const TABLE: &str = "kvnet";
const NETWORKS: u32 = 200;
const ROUNDS: usize = 9;

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
    }
}

/// One round: a fresh namespace, the skeleton through nft (as the daemon's
/// first start does), then the networks natively; returns each commit time.
fn round() -> Vec<Duration> {
    let ns = TestNs::with_prefix("kvfwc").expect("create network namespace (root?)");
    let skeleton = render_add(TABLE, &numbered(NETWORKS + 1));
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nft");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), skeleton.as_bytes())
        .expect("write script");
    assert!(child.wait().expect("nft").success(), "nft -f failed");
    (1..=NETWORKS)
        .map(|i| {
            let batch = encode_add_new(TABLE, &numbered(i), i * 1024);
            ns.run(|| {
                let t = Instant::now();
                kvnet_host::nft::apply_batch(&batch).expect("apply batch");
                t.elapsed()
            })
        })
        .collect()
}

fn main() {
    let rounds: Vec<Vec<Duration>> = (0..ROUNDS).map(|_| round()).collect();
    // The median and lower quartile of networks lo..=hi of every round, in ms.
    let stats = |lo: usize, hi: usize| {
        let mut v: Vec<Duration> = rounds
            .iter()
            .flat_map(|r| &r[lo - 1..hi])
            .copied()
            .collect();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(v[v.len() / 2]), ms(v[v.len() / 4]))
    };
    let (first_med, first_q1) = stats(1, 10);
    for (n, lo, hi) in [(1, 1, 10), (100, 96, 105), (200, 191, 200)] {
        let (med, q1) = stats(lo, hi);
        println!(
            "network {n:>3} ({lo}-{hi}): median {med:.3} ms ({:.2}x), \
             lower quartile {q1:.3} ms ({:.2}x)",
            med / first_med,
            q1 / first_q1
        );
    }
}
