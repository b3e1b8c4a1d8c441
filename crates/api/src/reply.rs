//! What replies carry: the envelope every reply has ([`Reply`]), and the data types of
//! successful replies (see each request's [`Call::Reply`](crate::Call::Reply)).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The envelope of every reply: `ok`, the `error` when not, `warnings` the user must
/// see (e.g. features kvnet accepted but cannot apply yet), and the request's `data`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Reply {
    /// A successful reply carrying `data`.
    pub fn ok(data: &impl Serialize, warnings: Vec<String>) -> Reply {
        match serde_json::to_value(data) {
            Ok(data) => Reply {
                ok: true,
                warnings,
                data,
                ..Reply::default()
            },
            Err(e) => Reply::err(format!("cannot encode the reply: {e}")),
        }
    }

    pub fn err(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            ..Reply::default()
        }
    }
}

/// Reply to `ping`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    pub version: String,
}

/// Reply to `define` and `create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkId {
    pub name: String,
    pub uuid: Option<String>,
}

/// One network as `net-list` / `net-info` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetSummary {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub bridge: Option<String>,
    pub forward: String,
    pub title: Option<String>,
}

/// One row of `net-dhcp-leases`, IPv4 or IPv6. An IPv6 row carries the client's DUID
/// in `client-id` and its `iaid`, and a MAC only when the DUID names one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Lease {
    /// Unix seconds; 0 = infinite.
    pub expiry_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    pub ip_address: IpAddr,
    pub prefix: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iaid: Option<u32>,
}

/// How a port's TAP came to be.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PortKind {
    /// Created by kvnet (port-create): persistent, deleted by port-delete.
    Persistent,
    /// Created by qemu and registered by its `script=` (kvnet-ifup).
    Script,
    /// Created by kvnet-bridge-helper for qemu.
    Helper,
    /// A macvtap kvnet made on a direct network's pool device (port-create), deleted by
    /// port-delete.
    Macvtap,
    /// A PCI device (SR-IOV virtual function) of a hostdev network, for qemu's vfio-pci.
    Hostdev,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Persistent => "persistent",
            PortKind::Script => "script",
            PortKind::Helper => "helper",
            PortKind::Macvtap => "macvtap",
            PortKind::Hostdev => "hostdev",
        }
    }
}

/// One guest port of a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Port {
    pub ifname: String,
    /// The guest's MAC address; unknown (None) for a TAP attached without one.
    pub mac: Option<String>,
    pub network: String,
    pub kind: PortKind,
    pub queues: u16,
    /// The bridge port is isolated: it reaches the host and the uplink, not the
    /// network's other isolated ports.
    #[serde(default)]
    pub isolated: bool,
    /// The traffic filter in force: `none` or `clean-traffic`.
    #[serde(default)]
    pub filter: kvnet_model::TrafficFilter,
    /// Addresses given at port-create besides leases and static hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<std::net::IpAddr>,
    /// Filtered ports: the MAC the filter locked the port to, when it learned it from
    /// the port's first frame (a port created without a MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_mac: Option<String>,
    /// Filtered ports: frames dropped as spoofed since the port was filtered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// The portgroup the port was created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portgroup: Option<String>,
    /// Bandwidth given at port-create (a portgroup's applies where unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<kvnet_model::BandwidthRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<kvnet_model::BandwidthRate>,
    /// Macvtap ports: the pool device (host NIC) the macvtap sits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// Reply to `port-create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatedPort {
    pub port: Port,
    /// Arguments that give a qemu guest this port, e.g. `-netdev tap,...`.
    pub qemu_args: Vec<String>,
    /// Why the arguments say `vhost=off` (no /dev/vhost-net, or the owner cannot open
    /// it); absent when they say `vhost=on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_off: Option<String>,
    /// Files qemu must be started with, as shell redirections (`3<>/dev/tap12`): a
    /// macvtap is passed by descriptor (`-netdev tap,fd=3`), one per queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fds: Vec<String>,
}

/// Reply to `iface-bridge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bridged {
    pub bridge: String,
    pub iface: String,
    pub started: bool,
}

/// Reply to `iface-unbridge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unbridged {
    pub bridge: String,
    pub iface: String,
}

