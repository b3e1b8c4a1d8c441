//! Per-network DHCPv6 configuration, built from a libvirt `<network>` definition.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;
use kvnet_model::{MacAddr, Network};

use crate::config::{ConfigError, LeaseTime, RateLimit, parse_client_id};

/// A `<range>`: inclusive bounds and the lease time handed out from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub start: Ipv6Addr,
    pub end: Ipv6Addr,
    pub lease: LeaseTime,
}

impl Range {
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

/// A `<host>` reservation, matched by DUID (`id=`), then by name (client FQDN, option 39).
/// Never by MAC: a DHCPv6 client is known by its DUID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticHost {
    pub duid: Option<Vec<u8>>,
    pub name: Option<String>,
    /// Without an address the host only sets the name and lease time of a dynamic lease.
    pub ip: Option<Ipv6Addr>,
    pub lease: Option<LeaseTime>,
}

/// Everything the engine needs to serve one IPv6 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Server identifier (option 2); must stay the same across restarts, or clients
    /// renewing with the old one are ignored until they rebind.
    pub server_duid: Vec<u8>,
    /// Our address on the bridge.
    pub server_ip: Ipv6Addr,
    pub prefix: Ipv6Net,
    pub ranges: Vec<Range>,
    /// On an overlay network, this host's share of the ranges (index, count), as for
    /// DHCPv4 ([`crate::Config::slice`]): new addresses only from it; an address of the
    /// ranges a client asks for (a guest that moved here) is still given.
    pub slice: Option<(usize, usize)>,
    pub hosts: Vec<StaticHost>,
    /// Option 23; `None` when `<dns enable='no'>`.
    pub dns_server: Option<Ipv6Addr>,
    /// Option 24.
    pub domain: Option<String>,
    /// Lease time for hosts outside any range (static hosts without their own lease).
    pub default_lease: LeaseTime,
    /// How long an advertised address stays reserved for the client (seconds).
    pub offer_hold: u64,
    /// How long a declined address is kept out of the pool (seconds).
    pub decline_quarantine: u64,
    /// Per-client (DUID) packet rate, as for DHCPv4.
    pub rate: RateLimit,
    /// Per-network rate of lease changes, as for DHCPv4 ([`RateLimit::for_pool`]).
    pub change_rate: RateLimit,
}

impl Config {
    pub fn new(server_duid: Vec<u8>, server_ip: Ipv6Addr, prefix: Ipv6Net) -> Config {
        Config {
            server_duid,
            server_ip,
            prefix: prefix.trunc(),
            ranges: Vec::new(),
            slice: None,
            hosts: Vec::new(),
            dns_server: None,
            domain: None,
            default_lease: LeaseTime::DEFAULT,
            offer_hold: 60,
            decline_quarantine: 600,
            rate: RateLimit::default(),
            change_rate: RateLimit::for_pool(0),
        }
    }

    /// This config for host `index` of `count` sharing the network.
    pub fn slice(mut self, index: usize, count: usize) -> Config {
        let count = count.max(1);
        self.slice = Some((index.min(count - 1), count));
        self
    }

    /// Where new addresses come from: the ranges, or this host's part of each
    /// ([`crate::slice::part`]; empty parts left out).
    pub fn own_ranges(&self) -> Vec<Range> {
        let Some((index, count)) = self.slice else {
            return self.ranges.clone();
        };
        self.ranges
            .iter()
            .filter_map(|r| {
                let (s, e) = crate::slice::part(r.start.into(), r.end.into(), index, count)?;
                Some(Range {
                    start: Ipv6Addr::from(s),
                    end: Ipv6Addr::from(e),
                    lease: r.lease,
                })
            })
            .collect()
    }

    /// Build the config for `net.ips[ip_index]` (an IPv6 `<ip>` with `<dhcp>`).
    pub fn from_network(
        net: &Network,
        ip_index: usize,
        server_duid: Vec<u8>,
    ) -> Result<Config, ConfigError> {
        let ipdef = net
            .ips
            .get(ip_index)
            .ok_or(ConfigError::NoSuchIp(ip_index))?;
        let IpAddr::V6(server_ip) = ipdef.address else {
            return Err(ConfigError::NotIpv6(ipdef.address));
        };
        let len = ipdef.prefix_len();
        let prefix = Ipv6Net::new(server_ip, len).map_err(|_| ConfigError::BadPrefix(len))?;
        let mut cfg = Config::new(server_duid, server_ip, prefix);
        let v6 = |ip: &IpAddr| match ip {
            IpAddr::V6(a) => Ok(*a),
            other => Err(ConfigError::NotIpv6(*other)),
        };
        if let Some(dhcp) = &ipdef.dhcp {
            for r in &dhcp.ranges {
                let (start, end) = (v6(&r.start)?, v6(&r.end)?);
                if start > end || !cfg.prefix.contains(&start) || !cfg.prefix.contains(&end) {
                    return Err(ConfigError::BadRange6(start, end));
                }
                cfg.ranges.push(Range {
                    start,
                    end,
                    lease: r
                        .lease
                        .as_ref()
                        .map_or(LeaseTime::DEFAULT, LeaseTime::from_model),
                });
            }
            for h in &dhcp.hosts {
                cfg.hosts.push(StaticHost {
                    duid: h.id.as_deref().map(parse_client_id).transpose()?,
                    name: h.name.clone(),
                    ip: h.ip.as_ref().map(v6).transpose()?,
                    lease: h.lease.as_ref().map(LeaseTime::from_model),
                });
            }
        }
        if net.dns.as_ref().and_then(|d| d.enable) != Some(false) {
            cfg.dns_server = Some(server_ip);
        }
        cfg.domain = net.domain.as_ref().map(|d| d.name.clone());
        let pool = cfg
            .ranges
            .iter()
            .map(|r| (u128::from(r.end) - u128::from(r.start)).saturating_add(1))
            .fold(0u128, u128::saturating_add);
        let hosts = cfg.hosts.iter().filter(|h| h.ip.is_some()).count() as u128;
        cfg.change_rate = RateLimit::for_pool(pool.saturating_add(hosts));
        Ok(cfg)
    }

    pub(crate) fn in_range(&self, ip: Ipv6Addr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    pub(crate) fn range_lease(&self, ip: Ipv6Addr) -> LeaseTime {
        self.ranges
            .iter()
            .find(|r| r.contains(ip))
            .map_or(self.default_lease, |r| r.lease)
    }
}

/// The `<ip>` served over DHCPv6: the first IPv6 one with a `<dhcp>` range or host
/// (libvirt allows only one).
pub fn ip_index(net: &Network) -> Option<usize> {
    net.ips.iter().position(|ip| ip.is_ipv6() && ip.has_dhcp())
}

/// DUID-UUID (RFC 6355): type 4 and the 16 bytes of a UUID, e.g. the network's, which
/// keeps the server identifier stable across restarts without storing it.
pub fn duid_uuid(uuid: [u8; 16]) -> Vec<u8> {
    let mut d = vec![0, 4];
    d.extend_from_slice(&uuid);
    d
}

/// DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the MAC.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac.0);
    d
}

/// The MAC inside a DUID-LLT or DUID-LL of Ethernet type; other DUIDs name no MAC.
pub fn duid_mac(duid: &[u8]) -> Option<MacAddr> {
    let ll = match duid {
        [0, 1, 0, 1, _, _, _, _, rest @ ..] | [0, 3, 0, 1, rest @ ..] => rest,
        _ => return None,
    };
    Some(MacAddr(ll.try_into().ok()?))
}
