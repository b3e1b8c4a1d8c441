//! The daemon's view of every network (defined, active, transient) and the verbs that
//! change it. One request at a time: the server holds the manager behind a mutex, so a
//! verb sees and leaves a consistent state.

use crate::dataplane::{self, Dataplane};
use crate::dhcp;
use crate::dhcp6;
use crate::dns;
use crate::paths::Paths;
use crate::ra;
use crate::teardown::{Job, Reaper};
use crate::{plan, ports, store};
use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use kvnet_api::{NetSummary, Reply, Request};
use kvnet_model::{MacAddr, Network, UpdateCommand, UpdateSection, apply_update};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

pub struct NetObj {
    /// The persistent definition; None for a transient network.
    pub def: Option<Network>,
    /// The definition it runs with; Some while active.
    pub live: Option<Network>,
    pub owns_bridge: bool,
    pub autostart: bool,
}

/// A net-update request: libvirt's command and section names, the XML fragment, and
/// which definitions to change (neither live nor config = virsh's --current).
#[derive(Clone, Copy)]
pub struct UpdateArgs<'a> {
    pub cmd: &'a str,
    pub section: &'a str,
    pub xml: &'a str,
    pub parent_index: Option<usize>,
    pub live: bool,
    pub config: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FirewallSnapshot {
    networks: Vec<String>,
    listing: String,
}

/// A stopped network whose bridge and rules are still being removed.
pub struct Pending {
    bridge: Option<String>,
    subnets: Vec<IpNet>,
    done: oneshot::Receiver<()>,
}

pub struct Manager {
    pub paths: Paths,
    pub dp: Dataplane,
    reaper: Reaper,
    pending: Vec<Pending>,
    pub nets: BTreeMap<String, NetObj>,
    sysctl_orig: BTreeMap<String, String>,
    /// DHCP services of active networks, by network name.
    dhcp: BTreeMap<String, dhcp::Service>,
    /// DHCPv6 services of active networks with an IPv6 `<dhcp>`, by network name.
    dhcp6: BTreeMap<String, dhcp6::Service>,
    /// DNS services of active networks, by network name.
    dns: BTreeMap<String, dns::Service>,
    /// Router advertisement services of active networks with IPv6, by network name.
    ra: BTreeMap<String, ra::Service>,
    /// Registered guest ports, by network name (ports.rs).
    pub(crate) ports: BTreeMap<String, Vec<ports::PortRec>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn entropy() -> impl FnMut() -> u64 {
    || uuid::Uuid::new_v4().as_u64_pair().0
}

impl Manager {
    /// Load definitions and status, adopt running networks, define `default` on first
    /// start and run autostart once per boot.
    pub async fn init(paths: Paths, dp: Dataplane) -> Result<Manager> {
        store::ensure_dirs(&paths)?;
        let reaper = Reaper::spawn(dp.table.clone())?;
        let mut m = Manager {
            sysctl_orig: store::load_sysctl_orig(&paths),
            paths,
            dp,
            reaper,
            pending: Vec::new(),
            nets: BTreeMap::new(),
            dhcp: BTreeMap::new(),
            dhcp6: BTreeMap::new(),
            dns: BTreeMap::new(),
            ra: BTreeMap::new(),
            ports: BTreeMap::new(),
        };
        m.ports = ports::load_all(&m.paths)?;
        for (file_name, text) in store::load_definitions(&m.paths)? {
            match Network::from_xml(&text) {
                Ok(net) if net.name == file_name => {
                    let autostart = store::is_autostart(&m.paths, &net.name);
                    m.nets.insert(
                        net.name.clone(),
                        NetObj {
                            def: Some(net),
                            live: None,
                            owns_bridge: false,
                            autostart,
                        },
                    );
                }
                Ok(net) => error!(
                    "skipping {}: it defines network '{}'",
                    m.paths.definition(&file_name).display(),
                    net.name
                ),
                Err(e) => error!("skipping {}: {e}", m.paths.definition(&file_name).display()),
            }
        }
        m.adopt_running().await?;
        if !m.paths.default_defined_marker().exists() {
            m.define_default().await?;
        }
        if !m.paths.autostarted_marker().exists() {
            m.autostart_all().await;
            store::write_atomic(
                &m.paths.autostarted_marker(),
                b"",
                0o600,
                store::Durability::Runtime,
            )?;
        }
        Ok(m)
    }

