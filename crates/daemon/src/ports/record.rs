//! A registered port as stored, and its network's side of it: the defaults its ports
//! take, the bridge the port verbs work on, and the check of `port-create --ip`.

use anyhow::{Result, bail};
use kvnet_api::{Port, PortKind};
use kvnet_host::Link;
use kvnet_model::MacAddr;
use kvnet_model::TrafficFilter;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One registered port, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortRec {
    pub ifname: String,
    pub mac: Option<MacAddr>,
    pub kind: PortKind,
    pub queues: u16,
    /// Who may open a persistent TAP (kept to re-create it after a reboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// `port-create --isolated yes|no`; without it the network's `<port isolated>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    /// `port-create --filter`; without it the network's `<kvnet:filterref>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TrafficFilter>,
    /// `port-create --ip`: addresses the filter lets the guest send from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// `port-create --portgroup/--inbound/--outbound` (crate::qos).
    #[serde(default, skip_serializing_if = "crate::qos::PortQos::is_empty")]
    pub qos: crate::qos::PortQos,
    /// Macvtap ports: the pool device the macvtap is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Macvtap passthrough: the device's own MAC, given back at port-delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_mac: Option<MacAddr>,
    /// Hostdev: kvnet bound the device (`parent`) to vfio-pci and gives it back at
    /// port-delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
}

/// What a network gives its ports unless they choose otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortDefaults {
    /// `<port isolated='yes'/>`.
    pub isolated: bool,
    /// `<kvnet:filterref filter=…/>`.
    pub filter: TrafficFilter,
    /// `<bridge macTableManager='libvirt'>`: kvnet keeps the forwarding table.
    pub mac_table: bool,
}

impl PortDefaults {
    pub fn of(net: &kvnet_model::Network) -> PortDefaults {
        PortDefaults {
            isolated: net.isolated_port == Some(true),
            filter: net.kvnet_ext().map(|e| e.filter).unwrap_or_default(),
            mac_table: net.bridge.as_ref().and_then(|b| b.mac_table_manager)
                == Some(kvnet_model::MacTableManager::Libvirt),
        }
    }
}

impl PortRec {
    /// The port on `network`, whose defaults are `d`.
    pub fn view(&self, network: &str, d: PortDefaults) -> Port {
        Port {
            ifname: self.ifname.clone(),
            mac: self.mac.map(|m| m.to_string()),
            network: network.to_string(),
            kind: self.kind,
            queues: self.queues,
            isolated: self.isolated.unwrap_or(d.isolated),
            filter: self.filter.unwrap_or(d.filter),
            ips: self.ips.clone(),
            learned_mac: None,
            dropped: None,
            portgroup: self.qos.portgroup.clone(),
            inbound: self.qos.inbound.clone(),
            outbound: self.qos.outbound.clone(),
            parent: self.parent.clone(),
        }
    }

    /// Whether the bridge port is isolated: the port's own choice, else its network's.
    pub fn isolated(&self, t: &Target) -> bool {
        self.isolated.unwrap_or(t.defaults.isolated)
    }

    /// The MAC to give a static forwarding entry, when kvnet keeps the network's table
    /// (`macTableManager='libvirt'`) and knows the guest's MAC; a port without one keeps
    /// the kernel's learning.
    pub fn fdb(&self, t: &Target) -> Option<MacAddr> {
        self.mac.filter(|_| t.defaults.mac_table)
    }
}

/// The bridge of an active network, as the port verbs need it.
pub struct Target {
    pub network: String,
    pub bridge: Link,
    pub defaults: PortDefaults,
    /// The network's addresses, which `--ip` must lie in.
    pub subnets: Vec<kvnet_model::IpDef>,
    /// The VLANs of the network's `<vlan>` its ports belong to
    /// ([`vlan::members`](super::vlan::members)); empty: the bridge's default.
    pub vlans: Vec<kvnet_host::VlanMember>,
    /// The VLANs of each portgroup with a `<vlan>`, for the ports in it.
    pub portgroup_vlans: Vec<(String, Vec<kvnet_host::VlanMember>)>,
    /// The portgroup of ports that name none (`default='yes'`).
    pub default_portgroup: Option<String>,
}

impl Target {
    /// The VLANs of a port in `portgroup` (else the default portgroup): that
    /// portgroup's `<vlan>`, else the network's.
    pub fn vlans_of(&self, portgroup: Option<&str>) -> &[kvnet_host::VlanMember] {
        portgroup
            .or(self.default_portgroup.as_deref())
            .and_then(|g| self.portgroup_vlans.iter().find(|(n, _)| n == g))
            .map_or(&self.vlans, |(_, v)| v)
    }
}

/// `port-create --ip`: each address a guest address of one of the network's subnets.
pub(super) fn check_ips(t: &Target, ips: &[IpAddr]) -> Result<()> {
    for &a in ips {
        let Some(ip) = t.subnets.iter().find(|ip| ip.network().contains(&a)) else {
            let nets: Vec<String> = t.subnets.iter().map(|i| i.network().to_string()).collect();
            bail!(
                "address {a} is not on network '{}' (its subnets: {})",
                t.network,
                if nets.is_empty() {
                    "none".into()
                } else {
                    nets.join(", ")
                }
            );
        };
        if a == ip.address {
            bail!(
                "address {a} is the host's own address on network '{}'",
                t.network
            );
        }
        if a.is_multicast() || a.is_unspecified() {
            bail!("address {a} cannot be a guest's: it is not unicast");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ports_vlans_are_its_portgroups_else_the_default_portgroups_else_the_networks() {
        let m = |vid| kvnet_host::VlanMember {
            vid,
            pvid: true,
            untagged: true,
        };
        let mut t = Target {
            network: "n".into(),
            bridge: Link {
                index: 1,
                name: "br0".into(),
                kind: Some("bridge".into()),
                mac: None,
                mtu: 1500,
                up: true,
                master: None,
                loopback: false,
            },
            defaults: PortDefaults::default(),
            subnets: Vec::new(),
            vlans: vec![m(5)],
            portgroup_vlans: vec![("web".into(), vec![m(10)]), ("db".into(), vec![m(20)])],
            default_portgroup: None,
        };
        assert_eq!(t.vlans_of(Some("db")), [m(20)]);
        assert_eq!(
            t.vlans_of(Some("plain")),
            [m(5)],
            "a portgroup without <vlan>"
        );
        assert_eq!(t.vlans_of(None), [m(5)]);
        t.default_portgroup = Some("web".into());
        assert_eq!(t.vlans_of(None), [m(10)]);
        assert_eq!(t.vlans_of(Some("db")), [m(20)]);
    }
}
