//! Pure: which ports the filter checks and what each guest may send from, from the
//! active networks, their registered ports, the links on their bridges and the leases.

use crate::ports::{PortDefaults, PortRec};
use ipnet::{IpNet, Ipv6Net};
use kvnet_firewall::portfilter::{FilterInput, FilterPort, eui64};
use kvnet_model::{MacAddr, Network, TrafficFilter};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// One active network as the filter sees it.
pub struct NetView<'a> {
    pub net: &'a Network,
    /// Its registered ports.
    pub ports: &'a [PortRec],
    /// Other links on its bridge (by name): guests attached without kvnet. Filtered
    /// with the network's filter on a bridge kvnet owns; never on a host bridge, whose
    /// other ports are the uplink and the host's own devices.
    pub unregistered: Vec<String>,
    /// Its DHCP leases (v4, and v6 whose DUID names a MAC): `(MAC, address)`.
    pub leases: Vec<(MacAddr, IpAddr)>,
}

/// A DUID written `00:03:00:01:…` as bytes.
fn duid_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// The filter a registered port gets: its own, else its network's.
pub fn port_filter(p: &PortRec, d: PortDefaults) -> TrafficFilter {
    p.filter.unwrap_or(d.filter)
}

/// The MAC of a static host: its own, or the one its DUID (`id`) names.
fn host_mac(h: &kvnet_model::DhcpHost) -> Option<MacAddr> {
    h.mac.or_else(|| {
        let d = duid_bytes(h.id.as_deref()?)?;
        kvnet_dhcp::v6::duid_mac(&d)
    })
}

/// Whether a network with these ports may filter anything (its links not yet known):
/// one that cannot changes nothing in the table, so its start or stop needs no sync.
pub fn may_filter(net: &Network, ports: &[PortRec]) -> bool {
    let d = PortDefaults::of(net);
    d.filter == TrafficFilter::CleanTraffic
        || ports
            .iter()
            .any(|p| port_filter(p, d) == TrafficFilter::CleanTraffic)
}

/// Whether any port of `v` is filtered (only those networks' guests go into the sets).
fn filters_any(v: &NetView) -> bool {
    let d = PortDefaults::of(v.net);
    v.ports
        .iter()
        .any(|p| port_filter(p, d) == TrafficFilter::CleanTraffic)
        || (d.filter == TrafficFilter::CleanTraffic && !v.unregistered.is_empty())
}

