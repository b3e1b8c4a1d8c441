//! The thin shell that makes a started network real in the kernel: bridge, addresses,
//! routes, sysctls and firewall, each step recorded so that a failure undoes exactly
//! what was done. What to create comes from the pure [`checks`]; the firewall is
//! [`firewall`]'s, kvnet's changes in other firewalls [`foreign`]'s.

pub mod checks;
pub mod fence;
pub mod firewall;
pub mod foreign;
pub mod overlay;

use anyhow::{Context, Result, anyhow, bail};
use firewall::Firewall;
use foreign::Foreign;
use kvnet_firewall::FwNetwork;
use kvnet_host::routewatch::RouteWatcher;
use kvnet_host::{Link, Netlink, Route, sysctl};
use kvnet_model::Network;
use tracing::{debug, info, warn};

/// Main routing table and the "static" route protocol, as `ip route add` uses.
const RT_TABLE_MAIN: u32 = 254;
const RTPROT_STATIC: u8 = 4;

pub struct Dataplane {
    nl: Netlink,
    /// The host's routes for the start checks, without a table read per start.
    routes: RouteWatcher,
    fw: Firewall,
    foreign: Foreign,
}

enum Undo {
    DeleteLink(u32, String),
    /// A network's VXLAN device out of the DHCP fence.
    Unfence(String, String),
    Firewall(FwNetwork),
}

/// What a stop leaves for the background teardown: the rules and the bridge to delete.
pub struct Leftovers {
    pub firewall: Option<FwNetwork>,
    pub bridge: Option<String>,
}

fn static_route(r: &kvnet_model::RouteDef, oif: u32) -> Route {
    Route {
        dest: r.destination(),
        gateway: Some(r.gateway),
        oif: Some(oif),
        metric: r.metric,
        table: RT_TABLE_MAIN,
        proto: RTPROT_STATIC,
    }
}

impl Dataplane {
    pub fn new(nl: Netlink, routes: RouteWatcher, fw: Firewall, foreign: Foreign) -> Dataplane {
        Dataplane {
            nl,
            routes,
            fw,
            foreign,
        }
    }

    /// The daemon's netlink socket, for the verbs on links (ports, iface-bridge).
    pub fn nl(&self) -> &Netlink {
        &self.nl
    }

    pub fn fw(&self) -> &Firewall {
        &self.fw
    }

    pub fn foreign(&self) -> &Foreign {
        &self.foreign
    }

    /// The host's routes as last seen.
    /// The host routes that overlap any of `subnets`.
    pub fn routes_overlapping(
        &self,
        subnets: &[ipnet::IpNet],
    ) -> Result<Vec<kvnet_host::procroutes::HostRoute>> {
        Ok(self.routes.overlapping(subnets)?)
    }

    /// The link named like the network's bridge, if there is one.
    pub async fn bridge_link(&self, net: &Network) -> Result<Option<Link>> {
        match net.bridge_name() {
            Some(br) => Ok(self.nl.link(br).await?),
            None => Ok(None),
        }
    }

    /// Make `net` real. The forwarding sysctls it needs must be in the sysctl ledger
    /// already: they are turned on here and put back by the ledger. Returns warnings
    /// about other firewalls' drops kvnet leaves in place.
    pub async fn start(&self, net: &Network) -> Result<Vec<String>> {
        let mut undo = Vec::new();
        let res = self.start_steps(net, &mut undo).await;
        if res.is_err() {
            for u in undo.into_iter().rev() {
                if let Err(ue) = self.run_undo(u).await {
                    warn!(network = %net.name, "rollback step failed: {ue:#}");
                }
            }
        }
        res
    }