    async fn adopt_running(&mut self) -> Result<()> {
        for (name, st) in store::load_statuses(&self.paths)? {
            let st = match st {
                Ok(st) => st,
                Err(e) => {
                    error!("dropping unreadable status of network '{name}': {e:#}");
                    store::remove_if_exists(&self.paths.status(&name))?;
                    continue;
                }
            };
            let live = match Network::from_xml(&st.live_xml) {
                Ok(n) => n,
                Err(e) => {
                    error!("dropping status of network '{name}': its XML no longer parses: {e}");
                    store::remove_if_exists(&self.paths.status(&name))?;
                    continue;
                }
            };
            if st.stopping {
                // The previous daemon died during this network's background teardown.
                let mut orig = std::mem::take(&mut self.sysctl_orig);
                let res = self.dp.stop(&live, st.owns_bridge, &[], &mut orig).await;
                self.sysctl_orig = orig;
                match res {
                    Ok(()) => info!(network = %name, "finished an interrupted teardown"),
                    Err(e) => warn!(network = %name, "finishing an interrupted teardown: {e:#}"),
                }
                store::remove_if_exists(&self.paths.status(&name))?;
                continue;
            }
            match self.dp.adopt(&live, st.owns_bridge).await {
                Ok(true) => {
                    info!(network = %name, "adopted running network");
                    let obj = self.nets.entry(name.clone()).or_insert(NetObj {
                        def: None,
                        live: None,
                        owns_bridge: false,
                        autostart: false,
                    });
                    if st.transient {
                        obj.def = None;
                    }
                    obj.live = Some(live);
                    obj.owns_bridge = st.owns_bridge;
                }
                Ok(false) => {
                    warn!(network = %name, "bridge vanished while kvnetd was down: network cleaned up and marked inactive");
                    let needed = self.needed_sysctls(&name);
                    let mut orig = std::mem::take(&mut self.sysctl_orig);
                    if let Err(e) = self
                        .dp
                        .stop(&live, st.owns_bridge, &needed, &mut orig)
                        .await
                    {
                        warn!(network = %name, "cleanup: {e:#}");
                    }
                    self.sysctl_orig = orig;
                    store::remove_if_exists(&self.paths.status(&name))?;
                }
                Err(e) => {
                    error!(network = %name, "adopting failed, left as it is: {e:#}");
                    let obj = self.nets.entry(name.clone()).or_insert(NetObj {
                        def: None,
                        live: None,
                        owns_bridge: false,
                        autostart: false,
                    });
                    obj.live = Some(live);
                    obj.owns_bridge = st.owns_bridge;
                }
            }
        }
        store::save_sysctl_orig(&self.paths, &self.sysctl_orig)?;
        self.reconcile_firewall_at_start();
        let live: Vec<Network> = self.active().into_iter().cloned().collect();
        for net in &live {
            let mut warnings: Vec<String> = self.start_dhcp(net).into_iter().collect();
            warnings.extend(self.start_dns(net));
            warnings.extend(self.start_ra(net));
            for w in warnings {
                error!("{w}");
            }
        }
        self.sync_local_addrs();
        Ok(())
    }

    /// Serve DNS on `net` unless its DNS is disabled. Like DHCP, a failure leaves the
    /// network up and is returned as a warning. Call after start_dhcp: guest names come
    /// from its leases.
    fn start_dns(&mut self, net: &Network) -> Option<String> {
        let br = plan::bridge_name(net).filter(|_| net.profile().owns_bridge())?;
        let leases = self.dhcp.get(&net.name).map(dhcp::Service::lease_names);
        let local = dns::local_addrs(self.active().into_iter().chain([net]));
        match dns::Service::start(net, br, leases, local) {
            Ok(Some(svc)) => {
                info!(network = %net.name, "DNS server on {br}");
                self.dns.insert(net.name.clone(), svc);
                None
            }
            Ok(None) => None,
            Err(e) => Some(format!(
                "network '{}': DNS server not started: {e:#}",
                net.name
            )),
        }
    }

    /// After a live update: hand the DNS server its new records and static hosts (and
    /// the DHCP service, which the update may have restarted), or start or stop it.
    fn sync_dns(&mut self, net: &Network) {
        let name = &net.name;
        match (self.dns.get(name), dns::enabled(net)) {
            (Some(svc), true) => {
                let leases = self.dhcp.get(name).map(dhcp::Service::lease_names);
                if let Err(e) = svc.reconfigure(net, leases) {
                    warn!(network = %name, "DNS server keeps its previous settings: {e:#}");
                }
            }
            (Some(_), false) => {
                self.dns.remove(name);
                info!(network = %name, "DNS server stopped");
            }
            (None, true) => {
                if let Some(w) = self.start_dns(net) {
                    warn!("{w}");
                }
                self.sync_local_addrs();
            }
            (None, false) => {}
        }
    }

    /// Send router advertisements on `net` if it has IPv6 addresses. Like DHCP, a
    /// failure leaves the network up and is returned as a warning.
    fn start_ra(&mut self, net: &Network) -> Option<String> {
        let br = plan::bridge_name(net).filter(|_| net.profile().owns_bridge())?;
        match ra::Service::start(net, br) {
            Ok(Some(svc)) => {
                info!(network = %net.name, "router advertisements on {br}");
                self.ra.insert(net.name.clone(), svc);
                None
            }
            Ok(None) => None,
            Err(e) => Some(format!(
                "network '{}': router advertisements not started: {e:#}",
                net.name
            )),
        }
    }

