//! The network definition model: one struct per libvirt element.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::xmltree::XmlElement;

/// A parsed libvirt `<network>` definition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub uuid: Option<Uuid>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Application metadata, one element per namespace, kept as XML.
    pub metadata: Option<Vec<XmlElement>>,
    /// `<network ipv6='yes'>`: guest-to-guest IPv6 without an IPv6 address.
    pub ipv6: Option<bool>,
    pub trust_guest_rx_filters: Option<bool>,
    /// Live-only count of attached interfaces.
    pub connections: Option<u32>,
    pub forward: Option<Forward>,
    pub bridge: Option<Bridge>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub domain: Option<Domain>,
    pub dns: Option<Dns>,
    pub vlan: Option<Vlan>,
    pub bandwidth: Option<Bandwidth>,
    /// `<port isolated='yes|no'/>`
    pub isolated_port: Option<bool>,
    pub ips: Vec<IpDef>,
    pub routes: Vec<RouteDef>,
    pub virtualport: Option<VirtualPort>,
    pub portgroups: Vec<PortGroup>,
    /// `<dnsmasq:options>` values, kept and shown but never applied by kvnet.
    pub dnsmasq_options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// No `<forward>`: libvirt calls it "none".
    #[default]
    Isolated,
    Nat,
    Route,
    Open,
    Bridge,
    Private,
    Vepa,
    Passthrough,
    Hostdev,
}

