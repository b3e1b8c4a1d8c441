//! Hostdev networks: a guest port is a PCI device — a virtual function of the network's
//! SR-IOV `<pf>`, or one of its `<address>`es — handed to qemu's vfio-pci, as libvirt's
//! `<interface type='network'>` on such a network. Each device serves one guest. With
//! `managed='yes'` kvnet binds it to vfio-pci at port-create and gives it back to the
//! host's driver at port-delete; a VF gets the guest's MAC through its PF first.

use super::{PortRec, Ports, free_name, parse_mac, random_mac};
use crate::ids::{entropy, group_id, user_id};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request::PortCreate;
use kvnet_api::{CreatedPort, PortKind};
use kvnet_host::{Netlink, sriov};
use kvnet_model::{MacAddr, Network};
use std::collections::HashSet;
use std::path::Path;
use tracing::{info, warn};

/// One device of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `dddd:bb:ss.f`.
    pub pci: String,
    /// A VF: its PF's name and its number there (its MAC is set through the PF).
    pub vf: Option<(String, u32)>,
}

/// A running hostdev network, as port-create needs it.
pub struct HostdevPool {
    pub network: String,
    /// kvnet binds the devices to vfio-pci and back (`managed='yes'`).
    pub managed: bool,
    pub devices: Vec<Device>,
}

impl HostdevPool {
    /// The pool of hostdev network `net` (`None`: not one), its `<pf>`'s virtual
    /// functions read under `sys`, else its `<address>`es.
    pub fn of(net: &Network, sys: &Path) -> Option<Result<HostdevPool>> {
        if !net.profile().hostdev {
            return None;
        }
        let f = net.forward.as_ref()?;
        let devices = if let Some(pf) = &f.pf {
            sriov::vfs(sys, pf)
                .map(|vfs| {
                    vfs.into_iter()
                        .map(|v| Device {
                            pci: v.pci,
                            vf: Some((pf.clone(), v.index)),
                        })
                        .collect()
                })
                .map_err(|why| {
                    anyhow!(
                        "forward mode 'hostdev' assigns SR-IOV virtual functions of {pf} to guests, and {why}"
                    )
                })
        } else if !f.addresses.is_empty() {
            Ok(f.addresses
                .iter()
                .map(|a| Device {
                    pci: a.to_string(),
                    vf: None,
                })
                .collect())
        } else {
            Err(anyhow!(
                "network '{}' names no device (<pf> or <address>)",
                net.name
            ))
        };
        Some(devices.map(|devices| HostdevPool {
            network: net.name.clone(),
            managed: f.managed == Some(true),
            devices,
        }))
    }
}

/// The first device no port of any network holds (`held`: the PCI addresses ports
/// have), as libvirt gives each hostdev device to one guest.
pub fn choose<'a>(pool: &'a HostdevPool, held: &HashSet<String>) -> Result<&'a Device, String> {
    pool.devices
        .iter()
        .find(|d| !held.contains(&d.pci))
        .ok_or_else(|| {
            format!(
                "network '{}' has no free device: all {} are assigned to guests",
                pool.network,
                pool.devices.len()
            )
        })
}

/// qemu's argument for a device on vfio-pci.
pub fn qemu_args(pci: &str) -> Vec<String> {
    vec!["-device".into(), format!("vfio-pci,host={pci}")]
}

impl Ports {
    /// port-create on a hostdev network: a free device, its VF given the guest's MAC,
    /// bound to vfio-pci when the network is managed, its IOMMU group given to the
    /// owner. Registered first; on failure unregistered and the device given back.
    pub async fn create_hostdev(
        &mut self,
        nl: &Netlink,
        sys: &Path,
        pool: &HostdevPool,
        a: PortCreate,
        qos: crate::qos::PortQos,
    ) -> Result<CreatedPort> {
        let network = &pool.network;
        if !a.ips.is_empty() || a.filter.is_some_and(|f| !f.is_none()) || a.isolated.is_some() {
            bail!(
                "network '{network}' is a hostdev network: its guests have a PCI device of their own; --ip, --filter and --isolated need a bridge"
            );
        }
        if a.queues.is_some_and(|q| q != 1) {
            bail!(
                "network '{network}' is a hostdev network: the device's queues are its own (--queues)"
            );
        }
        let owner = a.owner.as_deref().map(user_id).transpose()?;
        let group = a.group.as_deref().map(group_id).transpose()?;
        let held: HashSet<String> = self
            .by_net
            .values()
            .flatten()
            .filter(|p| p.kind == PortKind::Hostdev)
            .filter_map(|p| p.parent.clone())
            .collect();
        let dev = choose(pool, &held).map_err(|e| anyhow!(e))?.clone();
        let names: HashSet<String> = self
            .by_net
            .values()
            .flatten()
            .map(|p| p.ifname.clone())
            .collect();
        let ifname = match a.ifname {
            Some(n) if names.contains(&n) => bail!("port {n} already exists"),
            Some(n) => n,
            None => free_name("hostdev", &names),
        };
        let macs: HashSet<[u8; 6]> = self
            .by_net
            .values()
            .flatten()
            .filter_map(|p| p.mac.map(|m| m.0))
            .collect();
        let mac = match a.mac {
            Some(m) => parse_mac(&m)?,
            None => random_mac(&macs, entropy),
        };
        let rec = PortRec {
            ifname: ifname.clone(),
            mac: Some(mac),
            kind: PortKind::Hostdev,
            queues: 1,
            owner,
            group,
            isolated: None,
            filter: None,
            ips: Vec::new(),
            parent: Some(dev.pci.clone()),
            parent_mac: None,
            managed: pool.managed,
            // Its portgroup only: kvnet shapes bridged ports (crate::qos).
            qos,
        };
        let mut ports = self.of(network).to_vec();
        ports.push(rec.clone());
        self.save(network, ports)?;
        if let Err(e) = assign(nl, sys, &rec, &dev, mac).await {
            if rec.managed
                && let Err(r) = sriov::release_vfio(sys, &dev.pci)
            {
                warn!(network = %network, "{} not given back: {r}", dev.pci);
            }
            self.unregister(network, &ifname);
            return Err(e.context(format!(
                "cannot create port {ifname} on network '{network}'"
            )));
        }
        info!(network = %network, "port {ifname} created: PCI device {} (guest MAC {mac})", dev.pci);
        Ok(CreatedPort {
            port: rec.view(network, super::PortDefaults::default()),
            qemu_args: qemu_args(&dev.pci),
            vhost_off: None,
            fds: Vec::new(),
        })
    }
}