    /// After a live update: hand the RA service the new definition, or start it, or
    /// stop it (with a final RA) when the update removed the last IPv6 address.
    fn sync_ra(&mut self, net: &Network) {
        let name = &net.name;
        match (self.ra.get(name), ra::enabled(net)) {
            (Some(svc), true) => {
                if let Err(e) = svc.reconfigure(net) {
                    warn!(network = %name, "router advertisements keep their previous settings: {e:#}");
                }
            }
            (Some(_), false) => {
                if let Some(svc) = self.ra.remove(name) {
                    svc.stop();
                }
                info!(network = %name, "router advertisements stopped");
            }
            (None, true) => {
                if let Some(w) = self.start_ra(net) {
                    warn!("{w}");
                }
            }
            (None, false) => {}
        }
    }

    /// Tell every DNS server the addresses of all active networks (never upstreams).
    fn sync_local_addrs(&self) {
        let addrs = dns::local_addrs(self.active());
        for svc in self.dns.values() {
            svc.set_local_addrs(Arc::clone(&addrs));
        }
    }

    /// Serve DHCP (v4 and v6) on `net` if it asks for it. A failure leaves the network
    /// up without that server and is returned as a warning for the user.
    fn start_dhcp(&mut self, net: &Network) -> Vec<String> {
        let Some(br) = plan::bridge_name(net).filter(|_| net.profile().owns_bridge()) else {
            return Vec::new();
        };
        let mut warnings = Vec::new();
        match dhcp::Service::start(&self.paths, net, br) {
            Ok(Some(svc)) => {
                info!(network = %net.name, "DHCP server on {br}");
                self.dhcp.insert(net.name.clone(), svc);
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "network '{}': DHCP server not started: {e:#}",
                net.name
            )),
        }
        warnings.extend(self.start_dhcp6(net, br));
        warnings
    }

    fn start_dhcp6(&mut self, net: &Network, br: &str) -> Option<String> {
        match dhcp6::Service::start(&self.paths, net, br) {
            Ok(Some(svc)) => {
                info!(network = %net.name, "DHCPv6 server on {br}");
                self.dhcp6.insert(net.name.clone(), svc);
                None
            }
            Ok(None) => None,
            Err(e) => Some(format!(
                "network '{}': DHCPv6 server not started: {e:#}",
                net.name
            )),
        }
    }

    /// After a live update: hand the DHCP servers their new hosts and ranges, or start or
    /// stop one when the update added or removed the network's IPv4 or IPv6 `<dhcp>`.
    fn sync_dhcp(&mut self, net: &Network) {
        let name = &net.name;
        match (self.dhcp.get(name), dhcp::ip_index(net)) {
            (Some(svc), Some(_)) => {
                if let Err(e) = svc.reconfigure(net) {
                    warn!(network = %name, "DHCP server keeps its previous settings: {e:#}");
                }
            }
            (Some(_), None) => {
                self.dhcp.remove(name);
                info!(network = %name, "DHCP server stopped");
            }
            (None, Some(_)) => {
                if let Some(br) = plan::bridge_name(net).filter(|_| net.profile().owns_bridge()) {
                    match dhcp::Service::start(&self.paths, net, br) {
                        Ok(Some(svc)) => {
                            info!(network = %name, "DHCP server on {br}");
                            self.dhcp.insert(name.clone(), svc);
                        }
                        Ok(None) => {}
                        Err(e) => warn!(network = %name, "DHCP server not started: {e:#}"),
                    }
                }
            }
            (None, None) => {}
        }
        match (self.dhcp6.get(name), kvnet_dhcp::v6::ip_index(net)) {
            (Some(svc), Some(_)) => {
                if let Err(e) = svc.reconfigure(net) {
                    warn!(network = %name, "DHCPv6 server keeps its previous settings: {e:#}");
                }
            }
            (Some(_), None) => {
                self.dhcp6.remove(name);
                info!(network = %name, "DHCPv6 server stopped");
            }
            (None, Some(_)) => {
                if let Some(br) = plan::bridge_name(net).filter(|_| net.profile().owns_bridge())
                    && let Some(w) = self.start_dhcp6(net, br)
                {
                    warn!("{w}");
                }
            }
            (None, None) => {}
        }
    }

    /// Leases of a network, IPv4 then IPv6: from its running DHCP servers, else from
    /// their journals. An IPv6 lease matches `mac` when its DUID carries that MAC.
    fn dhcp_leases(&self, name: &str, mac: Option<&str>) -> Result<Vec<serde_json::Value>> {
        let o = self.get(name)?;
        let mac: Option<MacAddr> = mac
            .map(|m| {
                m.parse()
                    .map_err(|e| anyhow!("invalid MAC address '{m}': {e}"))
            })
            .transpose()?;
        let def = o
            .live
            .as_ref()
            .or(o.def.as_ref())
            .filter(|n| n.profile().owns_bridge());
        let mut v4 = match (self.dhcp.get(name), def) {
            (Some(svc), _) => svc.leases(),
            (None, Some(net)) => dhcp::stored_leases(&self.paths, net)?,
            _ => Vec::new(),
        };
        v4.retain(|l| mac.is_none_or(|m| l.mac_address == m));
        let mut v6 = match (self.dhcp6.get(name), def) {
            (Some(svc), _) => svc.leases(),
            (None, Some(net)) => dhcp6::stored_leases(&self.paths, net)?,
            _ => Vec::new(),
        };
        v6.retain(|l| mac.is_none_or(|m| l.mac_address == Some(m)));
        let mut out = Vec::with_capacity(v4.len() + v6.len());
        for l in v4 {
            out.push(serde_json::to_value(l)?);
        }
        for l in v6 {
            out.push(serde_json::to_value(l)?);
        }
        Ok(out)
    }

