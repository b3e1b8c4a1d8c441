//! Which address a port forward's guest has now: pure, from the network's definition
//! (static DHCP hosts) and its current leases. A forward that names its guest by name
//! or MAC follows it: resolved again whenever a lease changes.

use kvnet_firewall::{FwForward, Proto};
use kvnet_model::{FwdProto, GuestRef, Network, PortForward};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One current DHCPv4 lease, as far as forwards care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLease {
    pub hostname: Option<String>,
    /// Lowercase, colon-separated.
    pub mac: String,
    pub ip: IpAddr,
}

/// A forward and the address its guest has now (None: no lease and no static host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub forward: PortForward,
    pub guest: Option<IpAddr>,
}

/// The guest's address in the forward's family (IPv6 when the host address or the
/// guest address is IPv6). The admin's static hosts come before leases, as names do in
/// DNS; the DHCP server gives a name to one lease at most.
pub fn guest_address(net: &Network, f: &PortForward, leases: &[GuestLease]) -> Option<IpAddr> {
    let v6 = f.address.is_some_and(|a| a.is_ipv6());
    let statics = || {
        net.ips
            .iter()
            .filter_map(|ip| ip.dhcp.as_ref())
            .flat_map(|d| d.hosts.iter())
            .filter(|h| h.ip.is_some_and(|a| a.is_ipv6() == v6))
    };
    let lease_fits = |l: &&GuestLease| l.ip.is_ipv6() == v6;
    match &f.to {
        GuestRef::Addr(a) => Some(*a),
        GuestRef::Name(name) => statics()
            .find(|h| {
                h.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h.ip)
            .or_else(|| {
                leases
                    .iter()
                    .filter(lease_fits)
                    .find(|l| {
                        l.hostname
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .map(|l| l.ip)
            }),
        GuestRef::Mac(mac) => statics()
            .find(|h| h.mac.is_some_and(|m| m.to_string() == *mac))
            .and_then(|h| h.ip)
            .or_else(|| {
                leases
                    .iter()
                    .filter(lease_fits)
                    .find(|l| l.mac == *mac)
                    .map(|l| l.ip)
            }),
    }
}

/// Every forward of `forwards` with its guest's address now.
pub fn resolve(net: &Network, forwards: &[PortForward], leases: &[GuestLease]) -> Vec<Resolved> {
    forwards
        .iter()
        .map(|f| Resolved {
            forward: f.clone(),
            guest: guest_address(net, f, leases),
        })
        .collect()
}

/// The firewall's form of the forwards whose guest is known.
pub fn fw_forwards(resolved: &[Resolved]) -> Vec<FwForward> {
    resolved
        .iter()
        .filter_map(|r| {
            let f = &r.forward;
            Some(FwForward {
                proto: match f.proto {
                    FwdProto::Tcp => Proto::Tcp,
                    FwdProto::Udp => Proto::Udp,
                },
                address: f.address,
                ports: (f.ports.start, f.ports.end),
                guest: r.guest?,
                guest_port: f.to_ports.start,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvnet_model::parse_target;

    fn net() -> Network {
        Network::from_xml(
            "<network><name>n</name><forward mode='nat'/><bridge name='br9'/>\
             <ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.100' end='10.0.0.200'/>\
             <host mac='52:54:00:00:00:01' name='fixed' ip='10.0.0.10'/></dhcp></ip>\
             <ip family='ipv6' address='fd00::1' prefix='64'><dhcp>\
             <host name='fixed' ip='fd00::10'/></dhcp></ip></network>",
        )
        .unwrap()
    }

    fn fwd(to: &str, address: Option<&str>) -> PortForward {
        let (to, port) = parse_target(to).unwrap();
        let ports: kvnet_model::PortRange = "8080".parse().unwrap();
        PortForward {
            proto: FwdProto::Tcp,
            address: address.map(|a| a.parse().unwrap()),
            ports,
            to,
            to_ports: port.unwrap_or(ports),
        }
    }

    fn leases() -> Vec<GuestLease> {
        vec![
            GuestLease {
                hostname: Some("vm1".into()),
                mac: "52:54:00:00:00:02".into(),
                ip: "10.0.0.101".parse().unwrap(),
            },
            GuestLease {
                hostname: None,
                mac: "52:54:00:00:00:03".into(),
                ip: "10.0.0.102".parse().unwrap(),
            },
        ]
    }

    #[test]
    fn guests_are_found_by_name_mac_or_address() {
        let (n, l) = (net(), leases());
        let at = |to: &str| guest_address(&n, &fwd(to, None), &l).map(|a| a.to_string());
        assert_eq!(at("vm1").as_deref(), Some("10.0.0.101"));
        assert_eq!(at("VM1").as_deref(), Some("10.0.0.101"));
        assert_eq!(at("52:54:00:00:00:03").as_deref(), Some("10.0.0.102"));
        assert_eq!(at("fixed").as_deref(), Some("10.0.0.10"));
        assert_eq!(at("52:54:00:00:00:01").as_deref(), Some("10.0.0.10"));
        assert_eq!(at("10.0.0.55").as_deref(), Some("10.0.0.55"));
        assert_eq!(at("vm9"), None);
        // An IPv6 host address wants the guest's IPv6 address.
        let v6 = guest_address(&n, &fwd("fixed", Some("2001:db8::1")), &l);
        assert_eq!(v6, Some("fd00::10".parse().unwrap()));
        assert_eq!(
            guest_address(&n, &fwd("vm1", Some("2001:db8::1")), &l),
            None
        );
    }

    #[test]
    fn a_forward_follows_its_guest_to_a_new_address() {
        let n = net();
        let mut l = leases();
        let f = [fwd("vm1:22", None)];
        let before = fw_forwards(&resolve(&n, &f, &l));
        assert_eq!(before[0].guest.to_string(), "10.0.0.101");
        assert_eq!((before[0].ports, before[0].guest_port), ((8080, 8080), 22));
        l[0].ip = "10.0.0.150".parse().unwrap();
        let after = fw_forwards(&resolve(&n, &f, &l));
        assert_eq!(after[0].guest.to_string(), "10.0.0.150");
        // Gone: the forward stays defined, with nothing installed.
        let r = resolve(&n, &f, &[]);
        assert_eq!(r[0].guest, None);
        assert!(fw_forwards(&r).is_empty());
    }
}