/// The guest's MAC on the VF (through its PF), the device on vfio-pci (managed), and
/// its IOMMU group's /dev/vfio node for the owner.
async fn assign(nl: &Netlink, sys: &Path, rec: &PortRec, dev: &Device, mac: MacAddr) -> Result<()> {
    if let Some((pf, vf)) = &dev.vf {
        let link = nl
            .link(pf)
            .await?
            .ok_or_else(|| anyhow!("physical function {pf} does not exist"))?;
        nl.set_vf_mac(link.index, *vf, mac.0).await?;
    }
    if rec.managed {
        sriov::bind_vfio(sys, &dev.pci)?;
    } else if sriov::driver(sys, &dev.pci).as_deref() != Some("vfio-pci") {
        bail!(
            "{} is not bound to vfio-pci, and the network is not managed='yes' (bind it, or let kvnet)",
            dev.pci
        );
    }
    if rec.owner.is_some() || rec.group.is_some() {
        let group = sriov::iommu_group(sys, &dev.pci)
            .ok_or_else(|| anyhow!("{} has no IOMMU group (is the IOMMU on?)", dev.pci))?;
        let node = format!("/dev/vfio/{group}");
        std::os::unix::fs::chown(&node, rec.owner, rec.group)
            .with_context(|| format!("give {node} to the port's owner"))?;
    }
    Ok(())
}

/// port-delete of a hostdev port: a managed device goes back to the host's driver.
pub fn unassign(sys: &Path, rec: &PortRec) -> Result<()> {
    if rec.managed
        && let Some(pci) = &rec.parent
    {
        sriov::release_vfio(sys, pci)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> HostdevPool {
        HostdevPool {
            network: "sriov".into(),
            managed: true,
            devices: ["0000:01:10.0", "0000:01:10.1"]
                .iter()
                .enumerate()
                .map(|(i, p)| Device {
                    pci: p.to_string(),
                    vf: Some(("eth0".into(), i as u32)),
                })
                .collect(),
        }
    }

    #[test]
    fn each_device_serves_one_guest() {
        let p = pool();
        let mut held = HashSet::new();
        assert_eq!(choose(&p, &held).unwrap().pci, "0000:01:10.0");
        held.insert("0000:01:10.0".to_string());
        assert_eq!(choose(&p, &held).unwrap().vf, Some(("eth0".into(), 1)));
        held.insert("0000:01:10.1".to_string());
        assert_eq!(
            choose(&p, &held).unwrap_err(),
            "network 'sriov' has no free device: all 2 are assigned to guests"
        );
        assert_eq!(
            qemu_args("0000:01:10.1"),
            ["-device", "vfio-pci,host=0000:01:10.1"]
        );
    }

    #[test]
    fn the_pool_is_the_pfs_vfs_or_the_addresses() {
        let net = |fwd: &str| {
            Network::from_xml(&format!("<network><name>h</name>{fwd}</network>")).unwrap()
        };
        let sys = Path::new("/nonexistent-sys");
        let e = HostdevPool::of(
            &net("<forward mode='hostdev' managed='yes'><pf dev='eth3'/></forward>"),
            sys,
        )
        .unwrap()
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "forward mode 'hostdev' assigns SR-IOV virtual functions of eth3 to guests, and eth3 does not exist"
        );
        let p = HostdevPool::of(
            &net("<forward mode='hostdev'><address type='pci' domain='0' bus='4' slot='16' function='1'/></forward>"),
            sys,
        )
        .unwrap()
        .unwrap();
        assert!(!p.managed);
        assert_eq!(
            p.devices,
            [Device {
                pci: "0000:04:10.1".into(),
                vf: None
            }]
        );
        assert!(
            HostdevPool::of(&net("<forward mode='bridge'/><bridge name='br0'/>"), sys).is_none()
        );
    }
}