    async fn start_steps(&self, net: &Network, undo: &mut Vec<Undo>) -> Result<Vec<String>> {
        if !net.profile().owns_bridge() {
            // A host bridge is used as it is; checks::check_start verified it.
            return Ok(Vec::new());
        }
        let t0 = std::time::Instant::now();
        let spec = checks::bridge_spec(net)
            .ok_or_else(|| anyhow!("network '{}' has no bridge name", net.name))?;
        let idx = self
            .nl
            .create_bridge(&spec)
            .await
            .with_context(|| format!("create bridge {}", spec.name))?;
        undo.push(Undo::DeleteLink(idx, spec.name.clone()));
        if crate::ports::vlan::needed(net) {
            self.filter_vlans(net, idx).await?;
        }
        for (key, value) in checks::bridge_sysctls(net, &spec.name) {
            sysctl::write(&key, value)?;
        }
        for addr in checks::bridge_addresses(net) {
            self.nl
                .add_address(idx, addr)
                .await
                .with_context(|| format!("add address {addr} to {}", spec.name))?;
        }
        self.nl
            .set_up(idx, true)
            .await
            .with_context(|| format!("set {} up", spec.name))?;
        if let Some(o) = overlay::of(net) {
            let u = overlay::underlay(&self.nl, &o).await?;
            let mtu = u.guest_mtu(&o, net.mtu).map_err(|e| anyhow!(e))?;
            let s = overlay::spec(&o, &u, mtu);
            let vx = overlay::create(&self.nl, &s, idx).await?;
            undo.push(Undo::DeleteLink(vx, s.name.clone()));
            self.fw.fence().set(&net.name, &s.name, true)?;
            undo.push(Undo::Unfence(net.name.clone(), s.name.clone()));
        }
        for r in &net.routes {
            let route = static_route(r, idx);
            self.nl.add_route(&route).await.with_context(|| {
                format!(
                    "add route {} via {} dev {}",
                    route.dest, r.gateway, spec.name
                )
            })?;
        }
        for key in checks::forwarding_sysctls(net) {
            if sysctl::read(key)?.trim() != "1" {
                sysctl::write(key, "1")?;
            }
        }
        let t_kernel = t0.elapsed();
        if let Some(fw) = self.fw.add(net)? {
            undo.push(Undo::Firewall(fw));
        }
        let t_fw = t0.elapsed();
        // The last step: on error it has undone itself.
        let warnings = self.foreign.start(net).await?;
        debug!(
            network = %net.name,
            "links, addresses, routes, sysctls: {t_kernel:?}; firewall: {:?}; other firewalls: {:?}",
            t_fw - t_kernel,
            t0.elapsed() - t_fw
        );
        Ok(warnings)
    }

