//! The daemon's state and its verbs: the registry of networks, the lifecycle of the
//! running ones, and the guest ports. Each verb checks in the registry, persists, then
//! applies; the API layer (`api`) maps requests onto these verbs.
//!
//! One request at a time: the server holds the daemon behind a mutex, so a verb sees
//! and leaves a consistent state.
//!
//! The verbs by family, each in an `impl Daemon` of its own file: this one holds the
//! state, start-up and the network verbs (define to update, and the network's port
//! forwards); `ports.rs` the port verbs and their events; `stats.rs` `net-stats` and the
//! metrics text; `host.rs` the host's side (iface-bridge/-unbridge, doctor).

mod host;
mod ports;
mod stats;

use crate::dataplane::{Dataplane, checks};
use crate::events;
use crate::forwards;
use crate::ids::entropy;
use crate::ifbridge;
use crate::lifecycle::Lifecycle;
use crate::nethooks;
use crate::paths::Paths;
use crate::ports::Ports;
use crate::registry::{Registry, UpdateTarget};
use crate::store::{self, Durability, status};
use anyhow::{Result, anyhow};
use kvnet_api::request as req;
use kvnet_api::{EventKind, ForwardEntry, Lease, NetworkId};
use kvnet_model::{MacAddr, Network};
use tracing::{error, info, warn};

pub struct Daemon {
    paths: Paths,
    registry: Registry,
    life: Lifecycle,
    ports: Ports,
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

    /// net-define: the definition is written (fsynced) before the registry has it; a
    /// running transient network becomes persistent.
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

    /// net-create: a transient network, started at once and forgotten if that fails;
    /// returns the start's warnings.
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

    /// net-undefine: refused while ports are registered; a running network stays up,
    /// transient.
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

    /// net-start; returns warnings about other firewalls' drops left in place.
    pub async fn start(&mut self, name: &str) -> Result<Vec<String>> {
        let net = self.registry.startable(name)?;
        self.life
            .start(&mut self.registry, &mut self.ports, net)
            .await
    }

    /// net-destroy; with `wait`, returns once the background teardown is done.
    pub async fn destroy(&mut self, name: &str, wait: bool) -> Result<()> {
        self.life
            .destroy(&mut self.registry, &mut self.ports, name, wait)
            .await
    }

    /// net-autostart: the link under CONFIG_DIR first, then the registry.
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

    /// The networks, for the read-only verbs (net-list, net-info).
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

    /// net-forward-add (`forwards::verbs`): kept in kvnet's metadata, applied live.
    pub fn forward_add(&mut self, r: req::ForwardAdd) -> Result<(ForwardEntry, Vec<String>)> {
        forwards::verbs::add(&mut self.registry, &self.paths, &self.life, r)
    }

    /// net-forward-remove.
    pub fn forward_remove(&mut self, r: &req::ForwardRemove) -> Result<()> {
        forwards::verbs::remove(&mut self.registry, &self.paths, &self.life, r)
    }

    /// net-forward-list; on a running network, each with the guest address it reaches now.
    pub fn forward_list(&self, network: &str) -> Result<Vec<ForwardEntry>> {
        forwards::verbs::list(&self.registry, &self.life, network)
    }
}
