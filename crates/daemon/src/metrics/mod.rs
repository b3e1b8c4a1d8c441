//! Prometheus metrics (`kvnetd --metrics ADDR`) and `net-stats`: each network's
//! [`NetStats`] (its services' counters, leases, ports' traffic) and the daemon's own
//! figures, written as Prometheus text by kvnet-metrics. `families` is pure; `process`
//! reads /proc; `http` serves the text.

pub mod http;
mod process;

use kvnet_api::NetStats;
use kvnet_metrics::{Family, Histogram, Kind};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Network starts and destroys, as the lifecycle timed them.
static STARTS: Mutex<Option<Histogram>> = Mutex::new(None);
static DESTROYS: Mutex<Option<Histogram>> = Mutex::new(None);
static STARTED: OnceLock<Instant> = OnceLock::new();

fn observe(h: &Mutex<Option<Histogram>>, d: Duration) {
    let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
    h.get_or_insert_with(Histogram::default)
        .observe(d.as_secs_f64());
}

/// When kvnetd started (for its uptime).
pub fn mark_started() {
    STARTED.get_or_init(Instant::now);
}

pub fn observe_start(d: Duration) {
    observe(&STARTS, d);
}

pub fn observe_destroy(d: Duration) {
    observe(&DESTROYS, d);
}

