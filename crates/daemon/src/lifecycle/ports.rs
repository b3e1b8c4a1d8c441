//! The lifecycle's side of ports: an active network's bridge for the port verbs, its
//! direct and hostdev pools, its ports put back (and shaped) at start and adoption, and
//! the checks a start makes for direct networks and VLANs.

use super::Lifecycle;
use crate::ports::direct::Pool;
use crate::ports::hostdev::HostdevPool;
use crate::ports::{Ports, SYSFS, Target};
use crate::registry::Registry;
use anyhow::{Result, anyhow, bail};
use kvnet_model::Network;

impl Lifecycle {
    /// The bridge of active network `name`, for the port verbs.
    pub async fn target(&self, reg: &Registry, name: &str) -> Result<Target> {
        let live = reg.live(name)?;
        let br = live
            .bridge_name()
            .ok_or_else(|| anyhow!("network '{name}' has no bridge to put guests on"))?;
        let bridge = self
            .dp
            .nl()
            .link(br)
            .await?
            .ok_or_else(|| anyhow!("bridge {br} of network '{name}' does not exist"))?;
        Ok(Target {
            network: name.to_string(),
            bridge,
            defaults: crate::ports::PortDefaults::of(live),
            subnets: live.ips.clone(),
            vlans: live
                .vlan
                .as_ref()
                .map(crate::ports::vlan::members)
                .unwrap_or_default(),
            portgroup_vlans: live
                .portgroups
                .iter()
                .filter_map(|g| {
                    Some((
                        g.name.clone(),
                        crate::ports::vlan::members(g.vlan.as_ref()?),
                    ))
                })
                .collect(),
            default_portgroup: live
                .portgroups
                .iter()
                .find(|g| g.is_default)
                .map(|g| g.name.clone()),
        })
    }

    /// The pool of active hostdev network `name`, for port-create.
    pub fn hostdev_pool(&self, reg: &Registry, name: &str) -> Option<Result<HostdevPool>> {
        match reg.live(name) {
            Ok(live) => HostdevPool::of(live, std::path::Path::new(SYSFS)),
            Err(e) => Some(Err(e)),
        }
    }

    /// The pool of active direct network `name`, for port-create.
    pub fn pool(&self, reg: &Registry, name: &str) -> Option<Result<Pool>> {
        match reg.live(name) {
            Ok(live) => Pool::of(live, std::path::Path::new(SYSFS)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Put the ports of active network `name` back, then shape them and the network.
    pub(super) async fn replug(
        &self,
        reg: &Registry,
        ports: &mut Ports,
        name: &str,
    ) -> Vec<String> {
        let mut warnings = self.put_back(reg, ports, name).await;
        // Only what differs is changed: an adopted network's shaping stays as is. A
        // bridge without ports and bandwidth has nothing to shape (reading every
        // device's qdiscs costs milliseconds at 1,000 networks).
        let bandwidth = reg.live(name).is_ok_and(|n| {
            n.bandwidth.is_some() || n.portgroups.iter().any(|p| p.bandwidth.is_some())
        });
        if !bandwidth && !ports.has_ports(name) {
            return warnings;
        }
        if let Err(e) = self.shape(reg, ports, name, None).await {
            warnings.push(format!("network '{name}': {e:#}"));
        }
        warnings
    }

    /// Apply the `<bandwidth>` of active network `name` and its ports (crate::qos), or
    /// with `only` of its bridge and that port; on a direct network, of its macvtaps
    /// (a hostdev network's VFs are the guests' own: nothing to shape).
    pub async fn shape(
        &self,
        reg: &Registry,
        ports: &Ports,
        name: &str,
        only: Option<&str>,
    ) -> Result<()> {
        let live = reg.live(name)?;
        match live.bridge_name() {
            Some(br) => crate::qos::sync(self.dp.nl(), live, br, ports.recs(name), only).await,
            None if live.profile().macvtap.is_some() => {
                crate::qos::sync_direct(self.dp.nl(), live, ports.recs(name), only).await
            }
            None => Ok(()),
        }
    }

    /// Put the ports of active network `name` on its bridge, persistent TAPs re-created;
    /// on a direct network, its macvtaps up and re-made.
    async fn put_back(&self, reg: &Registry, ports: &mut Ports, name: &str) -> Vec<String> {
        if !ports.has_ports(name) {
            return Vec::new();
        }
        // A hostdev port's device stays with its guest whatever the network does.
        if reg.live(name).is_ok_and(|l| l.profile().hostdev) {
            return Vec::new();
        }
        if let Ok(live) = reg.live(name)
            && let Some(pool) = Pool::of(live, std::path::Path::new(SYSFS))
        {
            return match pool {
                Ok(pool) => ports.remake(self.dp.nl(), &pool).await,
                Err(e) => vec![format!("network '{name}': ports not made: {e:#}")],
            };
        }
        match self.target(reg, name).await {
            Ok(t) => ports.replug(self.dp.nl(), &t).await,
            Err(e) => vec![format!("network '{name}': ports not attached: {e:#}")],
        }
    }
}

/// What must hold before a network without a bridge starts: a hostdev network is
/// refused, saying first why its physical function has no virtual functions here; a
/// direct network needs at least one of its pool's devices on the host. Returns
/// warnings for missing devices.
pub(super) async fn direct_checks(
    net: &Network,
    sys: &std::path::Path,
    nl: &kvnet_host::Netlink,
) -> Result<Vec<String>> {
    let profile = net.profile();
    if let Some(msg) = profile.unsupported {
        bail!(msg);
    }
    if let Some(pool) = HostdevPool::of(net, sys) {
        let pool = pool?;
        let missing: Vec<&str> = pool
            .devices
            .iter()
            .filter(|d| !sys.join("bus/pci/devices").join(&d.pci).exists())
            .map(|d| d.pci.as_str())
            .collect();
        if missing.len() == pool.devices.len() {
            bail!(
                "none of its PCI devices ({}) exists on the host",
                missing.join(", ")
            );
        }
        return Ok(missing
            .iter()
            .map(|d| {
                format!(
                    "network '{}': PCI device {d} of its pool does not exist on the host",
                    net.name
                )
            })
            .collect());
    }
    let Some(pool) = Pool::of(net, sys) else {
        return Ok(Vec::new());
    };
    let pool = pool?;
    let mut missing = Vec::new();
    for d in &pool.devices {
        if nl.link(d).await?.is_none() {
            missing.push(d.as_str());
        }
    }
    if missing.len() == pool.devices.len() {
        bail!(
            "none of its devices ({}) exists on the host",
            missing.join(", ")
        );
    }
    Ok(missing
        .iter()
        .map(|d| format!("network '{}': device {d} of its pool does not exist on the host (ports go on the others)", net.name))
        .collect())
}

/// A network with `<vlan>`s: tags a bridge can carry, and a kernel that filters VLANs
/// (a host bridge must already filter them: kvnet does not change it). A bridge kvnet
/// makes has filtering turned on as it is made.
pub(super) fn vlan_checks(net: &Network, bridge: Option<&kvnet_host::Link>) -> Result<()> {
    use crate::ports::vlan;
    if !vlan::needed(net) || net.profile().bridge == kvnet_model::BridgeRole::None {
        return Ok(());
    }
    vlan::check(net).map_err(|e| anyhow!(e))?;
    if net.profile().bridge == kvnet_model::BridgeRole::Host
        && let Some(b) = bridge
        && let Some(why) = vlan::refusal(
            net,
            &b.name,
            kvnet_host::link::bridge_vlan_filtering(&b.name),
            false,
        )
    {
        bail!(why);
    }
    Ok(())
}
