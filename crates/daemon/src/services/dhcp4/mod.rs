//! The DHCPv4 service of a started network: the I/O shell around the sans-IO engine in
//! `kvnet_dhcp` (socket, lease journal, clock, timers). See crates/dhcp/src/lib.rs for
//! the contract this shell keeps.
//!
//! The sockets are the [`hub`]'s, shared by every network: one UDP socket on 0.0.0.0:67
//! whose datagrams go to the network of the bridge they arrived on, so a request is
//! answered only by that network.
//!
//! Checksums: a reply sent through the kernel's UDP socket on the bridge leaves with its
//! UDP checksum only partly computed (CHECKSUM_PARTIAL, the bridge offloads it), and a
//! veth or TAP port hands it on like that. A client reading from a packet socket sees a
//! wrong checksum unless it asks the kernel (PACKET_AUXDATA) whether it was offloaded:
//! busybox udhcpc and ISC dhclient 4.4 do, older clients drop the reply, which is why
//! libvirt has the checksum of DHCP replies filled in on the bridge. kvnet sends replies
//! through a raw IPv4 socket instead, with the UDP checksum computed, so every reply
//! carries a complete checksum; without CAP_NET_RAW it falls back to the UDP socket.

mod hub;
mod probe;
mod task;

pub use hub::Hub;

use super::journal::{self, Journal};
use super::{Ctx, LeaseNames, NetService, lock};
use crate::ids::now;
use crate::paths::Paths;
use anyhow::{Context, Result, anyhow};
use kvnet_api::Lease;
use kvnet_dhcp::{Config, LeaseView, Server};
use kvnet_model::Network;
use std::net::{IpAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// The `<ip>` kvnet serves DHCP on: the first IPv4 one with `<dhcp>` (libvirt allows
/// only one).
fn ip_index(net: &Network) -> Option<usize> {
    net.ips
        .iter()
        .position(|ip| !ip.is_ipv6() && ip.dhcp.is_some())
}

fn config(net: &Network, slice: Option<(usize, usize)>) -> Result<Config> {
    let idx = ip_index(net).context("the network has no IPv4 <dhcp>")?;
    let cfg = Config::from_network(net, idx, net.profile().guests)
        .map_err(|e| anyhow!("DHCP config: {e}"))?;
    Ok(match slice {
        Some((i, n)) => cfg.slice(i, n),
        None => cfg,
    })
}

/// A running DHCPv4 service; dropping it stops the task (the journal stays).
pub struct Dhcp4 {
    bridge: String,
    server: Arc<Mutex<Server>>,
    journal: Arc<Mutex<journal::JournalStats>>,
    /// Bumped whenever a lease is recorded, for the DNS service's guest names.
    changed: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Drop for Dhcp4 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn api_lease(l: LeaseView) -> Lease {
    Lease {
        expiry_time: l.expiry_time,
        mac_address: Some(l.mac_address.to_string()),
        ip_address: IpAddr::V4(l.ip_address),
        prefix: l.prefix,
        hostname: l.hostname,
        client_id: l.client_id,
        iaid: None,
    }
}

impl NetService for Dhcp4 {
    fn what() -> &'static str {
        "DHCP server"
    }

    fn wanted_for(net: &Network) -> bool {
        ip_index(net).is_some()
    }

    /// Replay and compact the journal, open the sockets on the bridge, spawn the task.
    fn start(ctx: &Ctx) -> Result<Dhcp4> {
        let (net, bridge) = (ctx.net, ctx.bridge);
        let cfg = config(net, ctx.dhcp_slice)?;
        let (table, journal) = Journal::open(
            &ctx.paths.lease_journal(&net.name),
            kvnet_dhcp::replay,
            kvnet_dhcp::compact,
        )?;
        let ifindex =
            nix::net::if_::if_nametoindex(bridge).with_context(|| format!("bridge {bridge}"))?;
        let port = ctx.dhcp4.register(bridge, ifindex)?;
        if !port.arp() {
            warn!(network = %net.name, "no address-conflict detection on {bridge}");
        }
        let src = SocketAddrV4::new(cfg.server_ip, 67);
        let server = Arc::new(Mutex::new(Server::new(cfg, table)));
        let (changed, _) = watch::channel(());
        let journal_stats = journal.stats();
        let task = tokio::spawn(
            task::Task {
                name: net.name.clone(),
                src,
                prober: port.arp().then(|| probe::Prober::new(bridge)),
                port,
                server: server.clone(),
                journal,
                changed: changed.clone(),
            }
            .run(),
        );
        Ok(Dhcp4 {
            bridge: bridge.to_string(),
            server,
            journal: journal_stats,
            changed,
            task,
        })
    }

    /// A live change of the definition (net-update of hosts or ranges).
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let cfg = config(ctx.net, ctx.dhcp_slice)?;
        lock(&self.server).reconfigure(cfg);
        Ok(())
    }

    fn status(&self) -> String {
        format!("DHCP server on {}", self.bridge)
    }

    fn leases(&self) -> Vec<Lease> {
        lock(&self.server)
            .leases(now())
            .into_iter()
            .map(api_lease)
            .collect()
    }

    fn stored_leases(paths: &Paths, net: &Network) -> Result<Vec<Lease>> {
        let (table, _) = journal::load(&paths.lease_journal(&net.name), kvnet_dhcp::replay)?;
        let leases = Server::new(config(net, None)?, table).leases(now());
        Ok(leases.into_iter().map(api_lease).collect())
    }

    fn lease_names(&self) -> Option<LeaseNames> {
        Some(LeaseNames::v4(self.server.clone(), &self.changed))
    }

    fn stats(&self) -> Option<super::ServiceStats> {
        let (stats, active, pool) = {
            let s = lock(&self.server);
            let pool: u64 = s
                .config()
                .ranges
                .iter()
                .map(|r| {
                    u64::from(u32::from(r.end)).saturating_sub(u64::from(u32::from(r.start))) + 1
                })
                .sum();
            (s.stats().clone(), s.active_leases(now()) as u64, pool)
        };
        Some(super::ServiceStats::Dhcp {
            family: "v4",
            stats,
            active,
            pool,
            journal: lock(&self.journal).clone(),
        })
    }
}
