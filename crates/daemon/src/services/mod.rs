//! Guest services of a network — DHCPv4, DHCPv6, DNS, TFTP and router advertisements — each an
//! I/O shell around its sans-IO engine crate, all behind one interface, [`NetService`].
//! The lifecycle never names a service: it asks [`Services`] to start, sync or stop a
//! network's, and `Services` loops over [`KINDS`]. A network whose mode profile has
//! guest services gets every kind its definition asks for, in this order (DNS after
//! DHCPv4: guest names come from its leases), and loses them in reverse (RA first: its
//! final advertisement needs the bridge still up).
//!
//! To add a service: a module with a type implementing [`NetService`], and a row in
//! [`KINDS`].

mod dhcp4;
mod dhcp6;
mod dns;
mod journal;
mod leasenames;
mod ra;
mod tftp;

pub use leasenames::{LeaseNames, any_recorded};

use crate::paths::Paths;
use anyhow::Result;
use kvnet_api::Lease;
use kvnet_dns::LocalAddrs;
use kvnet_model::Network;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{info, warn};

/// What a service is started or reconfigured with.
pub struct Ctx<'a> {
    pub net: &'a Network,
    /// The network's bridge, where the service listens.
    pub bridge: &'a str,
    pub paths: &'a Paths,
    /// Guest names of the network's DHCPv4 leases, when it serves DHCPv4 (for DNS).
    pub lease_names: Option<LeaseNames>,
    /// Every address of the active networks (DNS never forwards to them).
    pub local_addrs: Arc<LocalAddrs>,
    /// The DHCPv4 sockets every network shares.
    pub dhcp4: &'a dhcp4::Hub,
    /// On an overlay network, this host's share of the DHCPv4 ranges (index, count).
    pub dhcp_slice: Option<(usize, usize)>,
}

/// One guest service of one network.
pub trait NetService: Send + Sync {
    /// How logs name the service, e.g. "DHCP server".
    fn what() -> &'static str
    where
        Self: Sized;

    /// Whether `net`'s definition asks for this service. Only asked of networks whose
    /// profile has guest services.
    fn wanted_for(net: &Network) -> bool
    where
        Self: Sized;

    /// Open the sockets and spawn the tasks. Needs a tokio runtime.
    fn start(ctx: &Ctx) -> Result<Self>
    where
        Self: Sized;

    /// Apply a live change of the definition (net-update).
    fn reconfigure(&self, ctx: &Ctx) -> Result<()>;

    /// Stop. Dropping a service ends its tasks; a service with something to say on its
    /// way out (the final RA) says it here.
    fn stop(self: Box<Self>) {}

    /// One line for the logs, e.g. "DHCP server on virbr0".
    fn status(&self) -> String;

    /// The leases the service holds now.
    fn leases(&self) -> Vec<Lease> {
        Vec::new()
    }

    /// The leases recorded for `net` while the service is not running.
    fn stored_leases(_paths: &Paths, _net: &Network) -> Result<Vec<Lease>>
    where
        Self: Sized,
    {
        Ok(Vec::new())
    }

    /// Guest names for the network's DNS.
    fn lease_names(&self) -> Option<LeaseNames> {
        None
    }

    /// What the service counted (metrics, net-stats).
    fn stats(&self) -> Option<ServiceStats> {
        None
    }
}

/// A service's counters, read at a scrape.
#[derive(Debug, Clone)]
pub enum ServiceStats {
    Dhcp {
        /// `v4` or `v6`.
        family: &'static str,
        stats: kvnet_dhcp::Stats,
        /// Leases bound now, and addresses the ranges hold.
        active: u64,
        pool: u64,
        journal: journal::JournalStats,
    },
    Dns(kvnet_dns::Stats),
}

