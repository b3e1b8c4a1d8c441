//! Per-network server configuration, built from a libvirt `<network>` definition.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use kvnet_model::{GuestRole, Lease, MacAddr, Network};

use crate::extra::{BootRule, ExtraOption};

/// How long an address is leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseTime {
    /// Seconds; never 0 (libvirt's `expiry='0'` means infinite).
    Finite(u32),
    Infinite,
}

impl LeaseTime {
    /// libvirt and dnsmasq default to one hour.
    pub const DEFAULT: LeaseTime = LeaseTime::Finite(3600);

    pub(crate) fn from_model(l: &Lease) -> LeaseTime {
        match l.seconds() {
            None => LeaseTime::Infinite,
            Some(s) => LeaseTime::Finite(s.clamp(1, u64::from(u32::MAX - 1)) as u32),
        }
    }

    /// Absolute expiry for a lease granted at `now`; 0 = never (libvirt's convention).
    pub fn expiry(self, now: u64) -> u64 {
        match self {
            LeaseTime::Finite(s) => now.saturating_add(u64::from(s)).max(1),
            LeaseTime::Infinite => 0,
        }
    }
}

/// A `<range>`: inclusive bounds and the lease time handed out from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub lease: LeaseTime,
}

impl Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

/// A `<host>` reservation. A host matches a client by MAC, by client id (option 61)
/// or by the hostname the client sends (option 12), tried in that order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticHost {
    pub mac: Option<MacAddr>,
    /// Raw option-61 bytes.
    pub client_id: Option<Vec<u8>>,
    pub name: Option<String>,
    /// Without an address the host only sets the name and lease time of a dynamic lease.
    pub ip: Option<Ipv4Addr>,
    pub lease: Option<LeaseTime>,
}

/// Per-client token bucket: `burst` packets at once, refilled at `per_sec` per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_sec: u32,
}

impl RateLimit {
    /// The network's budget of lease changes: new bindings, moves, releases and declines,
    /// everything that costs a journal line except the renewals the renewal rule bounds
    /// (crate docs, "Journal"). `pool` is the number of addresses the ranges and hosts
    /// hold: all of them may change at once (every guest booting together), then the
    /// whole pool again every ten minutes, at least 16 a second. The burst is kept within
    /// 256..=65,536, so that a small network still absorbs a boot storm and a huge IPv6
    /// range is not an unlimited budget.
    pub fn for_pool(pool: u128) -> RateLimit {
        let burst = pool.clamp(256, 65_536) as u32;
        RateLimit {
            burst,
            per_sec: (burst / 600).max(16),
        }
    }
}

impl Default for RateLimit {
    /// A whole exchange with retries at once, then a packet every half second.
    fn default() -> Self {
        RateLimit {
            burst: 10,
            per_sec: 2,
        }
    }
}

/// Everything the engine needs to serve one IPv4 subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our address on the bridge: server identifier (54), and source of replies.
    pub server_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub ranges: Vec<Range>,
    /// On an overlay network, this host's share of the ranges, (index, count): new
    /// addresses come only from it ([`Config::own_ranges`]), so that no two hosts ever
    /// pick the same one. An address of `ranges` outside it is still given to a client
    /// asking for it (a guest that moved here keeps its address), after the conflict
    /// probe. None: all of `ranges`.
    pub slice: Option<(usize, usize)>,
    pub hosts: Vec<StaticHost>,
    /// Option 3; `None` on isolated networks (dnsmasq's empty `dhcp-option=3`).
    pub router: Option<Ipv4Addr>,
    /// Option 6; `None` when `<dns enable='no'>`.
    pub dns_server: Option<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Names the admin defined (`<dns><host>` names, static hosts' names), lowercased:
    /// a lease's client-given name never takes or shares one.
    pub admin_names: Vec<String>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// BOOTP `file` field (and option 67 is not used, as with dnsmasq's dhcp-boot).
    pub boot_file: Option<String>,
    /// BOOTP `siaddr` (next-server).
    pub next_server: Option<Ipv4Addr>,
    /// Lease time for hosts outside any range (static hosts without their own lease).
    pub default_lease: LeaseTime,
    /// How long an OFFERed address stays reserved for the client (seconds).
    pub offer_hold: u64,
    /// How long a DECLINEd address is kept out of the pool (seconds).
    pub decline_quarantine: u64,
    /// How long an address reported by `note_in_use` is avoided (seconds).
    pub in_use_hold: u64,
    /// Per-client (MAC) packet rate.
    pub rate: RateLimit,
    /// Per-network rate of lease changes ([`RateLimit::for_pool`]).
    pub change_rate: RateLimit,
    /// `dhcp-option[-force]` from `<dnsmasq:options>`, in their order.
    pub extra_options: Vec<ExtraOption>,
    /// `dhcp-boot` from `<dnsmasq:options>`, in their order; one that applies wins over
    /// `boot_file`/`next_server` (libvirt writes its `<bootp>` before the options).
    pub boot_rules: Vec<BootRule>,
    /// `log-dhcp`: every exchange is logged with the options asked for and sent.
    pub log_dhcp: bool,
}