    /// Leave the rules alone when they are exactly what the previous kvnetd left (so a
    /// restart changes nothing in the kernel); otherwise one transaction brings kvnet's
    /// table to the active networks' rules, repairing anything changed meanwhile.
    fn reconcile_firewall_at_start(&self) {
        let snapshot: Option<FirewallSnapshot> = std::fs::read(self.paths.firewall_snapshot())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = store::remove_if_exists(&self.paths.firewall_snapshot());
        let names: Vec<String> = self.active().iter().map(|n| n.name.clone()).collect();
        let current = match self.dp.firewall_listing() {
            Ok(c) => c,
            Err(e) => {
                error!("cannot read the firewall: {e:#}");
                None
            }
        };
        let unchanged = match (&snapshot, &current) {
            (_, None) => names.is_empty(),
            // Also exactly the table this kvnetd renders: one left by a kvnet with
            // another layout would break the fast start path.
            (Some(s), Some(c)) => {
                s.networks == names
                    && &s.listing == c
                    && self.dp.expected_firewall_listing(&self.active()).as_ref() == Some(c)
            }
            (None, Some(_)) => false,
        };
        if unchanged {
            self.dp
                .skeleton
                .store(current.is_some(), std::sync::atomic::Ordering::Relaxed);
            return;
        }
        match self.dp.reconcile_firewall(&self.active()) {
            Ok(()) => info!("firewall rules rebuilt for {} active networks", names.len()),
            Err(e) => error!("firewall rules could not be applied, guests may be cut off: {e:#}"),
        }
    }

    /// At shutdown: finish queued teardowns, then record the firewall as this daemon
    /// leaves it, for the next one.
    pub fn shutdown(&mut self) {
        self.reaper.drain();
        self.save_firewall_snapshot();
    }

    fn save_firewall_snapshot(&self) {
        let networks = self.active().iter().map(|n| n.name.clone()).collect();
        let res = self.dp.firewall_listing().and_then(|listing| {
            let snap = FirewallSnapshot {
                networks,
                listing: listing.unwrap_or_default(),
            };
            store::write_atomic(
                &self.paths.firewall_snapshot(),
                &serde_json::to_vec(&snap)?,
                0o600,
                store::Durability::Runtime,
            )
        });
        if let Err(e) = res {
            warn!(
                "cannot save the firewall snapshot (the next kvnetd will rebuild the rules): {e:#}"
            );
        }
    }

    async fn define_default(&mut self) -> Result<()> {
        if !self.nets.contains_key("default") {
            let routes = kvnet_host::procroutes::read()?;
            let defined: Vec<&Network> =
                self.nets.values().filter_map(|o| o.def.as_ref()).collect();
            match plan::default_network_xml(&routes, &defined) {
                Some(xml) => {
                    self.define(&xml).await?;
                    store::set_autostart(&self.paths, "default", true)?;
                    if let Some(o) = self.nets.get_mut("default") {
                        o.autostart = true;
                    }
                    info!("defined the built-in 'default' network (autostart)");
                }
                None => {
                    warn!("no free 192.168.N.0/24 for the built-in 'default' network; not defined")
                }
            }
        }
        store::write_atomic(
            &self.paths.default_defined_marker(),
            b"",
            0o600,
            store::Durability::Durable,
        )
    }

    async fn autostart_all(&mut self) {
        let names: Vec<String> = self
            .nets
            .iter()
            .filter(|(_, o)| o.autostart && o.live.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            // start_net logs the start and its warnings.
            if let Err(e) = self.start(&name).await {
                error!(network = %name, "autostart failed: {e:#}");
            }
        }
    }

    pub fn active(&self) -> Vec<&Network> {
        self.nets.values().filter_map(|o| o.live.as_ref()).collect()
    }

    fn get(&self, name: &str) -> Result<&NetObj> {
        self.nets
            .get(name)
            .ok_or_else(|| anyhow!("network '{name}' not found"))
    }

