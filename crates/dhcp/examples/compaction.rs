//! How long a running compaction of a lease journal takes: the table written as a fresh
//! journal (`compact`), then made durable the way kvnetd does it (temporary file, fsync,
//! rename, fsync of the directory). Figures in RELIABILITY.md.
//!
//! `cargo run --release -p kvnet-dhcp --example compaction -- [DIR] [LEASES...]`
//! (DIR defaults to /var/tmp, on disk; leases to 1000 10000 65000). The median of 5 runs.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Instant;

use kvnet_dhcp::{LeaseRecord, LeaseState, LeaseTable, compact, replay};
use kvnet_model::MacAddr;

fn table(n: u32) -> LeaseTable {
    let mut t = LeaseTable::new();
    for i in 0..n {
        let b = i.to_be_bytes();
        t.apply(LeaseRecord {
            ip_address: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 0, 10)) + i),
            mac_address: MacAddr([0x52, 0x54, 0, b[1], b[2], b[3]]),
            client_id: Some(format!(
                "01:52:54:00:{:02x}:{:02x}:{:02x}",
                b[1], b[2], b[3]
            )),
            hostname: Some(format!("guest-{i}")),
            expiry_time: 1_800_000_000 + u64::from(i),
            state: LeaseState::Bound,
        });
    }
    t
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/var/tmp".into()));
    let sizes: Vec<u32> = args
        .map(|a| a.parse().expect("a number of leases"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10_000, 65_000]
    } else {
        sizes
    };
    let path = dir.join(format!("kvnet-compaction-{}.jsonl", std::process::id()));
    let tmp = path.with_extension("tmp");
    println!(
        "| leases | journal bytes | compact (serialize) | write + fsync | rename + dir fsync | total |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for n in sizes {
        let t = table(n);
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            let text = compact(&t);
            let t1 = Instant::now();
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            let t2 = Instant::now();
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()?;
            let t3 = Instant::now();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            runs.push([ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t0, t3)]);
            assert_eq!(replay(&text).len(), n as usize);
        }
        // The median run by total time (the disk is shared and noisy).
        runs.sort_by(|a, b| a[3].total_cmp(&b[3]));
        let best = runs[runs.len() / 2];
        let bytes = std::fs::metadata(&path)?.len();
        println!(
            "| {n} | {bytes} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            best[0], best[1], best[2], best[3]
        );
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
