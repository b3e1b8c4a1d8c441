//! A network's life in the kernel: start, destroy, and adoption by a restarted kvnetd.
//! The lifecycle owns what a running network holds — its dataplane objects, its guest
//! services, its share of the host-wide sysctls, its background teardown — and takes
//! the registry and the ports from its caller.
//!
//! Crash safety: a start writes the network's status record and the sysctls it will
//! change before the kernel is touched, so a kvnetd killed mid-start finds the network
//! at its next start and completes it (adopt adds what is missing) instead of leaving an
//! orphan bridge; a destroy keeps the record, marked stopping, until the teardown is
//! done.

mod dnsreg;
mod fabric;
pub mod foreignwatch;
pub mod fwrepair;
mod ports;
pub mod sysctls;
pub mod teardown;

use crate::dataplane::{Dataplane, checks};
use crate::events;
use crate::forwards::Forwarder;
use crate::ids::now;
use crate::nethooks;
use crate::nssindex::NssIndex;
use crate::paths::Paths;
use crate::portfilter::PortFilter;
use crate::ports::{PortRec, Ports};
use crate::registry::Registry;
use crate::services::Services;
use crate::store::{self, status};
use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use kvnet_api::EventKind;
use kvnet_host::nftwatch::NftWatcher;
use kvnet_model::Network;
use sysctls::{HostSysctls, Ledger};
use teardown::{Job, Teardown};
use tracing::{debug, error, info, warn};

use crate::ports::SYSFS;
use ports::{direct_checks, vlan_checks};

pub struct Lifecycle {
    paths: Paths,
    dp: Dataplane,
    services: Services,
    /// The host's index of guest names (the NSS module's).
    nss: NssIndex,
    /// Port forwards, kept pointing at their guests.
    forwards: Forwarder,
    /// Anti-spoofing of guest ports, kept in step with ports and leases.
    filter: PortFilter,
    sysctls: Ledger,
    teardown: Teardown,
    /// Subscribed before the firewall is reconciled at start, so no change is missed;
    /// handed to the repair task once the firewall knows the active networks.
    fw_watch: Option<NftWatcher>,
    fw_repair: Option<tokio::task::JoinHandle<()>>,
    foreign_watch: Option<tokio::task::JoinHandle<()>>,
}

/// The forwarding sysctls the active networks other than `except` need.
fn needed_sysctls(reg: &Registry, except: &str) -> Vec<&'static str> {
    reg.active()
        .into_iter()
        .filter(|n| n.name != except)
        .flat_map(checks::forwarding_sysctls)
        .collect()
}

impl Lifecycle {
    pub fn new(paths: &Paths, dp: Dataplane) -> Result<Lifecycle> {
        let fw_watch = NftWatcher::open()
            .inspect_err(|e| {
                warn!("{e}: kvnet's table will not be repaired when someone else changes it")
            })
            .ok();
        Ok(Lifecycle {
            fw_watch,
            fw_repair: None,
            foreign_watch: None,
            teardown: Teardown::spawn(dp.fw().clone())?,
            sysctls: Ledger::load(paths),
            services: Services::new(paths.clone()),
            nss: NssIndex::spawn(paths.nss_index()),
            forwards: Forwarder::spawn(dp.fw().clone()),
            filter: PortFilter::spawn(dp.fw().table().to_string()),
            paths: paths.clone(),
            dp,
        })
    }

    /// The daemon's netlink socket, for the verbs on links (ports, iface-bridge).
    pub fn nl(&self) -> &kvnet_host::Netlink {
        self.dp.nl()
    }

    /// The kernel side, for the doctor.
    pub fn dp(&self) -> &Dataplane {
        &self.dp
    }

    /// How many leases the running networks' services hold.
    pub fn lease_count(&self) -> usize {
        self.services.lease_count()
    }

    /// What network `name`'s running services counted.
    pub fn service_stats(&self, name: &str) -> Vec<crate::services::ServiceStats> {
        self.services.stats(name)
    }

    /// The leases of `net`, from its running services or their journals.
    pub fn leases(&self, net: &Network) -> Result<Vec<kvnet_api::Lease>> {
        self.services.leases(net)
    }