fn snapshot(h: &Mutex<Option<Histogram>>) -> Histogram {
    h.lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// The daemon's own figures.
#[derive(Debug, Clone, Default)]
pub struct Daemon {
    pub uptime: f64,
    pub open_fds: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub starts: Histogram,
    pub destroys: Histogram,
}

impl Daemon {
    pub fn now() -> Daemon {
        Daemon {
            uptime: STARTED.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            open_fds: process::open_fds(),
            rss_bytes: process::rss_bytes(),
            starts: snapshot(&STARTS),
            destroys: snapshot(&DESTROYS),
        }
    }
}

/// A family under construction, looked up by name.
struct Families(Vec<Family>);

impl Families {
    fn get(&mut self, name: &str, kind: Kind, help: &'static str) -> &mut Family {
        match self.0.iter().position(|f| f.name == name) {
            Some(i) => &mut self.0[i],
            None => {
                self.0.push(Family::new(name, kind, help));
                self.0.last_mut().expect("just pushed")
            }
        }
    }

    fn num(
        &mut self,
        name: &str,
        kind: Kind,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        self.get(name, kind, help).num(labels, v);
    }
}

use Kind::{Counter as C, Gauge as G};

fn network(f: &mut Families, s: &NetStats) {
    let n = s.network.as_str();
    let br = s.bridge.as_deref().unwrap_or("");
    f.num(
        "kvnet_network_active",
        G,
        "Whether the network is active (1) or defined only (0).",
        &[("network", n), ("bridge", br)],
        if s.active { 1.0 } else { 0.0 },
    );
    if !s.active {
        return;
    }
    f.num(
        "kvnet_ports",
        G,
        "Guest ports kvnet registered on the network.",
        &[("network", n)],
        s.ports.len() as f64,
    );
    for d in &s.dhcp {
        let l = [("network", n), ("family", d.family.as_str())];
        let c = &d.counters;
        f.num(
            "kvnet_dhcp_leases_active",
            G,
            "Leases bound now.",
            &l,
            d.active as f64,
        );
        f.num(
            "kvnet_dhcp_pool_addresses",
            G,
            "Addresses the DHCP ranges hold.",
            &l,
            d.pool as f64,
        );
        f.num(
            "kvnet_dhcp_pool_free",
            G,
            "Addresses of the ranges without a bound lease.",
            &l,
            d.pool.saturating_sub(d.active) as f64,
        );
        for (t, v) in &c.received {
            f.num(
                "kvnet_dhcp_received_total",
                C,
                "Well-formed DHCP messages received, by type.",
                &[
                    ("network", n),
                    ("family", d.family.as_str()),
                    ("type", t.as_str()),
                ],
                *v as f64,
            );
        }
        for (kind, v) in [("offer", c.offers), ("ack", c.acks), ("nak", c.naks)] {
            f.num(
                "kvnet_dhcp_replies_total",
                C,
                "Offers (DHCPv6: advertises), ACKs (replies binding an address) and NAKs sent.",
                &[
                    ("network", n),
                    ("family", d.family.as_str()),
                    ("kind", kind),
                ],
                v as f64,
            );
        }
        f.num(
            "kvnet_dhcp_no_address_total",
            C,
            "Requests answered with no address: the pool was exhausted.",
            &l,
            c.no_address as f64,
        );
        f.num(
            "kvnet_dhcp_conflicts_total",
            C,
            "Addresses found in use by another machine (ARP probes, declines).",
            &l,
            c.conflicts as f64,
        );
        f.num(
            "kvnet_dhcp_releases_total",
            C,
            "Leases released by their clients.",
            &l,
            c.releases as f64,
        );
        f.num(
            "kvnet_dhcp_expirations_total",
            C,
            "Leases that ran out.",
            &l,
            c.expirations as f64,
        );
        for (why, v) in [
            ("rate-limited", c.rate_limited),
            ("changes-limited", c.changes_limited),
            ("malformed", c.malformed),
            ("ignored", c.ignored),
            ("journal-failed", d.journal_dropped_replies),
        ] {
            f.num(
                "kvnet_dhcp_dropped_total",
                C,
                "DHCP messages not answered, by reason.",
                &[
                    ("network", n),
                    ("family", d.family.as_str()),
                    ("reason", why),
                ],
                v as f64,
            );
        }
        f.num(
            "kvnet_dhcp_journal_bytes",
            G,
            "Size of the lease journal.",
            &l,
            d.journal_bytes as f64,
        );
        f.num(
            "kvnet_dhcp_journal_failed_writes_total",
            C,
            "Lease journal writes that failed (a full disk).",
            &l,
            d.journal_failed_writes as f64,
        );
        f.get(
            "kvnet_dhcp_journal_fsync_seconds",
            Kind::Histogram,
            "Each batch's lease journal write and fsync.",
        )
        .hist(&l, &d.journal_fsync);
    }
    if let Some(d) = &s.dns {
        let l = [("network", n)];
        f.num(
            "kvnet_dns_queries_total",
            C,
            "DNS queries received.",
            &l,
            d.queries as f64,
        );
        for (src, v) in [("local", d.local), ("upstream", d.upstream_answers)] {
            f.num(
                "kvnet_dns_answers_total",
                C,
                "DNS answers: from the network's own names, or passed on from an upstream server.",
                &[("network", n), ("source", src)],
                v as f64,
            );
        }
        f.num(
            "kvnet_dns_forwarded_total",
            C,
            "DNS queries sent to an upstream server.",
            &l,
            d.forwarded as f64,
        );
        f.num(
            "kvnet_dns_upstream_failures_total",
            C,
            "Forwarded queries that failed in the end (SERVFAIL to the client).",
            &l,
            d.upstream_failures as f64,
        );
        f.num(
            "kvnet_dns_retries_total",
            C,
            "Another upstream tried after a failure or timeout.",
            &l,
            d.retries as f64,
        );
        f.num(
            "kvnet_dns_refused_total",
            C,
            "DNS queries refused.",
            &l,
            d.refused as f64,
        );
        f.num(
            "kvnet_dns_errors_total",
            C,
            "Malformed or unsupported DNS queries.",
            &l,
            d.errors as f64,
        );
        f.num(
            "kvnet_dns_dropped_total",
            C,
            "DNS messages not answered.",
            &l,
            d.dropped as f64,
        );
        f.get(
            "kvnet_dns_latency_seconds",
            Kind::Histogram,
            "From a DNS query's arrival to its answer.",
        )
        .hist(&l, &d.latency);
    }
    if let Some(fw) = &s.firewall {
        for (path, p, b) in [
            ("forwarded-out", fw.out_packets, Some(fw.out_bytes)),
            ("forwarded-in", fw.in_packets, Some(fw.in_bytes)),
            ("rejected", fw.rejected_packets, None),
        ] {
            let l = [("network", n), ("path", path)];
            f.num("kvnet_firewall_packets_total", C, "Packets through the network's firewall rules: forwarded from its guests, to them, and rejected.", &l, p as f64);
            if let Some(b) = b {
                f.num(
                    "kvnet_firewall_bytes_total",
                    C,
                    "Bytes forwarded from the network's guests and to them.",
                    &l,
                    b as f64,
                );
            }
        }
        f.num(
            "kvnet_firewall_nat_connections_total",
            C,
            "Connections of the network's guests masqueraded (NAT).",
            &[("network", n)],
            fw.nat_connections as f64,
        );
    }
    for p in &s.ports {
        let l = [("network", n), ("port", p.ifname.as_str())];
        f.num(
            "kvnet_port_receive_bytes_total",
            C,
            "Bytes the port received (what its guest sent).",
            &l,
            p.rx_bytes as f64,
        );
        f.num(
            "kvnet_port_receive_packets_total",
            C,
            "Packets the port received.",
            &l,
            p.rx_packets as f64,
        );
        f.num(
            "kvnet_port_transmit_bytes_total",
            C,
            "Bytes the port sent (to its guest).",
            &l,
            p.tx_bytes as f64,
        );
        f.num(
            "kvnet_port_transmit_packets_total",
            C,
            "Packets the port sent.",
            &l,
            p.tx_packets as f64,
        );
        if let Some(d) = p.filter_dropped {
            f.num(
                "kvnet_port_filter_dropped_total",
                C,
                "Frames the port filter dropped as spoofed.",
                &l,
                d as f64,
            );
        }
    }
}

/// Every network's and the daemon's metrics.
pub fn families(nets: &[NetStats], d: &Daemon) -> Vec<Family> {
    let mut f = Families(Vec::new());
    f.num(
        "kvnet_build_info",
        G,
        "kvnetd's version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    f.num(
        "kvnet_uptime_seconds",
        G,
        "Seconds since kvnetd started.",
        &[],
        d.uptime,
    );
    if let Some(n) = d.open_fds {
        f.num(
            "process_open_fds",
            G,
            "Open file descriptors of kvnetd.",
            &[],
            n as f64,
        );
    }
    if let Some(n) = d.rss_bytes {
        f.num(
            "process_resident_memory_bytes",
            G,
            "Resident memory of kvnetd.",
            &[],
            n as f64,
        );
    }
    f.get(
        "kvnet_network_start_seconds",
        Kind::Histogram,
        "Network starts, from the request to the network up.",
    )
    .hist(&[], &d.starts);
    f.get(
        "kvnet_network_destroy_seconds",
        Kind::Histogram,
        "Network destroys, until traffic stopped.",
    )
    .hist(&[], &d.destroys);
    for s in nets {
        network(&mut f, s);
    }
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvnet_api::{DhcpStats, PortTraffic};

    #[test]
    fn families_of_an_active_and_a_defined_network() {
        let mut counters = kvnet_metrics::DhcpCounters::default();
        counters.received.insert("discover".into(), 3);
        counters.offers = 3;
        let active = NetStats {
            network: "default".into(),
            active: true,
            bridge: Some("virbr0".into()),
            dhcp: vec![DhcpStats {
                family: "v4".into(),
                active: 2,
                pool: 253,
                counters,
                journal_bytes: 512,
                journal_fsync: Histogram::default(),
                journal_failed_writes: 0,
                journal_dropped_replies: 0,
            }],
            dns: Some(kvnet_metrics::DnsCounters::default()),
            firewall: Some(kvnet_api::FirewallStats {
                nat_connections: 4,
                ..Default::default()
            }),
            leases: vec![],
            ports: vec![PortTraffic {
                ifname: "vnet0".into(),
                rx_bytes: 100,
                rx_packets: 1,
                tx_bytes: 200,
                tx_packets: 2,
                filter_dropped: Some(5),
            }],
        };
        let defined = NetStats {
            network: "other".into(),
            active: false,
            bridge: None,
            dhcp: vec![],
            dns: None,
            leases: vec![],
            ports: vec![],
            firewall: None,
        };
        let text = kvnet_metrics::render(&families(&[active, defined], &Daemon::default()));
        for line in [
            "kvnet_network_active{network=\"default\",bridge=\"virbr0\"} 1",
            "kvnet_network_active{network=\"other\",bridge=\"\"} 0",
            "kvnet_dhcp_pool_free{network=\"default\",family=\"v4\"} 251",
            "kvnet_dhcp_received_total{network=\"default\",family=\"v4\",type=\"discover\"} 3",
            "kvnet_dhcp_replies_total{network=\"default\",family=\"v4\",kind=\"offer\"} 3",
            "kvnet_port_filter_dropped_total{network=\"default\",port=\"vnet0\"} 5",
            "kvnet_dns_answers_total{network=\"default\",source=\"local\"} 0",
            "kvnet_firewall_nat_connections_total{network=\"default\"} 4",
            "# TYPE kvnet_network_start_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        // One HELP and TYPE per family, however many networks.
        assert_eq!(text.matches("# TYPE kvnet_network_active ").count(), 1);
    }
}
