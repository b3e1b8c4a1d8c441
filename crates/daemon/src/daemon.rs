//! The daemon's state and its verbs: the registry of networks, the lifecycle of the
//! running ones, and the guest ports. Each verb checks in the registry, persists, then
//! applies; the API layer (`api`) maps requests onto these verbs.
//!
//! One request at a time: the server holds the daemon behind a mutex, so a verb sees
//! and leaves a consistent state.

use crate::dataplane::{Dataplane, checks};
use crate::events;
use crate::forwards;
use crate::ids::entropy;
use crate::ifbridge;
use crate::lifecycle::Lifecycle;
use crate::nethooks;
use crate::paths::Paths;
use crate::ports::{PortDefaults, Ports};
use crate::registry::{Registry, UpdateTarget};
use crate::services::ServiceStats;
use crate::store::{self, Durability, status};
use anyhow::{Result, anyhow};
use kvnet_api::request::{self as req, PortCreate};
use kvnet_api::{
    Bridged, CreatedPort, DhcpStats, EventKind, FirewallStats, ForwardEntry, Lease, LeaseTime,
    NetStats, NetworkId, Port, PortKind, PortTraffic, Report, Unbridged,
};
use kvnet_model::{MacAddr, Network};
use tracing::{error, info, warn};

pub struct Daemon {
    paths: Paths,
    registry: Registry,
    life: Lifecycle,
    ports: Ports,
}

/// What [`Daemon::stats_of`] reads besides the services: links' traffic, the port
/// filter's table, the firewall's counters.
#[derive(Default)]
struct StatsSources {
    traffic: std::collections::HashMap<String, [u64; 4]>,
    filter: Option<kvnet_firewall::portfilter::Installed>,
    firewall: std::collections::BTreeMap<String, kvnet_firewall::FwCounters>,
}

fn id(net: &Network) -> NetworkId {
    NetworkId {
        name: net.name.clone(),
        uuid: net.uuid.map(|u| u.to_string()),
    }
}

impl Daemon {
    /// Load definitions and ports, adopt running networks, define `default` on first
    /// start and run autostart once per boot.
    pub async fn init(paths: Paths, dp: Dataplane) -> Result<Daemon> {
        store::ensure_dirs(&paths)?;
        let mut d = Daemon {
            life: Lifecycle::new(&paths, dp)?,
            ports: Ports::load(&paths)?,
            registry: Registry::default(),
            paths,
        };
        // First the host's NIC: an iface-bridge a kill interrupted is undone.
        ifbridge::recover(d.life.nl(), &d.paths).await;
        for net in store::load_definitions(&d.paths)? {
            let autostart = store::is_autostart(&d.paths, &net.name);
            d.registry.load(net, autostart);
        }
        d.life.adopt_all(&mut d.registry, &mut d.ports).await?;
        if !d.paths.default_defined_marker().exists() {
            d.define_default().await?;
        }
        if !d.paths.autostarted_marker().exists() {
            for name in d.registry.autostart_pending() {
                // start logs the start and its warnings.
                if let Err(e) = d.start(&name).await {
                    error!(network = %name, "autostart failed: {e:#}");
                }
            }
            let marker = d.paths.autostarted_marker();
            store::write_atomic(&marker, b"", 0o600, Durability::Runtime)?;
        }
        Ok(d)
    }

    /// Networks defined and active, for the start-up log line.
    pub fn counts(&self) -> (usize, usize) {
        (self.registry.len(), self.registry.active().len())
    }

    /// What the service manager shows (STATUS=).
    pub fn status_line(&self) -> String {
        let (defined, active) = self.counts();
        crate::systemd::status_line(defined, active, self.life.lease_count())
    }

    /// At daemon shutdown; the networks stay up for the next kvnetd.
    pub fn shutdown(&mut self) {
        self.life.shutdown(&self.registry);
    }

    /// The built-in `default` network (autostart), unless the host leaves no subnet.
    async fn define_default(&mut self) -> Result<()> {
        if self.registry.get("default").is_err() {
            let routes = kvnet_host::procroutes::read()?;
            match checks::default_network_xml(&routes, &self.registry.definitions()) {
                Some(xml) => {
                    self.define(&xml).await?;
                    self.set_autostart("default", true)?;
                    info!("defined the built-in 'default' network (autostart)");
                }
                None => {
                    warn!("no free 192.168.N.0/24 for the built-in 'default' network; not defined")
                }
            }
        }
        let marker = self.paths.default_defined_marker();
        store::write_atomic(&marker, b"", 0o600, Durability::Durable)
    }