impl ForwardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMode::Isolated => "none",
            ForwardMode::Nat => "nat",
            ForwardMode::Route => "route",
            ForwardMode::Open => "open",
            ForwardMode::Bridge => "bridge",
            ForwardMode::Private => "private",
            ForwardMode::Vepa => "vepa",
            ForwardMode::Passthrough => "passthrough",
            ForwardMode::Hostdev => "hostdev",
        }
    }

    /// Modes where the network owns a bridge with addresses (libvirt's "virtual" networks).
    pub fn is_l3(self) -> bool {
        matches!(
            self,
            ForwardMode::Isolated | ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        )
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForwardMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => ForwardMode::Isolated,
            "nat" => ForwardMode::Nat,
            "route" => ForwardMode::Route,
            "open" => ForwardMode::Open,
            "bridge" => ForwardMode::Bridge,
            "private" => ForwardMode::Private,
            "vepa" => ForwardMode::Vepa,
            "passthrough" => ForwardMode::Passthrough,
            "hostdev" => ForwardMode::Hostdev,
            _ => return Err(format!("unknown forward mode '{s}'")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Forward {
    pub mode: ForwardMode,
    /// The egress device: after parsing, always the first `<interface>` (libvirt keeps them equal).
    pub dev: Option<String>,
    /// hostdev only: whether the VF drivers are (un)bound by the host.
    pub managed: Option<bool>,
    pub driver: Option<ForwardDriver>,
    pub nat: Option<Nat>,
    /// `<pf dev=…/>`: at most one, as in libvirt.
    pub pf: Option<String>,
    pub interfaces: Vec<ForwardInterface>,
    pub addresses: Vec<PciAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForwardDriver {
    pub name: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForwardInterface {
    pub dev: String,
    /// Live-only usage count.
    pub connections: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nat {
    pub ipv6: Option<bool>,
    pub address: Option<(Ipv4Addr, Ipv4Addr)>,
    pub port: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bridge {
    pub name: Option<String>,
    pub stp: Option<bool>,
    /// Forward delay in seconds.
    pub delay: Option<u32>,
    pub mac_table_manager: Option<MacTableManager>,
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacTableManager {
    Kernel,
    Libvirt,
}

impl MacTableManager {
    pub fn as_str(self) -> &'static str {
        match self {
            MacTableManager::Kernel => "kernel",
            MacTableManager::Libvirt => "libvirt",
        }
    }
}

/// An Ethernet MAC address; parses any case, prints lower-case `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a valid MAC address");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            // libvirt accepts one or two hex digits per byte.
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    pub local_only: Option<bool>,
    pub register: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    pub enable: Option<bool>,
    pub forward_plain_names: Option<bool>,
    pub forwarders: Vec<DnsForwarder>,
    pub txts: Vec<DnsTxt>,
    pub srvs: Vec<DnsSrv>,
    pub hosts: Vec<DnsHost>,
}

impl Dns {
    /// Records or forwarders present (what `enable='no'` forbids).
    pub fn has_content(&self) -> bool {
        !(self.forwarders.is_empty()
            && self.txts.is_empty()
            && self.srvs.is_empty()
            && self.hosts.is_empty())
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.enable.is_none() && self.forward_plain_names.is_none() && !self.has_content()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsForwarder {
    pub addr: Option<IpAddr>,
    pub domain: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsTxt {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsSrv {
    pub service: String,
    pub protocol: String,
    pub domain: Option<String>,
    pub target: Option<String>,
    pub port: Option<u16>,
    pub priority: Option<u16>,
    pub weight: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsHost {
    pub ip: Option<IpAddr>,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vlan {
    pub trunk: Option<bool>,
    pub tags: Vec<VlanTag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VlanTag {
    pub id: u16,
    pub native_mode: Option<NativeMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NativeMode {
    Tagged,
    Untagged,
}

impl NativeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NativeMode::Tagged => "tagged",
            NativeMode::Untagged => "untagged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bandwidth {
    pub inbound: Option<BandwidthRate>,
    pub outbound: Option<BandwidthRate>,
}

/// Rates in KiB/s, burst in KiB, as libvirt documents them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BandwidthRate {
    pub average: Option<u64>,
    pub peak: Option<u64>,
    pub burst: Option<u64>,
    pub floor: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpDef {
    pub address: IpAddr,
    pub prefix: Option<u8>,
    pub netmask: Option<Ipv4Addr>,
    pub family: Option<String>,
    pub local_ptr: Option<bool>,
    pub tftp_root: Option<String>,
    pub dhcp: Option<Dhcp>,
}

impl IpDef {
    /// A bare address: no prefix, netmask, family or DHCP.
    pub fn new(address: IpAddr) -> IpDef {
        IpDef {
            address,
            prefix: None,
            netmask: None,
            family: None,
            local_ptr: None,
            tftp_root: None,
            dhcp: None,
        }
    }

    /// Prefix from `prefix`, else `netmask`, else libvirt's default (classful for IPv4, 64 for IPv6).
    pub fn prefix_len(&self) -> u8 {
        if let Some(p) = self.prefix {
            return p;
        }
        if let Some(m) = self.netmask {
            return netmask_bits(m).unwrap_or(0);
        }
        natural_prefix(self.address).unwrap_or(0)
    }

    /// The subnet, host bits cleared.
    pub fn network(&self) -> IpNet {
        net_of(self.address, self.prefix_len())
    }

    pub fn is_ipv6(&self) -> bool {
        self.address.is_ipv6()
    }

    /// The `<dhcp>` content, if any range or host is defined.
    pub fn has_dhcp(&self) -> bool {
        self.dhcp
            .as_ref()
            .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dhcp {
    pub ranges: Vec<DhcpRange>,
    pub hosts: Vec<DhcpHost>,
    pub bootp: Option<Bootp>,
}

impl Dhcp {
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.hosts.is_empty() && self.bootp.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpRange {
    pub start: IpAddr,
    pub end: IpAddr,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DhcpHost {
    pub mac: Option<MacAddr>,
    /// DHCPv6 DUID / client id.
    pub id: Option<String>,
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lease {
    /// 0 = infinite.
    pub expiry: u64,
    /// Defaults to minutes, as in libvirt.
    pub unit: Option<LeaseUnit>,
}

impl Lease {
    /// Lease time in seconds; `None` means infinite.
    pub fn seconds(&self) -> Option<u64> {
        if self.expiry == 0 {
            return None;
        }
        Some(
            self.expiry
                .saturating_mul(self.unit.unwrap_or(LeaseUnit::Minutes).seconds()),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseUnit {
    Seconds,
    Minutes,
    Hours,
}

impl LeaseUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseUnit::Seconds => "seconds",
            LeaseUnit::Minutes => "minutes",
            LeaseUnit::Hours => "hours",
        }
    }
    pub fn seconds(self) -> u64 {
        match self {
            LeaseUnit::Seconds => 1,
            LeaseUnit::Minutes => 60,
            LeaseUnit::Hours => 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bootp {
    pub file: String,
    pub server: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDef {
    pub family: Option<String>,
    pub address: IpAddr,
    pub prefix: Option<u8>,
    pub netmask: Option<Ipv4Addr>,
    pub gateway: IpAddr,
    pub metric: Option<u32>,
}

impl RouteDef {
    pub fn prefix_len(&self) -> u8 {
        if let Some(p) = self.prefix {
            return p;
        }
        if let Some(m) = self.netmask {
            return netmask_bits(m).unwrap_or(0);
        }
        if self.address.is_unspecified() {
            return 0;
        }
        natural_prefix(self.address).unwrap_or(0)
    }

    /// The destination subnet.
    pub fn destination(&self) -> IpNet {
        net_of(self.address, self.prefix_len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VirtualPort {
    /// openvswitch | 802.1Qbg | 802.1Qbh | midonet; may be omitted inside a portgroup.
    pub vp_type: Option<String>,
    pub managerid: Option<u8>,
    pub typeid: Option<u32>,
    pub typeidversion: Option<u8>,
    pub instanceid: Option<Uuid>,
    pub interfaceid: Option<Uuid>,
    pub profileid: Option<String>,
}

impl VirtualPort {
    pub(crate) fn has_parameters(&self) -> bool {
        self.managerid.is_some()
            || self.typeid.is_some()
            || self.typeidversion.is_some()
            || self.instanceid.is_some()
            || self.interfaceid.is_some()
            || self.profileid.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortGroup {
    pub name: String,
    pub is_default: bool,
    pub trust_guest_rx_filters: Option<bool>,
    pub vlan: Option<Vlan>,
    pub virtualport: Option<VirtualPort>,
    pub bandwidth: Option<Bandwidth>,
}

/// Number of leading one bits, or `None` if the mask is not contiguous.
pub fn netmask_bits(m: Ipv4Addr) -> Option<u8> {
    let v = u32::from(m);
    let ones = v.leading_ones();
    if v.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    Some(ones as u8)
}

/// libvirt's default prefix when none is given: the IPv4 class (A/B/C), or 64 for IPv6.
pub fn natural_prefix(addr: IpAddr) -> Option<u8> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets()[0];
            if o & 0x80 == 0 {
                Some(8)
            } else if o & 0xC0 == 0x80 {
                Some(16)
            } else if o & 0xE0 == 0xC0 {
                Some(24)
            } else {
                None
            }
        }
        IpAddr::V6(_) => Some(64),
    }
}

pub(crate) fn net_of(addr: IpAddr, prefix: u8) -> IpNet {
    match addr {
        IpAddr::V4(a) => {
            let p = prefix.min(32);
            ipnet::Ipv4Net::new(a, p)
                .map(|n| IpNet::V4(n.trunc()))
                .unwrap_or_else(|_| IpNet::from(addr))
        }
        IpAddr::V6(a) => {
            let p = prefix.min(128);
            ipnet::Ipv6Net::new(a, p)
                .map(|n| IpNet::V6(n.trunc()))
                .unwrap_or_else(|_| IpNet::from(addr))
        }
    }
}