    fn needed_sysctls(&self, except: &str) -> Vec<&'static str> {
        self.nets
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .filter_map(|(_, o)| o.live.as_ref())
            .flat_map(plan::global_sysctls)
            .collect()
    }

    /// Parse, complete and check a definition against the others, like virNetworkDefineXML.
    async fn prepare(&self, xml: &str) -> Result<Network> {
        let mut net = Network::from_xml(xml)
            .and_then(|n| n.validate_for_define().map(|()| n))
            .map_err(|e| anyhow!("invalid network XML: {e}"))?;
        let existing = self.nets.get(&net.name);
        if let Some(obj) = existing {
            let cur = obj.def.as_ref().or(obj.live.as_ref()).and_then(|n| n.uuid);
            match (net.uuid, cur) {
                (Some(new), Some(cur)) if new != cur => {
                    bail!("network '{}' already exists with uuid {cur}", net.name)
                }
                (None, Some(cur)) => net.uuid = Some(cur),
                _ => {}
            }
            // Keep what was generated at the first define unless the new XML says otherwise.
            if let Some(old) = obj.def.as_ref().or(obj.live.as_ref()) {
                if net.mac.is_none() && net.profile().owns_bridge() {
                    net.mac = old.mac;
                }
                if net.profile().owns_bridge()
                    && net.bridge.as_ref().and_then(|b| b.name.as_ref()).is_none()
                {
                    let stp = net.bridge.as_ref().and_then(|b| b.stp);
                    let delay = net.bridge.as_ref().and_then(|b| b.delay);
                    if let Some(b) = old.bridge.clone() {
                        let mut b = b;
                        b.stp = stp.or(b.stp);
                        b.delay = delay.or(b.delay);
                        net.bridge = Some(b);
                    }
                }
            }
        }
        if let Some(u) = net.uuid
            && let Some((other, _)) = self.nets.iter().find(|(n, o)| {
                *n != &net.name
                    && o.def.as_ref().or(o.live.as_ref()).and_then(|d| d.uuid) == Some(u)
            })
        {
            bail!("uuid {u} is already used by network '{other}'");
        }
        let others = || {
            self.nets
                .iter()
                .filter(|(n, _)| *n != &net.name)
                .flat_map(|(_, o)| [o.def.as_ref(), o.live.as_ref()])
                .flatten()
        };
        let mut used_bridges: HashSet<String> = others()
            .filter(|n| n.profile().owns_bridge())
            .filter_map(|n| plan::bridge_name(n).map(str::to_string))
            .collect();
        let used_macs: HashSet<MacAddr> = others().filter_map(|n| n.mac).collect();
        if let Some(br) = plan::bridge_name(&net)
            && net.profile().owns_bridge()
            && used_bridges.contains(br)
        {
            bail!("bridge name '{br}' is already in use by another network");
        }
        // A generated name must not collide with a host link either.
        for l in self.dp.nl.links().await? {
            used_bridges.insert(l.name);
        }
        net.complete_for_define(&used_bridges, &used_macs, &mut entropy());
        Ok(net)
    }

    pub async fn define(&mut self, xml: &str) -> Result<Network> {
        let net = self.prepare(xml).await?;
        store::save_definition(&self.paths, &net.name, &net.to_xml())?;
        let autostart = store::is_autostart(&self.paths, &net.name);
        let obj = self.nets.entry(net.name.clone()).or_insert(NetObj {
            def: None,
            live: None,
            owns_bridge: false,
            autostart,
        });
        let was_transient_active = obj.def.is_none() && obj.live.is_some();
        obj.def = Some(net.clone());
        if let Some(live) = &obj.live {
            store::save_status(
                &self.paths,
                &net.name,
                &store::Status {
                    live_xml: live.to_xml(),
                    transient: false,
                    owns_bridge: obj.owns_bridge,
                    started: now(),
                    stopping: false,
                },
            )?;
        }
        info!(network = %net.name, "defined{}", if was_transient_active { " (now persistent)" } else { "" });
        Ok(net)
    }

    pub async fn create(&mut self, xml: &str) -> Result<(Network, Vec<String>)> {
        let net = self.prepare(xml).await?;
        if self
            .nets
            .get(&net.name)
            .is_some_and(|o| o.live.is_some() || o.def.is_some())
        {
            bail!("network '{}' already exists", net.name);
        }
        self.nets.insert(
            net.name.clone(),
            NetObj {
                def: None,
                live: None,
                owns_bridge: false,
                autostart: false,
            },
        );
        match self.start_net(net.clone(), true).await {
            Ok(w) => Ok((net, w)),
            Err(e) => {
                self.nets.remove(&net.name);
                Err(e)
            }
        }
    }

    pub async fn start(&mut self, name: &str) -> Result<Vec<String>> {
        let obj = self.get(name)?;
        if obj.live.is_some() {
            bail!("network '{name}' is already active");
        }
        let net = obj
            .def
            .clone()
            .ok_or_else(|| anyhow!("network '{name}' has no definition"))?;
        self.start_net(net, false).await
    }

    async fn start_net(&mut self, net: Network, transient: bool) -> Result<Vec<String>> {
        let t0 = std::time::Instant::now();
        let name = net.name.clone();
        if let Some(msg) = net.profile().unsupported {
            bail!(msg);
        }
        // A network being torn down in the background may still hold this bridge name
        // or these subnets (in the kernel and in the firewall maps).
        let bridge = plan::bridge_name(&net).map(str::to_string);
        let subnets: Vec<IpNet> = net.ips.iter().map(|ip| ip.network()).collect();
        self.settle(|p| {
            (bridge.is_some() && p.bridge == bridge)
                || p.subnets
                    .iter()
                    .any(|a| subnets.iter().any(|b| plan::overlaps(a, b)))
        })
        .await;
        // The bridge's name is looked up alone and the routes come from the watcher's
        // copy: reading the whole link or route table grows with every network and
        // would make the 200th start slower than the 1st.
        let routes = self.dp.routes.routes()?;
        let bridge_link = match &bridge {
            Some(br) => self.dp.nl.link(br).await?,
            None => None,
        };
        plan::check_start(&net, &self.active(), &routes, bridge_link.as_ref())
            .map_err(|e| anyhow!("cannot start network '{name}': {e}"))?;
        let t_checks = t0.elapsed();
        // Write-ahead: the status and the original sysctl values are on disk before the
        // kernel is touched, so a daemon killed mid-start finds the network at its next
        // start and completes it (adopt adds what is missing) instead of leaving an
        // orphan bridge; a failed start removes them again.
        let status = store::Status {
            live_xml: net.to_xml(),
            transient,
            owns_bridge: net.profile().owns_bridge(),
            started: now(),
            stopping: false,
        };
        for key in plan::global_sysctls(&net) {
            if !self.sysctl_orig.contains_key(key) {
                let cur = kvnet_host::sysctl::read(key)?;
                if cur.trim() != "1" {
                    self.sysctl_orig
                        .insert(key.to_string(), cur.trim().to_string());
                }
            }
        }
        store::save_status(&self.paths, &name, &status)
            .and_then(|()| store::save_sysctl_orig(&self.paths, &self.sysctl_orig))
            .with_context(|| format!("cannot start network '{name}'"))?;
        let t_status = t0.elapsed();
        let mut orig = std::mem::take(&mut self.sysctl_orig);
        let res = self.dp.start(&net, &mut orig).await;
        if res.is_err() {
            let needed = self.needed_sysctls(&name);
            for e in dataplane::release_sysctls(&net, &needed, &mut orig) {
                warn!(network = %name, "rollback: {e}");
            }
        }
        self.sysctl_orig = orig;
        if let Err(e) = res {
            let _ = store::remove_if_exists(&self.paths.status(&name));
            let _ = store::save_sysctl_orig(&self.paths, &self.sysctl_orig);
            return Err(e.context(format!("cannot start network '{name}'")));
        }
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
            .collect();
        let t_net = t0.elapsed();
        warnings.extend(self.start_dhcp(&net));
        let t_dhcp = t0.elapsed();
        warnings.extend(self.start_dns(&net));
        warnings.extend(self.start_ra(&net));
        let t_dns = t0.elapsed();
        let obj = self
            .nets
            .get_mut(&name)
            .expect("caller inserted the network");
        obj.owns_bridge = net.profile().owns_bridge();
        obj.live = Some(net);
        self.sync_local_addrs();
        let t_sync = t0.elapsed();
        warnings.extend(self.replug_ports(&name).await);
        debug!(
            network = %name,
            "DHCP {:?}, DNS and RA {:?}, local addresses {:?}, ports {:?}",
            t_dhcp - t_net,
            t_dns - t_dhcp,
            t_sync - t_dns,
            t0.elapsed() - t_sync
        );
        info!(network = %name, "started in {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
        for w in &warnings {
            warn!("{w}");
        }
        Ok(warnings)
    }

    /// Stop a network. Traffic stops before this returns (bridge down); deleting the
    /// bridge and the rules, which costs the kernel RCU grace periods, finishes in the
    /// background unless `wait` is set. A later start that needs the same bridge name
    /// or subnets waits for it.
    pub async fn destroy(&mut self, name: &str, wait: bool) -> Result<()> {
        let obj = self.get(name)?;
        let live = obj
            .live
            .clone()
            .ok_or_else(|| anyhow!("network '{name}' is not active"))?;
        let owns = obj.owns_bridge;
        let transient = obj.def.is_none();
        // While the bridge and its ports are still up: the final RA withdraws the
        // guests' default route through us.
        if let Some(svc) = self.ra.remove(name) {
            svc.stop();
            info!(network = %name, "router advertisements stopped");
        }
        // Leases stay in the journal for the next start, as libvirt keeps them.
        if self.dhcp.remove(name).is_some() {
            info!(network = %name, "DHCP server stopped");
        }
        if self.dhcp6.remove(name).is_some() {
            info!(network = %name, "DHCPv6 server stopped");
        }
        if self.dns.remove(name).is_some() {
            info!(network = %name, "DNS server stopped");
        }
        // Ports stay registered (persistent TAPs stay too) and return at the next start.
        let mut errors = self.unplug_ports(name, &live).await;
        let needed = self.needed_sysctls(name);
        let mut orig = std::mem::take(&mut self.sysctl_orig);
        let (firewall, bridge, quiesce_errors) =
            self.dp.quiesce(&live, owns, &needed, &mut orig).await;
        errors.extend(quiesce_errors);
        self.sysctl_orig = orig;
        // The status stays, marked stopping, until the teardown is done: a daemon
        // killed meanwhile finishes it at its next start.
        store::save_status(
            &self.paths,
            name,
            &store::Status {
                live_xml: live.to_xml(),
                transient,
                owns_bridge: owns,
                started: now(),
                stopping: true,
            },
        )?;
        store::save_sysctl_orig(&self.paths, &self.sysctl_orig)?;
        let (done, rx) = oneshot::channel();
        self.pending.push(Pending {
            bridge: bridge.clone(),
            subnets: live.ips.iter().map(|ip| ip.network()).collect(),
            done: rx,
        });
        self.reaper.submit(Job {
            network: name.to_string(),
            firewall,
            bridge,
            status: self.paths.status(name),
            done,
        });
        let obj = self.nets.get_mut(name).expect("checked above");
        obj.live = None;
        if transient {
            self.nets.remove(name);
            self.drop_ports(name);
        }
        self.sync_local_addrs();
        if wait {
            self.settle(|_| true).await;
        }
        if errors.is_empty() {
            info!(network = %name, "destroyed");
            Ok(())
        } else {
            let e = errors.join("; ");
            error!(network = %name, "destroyed with errors: {e}");
            bail!("network '{name}' stopped, but cleanup was incomplete: {e}")
        }
    }

    /// Wait for the background teardowns `conflicts` selects, and forget finished ones.
    async fn settle(&mut self, conflicts: impl Fn(&Pending) -> bool) {
        let mut keep = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            match p.done.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) if conflicts(&p) => {
                    let _ = p.done.await;
                }
                Err(oneshot::error::TryRecvError::Empty) => keep.push(p),
                _ => {}
            }
        }
        self.pending = keep;
    }

    pub fn undefine(&mut self, name: &str) -> Result<()> {
        let obj = self.get(name)?;
        if obj.def.is_none() {
            bail!("cannot undefine transient network '{name}'");
        }
        // A port's guest would lose its network without being told: make it explicit.
        let ports = self.port_names(name);
        if !ports.is_empty() {
            bail!(
                "cannot undefine network '{name}': it has ports {}; delete them first (kvnet port-delete)",
                ports.join(", ")
            );
        }
        store::remove_if_exists(&self.paths.autostart_link(name))?;
        store::remove_if_exists(&self.paths.definition(name))?;
        let obj = self.nets.get_mut(name).expect("checked above");
        obj.def = None;
        obj.autostart = false;
        if let Some(live) = &obj.live {
            // Still running: it becomes transient and vanishes when stopped, as in libvirt.
            store::save_status(
                &self.paths,
                name,
                &store::Status {
                    live_xml: live.to_xml(),
                    transient: true,
                    owns_bridge: obj.owns_bridge,
                    started: now(),
                    stopping: false,
                },
            )?;
        } else {
            self.nets.remove(name);
        }
        info!(network = %name, "undefined");
        Ok(())
    }

    pub fn set_autostart(&mut self, name: &str, enable: bool) -> Result<()> {
        let obj = self.get(name)?;
        if obj.def.is_none() {
            bail!("cannot set autostart for transient network '{name}'");
        }
        store::set_autostart(&self.paths, name, enable)?;
        self.nets.get_mut(name).expect("checked above").autostart = enable;
        info!(network = %name, "autostart {}", if enable { "enabled" } else { "disabled" });
        Ok(())
    }

    fn summary(name: &str, o: &NetObj) -> NetSummary {
        let n = o
            .live
            .as_ref()
            .or(o.def.as_ref())
            .expect("a network has a live or persistent definition");
        NetSummary {
            name: name.to_string(),
            uuid: n.uuid.map(|u| u.to_string()).unwrap_or_default(),
            active: o.live.is_some(),
            persistent: o.def.is_some(),
            autostart: o.autostart,
            bridge: plan::bridge_name(n).map(str::to_string),
            forward: n.forward_mode().to_string(),
            title: n.title.clone(),
        }
    }

    pub fn dump_xml(&self, name: &str, inactive: bool) -> Result<String> {
        let o = self.get(name)?;
        let n = if inactive {
            o.def.as_ref().or(o.live.as_ref())
        } else {
            o.live.as_ref().or(o.def.as_ref())
        };
        Ok(n.expect("a network has a definition").to_xml())
    }

    pub fn update(&mut self, name: &str, u: &UpdateArgs) -> Result<()> {
        let UpdateArgs {
            cmd,
            section,
            xml,
            parent_index,
            live,
            config,
        } = *u;
        let cmd: UpdateCommand = cmd.parse().map_err(|e| anyhow!("{e}"))?;
        let section: UpdateSection = section.parse().map_err(|e| anyhow!("{e}"))?;
        let o = self.get(name)?;
        // --current (neither flag): the live network if active, else the definition.
        let (live, config) = if !live && !config {
            (o.live.is_some(), o.live.is_none())
        } else {
            (live, config)
        };
        if live && o.live.is_none() {
            bail!("network '{name}' is not active, cannot update it live");
        }
        if config && o.def.is_none() {
            bail!("cannot update the persistent definition of transient network '{name}'");
        }
        let apply = |n: &Option<Network>| {
            n.as_ref()
                .map(|n| apply_update(n, cmd, section, xml, parent_index))
                .transpose()
        };
        let new_def = if config { apply(&o.def)? } else { None };
        let new_live = if live { apply(&o.live)? } else { None };
        if let Some(d) = &new_def {
            store::save_definition(&self.paths, name, &d.to_xml())?;
        }
        if let Some(l) = &new_live {
            let old = o.live.clone().expect("checked");
            self.dp.refresh_firewall(&old, l)?;
            store::save_status(
                &self.paths,
                name,
                &store::Status {
                    live_xml: l.to_xml(),
                    transient: o.def.is_none(),
                    owns_bridge: o.owns_bridge,
                    started: now(),
                    stopping: false,
                },
            )?;
        }
        let o = self.nets.get_mut(name).expect("checked");
        if let Some(d) = new_def {
            o.def = Some(d);
        }
        if let Some(l) = new_live {
            o.live = Some(l.clone());
            self.sync_dhcp(&l);
            self.sync_dns(&l);
            self.sync_ra(&l);
        }
        info!(network = %name, "updated ({}{})", if live { "live " } else { "" }, if config { "config" } else { "" });
        Ok(())
    }

    /// Serve one API request.
    pub async fn handle(&mut self, req: Request) -> Reply {
        let res: Result<Reply> = async {
            Ok(match req {
                Request::Ping => Reply::ok(json!({"version": env!("CARGO_PKG_VERSION")})),
                Request::Define { xml } => {
                    let n = self.define(&xml).await?;
                    Reply::ok(json!({"name": n.name, "uuid": n.uuid.map(|u| u.to_string())}))
                }
                Request::Create { xml } => {
                    let (n, warnings) = self.create(&xml).await?;
                    Reply {
                        warnings,
                        ..Reply::ok(json!({"name": n.name, "uuid": n.uuid.map(|u| u.to_string())}))
                    }
                }
                Request::Undefine { network } => {
                    self.undefine(&network)?;
                    Reply::ok(json!(null))
                }
                Request::Start { network } => {
                    let warnings = self.start(&network).await?;
                    Reply {
                        warnings,
                        ..Reply::ok(json!(null))
                    }
                }
                Request::Destroy { network, wait } => {
                    self.destroy(&network, wait).await?;
                    Reply::ok(json!(null))
                }
                Request::Autostart { network, enable } => {
                    self.set_autostart(&network, enable)?;
                    Reply::ok(json!(null))
                }
                Request::List => {
                    let v: Vec<NetSummary> =
                        self.nets.iter().map(|(n, o)| Self::summary(n, o)).collect();
                    Reply::ok(serde_json::to_value(v)?)
                }
                Request::Info { network } => {
                    let o = self.get(&network)?;
                    Reply::ok(serde_json::to_value(Self::summary(&network, o))?)
                }
                Request::DhcpLeases { network, mac } => Reply::ok(serde_json::to_value(
                    self.dhcp_leases(&network, mac.as_deref())?,
                )?),
                Request::DumpXml { network, inactive } => {
                    Reply::ok(json!(self.dump_xml(&network, inactive)?))
                }
                Request::Update {
                    network,
                    command,
                    section,
                    xml,
                    parent_index,
                    live,
                    config,
                } => {
                    let args = UpdateArgs {
                        cmd: &command,
                        section: &section,
                        xml: &xml,
                        parent_index,
                        live,
                        config,
                    };
                    self.update(&network, &args)?;
                    Reply::ok(json!(null))
                }
                Request::PortCreate {
                    network,
                    ifname,
                    mac,
                    owner,
                    group,
                    queues,
                } => {
                    let args = ports::CreateArgs {
                        ifname,
                        mac,
                        owner,
                        group,
                        queues,
                    };
                    Reply::ok(serde_json::to_value(
                        self.port_create(&network, args).await?,
                    )?)
                }
                Request::PortAttach {
                    network,
                    bridge,
                    ifname,
                    mac,
                } => Reply::ok(serde_json::to_value(
                    self.port_attach(
                        network.as_deref(),
                        bridge.as_deref(),
                        &ifname,
                        mac.as_deref(),
                    )
                    .await?,
                )?),
                Request::PortDelete { network, ifname } => {
                    self.port_delete(network.as_deref(), &ifname).await?;
                    Reply::ok(json!(null))
                }
                Request::PortList { network } => {
                    Reply::ok(serde_json::to_value(self.port_list(&network).await?)?)
                }
                Request::IfaceBridge {
                    iface,
                    bridge,
                    stp,
                    delay,
                    start,
                } => Reply::ok(serde_json::to_value(
                    self.iface_bridge(&iface, &bridge, stp, delay, start)
                        .await?,
                )?),
                Request::IfaceUnbridge { bridge } => {
                    Reply::ok(serde_json::to_value(self.iface_unbridge(&bridge).await?)?)
                }
            })
        }
        .await;
        res.unwrap_or_else(|e| Reply::err(format!("{e:#}")))
    }
}
