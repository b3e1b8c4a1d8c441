//! What a network advertises, derived from its definition.

use ipnet::Ipv6Net;
use kvnet_model::{GuestRole, MacAddr, Network};
use std::net::{IpAddr, Ipv6Addr};

/// Router lifetime of a network with a `<forward>`: 3 × MaxRtrAdvInterval (RFC 4861 §6.2.1).
pub const ROUTER_LIFETIME: u16 = 1800;
/// Prefix lifetimes, as dnsmasq and radvd default them.
pub const VALID_LIFETIME: u32 = 86_400;
pub const PREFERRED_LIFETIME: u32 = 14_400;
/// RDNSS/DNSSL lifetime: at least MaxRtrAdvInterval, RFC 8106 §5.1 suggests 3 × it.
pub const DNS_LIFETIME: u32 = 1800;
pub const HOP_LIMIT: u8 = 64;
/// The IPv6 minimum link MTU: guests ignore a smaller MTU option (RFC 8200 §5).
pub const MIN_MTU: u32 = 1280;

/// One advertised prefix (Prefix Information option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub net: Ipv6Net,
    /// The A flag: guests form addresses from it. Only a /64 works with SLAAC on
    /// Ethernet (64-bit interface identifiers), so any other length is on-link only;
    /// a prefix served by DHCPv6 is on-link only too (dnsmasq's rule for a DHCPv6
    /// range), so guests take their address from the DHCPv6 server.
    pub autonomous: bool,
}

/// The content of the network's router advertisements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Every IPv6 `<ip>`'s subnet, on-link, in definition order, without duplicates.
    pub prefixes: Vec<Prefix>,
    /// Seconds; 0 on isolated networks, so guests take no default route through us.
    pub router_lifetime: u16,
    /// The M flag: an IPv6 `<ip>` has `<dhcp>`, which kvnetd serves over DHCPv6.
    pub managed: bool,
    pub mtu: Option<u32>,
    /// Recursive DNS server (RFC 8106): the network's first IPv6 address.
    pub rdnss: Option<Ipv6Addr>,
    /// DNS search list (RFC 8106): the `<domain name>`, as DNS wire-format labels.
    pub dnssl: Option<String>,
    /// Source link-layer address option: the bridge's MAC, which only the shell knows.
    pub source_mac: Option<MacAddr>,
}

impl Config {
    /// What `net` advertises, or None when it has no IPv6 `<ip>`; `role` says whether
    /// guests route through the host (the mode profile). Whether the network gets RAs at
    /// all (kvnet owns its bridge) is the caller's decision.
    pub fn from_network(net: &Network, role: GuestRole) -> Option<Config> {
        let v6: Vec<_> = net.ips.iter().filter(|ip| ip.is_ipv6()).collect();
        let first = v6.first()?;
        let mut prefixes: Vec<Prefix> = Vec::new();
        for ip in &v6 {
            let ipnet::IpNet::V6(n) = ip.network() else {
                continue;
            };
            let slaac = n.prefix_len() == 64 && !ip.has_dhcp();
            match prefixes.iter_mut().find(|p| p.net == n) {
                Some(p) => p.autonomous &= slaac,
                None => prefixes.push(Prefix {
                    net: n,
                    autonomous: slaac,
                }),
            }
        }
        let dns = net.dns.as_ref().and_then(|d| d.enable) != Some(false);
        let rdnss = match first.address {
            IpAddr::V6(a) if dns => Some(a),
            _ => None,
        };
        let dnssl = net
            .domain
            .as_ref()
            .map(|d| d.name.trim_end_matches('.').to_string())
            .filter(|d| dns && encode_name(d).is_some());
        Some(Config {
            prefixes,
            router_lifetime: if role.default_router {
                ROUTER_LIFETIME
            } else {
                0
            },
            managed: v6.iter().any(|ip| ip.has_dhcp()),
            mtu: net.mtu.filter(|&m| m >= MIN_MTU),
            rdnss,
            dnssl,
            source_mac: None,
        })
    }

    /// The same with the bridge's MAC as source link-layer address.
    pub fn with_source_mac(mut self, mac: Option<MacAddr>) -> Config {
        self.source_mac = mac;
        self
    }
}

/// `name` as uncompressed DNS labels ending in the root label, or None if it is not a
/// valid name (empty label, label over 63 or name over 255 bytes).
pub(crate) fn encode_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}
