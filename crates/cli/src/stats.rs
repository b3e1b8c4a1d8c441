//! `kvnet net-stats`: what a network's services counted, its leases and its ports'
//! traffic, for a person (the same numbers kvnetd's metrics give a scraper).

use crate::client::Client;
use crate::output::print_json;
use crate::table;
use anyhow::Result;
use kvnet_api::{NetStats, request as req};
use kvnet_metrics::Histogram;

/// "p50 ≤ 250 µs, p99 ≤ 5 ms" of a latency histogram ("-" when empty).
fn quantiles(h: &Histogram) -> String {
    let fmt = |q: f64| match h.quantile_bound(q) {
        None => "-".to_string(),
        Some(b) if b.is_infinite() => "> 5 s".to_string(),
        Some(b) if b < 0.001 => format!("≤ {:.0} µs", b * 1e6),
        Some(b) if b < 1.0 => format!("≤ {} ms", b * 1e3),
        Some(b) => format!("≤ {b} s"),
    };
    if h.count() == 0 {
        return "-".into();
    }
    format!(
        "p50 {}, p99 {} ({} samples)",
        fmt(0.5),
        fmt(0.99),
        h.count()
    )
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn print(s: &NetStats) {
    let state = if s.active { "active" } else { "inactive" };
    println!(
        "Network {} ({state}{})",
        s.network,
        s.bridge
            .as_deref()
            .map(|b| format!(", bridge {b}"))
            .unwrap_or_default()
    );
    for d in &s.dhcp {
        let c = &d.counters;
        let received: Vec<String> = c.received.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!();
        println!("DHCP{}", if d.family == "v6" { "v6" } else { "v4" });
        let rows = vec![
            vec![
                "leases".into(),
                format!(
                    "{} active, {} free of {}",
                    d.active,
                    d.pool.saturating_sub(d.active),
                    d.pool
                ),
            ],
            vec![
                "received".into(),
                if received.is_empty() {
                    "-".into()
                } else {
                    received.join(", ")
                },
            ],
            vec![
                "sent".into(),
                format!("{} offers, {} acks, {} naks", c.offers, c.acks, c.naks),
            ],
            vec!["no address".into(), c.no_address.to_string()],
            vec![
                "conflicts".into(),
                format!("{} ({} declined)", c.conflicts, c.declines),
            ],
            vec![
                "releases, expirations".into(),
                format!("{}, {}", c.releases, c.expirations),
            ],
            vec![
                "dropped".into(),
                format!(
                    "{} rate-limited, {} over the change budget, {} malformed, {} ignored, {} journal failures",
                    c.rate_limited,
                    c.changes_limited,
                    c.malformed,
                    c.ignored,
                    d.journal_dropped_replies
                ),
            ],
            vec![
                "journal".into(),
                format!(
                    "{} bytes, fsync {}",
                    d.journal_bytes,
                    quantiles(&d.journal_fsync)
                ),
            ],
        ];
        print!("{}", table::render(&["", ""], &rows));
    }
    if let Some(d) = &s.dns {
        println!();
        println!("DNS");
        let rows = vec![
            vec!["queries".into(), d.queries.to_string()],
            vec![
                "answered".into(),
                format!("{} local, {} from upstream", d.local, d.upstream_answers),
            ],
            vec![
                "forwarded".into(),
                format!(
                    "{} ({} retries, {} failed)",
                    d.forwarded, d.retries, d.upstream_failures
                ),
            ],
            vec![
                "refused, errors, dropped".into(),
                format!("{}, {}, {}", d.refused, d.errors, d.dropped),
            ],
            vec!["latency".into(), quantiles(&d.latency)],
        ];
        print!("{}", table::render(&["", ""], &rows));
    }
    if let Some(f) = &s.firewall {
        println!();
        println!("Firewall");
        let rows = vec![
            vec![
                "forwarded out".into(),
                format!("{} B / {} pkts", f.out_bytes, f.out_packets),
            ],
            vec![
                "forwarded in".into(),
                format!("{} B / {} pkts", f.in_bytes, f.in_packets),
            ],
            vec!["rejected".into(), format!("{} pkts", f.rejected_packets)],
            vec!["NAT connections".into(), f.nat_connections.to_string()],
        ];
        print!("{}", table::render(&["", ""], &rows));
    }
    if !s.leases.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .leases
            .iter()
            .map(|l| {
                vec![
                    l.ip_address.to_string(),
                    l.mac_address.clone().unwrap_or_else(|| "-".into()),
                    l.hostname.clone().unwrap_or_else(|| "-".into()),
                    l.expires_in.map_or_else(|| "never".into(), duration),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(&["Lease", "MAC address", "Hostname", "Expires in"], &rows)
        );
    }
    if !s.ports.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .ports
            .iter()
            .map(|p| {
                vec![
                    p.ifname.clone(),
                    format!("{} B / {} pkts", p.rx_bytes, p.rx_packets),
                    format!("{} B / {} pkts", p.tx_bytes, p.tx_packets),
                    p.filter_dropped
                        .map_or_else(|| "-".into(), |d| d.to_string()),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(&["Port", "From guest", "To guest", "Filter dropped"], &rows)
        );
    }
}

pub fn run(c: &Client, network: &str, json: bool) -> Result<()> {
    let network = c.resolve(network)?;
    let s = c.call(req::Stats { network })?;
    if json {
        return print_json(&s);
    }
    print(&s);
    Ok(())
}
