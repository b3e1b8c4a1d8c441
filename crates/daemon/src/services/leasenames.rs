//! The names guests took with their DHCP leases, as the DNS service, the host's name
//! index (`nssindex`) and port forwards see them: a subscription to every DHCP service of
//! a network (DHCPv4 and DHCPv6), each telling when it recorded a lease.

use super::lock;
use crate::ids::now;
use futures::future::select_all;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One running DHCP service's lease table.
#[derive(Clone)]
enum Table {
    V4(Arc<Mutex<kvnet_dhcp::Server>>),
    V6(Arc<Mutex<kvnet_dhcp::v6::Server>>),
}

/// A subscription to a network's lease names; clones share nothing but the tables.
#[derive(Clone)]
pub struct LeaseNames {
    sources: Vec<(Table, watch::Receiver<()>)>,
}

impl LeaseNames {
    fn one(table: Table, changed: &watch::Sender<()>) -> LeaseNames {
        let mut rx = changed.subscribe();
        // A new subscriber has not seen the leases recorded so far.
        rx.mark_changed();
        LeaseNames {
            sources: vec![(table, rx)],
        }
    }

    pub(super) fn v4(server: Arc<Mutex<kvnet_dhcp::Server>>, changed: &watch::Sender<()>) -> Self {
        Self::one(Table::V4(server), changed)
    }

    pub(super) fn v6(
        server: Arc<Mutex<kvnet_dhcp::v6::Server>>,
        changed: &watch::Sender<()>,
    ) -> Self {
        Self::one(Table::V6(server), changed)
    }

    /// Both subscriptions in one.
    pub(super) fn merge(mut self, other: LeaseNames) -> LeaseNames {
        self.sources.extend(other.sources);
        self
    }

    /// Whether a lease was recorded since the last call.
    pub fn changed(&mut self) -> bool {
        let mut any = false;
        for (_, rx) in &mut self.sources {
            any |= rx.has_changed().unwrap_or(false);
            rx.mark_unchanged();
        }
        any
    }

    /// Resolves when a lease is recorded after the last look; never once every service
    /// is gone (so a waiter does not spin on closed channels).
    pub async fn recorded(&mut self) {
        let live: Vec<_> = self
            .sources
            .iter_mut()
            .filter(|(_, rx)| rx.has_changed().is_ok())
            .map(|(_, rx)| Box::pin(rx.changed()))
            .collect();
        if live.is_empty() {
            return std::future::pending().await;
        }
        if select_all(live).await.0.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// (hostname, address) of every current lease that has a hostname, IPv4 and IPv6.
    pub fn names(&self) -> Vec<(String, IpAddr)> {
        let t = now();
        let mut out = Vec::new();
        for (table, _) in &self.sources {
            match table {
                Table::V4(s) => out.extend(
                    lock(s)
                        .leases(t)
                        .into_iter()
                        .filter_map(|l| Some((l.hostname?, IpAddr::V4(l.ip_address)))),
                ),
                Table::V6(s) => out.extend(
                    lock(s)
                        .leases(t)
                        .into_iter()
                        .filter_map(|l| Some((l.hostname?, IpAddr::V6(l.ip_address)))),
                ),
            }
        }
        out
    }

    /// (hostname, MAC, address) of every current DHCPv4 lease: whom port forwards follow.
    pub fn guests(&self) -> Vec<(Option<String>, String, Ipv4Addr)> {
        let t = now();
        self.sources
            .iter()
            .filter_map(|(table, _)| match table {
                Table::V4(s) => Some(s),
                Table::V6(_) => None,
            })
            .flat_map(|s| {
                lock(s)
                    .leases(t)
                    .into_iter()
                    .map(|l| (l.hostname, l.mac_address.to_string(), l.ip_address))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl LeaseNames {
    /// `(MAC, address)` of every current lease whose MAC is known: DHCPv4 leases, and
    /// DHCPv6 ones whose DUID names a MAC. What the port filter lets guests send from.
    pub fn bindings(&self) -> Vec<(kvnet_model::MacAddr, IpAddr)> {
        let t = now();
        let mut out = Vec::new();
        for (table, _) in &self.sources {
            match table {
                Table::V4(s) => out.extend(
                    lock(s)
                        .leases(t)
                        .into_iter()
                        .map(|l| (l.mac_address, IpAddr::V4(l.ip_address))),
                ),
                Table::V6(s) => out.extend(
                    lock(s)
                        .leases(t)
                        .into_iter()
                        .filter_map(|l| Some((l.mac_address?, IpAddr::V6(l.ip_address)))),
                ),
            }
        }
        out
    }
}

/// Resolves when any of `subs` records a lease; never when there is none.
pub async fn any_recorded<'a>(subs: impl Iterator<Item = &'a mut LeaseNames>) {
    let waits: Vec<_> = subs.map(|l| Box::pin(l.recorded())).collect();
    if waits.is_empty() {
        std::future::pending::<()>().await;
    }
    select_all(waits).await;
}