impl Config {
    /// A config with sane defaults and no ranges, hosts or options beyond the subnet.
    pub fn new(server_ip: Ipv4Addr, subnet: Ipv4Net) -> Config {
        Config {
            server_ip,
            subnet: subnet.trunc(),
            ranges: Vec::new(),
            slice: None,
            hosts: Vec::new(),
            router: None,
            dns_server: None,
            domain: None,
            admin_names: Vec::new(),
            mtu: None,
            boot_file: None,
            next_server: None,
            default_lease: LeaseTime::DEFAULT,
            offer_hold: 15,
            decline_quarantine: 600,
            in_use_hold: 600,
            rate: RateLimit::default(),
            change_rate: RateLimit::for_pool(0),
            extra_options: Vec::new(),
            boot_rules: Vec::new(),
            log_dhcp: false,
        }
    }

    /// Build the config for `net.ips[ip_index]`, mapping the XML the way libvirt maps it
    /// to dnsmasq options (see the module docs for the table).
    /// `role` says what the forward mode asks of guest services (the mode profile).
    pub fn from_network(
        net: &Network,
        ip_index: usize,
        role: GuestRole,
    ) -> Result<Config, ConfigError> {
        let ipdef = net
            .ips
            .get(ip_index)
            .ok_or(ConfigError::NoSuchIp(ip_index))?;
        let IpAddr::V4(server_ip) = ipdef.address else {
            return Err(ConfigError::NotIpv4(ipdef.address));
        };
        let prefix = ipdef.prefix_len();
        let subnet = Ipv4Net::new(server_ip, prefix)
            .map_err(|_| ConfigError::BadPrefix(prefix))?
            .trunc();
        let mut cfg = Config::new(server_ip, subnet);

        let v4 = |ip: &IpAddr| match ip {
            IpAddr::V4(a) => Ok(*a),
            other => Err(ConfigError::NotIpv4(*other)),
        };
        if let Some(dhcp) = &ipdef.dhcp {
            for r in &dhcp.ranges {
                let (start, end) = (v4(&r.start)?, v4(&r.end)?);
                if start > end || !subnet.contains(&start) || !subnet.contains(&end) {
                    return Err(ConfigError::BadRange(start, end));
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
                let ip = h.ip.as_ref().map(v4).transpose()?;
                cfg.hosts.push(StaticHost {
                    mac: h.mac,
                    client_id: h.id.as_deref().map(parse_client_id).transpose()?,
                    name: h.name.clone(),
                    ip,
                    lease: h.lease.as_ref().map(LeaseTime::from_model),
                });
            }
            if let Some(b) = &dhcp.bootp {
                cfg.boot_file = Some(b.file.clone());
                // dnsmasq's dhcp-boot without a server address names itself.
                cfg.next_server = Some(match &b.server {
                    Some(s) => v4(s)?,
                    None => server_ip,
                });
            }
        }
        if ipdef.tftp_root.is_some() && cfg.next_server.is_none() {
            cfg.next_server = Some(server_ip);
        }
        if role.default_router {
            cfg.router = Some(server_ip);
        }
        if net.dns.as_ref().and_then(|d| d.enable) != Some(false) {
            cfg.dns_server = Some(server_ip);
        }
        cfg.domain = net.domain.as_ref().map(|d| d.name.clone());
        let statics = net
            .ips
            .iter()
            .filter_map(|ip| ip.dhcp.as_ref())
            .flat_map(|d| d.hosts.iter().filter_map(|h| h.name.clone()));
        let dns_hosts = net
            .dns
            .iter()
            .flat_map(|d| d.hosts.iter().flat_map(|h| h.hostnames.iter().cloned()));
        cfg.admin_names = statics
            .chain(dns_hosts)
            .map(|n| n.to_ascii_lowercase())
            .collect();
        cfg.mtu = net.mtu.and_then(|m| u16::try_from(m).ok());
        (cfg.extra_options, cfg.boot_rules, cfg.log_dhcp) =
            crate::extra::from_network(net, server_ip);
        let range_sizes: u128 = cfg
            .ranges
            .iter()
            .map(|r| u128::from(u32::from(r.end) - u32::from(r.start)) + 1)
            .sum();
        let hosts = cfg.hosts.iter().filter(|h| h.ip.is_some()).count() as u128;
        cfg.change_rate = RateLimit::for_pool(range_sizes + hosts);
        Ok(cfg)
    }

    /// Whether `label` (a client's host label) names what the admin defined: `label`
    /// itself or `label.<domain>`.
    pub(crate) fn is_admin_name(&self, label: &str) -> bool {
        let label = label.to_ascii_lowercase();
        self.admin_names.iter().any(|a| {
            a == &label
                || self.domain.as_deref().is_some_and(|d| {
                    a.strip_suffix(d)
                        .and_then(|h| h.strip_suffix('.'))
                        .is_some_and(|h| h == label)
                })
        })
    }

    /// The lease time for a dynamic address: its range's, else the default.
    pub(crate) fn range_lease(&self, ip: Ipv4Addr) -> LeaseTime {
        self.ranges
            .iter()
            .find(|r| r.contains(ip))
            .map_or(self.default_lease, |r| r.lease)
    }

    /// This config for host `index` of `count` sharing the network ([`Config::slice`]).
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
                let (s, e) = (u32::from(r.start), u32::from(r.end));
                let (s, e) = crate::slice::part(s.into(), e.into(), index, count)?;
                Some(Range {
                    start: Ipv4Addr::from(s as u32),
                    end: Ipv4Addr::from(e as u32),
                    lease: r.lease,
                })
            })
            .collect()
    }

    pub(crate) fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// In the subnet and not the subnet's network/broadcast address or ours.
    pub(crate) fn assignable(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(&ip)
            && ip != self.server_ip
            && (self.subnet.prefix_len() >= 31
                || (ip != self.subnet.network() && ip != self.subnet.broadcast()))
    }
}