/// A kind of service, as the loops over [`KINDS`] see it.
struct Kind {
    what: fn() -> &'static str,
    wanted_for: fn(&Network) -> bool,
    start: fn(&Ctx) -> Result<Box<dyn NetService>>,
    stored_leases: fn(&Paths, &Network) -> Result<Vec<Lease>>,
}

fn start_boxed<S: NetService + 'static>(ctx: &Ctx) -> Result<Box<dyn NetService>> {
    Ok(Box::new(S::start(ctx)?))
}

const fn kind<S: NetService + 'static>() -> Kind {
    Kind {
        what: S::what,
        wanted_for: S::wanted_for,
        start: start_boxed::<S>,
        stored_leases: S::stored_leases,
    }
}

/// Every service, in start order.
const KINDS: [Kind; 5] = [
    kind::<dhcp4::Dhcp4>(),
    kind::<dhcp6::Dhcp6>(),
    kind::<dns::Dns>(),
    kind::<tftp::Tftp>(),
    kind::<ra::Ra>(),
];

/// The services running on one network, by index in [`KINDS`].
type Running = [Option<Box<dyn NetService>>; KINDS.len()];

/// Lock a mutex shared with a service's tasks. Neither the engines nor the shells'
/// tables have invariants a panicking holder could break half-way, so a poisoned lock
/// is used as it is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The guest services of every active network.
pub struct Services {
    paths: Paths,
    nets: BTreeMap<String, Running>,
    local_addrs: Arc<LocalAddrs>,
    dhcp4: dhcp4::Hub,
    /// Overlay networks' DHCP slices ([`Ctx::dhcp_slice`]), by network.
    slices: BTreeMap<String, (usize, usize)>,
}

impl Services {
    pub fn new(paths: Paths) -> Services {
        Services {
            paths,
            nets: BTreeMap::new(),
            local_addrs: Arc::default(),
            dhcp4: dhcp4::Hub::default(),
            slices: BTreeMap::new(),
        }
    }

    /// Network `name`'s DHCP slice for its next start or reconfiguration.
    pub fn set_slice(&mut self, name: &str, slice: Option<(usize, usize)>) {
        match slice {
            Some(s) => self.slices.insert(name.to_string(), s),
            None => self.slices.remove(name),
        };
    }