    /// At daemon start: take over the networks a previous kvnetd left running, finish
    /// interrupted teardowns, clean up networks whose bridge vanished meanwhile, then
    /// bring the firewall, the guest services and the ports up to date. An unreadable
    /// status record is quarantined and its network stopped (see
    /// [`Lifecycle::stop_unrecorded`]).
    pub async fn adopt_all(&mut self, reg: &mut Registry, ports: &mut Ports) -> Result<()> {
        let mut unrecorded = Vec::new();
        // Networks stopped here: their sysctls go back, and their records go, only once
        // every running network is adopted (before, the ledger would see none running
        // and restore what they need).
        let mut stopped = Vec::new();
        for (name, st) in status::load_all(&self.paths)? {
            let parsed = st.and_then(|st| {
                let live = Network::from_xml(&st.live_xml)
                    .map_err(|e| anyhow!("its XML no longer parses: {e}"))?;
                Ok((st, live))
            });
            let (st, live) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    let why = format!("unreadable status of network '{name}': {e:#}");
                    store::quarantine(&self.paths.status(&name), &why);
                    unrecorded.push(name);
                    continue;
                }
            };
            if st.stopping {
                // The previous daemon died during this network's background teardown.
                match self.dp.stop(&live, st.owns_bridge).await {
                    Ok(()) => info!(network = %name, "finished an interrupted teardown"),
                    Err(e) => warn!(network = %name, "finishing an interrupted teardown: {e:#}"),
                }
                stopped.push((live, st.transient));
                continue;
            }
            // Adopting may turn forwarding on again (a destroy killed after it put the
            // sysctls back): through the ledger, as a start does.
            if let Err(e) = self
                .sysctls
                .reserve(&HostSysctls, &checks::forwarding_sysctls(&live))
            {
                warn!(network = %name, "sysctl ledger: {e:#}");
            }
            match self.dp.adopt(&live, st.owns_bridge).await {
                Ok(true) => {
                    info!(network = %name, event = "adopted", "adopted running network");
                    reg.adopt(live, &st);
                }
                Ok(false) => {
                    warn!(network = %name, "bridge vanished while kvnetd was down: network cleaned up and marked inactive");
                    if let Err(e) = self.dp.stop(&live, st.owns_bridge).await {
                        warn!(network = %name, "cleanup: {e:#}");
                    }
                    stopped.push((live, st.transient));
                }
                Err(e) => {
                    error!(network = %name, "adopting failed, left as it is: {e:#}");
                    reg.adopt(live, &st);
                }
            }
            if !st.transient && reg.get(&name).is_ok_and(|o| o.def.is_none()) {
                warn!(network = %name, "adopted without a definition (none was loaded): it is transient now");
            }
        }
        for (net, transient) in &stopped {
            for e in self.release_sysctls(reg, net) {
                warn!(network = %net.name, "{e}");
            }
            // A transient network is gone with its stop: so are its ports (a destroy
            // killed before it dropped them). Not if it was defined since.
            if *transient && reg.get(&net.name).is_err() {
                ports.drop_network(self.dp.nl(), &net.name).await;
            }
            status::remove(&self.paths, &net.name)?;
        }
        // After the adoptions: a bridge an adopted network runs on is never touched.
        for name in unrecorded {
            self.stop_unrecorded(reg, &name).await;
        }
        let active = reg.active();
        self.dp.fw().reconcile_at_start(&self.paths, &active);
        if let Some(w) = self.fw_watch.take() {
            self.fw_repair = Some(fwrepair::spawn(w, self.dp.fw().clone()));
        }
        self.dp.foreign().adopt(&active).await;
        self.foreign_watch = foreignwatch::spawn(self.dp.foreign().clone()).await;
        self.services.set_local_addrs(active.iter().copied());
        let names: Vec<String> = active.iter().map(|n| n.name.clone()).collect();
        for net in active {
            match fabric::dhcp_slice(self.dp.nl(), &self.paths, net).await {
                Ok((slice, w)) => {
                    self.services.set_slice(&net.name, slice);
                    if let Some(w) = w {
                        warn!("{w}");
                    }
                }
                Err(e) => error!(network = %net.name, "DHCP not sliced: {e:#}"),
            }
            for w in self.services.start(net) {
                error!("{w}");
            }
            self.nss.set(net, self.services.lease_names(&net.name));
            if let Err(e) = self.forwards.set(net, self.services.lease_names(&net.name)) {
                error!(network = %net.name, "port forwards not installed: {e:#}");
            }
            let recs = ports.recs(&net.name).to_vec();
            let leases = self.services.lease_names(&net.name);
            if let Err(e) = self.filter.set(net, Some(recs), leases).await {
                error!(network = %net.name, "port filter not applied: {e:#}");
            }
            // resolved may have restarted meanwhile; registering again changes nothing.
            if let Some(w) = dnsreg::register(self.dp.nl(), net).await {
                warn!(network = %net.name, "{w}");
            }
        }
        self.nss.ready();
        if let Err(e) = self.filter.ready().await {
            error!("port filter not applied: {e:#}");
        }
        // A verb killed midway may have left a port off its bridge (a destroy, before
        // its record said so) or its TAP deleted (a port-delete, before unregistering
        // it); what is in place is left alone.
        for name in names {
            for w in self.replug(reg, ports, &name).await {
                warn!("{w}");
            }
        }
        Ok(())
    }

    /// A network whose status record was unreadable: without the record it cannot be
    /// adopted, and left alone its bridge would be an orphan. Its name is the file's; if
    /// a definition of that name exists, it names the bridge and rules to remove (the
    /// firewall is rebuilt for the adopted networks anyway). Without one, nothing tells
    /// which bridge was its: that is logged.
    async fn stop_unrecorded(&mut self, reg: &Registry, name: &str) {
        let Some(def) = reg.get(name).ok().and_then(|o| o.def.clone()) else {
            error!(network = %name, "no definition tells which bridge it ran on: check `ip link` for one left behind");
            return;
        };
        // Only a bridge (not a link that took the name since) no adopted network runs on.
        let is_bridge = matches!(self.dp.bridge_link(&def).await, Ok(Some(l)) if l.kind.as_deref() == Some("bridge"));
        let owns = def.profile().owns_bridge()
            && is_bridge
            && def
                .bridge_name()
                .is_none_or(|br| reg.by_bridge(br).is_none());
        let res = self.dp.stop(&def, owns).await;
        for e in self.release_sysctls(reg, &def) {
            warn!(network = %name, "{e}");
        }
        match res {
            Ok(()) => {
                error!(network = %name, "stopped, as its definition describes it, for want of a status record: start it again with `kvnet net-start {name}`")
            }
            Err(e) => error!(network = %name, "stopping it for want of a status record: {e:#}"),
        }
    }

    fn release_sysctls(&mut self, reg: &Registry, net: &Network) -> Vec<String> {
        let needed = needed_sysctls(reg, &net.name);
        self.sysctls
            .release(&HostSysctls, &checks::forwarding_sysctls(net), &needed)
    }

    /// Start `net`, which the registry knows (defined, or created as transient).
    /// Returns the warnings the user must see.
    pub async fn start(
        &mut self,
        reg: &mut Registry,
        ports: &mut Ports,
        net: Network,
    ) -> Result<Vec<String>> {
        let t0 = std::time::Instant::now();
        let name = net.name.clone();
        let mut net = net;
        // An overlay's guests get the MTU that fits in the underlay with VXLAN's headers
        // (the bridge, DHCP's option 26 and the live XML all say it).
        if let Some(o) = crate::dataplane::overlay::of(&net) {
            let u = crate::dataplane::overlay::underlay(self.dp.nl(), &o)
                .await
                .map_err(|e| anyhow!("cannot start network '{name}': overlay: {e:#}"))?;
            let mtu = u
                .guest_mtu(&o, net.mtu)
                .map_err(|e| anyhow!("cannot start network '{name}': overlay: {e}"))?;
            net.mtu = Some(mtu);
        }
        // Before anything changes: a fabric that does not list this host refuses it.
        let (slice, slice_warning) = fabric::dhcp_slice(self.dp.nl(), &self.paths, &net)
            .await
            .map_err(|e| anyhow!("cannot start network '{name}': {e:#}"))?;
        let direct_warnings = direct_checks(&net, std::path::Path::new(SYSFS), self.dp.nl())
            .await
            .map_err(|e| anyhow!("cannot start network '{name}': {e}"))?;
        // A network being torn down in the background may still hold this bridge name
        // or these subnets (in the kernel and in the firewall maps).
        let subnets: Vec<IpNet> = net.ips.iter().map(|ip| ip.network()).collect();
        self.teardown
            .settle(Some((net.bridge_name(), &subnets)))
            .await;
        // The bridge's name is looked up alone and the routes that overlap the subnets
        // come from the watcher's copy: reading the whole link or route table grows with
        // every network and would make the 1000th start slower than the 1st.
        let routes = self.dp.routes_overlapping(&subnets)?;
        let bridge_link = self.dp.bridge_link(&net).await?;
        checks::check_start(
            &net,
            &reg.active_conflicts(&net),
            &routes,
            bridge_link.as_ref(),
        )
        .map_err(|e| anyhow!("cannot start network '{name}': {e}"))?;
        vlan_checks(&net, bridge_link.as_ref())
            .map_err(|e| anyhow!("cannot start network '{name}': {e}"))?;
        if nethooks::any() {
            nethooks::start_begin(&name, &net.to_xml())
                .await
                .with_context(|| format!("cannot start network '{name}'"))?;
        }
        let t_checks = t0.elapsed();
        // Written ahead: see the module docs.
        let started = now();
        let keys = checks::forwarding_sysctls(&net);
        status::save(&self.paths, &name, &reg.starting_status(&net, started))
            .and_then(|()| self.sysctls.reserve(&HostSysctls, &keys))
            .inspect_err(|_| {
                let _ = status::remove(&self.paths, &name);
            })
            .with_context(|| format!("cannot start network '{name}'"))?;
        let t_status = t0.elapsed();
        let foreign_warnings = match self.dp.start(&net).await {
            Ok(w) => w,
            Err(e) => {
                for e in self.release_sysctls(reg, &net) {
                    warn!(network = %name, "rollback: {e}");
                }
                let _ = status::remove(&self.paths, &name);
                return Err(e.context(format!("cannot start network '{name}'")));
            }
        };
        debug!(
            network = %name,
            "checks {t_checks:?}, status {:?}, kernel and firewall {:?}",
            t_status - t_checks,
            t0.elapsed() - t_status
        );
        let mut warnings: Vec<String> = net
            .not_applied()
            .into_iter()
            .map(|w| format!("network '{name}': {w} is accepted but not applied by kvnet yet"))
            .chain(foreign_warnings)
            .chain(direct_warnings)
            .collect();
        let t_net = t0.elapsed();
        reg.started(net.clone(), started)?;
        self.services.set_slice(&name, slice);
        warnings.extend(slice_warning);
        self.services.local_addrs_of(&net, true);
        warnings.extend(self.services.start(&net));
        self.nss.set(&net, self.services.lease_names(&name));
        if let Err(e) = self.forwards.set(&net, self.services.lease_names(&name)) {
            warnings.push(format!("port forwards not installed: {e:#}"));
        }
        let t_services = t0.elapsed();
        // Before the ports are plugged, so none sends unfiltered.
        let recs = ports.recs(&name).to_vec();
        if let Err(e) = self
            .filter
            .set(&net, Some(recs), self.services.lease_names(&name))
            .await
        {
            warnings.push(format!("port filter not applied: {e:#}"));
        }
        let t_filter = t0.elapsed();
        warnings.extend(self.replug(reg, ports, &name).await);
        warnings.extend(dnsreg::register(self.dp.nl(), &net).await);
        debug!(
            network = %name,
            "services {:?}, port filter {:?}, ports {:?}",
            t_services - t_net,
            t_filter - t_services,
            t0.elapsed() - t_filter
        );
        crate::metrics::observe_start(t0.elapsed());
        info!(network = %name, event = "started", "started in {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
        events::emit(&name, EventKind::Lifecycle, "started", &[]);
        if nethooks::any() {
            nethooks::fire(&name, "started", "begin", net.to_xml(), Vec::new());
        }
        for w in &warnings {
            warn!("{w}");
        }
        Ok(warnings)
    }

    /// Stop a network. Traffic stops before this returns (bridge down); deleting the
    /// bridge and the rules, which costs the kernel RCU grace periods, finishes in the
    /// background unless `wait` is set.
    pub async fn destroy(
        &mut self,
        reg: &mut Registry,
        ports: &mut Ports,
        name: &str,
        wait: bool,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let live = reg.live(name)?.clone();
        let owns_bridge = reg.get(name)?.owns_bridge;
        // While the bridge and its ports are still up: the final RA withdraws the
        // guests' default route through us.
        self.services.stop(name);
        self.nss.remove(name);
        self.forwards.remove(name);
        if let Err(e) = self.filter.remove(name).await {
            warn!(network = %name, "port filter: {e:#}");
        }
        if let Some(w) = dnsreg::revert(self.dp.nl(), &live).await {
            warn!(network = %name, "{w}");
        }
        // Ports stay registered (persistent TAPs stay too) and return at the next start.
        let mut errors = match live.bridge_name() {
            Some(br) => ports.unplug(self.dp.nl(), name, br).await,
            None => ports.quiet(self.dp.nl(), name).await,
        };
        // The network's own shaping leaves its bridge (a host bridge stays) and IFB.
        if let Some(br) = live.bridge_name()
            && let Err(e) = crate::qos::unshape(self.dp.nl(), br).await
        {
            errors.push(format!("bandwidth of {br}: {e:#}"));
        }
        let (left, quiesce_errors) = self.dp.quiesce(&live, owns_bridge).await;
        errors.extend(self.dp.foreign().stop(&live).await);
        // A rebuild from now on leaves its rules out; the teardown removes them.
        self.dp.fw().forget(name);
        errors.extend(quiesce_errors);
        let (st, gone) = reg.stopped(name)?;
        events::emit(name, EventKind::Lifecycle, "stopped", &[]);
        if nethooks::any() {
            nethooks::fire(name, "stopped", "end", live.to_xml(), Vec::new());
        }
        errors.extend(self.release_sysctls(reg, &live));
        crate::hooks::kill_point("destroy:released");
        // The status stays, marked stopping, until the teardown is done: a daemon killed
        // meanwhile finishes it at its next start.
        status::save(&self.paths, name, &st)?;
        crate::hooks::kill_point("destroy:recorded");
        self.teardown.submit(Job {
            network: name.to_string(),
            firewall: left.firewall,
            bridge: left.bridge,
            subnets: live.ips.iter().map(|ip| ip.network()).collect(),
            status: self.paths.status(name),
        });
        if gone {
            ports.drop_network(self.dp.nl(), name).await;
        }
        self.services.local_addrs_of(&live, false);
        if wait {
            self.teardown.settle(None).await;
        }
        crate::metrics::observe_destroy(t0.elapsed());
        if errors.is_empty() {
            info!(network = %name, event = "destroyed", "destroyed");
            Ok(())
        } else {
            let e = errors.join("; ");
            error!(network = %name, "destroyed with errors: {e}");
            bail!("network '{name}' stopped, but cleanup was incomplete: {e}")
        }
    }

    /// Apply a net-update to a running network's kernel objects; its services follow
    /// with [`Lifecycle::sync_services`] once the registry has the new definition.
    pub fn update_live(&self, old: &Network, new: &Network) -> Result<()> {
        self.dp.fw().refresh(old, new)
    }

    pub async fn sync_services(&mut self, net: &Network) {
        self.services.sync(net);
        self.nss.set(net, self.services.lease_names(&net.name));
        if let Err(e) = self.forwards.set(net, self.services.lease_names(&net.name)) {
            error!(network = %net.name, "port forwards not installed: {e:#}");
        }
        let leases = self.services.lease_names(&net.name);
        if let Err(e) = self.filter.set(net, None, leases).await {
            error!(network = %net.name, "port filter not applied: {e:#}");
        }
    }

    /// Active network `network`'s registered ports changed: the filter follows now.
    pub async fn filter_ports(&self, network: &str, recs: &[PortRec]) -> Result<()> {
        self.filter.ports(network, recs.to_vec()).await
    }

    /// The live port filter table: learned MACs and drop counters, for port-list.
    pub async fn filter_installed(&self) -> Option<kvnet_firewall::portfilter::Installed> {
        self.filter.installed().await
    }

    /// `net`'s port forwards changed (live): resolved and installed now.
    pub fn sync_forwards(&self, net: &Network) -> Result<Vec<crate::forwards::resolve::Resolved>> {
        self.forwards.set(net, self.services.lease_names(&net.name))
    }

    /// Where forward `f` of active network `net` goes now.
    pub fn forward_guest(
        &self,
        net: &Network,
        f: &kvnet_model::PortForward,
    ) -> Option<std::net::IpAddr> {
        let leases = crate::forwards::guests(self.services.lease_names(&net.name).as_ref());
        crate::forwards::resolve::guest_address(net, f, &leases)
    }

    /// `name`'s port forwards as last resolved.
    pub fn resolved_forwards(&self, name: &str) -> Vec<crate::forwards::resolve::Resolved> {
        self.forwards.resolved(name)
    }

    /// At daemon shutdown: finish queued teardowns, then record the firewall as this
    /// daemon leaves it, for the next one. Networks keep running.
    pub fn shutdown(&mut self, reg: &Registry) {
        for t in [self.fw_repair.take(), self.foreign_watch.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
        self.teardown.drain();
        self.dp.fw().save_snapshot(&self.paths, &reg.active());
    }
}