    /// Network `network`'s VXLAN port out of the DHCP fence, then deleted; the errors.
    async fn unfence_and_delete(&self, network: &str, o: &kvnet_model::Overlay) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = self.fw.fence().set(network, &o.device(), false) {
            errors.push(format!("{e:#}"));
        }
        if let Err(e) = overlay::delete(&self.nl, o).await {
            errors.push(format!("{e:#}"));
        }
        errors
    }

    /// VLAN filtering on a bridge kvnet made; the host is a member of the network's own
    /// `<vlan>` as its guests are, so its DHCP and DNS serve them.
    async fn filter_vlans(&self, net: &Network, idx: u32) -> Result<()> {
        use crate::ports::vlan;
        if let Err(e) = self.nl.set_vlan_filtering(idx, true).await {
            if e.errno() == Some(nix::errno::Errno::EOPNOTSUPP as i32) {
                bail!(vlan::missing_kernel_feature(net));
            }
            return Err(e.into());
        }
        let host = vlan::default_members(net);
        if !host.is_empty() {
            self.nl
                .set_port_vlans(idx, &host, &[vlan::DEFAULT], true)
                .await
                .context("put the host on the network's VLANs")?;
        }
        Ok(())
    }

    async fn run_undo(&self, u: Undo) -> Result<()> {
        match u {
            Undo::DeleteLink(idx, name) => self
                .nl
                .delete_link(idx)
                .await
                .with_context(|| format!("delete {name}"))?,
            Undo::Firewall(fw) => self.fw.remove(&fw)?,
            Undo::Unfence(network, dev) => self.fw.fence().set(&network, &dev, false)?,
        }
        Ok(())
    }

    /// Remove everything `net` added, now (a network found half-gone or half-stopped at
    /// daemon start). Keeps going past failures and reports them all, so one stuck step
    /// never leaves the rest behind.
    pub async fn stop(&self, net: &Network, owns_bridge: bool) -> Result<()> {
        let mut errors = self.foreign.stop(net).await;
        if let Some(fw) = self.fw.installed(net)
            && let Err(e) = self.fw.remove(&fw)
        {
            errors.push(format!("remove firewall rules: {e:#}"));
        }
        if let Some(o) = overlay::of(net).filter(|_| owns_bridge) {
            errors.extend(self.unfence_and_delete(&net.name, &o).await);
        }
        if owns_bridge && let Some(br) = net.bridge_name() {
            match self.nl.link(br).await {
                Ok(Some(l)) => {
                    if let Err(e) = self.nl.delete_link(l.index).await {
                        errors.push(format!("delete bridge {br}: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("look up bridge {br}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(errors.join("; ")))
        }
    }

    /// The part of a stop that traffic notices, done at once: the bridge goes down (its
    /// routes with it). The rest is returned for the background teardown.
    pub async fn quiesce(&self, net: &Network, owns_bridge: bool) -> (Leftovers, Vec<String>) {
        let mut errors = Vec::new();
        let bridge = net
            .bridge_name()
            .filter(|_| owns_bridge)
            .map(str::to_string);
        if let Some(br) = &bridge {
            match self.nl.link(br).await {
                Ok(Some(l)) => {
                    if let Err(e) = self.nl.set_up(l.index, false).await {
                        errors.push(format!("set {br} down: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("look up bridge {br}: {e}")),
            }
        }
        // The VXLAN port goes at once: the bridge's deletion would leave it behind, and
        // the other hosts learn from FRR that this one no longer carries the VNI.
        if let Some(o) = overlay::of(net).filter(|_| owns_bridge) {
            errors.extend(self.unfence_and_delete(&net.name, &o).await);
        }
        let left = Leftovers {
            firewall: self.fw.installed(net),
            bridge,
        };
        (left, errors)
    }

    /// A restarted daemon takes over a network it started before. Returns false when the
    /// bridge is gone (the network cannot be adopted and must be cleaned up). Everything
    /// that differs from the definition is corrected; what matches is left untouched so
    /// guest traffic is not disturbed.
    pub async fn adopt(&self, net: &Network, owns_bridge: bool) -> Result<bool> {
        if !owns_bridge || !net.profile().owns_bridge() {
            return Ok(true);
        }
        let Some(spec) = checks::bridge_spec(net) else {
            return Ok(false);
        };
        let Some(link) = self.nl.link(&spec.name).await? else {
            return Ok(false);
        };
        if link.kind.as_deref() != Some("bridge") {
            return Ok(false);
        }
        let mut fixed = self.nl.reconcile_bridge(&spec).await?;
        for (key, value) in checks::bridge_sysctls(net, &spec.name) {
            if sysctl::read(&key)?.trim() != value {
                sysctl::write(&key, value)?;
                fixed.push(format!("{key}={value}"));
            }
        }
        let have = self.nl.addresses(link.index).await?;
        for addr in checks::bridge_addresses(net) {
            if !have.contains(&addr) {
                self.nl.add_address(link.index, addr).await?;
                fixed.push(format!("address {addr}"));
            }
        }
        if !link.up {
            self.nl.set_up(link.index, true).await?;
            fixed.push("link up".into());
        }
        if let Some(o) = overlay::of(net) {
            let u = overlay::underlay(&self.nl, &o).await?;
            let mtu = u.guest_mtu(&o, net.mtu).map_err(|e| anyhow!(e))?;
            let s = overlay::spec(&o, &u, mtu);
            // Its DHCP fence: Firewall::reconcile_at_start, for every network at once.
            fixed.extend(overlay::ensure(&self.nl, &s, link.index).await?);
        }
        // The route table (thousands of routes at 1,000 networks) only when needed.
        let routes = if net.routes.is_empty() {
            Vec::new()
        } else {
            self.nl.routes().await?
        };
        for r in &net.routes {
            let want = static_route(r, link.index);
            if !routes
                .iter()
                .any(|h| h.dest == want.dest && h.oif == want.oif && h.gateway == want.gateway)
            {
                self.nl.add_route(&want).await?;
                fixed.push(format!("route {}", want.dest));
            }
        }
        for key in checks::forwarding_sysctls(net) {
            if sysctl::read(key)?.trim() != "1" {
                sysctl::write(key, "1")?;
                fixed.push(format!("{key}=1"));
            }
        }
        if !fixed.is_empty() {
            info!(network = %net.name, "adopted with corrections: {}", fixed.join(", "));
        }
        Ok(true)
    }
}