    fn ctx<'a>(&'a self, net: &'a Network, bridge: &'a str, running: &Running) -> Ctx<'a> {
        Ctx {
            net,
            bridge,
            paths: &self.paths,
            lease_names: running
                .iter()
                .flatten()
                .filter_map(|s| s.lease_names())
                .reduce(LeaseNames::merge),
            local_addrs: Arc::clone(&self.local_addrs),
            dhcp4: &self.dhcp4,
            dhcp_slice: self.slices.get(&net.name).copied(),
        }
    }

    /// The kinds `net` gets: none unless its profile has guest services on a bridge.
    fn wanted(net: &Network) -> Option<(&str, [bool; KINDS.len()])> {
        let bridge = net.bridge_name().filter(|_| net.profile().guest_services)?;
        Some((bridge, KINDS.map(|k| (k.wanted_for)(net))))
    }

    /// Start every service `net` asks for. A service that fails leaves the network up
    /// without it; the failure comes back as a warning for the user.
    pub fn start(&mut self, net: &Network) -> Vec<String> {
        let mut running: Running = Default::default();
        let mut warnings = Vec::new();
        if let Some((bridge, wanted)) = Self::wanted(net) {
            for (i, k) in KINDS.iter().enumerate().filter(|(i, _)| wanted[*i]) {
                match (k.start)(&self.ctx(net, bridge, &running)) {
                    Ok(svc) => {
                        info!(network = %net.name, "{}", svc.status());
                        running[i] = Some(svc);
                    }
                    Err(e) => warnings.push(format!(
                        "network '{}': {} not started: {e:#}",
                        net.name,
                        (k.what)()
                    )),
                }
            }
        }
        self.nets.insert(net.name.clone(), running);
        warnings
    }

    /// After a live update: hand each running service the new definition, start the
    /// ones it now asks for, stop the ones it no longer does.
    pub fn sync(&mut self, net: &Network) {
        let mut running = self.nets.remove(&net.name).unwrap_or_default();
        let (bridge, wanted) = Self::wanted(net).unwrap_or(("", [false; KINDS.len()]));
        for (i, k) in KINDS.iter().enumerate() {
            let name = &net.name;
            match (running[i].take(), wanted[i]) {
                (Some(svc), true) => {
                    if let Err(e) = svc.reconfigure(&self.ctx(net, bridge, &running)) {
                        warn!(network = %name, "{} keeps its previous settings: {e:#}", (k.what)());
                    }
                    running[i] = Some(svc);
                }
                (Some(svc), false) => {
                    svc.stop();
                    info!(network = %name, "{} stopped", (k.what)());
                }
                (None, true) => match (k.start)(&self.ctx(net, bridge, &running)) {
                    Ok(svc) => {
                        info!(network = %name, "{}", svc.status());
                        running[i] = Some(svc);
                    }
                    Err(e) => warn!(network = %name, "{} not started: {e:#}", (k.what)()),
                },
                (None, false) => {}
            }
        }
        self.nets.insert(net.name.clone(), running);
    }

    /// Stop every service of network `name`, in reverse start order. Leases stay in
    /// their journals for the next start, as libvirt keeps them.
    pub fn stop(&mut self, name: &str) {
        let Some(running) = self.nets.remove(name) else {
            return;
        };
        for (k, svc) in KINDS.iter().zip(running).rev() {
            if let Some(svc) = svc {
                svc.stop();
                info!(network = %name, "{} stopped", (k.what)());
            }
        }
    }

    /// A fresh subscription to the names of network `name`'s DHCPv4 and DHCPv6 leases
    /// (the host's name index, `nssindex`; port forwards), when a DHCP service runs.
    pub fn lease_names(&self, name: &str) -> Option<LeaseNames> {
        self.nets
            .get(name)?
            .iter()
            .flatten()
            .filter_map(|s| s.lease_names())
            .reduce(LeaseNames::merge)
    }

    /// The addresses of all active networks, which every DNS engine shares.
    pub fn set_local_addrs<'a>(&self, active: impl IntoIterator<Item = &'a Network>) {
        self.local_addrs.replace(
            active
                .into_iter()
                .flat_map(|n| n.ips.iter().map(|ip| ip.address)),
        );
    }

    /// `net` started (`up`) or stopped: its addresses join or leave the shared set.
    pub fn local_addrs_of(&self, net: &Network, up: bool) {
        let addrs = net.ips.iter().map(|ip| ip.address);
        if up {
            self.local_addrs.add(addrs);
        } else {
            self.local_addrs.remove(addrs);
        }
    }

    /// The counters of network `name`'s running services.
    pub fn stats(&self, name: &str) -> Vec<ServiceStats> {
        self.nets
            .get(name)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|s| s.stats())
            .collect()
    }

    /// How many leases the running services hold, all networks together.
    pub fn lease_count(&self) -> usize {
        self.nets
            .values()
            .flatten()
            .flatten()
            .map(|svc| svc.leases().len())
            .sum()
    }

    /// The leases of `net`, IPv4 then IPv6: from its running services, else from their
    /// journals.
    pub fn leases(&self, net: &Network) -> Result<Vec<Lease>> {
        let running = self.nets.get(&net.name);
        let mut out = Vec::new();
        let Some((_, wanted)) = Self::wanted(net) else {
            return Ok(out);
        };
        for (i, k) in KINDS.iter().enumerate() {
            match running.and_then(|r| r[i].as_ref()) {
                Some(svc) => out.extend(svc.leases()),
                None if wanted[i] => out.extend((k.stored_leases)(&self.paths, net)?),
                None => {}
            }
        }
        Ok(out)
    }
}
