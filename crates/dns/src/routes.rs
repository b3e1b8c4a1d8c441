//! Where a name the local data does not answer goes: an `address=` answer, NXDOMAIN, or
//! upstreams, decided by the most specific zone, as dnsmasq's server/address table does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kvnet_model::AddressAnswer;

use crate::config::Config;
use crate::names::{in_zone, is_plain, reverse_addr};

/// Everything configured for one zone. dnsmasq's order within a zone: an address of the
/// query's family, then upstreams, then "local only" (NXDOMAIN).
#[derive(Debug, Clone, Default)]
struct Zone {
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    servers: Vec<SocketAddr>,
    /// `local=`, `<domain localOnly>`, `address=/zone/`, localPtr zones.
    local: bool,
}

/// The routing decision for a name not answered locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Routed {
    /// `address=`: these addresses, for the query's family.
    Answer(Vec<IpAddr>),
    NxDomain,
    /// A zone's own upstreams (`server=/zone/addr`, `<forwarder domain addr>`).
    Forward(Vec<SocketAddr>),
    /// The default upstreams.
    Default,
}

#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// Longest zone first.
    zones: Vec<(String, Zone)>,
}

impl Routes {
    pub(crate) fn build(cfg: &Config) -> Routes {
        let mut zones: HashMap<String, Zone> = HashMap::new();
        if let (Some(d), true) = (&cfg.domain, cfg.local_only) {
            zones.entry(d.clone()).or_default().local = true;
        }
        for z in &cfg.local_ptr_zones {
            zones.entry(z.clone()).or_default().local = true;
        }
        for f in &cfg.forwarders {
            if let Some(d) = &f.domain {
                let z = zones.entry(d.clone()).or_default();
                // libvirt documents a domain-only forwarder as "never forward"; its own
                // `server=/d/#` means the opposite in dnsmasq (libvirt issue 597).
                match f.addr {
                    Some(a) => z.servers.push(a),
                    None => z.local = true,
                }
            }
        }
        for (d, answer) in &cfg.addresses {
            let z = zones.entry(d.clone()).or_default();
            let mut add = |ip: IpAddr| {
                let list = if ip.is_ipv4() { &mut z.v4 } else { &mut z.v6 };
                if !list.contains(&ip) {
                    list.push(ip);
                }
            };
            match *answer {
                AddressAnswer::Ip(ip) => add(ip),
                AddressAnswer::Null => {
                    add(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    add(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
                }
                AddressAnswer::NxDomain => z.local = true,
            }
        }
        let mut zones: Vec<(String, Zone)> = zones.into_iter().collect();
        zones.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Routes { zones }
    }

    /// The most specific zone with something for this query decides. A zone holding only
    /// addresses of the other family leaves the query to its parent zones: dnsmasq 2.86
    /// and later forward an AAAA query under `address=/zone/IPv4` (and any type other
    /// than A/AAAA), rather than answer NODATA as earlier versions did.
    pub(crate) fn route(&self, cfg: &Config, key: &str, qtype: RecordType) -> Routed {
        if !cfg.forward_plain_names && is_plain(key) {
            return Routed::NxDomain;
        }
        let any = qtype == RecordType::ANY;
        for (_, z) in self.zones.iter().filter(|(zone, _)| in_zone(key, zone)) {
            let mut ips = Vec::new();
            if any || qtype == RecordType::A {
                ips.extend(&z.v4);
            }
            if any || qtype == RecordType::AAAA {
                ips.extend(&z.v6);
            }
            if !ips.is_empty() {
                return Routed::Answer(ips);
            }
            if !z.servers.is_empty() {
                return Routed::Forward(z.servers.clone());
            }
            if z.local {
                return Routed::NxDomain;
            }
        }
        let reverse = reverse_addr(key);
        if reverse.is_some_and(|ip| {
            cfg.local_ptr_nets
                .iter()
                .any(|(net, len)| same_subnet(ip, *net, *len))
        }) {
            return Routed::NxDomain;
        }
        // bogus-priv: reverse lookups only (other types are forwarded, as dnsmasq does),
        // and after any zone's own upstreams, which the loop above has chosen already.
        if cfg.bogus_priv && qtype == RecordType::PTR && reverse.is_some_and(private) {
            return Routed::NxDomain;
        }
        Routed::Default
    }

    /// `address=` answers for a name the network holds with other types only: dnsmasq
    /// lets its hosts and leases override `address=` per name *and* type, so a name with
    /// only an IPv4 address still gets the zone's IPv6 one.
    pub(crate) fn addresses(&self, cfg: &Config, key: &str, qtype: RecordType) -> Vec<IpAddr> {
        match self.route(cfg, key, qtype) {
            Routed::Answer(ips) => ips,
            _ => Vec::new(),
        }
    }
}

/// A and AAAA records for `ips`, owned by `owner`.
pub(crate) fn address_records(owner: &Name, ips: &[IpAddr], ttl: u32) -> Vec<Record> {
    ips.iter()
        .map(|ip| {
            let rdata = match ip {
                IpAddr::V4(a) => RData::A(A(*a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(*a)),
            };
            Record::from_rdata(owner.clone(), ttl, rdata)
        })
        .collect()
}

/// The prefixes `bogus-priv` covers: RFC 6303's locally-served zones (RFC 1918, "this"
/// network, loopback, link-local, the documentation nets, broadcast; ULA fd00::/8,
/// link-local, site-local, 2001:db8::/32), and IPv4-mapped forms of the IPv4 ones.
pub(crate) fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            matches!(o0, 0 | 10 | 127)
                || (o0 == 169 && o1 == 254)
                || (o0 == 172 && (16..=31).contains(&o1))
                || (o0 == 192 && o1 == 168)
                || (o0, o1, o2) == (192, 0, 2)
                || (o0, o1, o2) == (198, 51, 100)
                || (o0, o1, o2) == (203, 0, 113)
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return private(IpAddr::V4(v4));
            }
            let s = a.segments();
            a.is_unspecified()
                || a.is_loopback()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] & 0xff00) == 0xfd00
                || (s[0], s[1]) == (0x2001, 0x0db8)
        }
    }
}

pub(crate) fn same_subnet(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets() {
        assert!(same_subnet(
            ip("192.168.122.200"),
            ip("192.168.122.128"),
            25
        ));
        assert!(!same_subnet(ip("192.168.122.2"), ip("192.168.122.128"), 25));
        assert!(same_subnet(ip("10.1.2.3"), ip("0.0.0.0"), 0));
        assert!(same_subnet(ip("2001:db8::5"), ip("2001:db8::"), 64));
        assert!(!same_subnet(ip("2001:db9::5"), ip("2001:db8::"), 64));
        assert!(!same_subnet(ip("2001:db8::5"), ip("10.0.0.0"), 8));
    }

    /// The ranges dnsmasq 2.90's bogus-priv answered NXDOMAIN for, and neighbours it
    /// forwarded (checked with dig against it).
    #[test]
    fn private_ranges() {
        for p in [
            "0.1.2.3",
            "10.1.2.3",
            "127.0.0.5",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fd00::1",
            "2001:db8::1",
        ] {
            assert!(private(ip(p)), "{p}");
        }
        for p in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.0.1",
            "192.0.3.1",
            "100.64.1.1",
            "::ffff:8.8.8.8",
            "fc00::1",
            "2001:db9::1",
            "2a00::1",
        ] {
            assert!(!private(ip(p)), "{p}");
        }
    }
}