    /// Parse, complete and check a definition against the others and the host's links.
    async fn prepare(&self, xml: &str) -> Result<Network> {
        let links = self.life.nl().links().await?.into_iter().map(|l| l.name);
        self.registry.prepare(xml, links, &mut entropy)
    }

    pub async fn define(&mut self, xml: &str) -> Result<NetworkId> {
        let net = self.prepare(xml).await?;
        let name = net.name.clone();
        store::save_definition(&self.paths, &name, &net.to_xml())?;
        let autostart = store::is_autostart(&self.paths, &name);
        let now_persistent = self.registry.define(net.clone(), autostart);
        if let Some(st) = &now_persistent {
            status::save(&self.paths, &name, st)?;
        }
        let how = if now_persistent.is_some() {
            " (now persistent)"
        } else {
            ""
        };
        info!(network = %name, event = "defined", "defined{how}");
        events::emit(&name, EventKind::Lifecycle, "defined", &[]);
        Ok(id(&net))
    }

    pub async fn create(&mut self, xml: &str) -> Result<(NetworkId, Vec<String>)> {
        let net = self.prepare(xml).await?;
        self.registry.create(&net)?;
        let res = self
            .life
            .start(&mut self.registry, &mut self.ports, net.clone())
            .await;
        if res.is_err() {
            self.registry.forget(&net.name);
        }
        Ok((id(&net), res?))
    }

    pub fn undefine(&mut self, name: &str) -> Result<()> {
        self.registry
            .check_undefine(name, &self.ports.names(name))?;
        store::remove_definition(&self.paths, name)?;
        if let Some(st) = self.registry.undefine(name)? {
            status::save(&self.paths, name, &st)?;
        }
        info!(network = %name, event = "undefined", "undefined");
        events::emit(name, EventKind::Lifecycle, "undefined", &[]);
        Ok(())
    }

    pub async fn start(&mut self, name: &str) -> Result<Vec<String>> {
        let net = self.registry.startable(name)?;
        self.life
            .start(&mut self.registry, &mut self.ports, net)
            .await
    }

    pub async fn destroy(&mut self, name: &str, wait: bool) -> Result<()> {
        self.life
            .destroy(&mut self.registry, &mut self.ports, name, wait)
            .await
    }

    pub fn set_autostart(&mut self, name: &str, enable: bool) -> Result<()> {
        self.registry.check_autostart(name)?;
        store::set_autostart(&self.paths, name, enable)?;
        self.registry.set_autostart(name, enable)?;
        info!(network = %name, event = "autostart", "autostart {}", if enable { "enabled" } else { "disabled" });
        Ok(())
    }