/// What a `doctor` check is about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A drop in another nftables/iptables table that would hit a network's traffic.
    ForeignDrop,
    /// br_netfilter sends bridged traffic through the IP hooks.
    BrNetfilter,
    /// Forwarding is off although a network needs it.
    IpForward,
    /// Strict reverse-path filtering drops guests' packets.
    RpFilter,
    /// Another DHCP or DNS server on a network's bridge.
    Listener,
    /// A port's MTU differs from its bridge's.
    Mtu,
    /// A kernel feature kvnet needs is missing.
    KernelModule,
    /// Networks across hosts: FRR, the BGP EVPN sessions of the fabric, the VNIs
    /// FRR advertises.
    Evpn,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ForeignDrop => "foreign-drop",
            Check::BrNetfilter => "br-netfilter",
            Check::IpForward => "ip-forward",
            Check::RpFilter => "rp-filter",
            Check::Listener => "listener",
            Check::Mtu => "mtu",
            Check::KernelModule => "kernel-module",
            Check::Evpn => "evpn",
        }
    }
}

/// One thing `doctor` found: a problem (guest traffic is or may be stopped) or a
/// note (worth knowing, nothing stopped).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub problem: bool,
    /// The network concerned, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Who or what causes it, e.g. `docker: ip filter FORWARD policy drop`.
    pub culprit: String,
    pub detail: String,
    pub fix: String,
}

/// Reply to `doctor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// What kvnet keeps in other firewalls for its networks: iptables rules and
    /// firewalld zone bindings.
    pub kvnet_changes: Vec<String>,
}

impl Report {
    /// How many findings are problems.
    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| f.problem).count()
    }
}

/// One port forward of a network and where it goes now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardEntry {
    pub forward: kvnet_model::PortForward,
    /// The guest's current address; None when it has no lease (or the network is
    /// not active): the forward is defined but installs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_address: Option<std::net::IpAddr>,
    /// Whether the forward is in the firewall now.
    pub active: bool,
}

/// What a network event is about (`net-event --event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// defined, undefined, started, stopped, updated (libvirt's lifecycle events).
    Lifecycle,
    /// A DHCP lease: added, renewed, released, expired (IPv4).
    Lease,
    /// A guest port: created, deleted.
    Port,
    /// A port forward: added, removed, moved (its guest's address changed).
    Forward,
    /// Not an event: this many events were dropped because the reader fell behind.
    Gap,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventKind::Lifecycle => "lifecycle",
            EventKind::Lease => "lease",
            EventKind::Port => "port",
            EventKind::Forward => "forward",
            EventKind::Gap => "gap",
        })
    }
}

/// One event of a network, as `events` streams them (one JSON object a line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetEvent {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// Empty for a gap.
    pub network: String,
    pub kind: EventKind,
    /// What happened: `started`, `added`, `created`… (see [`EventKind`]); for a gap,
    /// `dropped`.
    pub action: String,
    /// The rest, by kind: `mac`, `address`, `hostname` (lease), `port` (the port's
    /// interface), `forward` (its listing form), `to` (a moved forward's new address),
    /// `count` (a gap's dropped events).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub detail: std::collections::BTreeMap<String, String>,
}

/// Reply to `stats` (`net-stats`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetStats {
    pub network: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The running DHCP servers (v4, v6).
    #[serde(default)]
    pub dhcp: Vec<DhcpStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<kvnet_metrics::DnsCounters>,
    #[serde(default)]
    pub leases: Vec<LeaseTime>,
    #[serde(default)]
    pub ports: Vec<PortTraffic>,
    /// Its firewall's figures, when it has rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallStats>,
}

/// A network's traffic through kvnet's firewall, from its rules' counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FirewallStats {
    /// Forwarded from its guests out, and in to them.
    pub out_packets: u64,
    pub out_bytes: u64,
    pub in_packets: u64,
    pub in_bytes: u64,
    /// Rejected, either way.
    pub rejected_packets: u64,
    /// Connections masqueraded.
    pub nat_connections: u64,
}

/// One DHCP server's counters, pool and journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DhcpStats {
    /// `v4` or `v6`.
    pub family: String,
    /// Leases bound now, and the addresses the ranges hold.
    pub active: u64,
    pub pool: u64,
    pub counters: kvnet_metrics::DhcpCounters,
    pub journal_bytes: u64,
    /// Each batch's journal write and fsync, seconds.
    pub journal_fsync: kvnet_metrics::Histogram,
    pub journal_failed_writes: u64,
    pub journal_dropped_replies: u64,
}

/// A lease and how long it has left.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseTime {
    pub ip_address: std::net::IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Seconds until it expires; None for an infinite lease.
    pub expires_in: Option<u64>,
}

/// A port's traffic, from the guest's point of view reversed: what the TAP received is
/// what the guest sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortTraffic {
    pub ifname: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    /// Frames the port filter dropped (filtered ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_dropped: Option<u64>,
}
