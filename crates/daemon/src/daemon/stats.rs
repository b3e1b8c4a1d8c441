//! The statistics verbs: `net-stats` for one network and the Prometheus text of them
//! all (`--metrics`), read from the services, the links' traffic and kvnet's tables.

use super::Daemon;
use crate::services::ServiceStats;
use anyhow::Result;
use kvnet_api::{DhcpStats, FirewallStats, LeaseTime, NetStats, PortTraffic};

/// What [`Daemon::stats_of`] reads besides the services: links' traffic, the port
/// filter's table, the firewall's counters.
#[derive(Default)]
struct StatsSources {
    traffic: std::collections::HashMap<String, [u64; 4]>,
    filter: Option<kvnet_firewall::portfilter::Installed>,
    firewall: std::collections::BTreeMap<String, kvnet_firewall::FwCounters>,
}

impl Daemon {
    /// `net-stats`: network `name`'s counters, leases and ports' traffic.
    pub async fn net_stats(&self, name: &str) -> Result<NetStats> {
        let src = self.stats_sources(self.registry.live(name).is_ok()).await?;
        self.stats_of(name, &src, true)
    }

    /// What every network's stats are read from; the host's links and kvnet's tables
    /// only when some network is active.
    async fn stats_sources(&self, any_active: bool) -> Result<StatsSources> {
        if !any_active {
            return Ok(StatsSources::default());
        }
        Ok(StatsSources {
            traffic: self.life.nl().link_traffic().await?,
            filter: self.life.filter_installed().await,
            firewall: self.life.dp().fw().counters(),
        })
    }

    /// Network `name`'s stats; its leases only if `leases` (a scrape has no use for
    /// them, and listing 50,000 of them ten times a second would cost the DHCP server).
    fn stats_of(&self, name: &str, src: &StatsSources, leases: bool) -> Result<NetStats> {
        let obj = self.registry.get(name)?;
        let net = obj.live.as_ref().or(obj.def.as_ref());
        let mut out = NetStats {
            network: name.to_string(),
            active: obj.live.is_some(),
            bridge: net.and_then(|n| n.bridge_name()).map(str::to_string),
            dhcp: Vec::new(),
            dns: None,
            leases: Vec::new(),
            ports: Vec::new(),
            firewall: None,
        };
        let Some(live) = obj.live.as_ref() else {
            return Ok(out);
        };
        for s in self.life.service_stats(name) {
            match s {
                ServiceStats::Dhcp {
                    family,
                    stats,
                    active,
                    pool,
                    journal,
                } => out.dhcp.push(DhcpStats {
                    family: family.to_string(),
                    active,
                    pool,
                    counters: stats,
                    journal_bytes: journal.bytes,
                    journal_fsync: journal.fsync,
                    journal_failed_writes: journal.failed_writes,
                    journal_dropped_replies: journal.dropped_replies,
                }),
                ServiceStats::Dns(c) => out.dns = Some(c),
            }
        }
        if leases {
            let now = crate::ids::now();
            out.leases = self
                .life
                .leases(live)?
                .into_iter()
                .map(|l| LeaseTime {
                    ip_address: l.ip_address,
                    mac_address: l.mac_address,
                    hostname: l.hostname,
                    expires_in: (l.expiry_time != 0).then(|| l.expiry_time.saturating_sub(now)),
                })
                .collect();
        }
        let filter = src.filter.as_ref();
        for p in self.ports.recs(name) {
            let t = src.traffic.get(&p.ifname).copied().unwrap_or_default();
            out.ports.push(PortTraffic {
                ifname: p.ifname.clone(),
                rx_bytes: t[0],
                rx_packets: t[1],
                tx_bytes: t[2],
                tx_packets: t[3],
                filter_dropped: filter
                    .filter(|i| i.state.filtered.contains(&p.ifname))
                    .map(|i| i.drops.get(&p.ifname).map_or(0, |d| d.0)),
            });
        }
        out.firewall = src.firewall.get(name).map(|c| FirewallStats {
            out_packets: c.forwarded_out.packets,
            out_bytes: c.forwarded_out.bytes,
            in_packets: c.forwarded_in.packets,
            in_bytes: c.forwarded_in.bytes,
            rejected_packets: c.rejected.packets,
            nat_connections: c.nat.packets,
        });
        Ok(out)
    }

    /// The Prometheus text of every network and of the daemon (`--metrics`).
    pub async fn metrics_text(&self) -> String {
        let summaries = self.registry.summaries();
        let any_active = summaries.iter().any(|s| s.active);
        let src = self.stats_sources(any_active).await.unwrap_or_default();
        let nets: Vec<NetStats> = summaries
            .iter()
            .filter_map(|s| self.stats_of(&s.name, &src, false).ok())
            .collect();
        kvnet_metrics::render(&crate::metrics::families(
            &nets,
            &crate::metrics::Daemon::now(),
        ))
    }
}