    /// net-dumpxml. The live XML counts a running network's ports (`connections`), and
    /// a direct network's per pool device, as libvirt's does.
    pub fn dump_xml(&self, name: &str, inactive: bool) -> Result<String> {
        let live = match self.registry.live(name) {
            Ok(live) if !inactive => live,
            _ => return self.registry.dump_xml(name, inactive),
        };
        let mut net = live.clone();
        let recs = self.ports.recs(name);
        net.connections = u32::try_from(recs.len()).ok().filter(|n| *n > 0);
        if let Some(Ok(pool)) = self.life.pool(&self.registry, name)
            && let Some(f) = net.forward.as_mut()
        {
            // A <pf> pool shows its virtual functions, as libvirt's live XML does.
            if f.interfaces.is_empty() {
                f.interfaces = pool
                    .devices
                    .iter()
                    .map(|d| kvnet_model::ForwardInterface {
                        dev: d.clone(),
                        connections: None,
                    })
                    .collect();
            }
            let counts = crate::ports::direct::connections(&pool.devices, recs);
            for i in &mut f.interfaces {
                i.connections = counts
                    .iter()
                    .find(|(d, _)| *d == i.dev)
                    .map(|(_, n)| *n)
                    .filter(|n| *n > 0);
            }
        }
        Ok(net.to_xml())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Leases of a network, IPv4 then IPv6; with `mac`, only that MAC's (for IPv6, the
    /// MAC inside a DUID-LL or DUID-LLT).
    pub fn dhcp_leases(&self, name: &str, mac: Option<&str>) -> Result<Vec<Lease>> {
        let net = self.registry.get(name)?.current();
        let mac = mac
            .map(|m| {
                m.parse::<MacAddr>()
                    .map_err(|e| anyhow!("invalid MAC address '{m}': {e}"))
            })
            .transpose()?
            .map(|m| m.to_string());
        let mut leases = self.life.leases(net)?;
        leases.retain(|l| mac.is_none() || l.mac_address == mac);
        Ok(leases)
    }

    /// net-update: plan it on the registry, persist the definition, apply it live, then
    /// record it and bring the services along.
    pub async fn update(&mut self, u: &req::Update) -> Result<()> {
        let name = &u.network;
        let target = UpdateTarget {
            live: u.live,
            config: u.config,
        };
        let plan = self.registry.plan_update(name, u, target)?;
        if let Some((_, new)) = &plan.live {
            crate::qos::check_floors(new, self.ports.recs(name))?;
        }
        if let Some(d) = &plan.def {
            store::save_definition(&self.paths, name, &d.to_xml())?;
        }
        if let Some((old, new)) = &plan.live
            && let Err(e) = self.life.update_live(old, new)
        {
            // Nothing half-applied: the definition on disk goes back to what it was.
            if let Some(d) = &self.registry.get(name)?.def
                && plan.def.is_some()
            {
                store::save_definition(&self.paths, name, &d.to_xml())?;
            }
            return Err(e.context(format!("network '{name}' not updated")));
        }
        let (config, live) = (plan.def.is_some(), plan.live.clone());
        if let Some(st) = self.registry.commit_update(name, plan)? {
            status::save(&self.paths, name, &st)?;
        }
        if let Some((_, new)) = &live {
            self.life.sync_services(new).await;
            // A portgroup's or the network's bandwidth changed: its ports follow.
            if let Err(e) = self
                .life
                .shape(&self.registry, &self.ports, name, None)
                .await
            {
                warn!(network = %name, "{e:#}");
            }
        }
        let live = if live.is_some() { "live " } else { "" };
        info!(network = %name, "updated ({live}{})", if config { "config" } else { "" });
        events::emit(name, EventKind::Lifecycle, "updated", &[]);
        if nethooks::any()
            && let Ok(o) = self.registry.get(name)
        {
            nethooks::fire(name, "updated", "begin", o.current().to_xml(), Vec::new());
        }
        Ok(())
    }

    pub async fn port_create(&mut self, r: PortCreate) -> Result<CreatedPort> {
        // Refused on the definition, active or not: rates on a hostdev port, a floor on
        // a direct network's.
        if let Ok(o) = self.registry.get(&r.network)
            && let Err(e) = crate::qos::plan::check_rates(
                o.current(),
                r.inbound.as_deref(),
                r.outbound.as_deref(),
            )
        {
            return Err(anyhow!(
                "cannot create a port on network '{}': {e}",
                r.network
            ));
        }
        // A direct or hostdev port records its portgroup (an unknown one is refused).
        let direct_qos = |d: &Self, r: &PortCreate| -> Result<crate::qos::PortQos> {
            let live = d.registry.live(&r.network)?;
            crate::qos::admit(live, r, d.ports.recs(&r.network))
        };
        if let Some(pool) = self.life.hostdev_pool(&self.registry, &r.network) {
            let sys = std::path::Path::new(crate::ports::SYSFS);
            let qos = direct_qos(self, &r)?;
            let created = self
                .ports
                .create_hostdev(self.life.nl(), sys, &pool?, r, qos)
                .await?;
            self.port_event(&created.port, "created");
            return Ok(created);
        }
        if let Some(pool) = self.life.pool(&self.registry, &r.network) {
            let qos = direct_qos(self, &r)?;
            let network = r.network.clone();
            let created = self
                .ports
                .create_macvtap(self.life.nl(), &pool?, r, qos)
                .await?;
            // Shaped once its macvtap exists; if that fails, the port goes again.
            let ifname = created.port.ifname.as_str();
            if let Err(e) = self
                .life
                .shape(&self.registry, &self.ports, &network, Some(ifname))
                .await
            {
                let _ = self.port_delete(Some(&network), ifname).await;
                return Err(e.context(format!("cannot shape port {ifname}")));
            }
            self.port_event(&created.port, "created");
            return Ok(created);
        }
        let t = self.life.target(&self.registry, &r.network).await?;
        let network = r.network.clone();
        let live = self.registry.live(&network)?;
        let qos = crate::qos::admit(live, &r, self.ports.recs(&network))?;
        let rec = self.ports.register(self.life.nl(), &t, r, qos).await?;
        // Its filter is in place before the TAP is on the bridge.
        let filtered = self
            .life
            .filter_ports(&network, self.ports.recs(&network))
            .await;
        let created = match filtered {
            Ok(()) => self.ports.realize(self.life.nl(), &t, rec).await,
            Err(e) => {
                let ifname = rec.ifname.clone();
                self.ports.unregister(&network, &ifname);
                Err(e.context(format!("cannot filter port {ifname}")))
            }
        };
        if created.is_err() {
            let _ = self
                .life
                .filter_ports(&network, self.ports.recs(&network))
                .await;
        }
        let created = created?;
        // Shaped once its TAP exists; if that fails, the port goes again.
        let ifname = Some(created.port.ifname.as_str());
        if let Err(e) = self
            .life
            .shape(&self.registry, &self.ports, &network, ifname)
            .await
        {
            let ifname = &created.port.ifname;
            let _ = self.port_delete(Some(&network), ifname).await;
            return Err(e.context(format!("cannot shape port {ifname}")));
        }
        self.port_event(&created.port, "created");
        Ok(created)
    }

    /// port-attach by network name (a qemu script) or by bridge (the bridge helper).
    pub async fn port_attach(&mut self, r: &req::PortAttach) -> Result<Port> {
        let network = match (&r.network, &r.bridge) {
            (Some(n), None) => n.clone(),
            (named, Some(br)) => {
                let found = self
                    .registry
                    .by_bridge(br)
                    .map(|n| n.name.clone())
                    .ok_or_else(|| anyhow!("no active kvnet network uses bridge {br}"))?;
                if let Some(n) = named.as_ref().filter(|n| **n != found) {
                    return Err(anyhow!(
                        "bridge {br} belongs to network '{found}', not '{n}'"
                    ));
                }
                found
            }
            (None, None) => return Err(anyhow!("port-attach needs a network or a bridge")),
        };
        let t = self.life.target(&self.registry, &network).await?;
        let kind = if r.bridge.is_some() {
            PortKind::Helper
        } else {
            PortKind::Script
        };
        let nl = self.life.nl();
        let mut port = self
            .ports
            .attach(nl, &t, &r.ifname, r.mac.as_deref(), kind)
            .await?;
        let recs = self.ports.recs(&network);
        if let Err(e) = self.life.filter_ports(&network, recs).await {
            warn!(network = %network, "port {}: port filter not applied: {e:#}", r.ifname);
        }
        port.portgroup = self.default_portgroup(&network, &r.ifname);
        let only = Some(r.ifname.as_str());
        if let Err(e) = self
            .life
            .shape(&self.registry, &self.ports, &network, only)
            .await
        {
            warn!(network = %network, "port {}: {e:#}", r.ifname);
        }
        self.port_event(&port, "created");
        Ok(port)
    }

    /// A port kvnet did not create joins the default portgroup (crate::qos).
    fn default_portgroup(&mut self, network: &str, ifname: &str) -> Option<String> {
        let live = self.registry.live(network).ok()?;
        let (q, pg) = crate::qos::attached(live, self.ports.recs(network), ifname)?;
        if let Some(q) = q
            && let Err(e) = self.ports.set_qos(network, ifname, q)
        {
            warn!(network = %network, "port {ifname}: {e:#}");
        }
        pg
    }

    pub async fn port_delete(&mut self, network: Option<&str>, ifname: &str) -> Result<()> {
        if let Some(n) = network {
            self.registry.get(n)?;
        }
        let gone = self.ports.delete(self.life.nl(), network, ifname).await?;
        if let Err(e) = crate::qos::forget(self.life.nl(), ifname).await {
            warn!(network = %gone, "port {ifname}: {e:#}");
        }
        if self.registry.live(&gone).is_ok()
            && let Err(e) = self
                .life
                .shape(&self.registry, &self.ports, &gone, Some(ifname))
                .await
        {
            warn!(network = %gone, "{e:#}");
        }
        if self.registry.live(&gone).is_ok()
            && let Err(e) = self.life.filter_ports(&gone, self.ports.recs(&gone)).await
        {
            warn!(network = %gone, "port filter: {e:#}");
        }
        let port = Port {
            ifname: ifname.to_string(),
            mac: None,
            network: gone,
            kind: PortKind::Script,
            queues: 1,
            isolated: false,
            filter: Default::default(),
            ips: Vec::new(),
            learned_mac: None,
            dropped: None,
            portgroup: None,
            inbound: None,
            outbound: None,
            parent: None,
        };
        self.port_event(&port, "deleted");
        Ok(())
    }

    pub async fn port_list(&mut self, network: &str) -> Result<Vec<Port>> {
        let obj = self.registry.get(network)?;
        let defaults = obj
            .live
            .as_ref()
            .or(obj.def.as_ref())
            .map(PortDefaults::of)
            .unwrap_or_default();
        let before = self.ports.recs(network).len();
        let mut list = self.ports.list(self.life.nl(), network, defaults).await?;
        if self.registry.live(network).is_ok() {
            if self.ports.recs(network).len() != before
                && let Err(e) = self
                    .life
                    .filter_ports(network, self.ports.recs(network))
                    .await
            {
                warn!(network = %network, "port filter: {e:#}");
            }
            if let Some(i) = self.life.filter_installed().await {
                for p in &mut list {
                    if !i.state.filtered.contains(&p.ifname) {
                        continue;
                    }
                    p.dropped = Some(i.drops.get(&p.ifname).map_or(0, |d| d.0));
                    p.learned_mac = i
                        .learned
                        .iter()
                        .find(|(n, _)| *n == p.ifname)
                        .map(|(_, m)| m.to_string());
                }
            }
        }
        Ok(list)
    }

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

    pub async fn iface_bridge(&self, r: &req::IfaceBridge) -> Result<Bridged> {
        ifbridge::bridge(self.life.nl(), &self.paths, r).await
    }

    /// What on this host stops guest traffic (`kvnet doctor`).
    pub async fn doctor(&self, network: Option<&str>) -> Result<Report> {
        crate::doctor::run(&self.registry, self.life.dp(), &self.paths, network).await
    }

    /// A port's `port` event (`net-event`) and `port-created`/`port-deleted` hook, whose
    /// stdin is libvirt's `<hookData>`: the network, then the port.
    fn port_event(&self, port: &Port, action: &str) {
        let mut detail = vec![("port", port.ifname.clone())];
        detail.extend(port.mac.clone().map(|m| ("mac", m)));
        events::emit(&port.network, EventKind::Port, action, &detail);
        if nethooks::any()
            && let Ok(o) = self.registry.get(&port.network)
        {
            let mac = port
                .mac
                .as_ref()
                .map(|m| format!("  <mac address='{m}'/>\n"))
                .unwrap_or_default();
            let bridge = o.current().bridge_name().unwrap_or_default().to_string();
            let xml = format!(
                "<hookData>\n{}<networkport>\n{mac}  <plug type='network' bridge='{bridge}'/>\n  \
                 <target dev='{}'/>\n</networkport>\n</hookData>\n",
                o.current().to_xml(),
                port.ifname
            );
            nethooks::fire(
                &port.network,
                &format!("port-{action}"),
                "begin",
                xml,
                Vec::new(),
            );
        }
    }

    pub fn forward_add(&mut self, r: req::ForwardAdd) -> Result<(ForwardEntry, Vec<String>)> {
        forwards::verbs::add(&mut self.registry, &self.paths, &self.life, r)
    }

    pub fn forward_remove(&mut self, r: &req::ForwardRemove) -> Result<()> {
        forwards::verbs::remove(&mut self.registry, &self.paths, &self.life, r)
    }

    pub fn forward_list(&self, network: &str) -> Result<Vec<ForwardEntry>> {
        forwards::verbs::list(&self.registry, &self.life, network)
    }

    pub async fn iface_unbridge(&self, bridge: &str) -> Result<Unbridged> {
        let used_by = self.registry.by_bridge(bridge).map(|n| n.name.clone());
        ifbridge::unbridge(self.life.nl(), &self.paths, bridge, used_by).await
    }
}
