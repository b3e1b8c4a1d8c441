//! The port verbs: port-create (bridge, direct and hostdev networks), port-attach,
//! port-delete and port-list, and the `port` event and hooks each change raises.

use super::Daemon;
use crate::events;
use crate::nethooks;
use crate::ports::PortDefaults;
use anyhow::{Result, anyhow};
use kvnet_api::request::{self as req, PortCreate};
use kvnet_api::{CreatedPort, EventKind, Port, PortKind};
use tracing::warn;

impl Daemon {
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
            self.port_event(
                &created.port.network,
                &created.port.ifname,
                created.port.mac.as_deref(),
                "created",
            );
            return Ok(created);
        }
        if let Some(pool) = self.life.pool(&self.registry, &r.network) {
            let qos = direct_qos(self, &r)?;
            let network = r.network.clone();
            let created = self
                .ports
                .create_macvtap(self.life.nl(), &pool?, r, qos)
                .await?;
            return self.shaped(&network, created).await;
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
        self.shaped(&network, created?).await
    }

    /// A new port shaped once its device (TAP or macvtap) exists, and announced; if the
    /// shaping fails, the port goes again.
    async fn shaped(&mut self, network: &str, created: CreatedPort) -> Result<CreatedPort> {
        let ifname = created.port.ifname.as_str();
        if let Err(e) = self
            .life
            .shape(&self.registry, &self.ports, network, Some(ifname))
            .await
        {
            let _ = self.port_delete(Some(network), ifname).await;
            return Err(e.context(format!("cannot shape port {ifname}")));
        }
        self.port_event(
            &created.port.network,
            &created.port.ifname,
            created.port.mac.as_deref(),
            "created",
        );
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
        self.port_event(&port.network, &port.ifname, port.mac.as_deref(), "created");
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
        self.port_event(&gone, ifname, None, "deleted");
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

    /// A port's `port` event (`net-event`) and `port-created`/`port-deleted` hook, whose
    /// stdin is libvirt's `<hookData>`: the network, then the port.
    fn port_event(&self, network: &str, ifname: &str, mac: Option<&str>, action: &str) {
        let mut detail = vec![("port", ifname.to_string())];
        detail.extend(mac.map(|m| ("mac", m.to_string())));
        events::emit(network, EventKind::Port, action, &detail);
        if nethooks::any()
            && let Ok(o) = self.registry.get(network)
        {
            let mac = mac
                .map(|m| format!("  <mac address='{m}'/>\n"))
                .unwrap_or_default();
            let bridge = o.current().bridge_name().unwrap_or_default().to_string();
            let xml = format!(
                "<hookData>\n{}<networkport>\n{mac}  <plug type='network' bridge='{bridge}'/>\n  \
                 <target dev='{}'/>\n</networkport>\n</hookData>\n",
                o.current().to_xml(),
                ifname
            );
            nethooks::fire(network, &format!("port-{action}"), "begin", xml, Vec::new());
        }
    }
}