/// The filter's input for these networks.
pub fn input(nets: &[NetView]) -> FilterInput {
    let mut out = FilterInput::default();
    let mut bindings: BTreeSet<(MacAddr, IpAddr)> = BTreeSet::new();
    let mut port_macs: BTreeSet<MacAddr> = BTreeSet::new();
    for v in nets.iter().filter(|v| filters_any(v)) {
        // Guests of this network kvnet knows a MAC of: their SLAAC addresses are bound.
        let mut known: BTreeSet<MacAddr> = BTreeSet::new();
        let d = PortDefaults::of(v.net);
        let managed = kvnet_model::Profile::of(v.net).bridge == kvnet_model::BridgeRole::Managed;
        for p in v.ports {
            if port_filter(p, d) == TrafficFilter::CleanTraffic {
                out.ports.push(FilterPort {
                    ifname: p.ifname.clone(),
                    mac: p.mac,
                });
            }
            if let Some(m) = p.mac {
                known.insert(m);
                port_macs.insert(m);
                bindings.extend(p.ips.iter().map(|a| (m, *a)));
            }
        }
        if managed && d.filter == TrafficFilter::CleanTraffic {
            out.ports.extend(v.unregistered.iter().map(|n| FilterPort {
                ifname: n.clone(),
                mac: None,
            }));
        }
        for ip in &v.net.ips {
            for h in ip.dhcp.iter().flat_map(|d| &d.hosts) {
                if let Some(m) = host_mac(h) {
                    known.insert(m);
                    bindings.extend(h.ip.map(|a| (m, a)));
                }
            }
        }
        bindings.extend(v.leases.iter().copied());
        known.extend(v.leases.iter().map(|(m, _)| *m));
        // SLAAC: the EUI-64 address of every guest kvnet knows, in each /64 it has.
        let prefixes: Vec<Ipv6Net> = v
            .net
            .ips
            .iter()
            .filter_map(|ip| match ip.network() {
                IpNet::V6(n) => Some(n),
                IpNet::V4(_) => None,
            })
            .collect();
        for m in &known {
            for p in &prefixes {
                bindings.extend(eui64(*m, *p).map(|a| (*m, IpAddr::V6(a))));
            }
        }
    }
    out.known_macs = port_macs.into_iter().collect();
    out.bindings = bindings.into_iter().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvnet_api::PortKind;

    fn net(xml_extra: &str, filter: bool) -> Network {
        let meta = if filter {
            "<metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>\
             <kvnet:filterref filter='clean-traffic'/></kvnet:network></metadata>"
        } else {
            ""
        };
        Network::from_xml(&format!(
            "<network><name>n</name>{meta}<forward mode='nat'/><bridge name='kvf0'/>\
             <ip address='10.9.0.1' prefix='24'><dhcp><range start='10.9.0.100' end='10.9.0.200'/>\
             <host mac='52:54:00:00:00:0a' ip='10.9.0.10'/></dhcp></ip>\
             <ip family='ipv6' address='fd09::1' prefix='64'>{xml_extra}</ip></network>"
        ))
        .unwrap()
    }

    fn port(name: &str, mac: Option<&str>, filter: Option<TrafficFilter>) -> PortRec {
        PortRec {
            ifname: name.into(),
            mac: mac.map(|m| m.parse().unwrap()),
            kind: PortKind::Persistent,
            queues: 1,
            owner: None,
            group: None,
            isolated: None,
            filter,
            ips: Vec::new(),
            qos: Default::default(),
            parent: None,
            parent_mac: None,
            managed: false,
        }
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn static_hosts_by_mac_or_by_a_duid_naming_one() {
        let h = |mac: Option<&str>, id: Option<&str>| kvnet_model::DhcpHost {
            mac: mac.map(|m| m.parse().unwrap()),
            id: id.map(str::to_string),
            name: None,
            ip: None,
            lease: None,
        };
        let m = mac("52:54:00:00:00:0d");
        assert_eq!(host_mac(&h(Some("52:54:00:00:00:0d"), None)), Some(m));
        assert_eq!(
            host_mac(&h(None, Some("00:03:00:01:52:54:00:00:00:0d"))),
            Some(m)
        );
        assert_eq!(host_mac(&h(None, Some("00:02:00:00:ab:11:01:02"))), None);
        assert_eq!(host_mac(&h(None, Some("zz"))), None);
    }

    #[test]
    fn a_filtered_network_filters_every_port_and_binds_its_guests() {
        let n = net("", true);
        let mut p0 = port("vnet0", Some("52:54:00:00:00:0a"), None);
        p0.ips = vec!["10.9.0.50".parse().unwrap()];
        let ports = [p0, port("vnet1", None, Some(TrafficFilter::None))];
        let v = NetView {
            net: &n,
            ports: &ports,
            unregistered: vec!["veth7".into()],
            leases: vec![(mac("52:54:00:00:00:0b"), "10.9.0.101".parse().unwrap())],
        };
        let i = input(&[v]);
        let names: Vec<_> = i.ports.iter().map(|p| (p.ifname.as_str(), p.mac)).collect();
        assert_eq!(
            names,
            [("vnet0", Some(mac("52:54:00:00:00:0a"))), ("veth7", None)]
        );
        let has = |m: &str, a: &str| i.bindings.contains(&(mac(m), a.parse().unwrap()));
        assert!(has("52:54:00:00:00:0a", "10.9.0.10"), "static host");
        assert!(has("52:54:00:00:00:0a", "10.9.0.50"), "--ip");
        assert!(has("52:54:00:00:00:0b", "10.9.0.101"), "lease");
        assert!(has("52:54:00:00:00:0a", "fd09::5054:ff:fe00:a"), "SLAAC");
        assert!(
            has("52:54:00:00:00:0b", "fd09::5054:ff:fe00:b"),
            "SLAAC of a lease"
        );
        assert_eq!(i.known_macs, [mac("52:54:00:00:00:0a")], "ports' MACs only");
    }

    #[test]
    fn an_unfiltered_network_adds_nothing_unless_a_port_asks() {
        let n = net("", false);
        let ports = [port("vnet0", Some("52:54:00:00:00:0c"), None)];
        let v = NetView {
            net: &n,
            ports: &ports,
            unregistered: vec!["veth7".into()],
            leases: vec![],
        };
        assert_eq!(input(&[v]), FilterInput::default());
        let ports = [port("vnet0", None, Some(TrafficFilter::CleanTraffic))];
        let v = NetView {
            net: &n,
            ports: &ports,
            unregistered: vec!["veth7".into()],
            leases: vec![],
        };
        let i = input(&[v]);
        assert_eq!(
            i.ports.len(),
            1,
            "unregistered links keep the network's choice"
        );
        assert_eq!(i.ports[0].mac, None);
    }
}
