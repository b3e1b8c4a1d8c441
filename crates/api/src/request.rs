//! One type per API request, each naming the data of its successful reply ([`Call`]),
//! and [`Request`], the tagged union that travels: `{"op":"start","network":"default"}`.

use crate::reply::{
    Bridged, CreatedPort, EventKind, ForwardEntry, Lease, NetStats, NetSummary, NetworkId, Port,
    Report, Unbridged, Version,
};
use kvnet_model::{FwdProto, PortForward, PortRange, UpdateCommand, UpdateSection};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A request and the data a successful reply to it carries.
pub trait Call: Into<Request> {
    type Reply: Serialize + DeserializeOwned;
}

/// Every request, tagged by `op` (docs/api.md lists them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Ping(Ping),
    Define(Define),
    Create(Create),
    Undefine(Undefine),
    Start(Start),
    Destroy(Destroy),
    Autostart(Autostart),
    List(List),
    Info(Info),
    DumpXml(DumpXml),
    DhcpLeases(DhcpLeases),
    Update(Update),
    PortCreate(PortCreate),
    PortAttach(PortAttach),
    PortDelete(PortDelete),
    PortList(PortList),
    IfaceBridge(IfaceBridge),
    IfaceUnbridge(IfaceUnbridge),
    Doctor(Doctor),
    ForwardAdd(ForwardAdd),
    ForwardRemove(ForwardRemove),
    ForwardList(ForwardList),
    Events(Events),
    Stats(Stats),
}

impl Request {
    /// The `op` word of the request.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Ping(_) => "ping",
            Request::Define(_) => "define",
            Request::Create(_) => "create",
            Request::Undefine(_) => "undefine",
            Request::Start(_) => "start",
            Request::Destroy(_) => "destroy",
            Request::Autostart(_) => "autostart",
            Request::List(_) => "list",
            Request::Info(_) => "info",
            Request::DumpXml(_) => "dump-xml",
            Request::DhcpLeases(_) => "dhcp-leases",
            Request::Update(_) => "update",
            Request::PortCreate(_) => "port-create",
            Request::PortAttach(_) => "port-attach",
            Request::PortDelete(_) => "port-delete",
            Request::PortList(_) => "port-list",
            Request::IfaceBridge(_) => "iface-bridge",
            Request::IfaceUnbridge(_) => "iface-unbridge",
            Request::Doctor(_) => "doctor",
            Request::ForwardAdd(_) => "forward-add",
            Request::ForwardRemove(_) => "forward-remove",
            Request::ForwardList(_) => "forward-list",
            Request::Events(_) => "events",
            Request::Stats(_) => "stats",
        }
    }
}

/// Declares each request's `Call` impl and its conversion into [`Request`].
macro_rules! calls {
    ($($req:ident => $reply:ty),* $(,)?) => {$(
        impl Call for $req {
            type Reply = $reply;
        }

        impl From<$req> for Request {
            fn from(r: $req) -> Request {
                Request::$req(r)
            }
        }
    )*};
}

calls! {
    Ping => Version,
    Define => NetworkId,
    Create => NetworkId,
    Undefine => (),
    Start => (),
    Destroy => (),
    Autostart => (),
    List => Vec<NetSummary>,
    Info => NetSummary,
    DumpXml => String,
    DhcpLeases => Vec<Lease>,
    Update => (),
    PortCreate => CreatedPort,
    PortAttach => Port,
    PortDelete => (),
    PortList => Vec<Port>,
    IfaceBridge => Bridged,
    IfaceUnbridge => Unbridged,
    Doctor => Report,
    ForwardAdd => ForwardEntry,
    ForwardRemove => (),
    ForwardList => Vec<ForwardEntry>,
    Events => (),
    Stats => NetStats,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ping {}

/// Define (or redefine) a persistent network from XML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Define {
    pub xml: String,
}

/// Create and start a transient network from XML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Create {
    pub xml: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Undefine {
    pub network: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Start {
    pub network: String,
}

/// Stop a network. Traffic stops at once; with `wait` the reply also waits until the
/// kernel has finished deleting the bridge and the rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Destroy {
    pub network: String,
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Autostart {
    pub network: String,
    pub enable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct List {}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    pub network: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpXml {
    pub network: String,
    pub inactive: bool,
}

/// The DHCPv4 then DHCPv6 leases of a network, optionally only those of one MAC
/// address (for IPv6, the MAC inside a DUID-LL or DUID-LLT).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DhcpLeases {
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// `virsh net-update`: libvirt's command and section, the XML fragment, and which
/// definitions to change (neither `live` nor `config` = virsh's `--current`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Update {
    pub network: String,
    pub command: UpdateCommand,
    pub section: UpdateSection,
    pub xml: String,
    pub parent_index: Option<usize>,
    pub live: bool,
    pub config: bool,
}

/// Create a persistent TAP on an active network for a guest (docs/api.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortCreate {
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
    /// Isolated from the network's other isolated ports; unset: the network's
    /// `<port isolated>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    /// The port's traffic filter; unset: the network's `<kvnet:filterref>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<kvnet_model::TrafficFilter>,
    /// Addresses the guest may send from besides its DHCP leases and static hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<std::net::IpAddr>,
    /// A `<portgroup>` of the network whose `<bandwidth>` the port takes; unset: the
    /// network's default portgroup, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portgroup: Option<String>,
    /// Traffic to the guest (libvirt's units: kB/s, burst kB); replaces the
    /// portgroup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<Box<kvnet_model::BandwidthRate>>,
    /// Traffic from the guest; replaces the portgroup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<Box<kvnet_model::BandwidthRate>>,
}

/// Register a TAP someone else created and put it on the network's bridge: by network
/// name (a qemu `script=`) or by bridge name (the bridge helper).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortAttach {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    pub ifname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Detach and unregister a port; a TAP kvnet created is deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortDelete {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub ifname: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortList {
    pub network: String,
}

/// What a network's services counted, its leases and its ports' traffic (net-stats).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub network: String,
}

/// Make a host bridge from a NIC, like virsh iface-bridge: the bridge takes the NIC's
/// MAC, MTU, addresses and routes, and the NIC becomes its port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IfaceBridge {
    pub iface: String,
    pub bridge: String,
    #[serde(default = "yes")]
    pub stp: bool,
    /// Forward delay in seconds.
    #[serde(default)]
    pub delay: u32,
    /// Bring the bridge up (virsh's default; `--no-start` sends false).
    #[serde(default = "yes")]
    pub start: bool,
}

/// Undo `iface-bridge`: the addresses and routes go back to the bridge's one NIC and
/// the bridge is deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IfaceUnbridge {
    pub bridge: String,
}

/// Check the host for what stops guest traffic; with `network`, only what concerns
/// that (active) network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Doctor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

fn yes() -> bool {
    true
}

/// Add a port forward to a network: to its persistent definition (if any) and, when
/// it is active, live. The reply says where the guest is now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardAdd {
    pub network: String,
    pub forward: PortForward,
}

/// Remove the forward of a network that takes exactly these host ports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardRemove {
    pub network: String,
    pub proto: FwdProto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    pub ports: PortRange,
}

/// A network's port forwards, with their guests' current addresses when active.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardList {
    pub network: String,
}

/// Subscribe to events: the reply (`data` null) is followed on the same connection by
/// one [`crate::NetEvent`] a line, as they happen, until the client closes it. Only
/// `network`'s when given, only `kinds` when not empty. A reader that falls behind loses
/// events, never stalls kvnetd: a `gap` event says how many.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Events {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<EventKind>,
}