/// `aa:bb:cc` (one or two hex digits per byte, as libvirt writes DUIDs) → bytes.
pub fn parse_client_id(s: &str) -> Result<Vec<u8>, ConfigError> {
    s.split(':')
        .map(|p| {
            if p.is_empty() || p.len() > 2 {
                return Err(ConfigError::BadClientId(s.to_string()));
            }
            u8::from_str_radix(p, 16).map_err(|_| ConfigError::BadClientId(s.to_string()))
        })
        .collect()
}

/// Bytes → lower-case `01:52:54:…`, the form libvirt's lease status uses.
pub fn format_client_id(id: &[u8]) -> String {
    let mut out = String::with_capacity(id.len() * 3);
    for (i, b) in id.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the network has no <ip> number {0}")]
    NoSuchIp(usize),
    #[error("{0} is not an IPv4 address")]
    NotIpv4(IpAddr),
    #[error("invalid prefix length {0}")]
    BadPrefix(u8),
    #[error("DHCP range {0} - {1} is reversed or outside the subnet")]
    BadRange(Ipv4Addr, Ipv4Addr),
    #[error("invalid client id '{0}'")]
    BadClientId(String),
    #[error("{0} is not an IPv6 address")]
    NotIpv6(IpAddr),
    #[error("DHCPv6 range {0} - {1} is reversed or outside the subnet")]
    BadRange6(std::net::Ipv6Addr, std::net::Ipv6Addr),
}
