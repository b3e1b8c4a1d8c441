//! firewalld: which zone a network's bridge belongs in, and kvnet's own zones and
//! policies, the equivalents of the ones libvirt installs (`libvirt`,
//! `libvirt-routed`, `libvirt-routed-in`/`-out`, `libvirt-to-host`), as data for
//! firewalld's D-Bus config API (`config.addZone2`, `config.addPolicy`).

use kvnet_model::{ForwardMode, Network};

/// For nat, isolated and open networks: everything from the bridge may be forwarded
/// (target ACCEPT); to the host only DHCP, DNS, TFTP, SSH and ICMP.
pub const ZONE: &str = "kvnet";
/// For routed networks, with the policies below.
pub const ROUTED_ZONE: &str = "kvnet-routed";

/// A setting of a zone or policy, as firewalld's `a{sv}` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(&'static str),
    Strs(&'static [&'static str]),
    Int(i32),
}

/// A permanent zone or policy to create when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: &'static str,
    pub settings: &'static [(&'static str, Value)],
}

const HOST_SERVICES: &[&str] = &["dhcp", "dhcpv6", "dns", "ssh", "tftp"];
const ICMP: &[&str] = &["icmp", "ipv6-icmp"];

pub const ZONES: &[Definition] = &[
    Definition {
        name: ZONE,
        settings: &[
            ("short", Value::Str("kvnet")),
            (
                "description",
                Value::Str(
                    "kvnet's NAT, isolated and open networks (like libvirt's zone 'libvirt')",
                ),
            ),
            ("target", Value::Str("ACCEPT")),
            ("services", Value::Strs(HOST_SERVICES)),
            ("protocols", Value::Strs(ICMP)),
            (
                "rules_str",
                Value::Strs(&["rule priority=\"32767\" reject"]),
            ),
        ],
    },
    Definition {
        name: ROUTED_ZONE,
        settings: &[
            ("short", Value::Str("kvnet-routed")),
            (
                "description",
                Value::Str("kvnet's routed networks (like libvirt's zone 'libvirt-routed')"),
            ),
        ],
    },
];

pub const POLICIES: &[Definition] = &[
    Definition {
        name: "kvnet-routed-in",
        settings: &[
            ("ingress_zones", Value::Strs(&["ANY"])),
            ("egress_zones", Value::Strs(&[ROUTED_ZONE])),
            ("target", Value::Str("ACCEPT")),
            ("priority", Value::Int(-500)),
        ],
    },
    Definition {
        name: "kvnet-routed-out",
        settings: &[
            ("ingress_zones", Value::Strs(&[ROUTED_ZONE])),
            ("egress_zones", Value::Strs(&["ANY"])),
            ("target", Value::Str("ACCEPT")),
            ("priority", Value::Int(-500)),
        ],
    },
    Definition {
        name: "kvnet-to-host",
        settings: &[
            ("ingress_zones", Value::Strs(&[ROUTED_ZONE])),
            ("egress_zones", Value::Strs(&["HOST"])),
            ("target", Value::Str("REJECT")),
            ("services", Value::Strs(HOST_SERVICES)),
            ("protocols", Value::Strs(ICMP)),
            ("priority", Value::Int(-500)),
        ],
    },
];

/// The zone `net`'s bridge goes in when firewalld runs, as libvirt decides:
/// `<bridge zone>` if given; else kvnet's routed zone for route, kvnet's zone for nat
/// and isolated; open networks only with `<bridge zone>`; none for networks whose
/// bridge kvnet does not manage.
pub fn zone_for(net: &Network) -> Option<(String, String)> {
    let br = net.bridge.as_ref()?;
    let name = br.name.clone()?;
    if !net.profile().owns_bridge() {
        return None;
    }
    let zone = match (&br.zone, net.forward_mode()) {
        (Some(z), _) => z.clone(),
        (None, ForwardMode::Route) => ROUTED_ZONE.to_string(),
        (None, ForwardMode::Nat | ForwardMode::Isolated) => ZONE.to_string(),
        (None, _) => return None,
    };
    Some((name, zone))
}

/// One of kvnet's zones, which kvnet creates when missing.
pub fn is_kvnets(zone: &str) -> bool {
    zone == ZONE || zone == ROUTED_ZONE
}

/// Whether a kvnet zone or policy must exist for `zone`, and which.
pub fn needs(zone: &str) -> (Vec<&'static Definition>, Vec<&'static Definition>) {
    match zone {
        ZONE => (vec![&ZONES[0]], vec![]),
        ROUTED_ZONE => (vec![&ZONES[1]], POLICIES.iter().collect()),
        _ => (vec![], vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(xml_forward: &str, bridge_attrs: &str) -> Option<(String, String)> {
        let xml = format!(
            "<network><name>n</name>{xml_forward}<bridge name='br9'{bridge_attrs}/>\
             <ip address='10.9.0.1' prefix='24'/></network>"
        );
        zone_for(&Network::from_xml(&xml).unwrap())
    }

    #[test]
    fn zones_follow_libvirt() {
        let z = |f, a| zone(f, a).map(|(_, z)| z);
        assert_eq!(z("<forward mode='nat'/>", ""), Some(ZONE.into()));
        assert_eq!(z("", ""), Some(ZONE.into()), "isolated");
        assert_eq!(z("<forward mode='route'/>", ""), Some(ROUTED_ZONE.into()));
        assert_eq!(z("<forward mode='open'/>", ""), None);
        assert_eq!(
            z("<forward mode='open'/>", " zone='trusted'"),
            Some("trusted".into())
        );
        assert_eq!(
            z("<forward mode='nat'/>", " zone='internal'"),
            Some("internal".into())
        );
        assert_eq!(zone("", "").unwrap().0, "br9");
    }

    #[test]
    fn the_routed_zone_brings_its_policies() {
        assert_eq!(needs(ZONE).1.len(), 0);
        let (z, p) = needs(ROUTED_ZONE);
        assert_eq!(z[0].name, ROUTED_ZONE);
        assert_eq!(p.len(), 3);
        assert_eq!(needs("internal"), (vec![], vec![]));
        // firewalld refuses zone names over 17 characters.
        assert!(ZONES.iter().all(|z| z.name.len() <= 17));
    }
}
