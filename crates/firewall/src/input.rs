//! From a network definition to the firewall's input. The forward mode
//! matters only through [`kvnet_model::Profile`]'s firewall role, decided in
//! one place in the model crate.

use kvnet_model::{FirewallRole, Network};

use crate::model::{FwMode, FwNetwork};

impl FwNetwork {
    /// What the firewall needs of `net`, or None when its role installs no
    /// rules (open, bridge, macvtap and hostdev, as in libvirt) or it has no
    /// bridge name (defined networks always get one). Not validated: call
    /// [`FwNetwork::validate`] or [`crate::validate_all`] before rendering.
    pub fn from_network(net: &Network) -> Option<FwNetwork> {
        let mode = match net.profile().firewall {
            FirewallRole::None => return None,
            FirewallRole::Nat => FwMode::Nat,
            FirewallRole::Route => FwMode::Route,
            FirewallRole::Isolated => FwMode::Isolated,
        };
        let bridge = net.bridge.as_ref().and_then(|b| b.name.clone())?;
        let forward = net.forward.as_ref();
        let nat = forward.and_then(|f| f.nat.as_ref());
        let dhcp = |v6: bool| {
            net.ips
                .iter()
                .any(|ip| ip.is_ipv6() == v6 && ip.dhcp.is_some())
        };
        Some(FwNetwork {
            name: net.name.clone(),
            bridge,
            mode,
            forward_dev: net.forward_dev().map(str::to_string),
            subnets: net.ips.iter().map(|ip| ip.network()).collect(),
            nat_ipv6: nat.and_then(|n| n.ipv6) == Some(true),
            nat_addresses: nat.and_then(|n| n.address),
            nat_ports: nat.and_then(|n| n.port),
            ipv6: net.ipv6 == Some(true) || net.ips.iter().any(|ip| ip.is_ipv6()),
            dhcpv4: dhcp(false),
            dhcpv6: dhcp(true),
            dns: net.dns.as_ref().and_then(|d| d.enable) != Some(false),
            tftp: net.ips.iter().any(|ip| ip.tftp_root.is_some()),
            forwards: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(attrs: &str, forward: &str) -> Option<FwNetwork> {
        let xml = format!(
            "<network{attrs}><name>n</name>{forward}<bridge name='br0'/>\
             <ip address='10.0.0.1' prefix='24'/></network>"
        );
        FwNetwork::from_network(&Network::from_xml(&xml).unwrap())
    }

    #[test]
    fn the_mode_comes_from_the_firewall_role() {
        let mode = |forward: &str| fw("", forward).map(|f| f.mode);
        assert_eq!(mode(""), Some(FwMode::Isolated));
        assert_eq!(mode("<forward mode='nat'/>"), Some(FwMode::Nat));
        assert_eq!(mode("<forward mode='route'/>"), Some(FwMode::Route));
        assert_eq!(mode("<forward mode='open'/>"), None);
    }

    #[test]
    fn host_bridges_get_no_rules() {
        let net = Network::from_xml(
            "<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>",
        )
        .unwrap();
        assert_eq!(FwNetwork::from_network(&net), None);
    }

    #[test]
    fn ipv6_yes_without_an_ipv6_address_still_counts() {
        assert!(!fw("", "<forward mode='nat'/>").unwrap().ipv6);
        assert!(fw(" ipv6='yes'", "<forward mode='nat'/>").unwrap().ipv6);
    }
}
