//! kvnet's own network extension, kept in `<metadata>` under kvnet's namespace so that the
//! same definition still loads in libvirt (which keeps, and ignores, foreign metadata):
//!
//! ```xml
//! <metadata>
//!   <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
//!     <kvnet:filterref filter="clean-traffic"/>
//!     <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
//!   </kvnet:network>
//! </metadata>
//! ```
//!
//! The format is ours, so it is read strictly: an unknown element or attribute is an error
//! rather than something silently dropped on the next write.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::types::{ForwardMode, IpDef, Network};
use crate::validate::{ipv4_broadcast, reserved_network_addr};
use crate::xmltree::{XmlElement, XmlNode};
use crate::{MacAddr, ModelError};

/// The namespace of `<kvnet:network>` in a network's `<metadata>`.
pub const KVNET_NS: &str = "http://kvnet.org/xmlns/network/1.0";

/// The most port forwards one network may have: each is a firewall rule per packet path,
/// and a definition is read whole on every start.
pub const MAX_FORWARDS: usize = 10_000;

/// The most ports one forward may span: a typo like `1-65535` would otherwise take over
/// every port of the host's address.
pub const MAX_FORWARD_PORTS: u32 = 4096;

/// Error paths use the `kvnet` prefix whatever prefix the file binds to [`KVNET_NS`];
/// the parser records the lines of these paths so errors still point into the file.
pub(crate) const ROOT_PATH: &str = "network/metadata/kvnet:network";

pub(crate) fn forward_path(i: usize) -> String {
    format!("{ROOT_PATH}/kvnet:forward[{}]", i + 1)
}

/// The prefix kvnet writes its elements with.
const PREFIX: &str = "kvnet";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwdProto {
    Tcp,
    Udp,
}

impl FwdProto {
    pub fn as_str(self) -> &'static str {
        match self {
            FwdProto::Tcp => "tcp",
            FwdProto::Udp => "udp",
        }
    }
}

impl fmt::Display for FwdProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FwdProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(FwdProto::Tcp),
            "udp" => Ok(FwdProto::Udp),
            _ => Err(format!("unknown protocol '{s}' (expected 'tcp' or 'udp')")),
        }
    }
}

/// The traffic filter of guest ports (libvirt's nwfilter names): `clean-traffic` lets a
/// guest send only from its own MAC and addresses and never as a DHCP server or router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficFilter {
    #[default]
    None,
    CleanTraffic,
}

impl TrafficFilter {
    pub fn is_none(&self) -> bool {
        *self == TrafficFilter::None
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficFilter::None => "none",
            TrafficFilter::CleanTraffic => "clean-traffic",
        }
    }
}

impl fmt::Display for TrafficFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrafficFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clean-traffic" => Ok(TrafficFilter::CleanTraffic),
            "none" => Ok(TrafficFilter::None),
            _ => Err(format!(
                "unknown traffic filter '{s}' (expected 'clean-traffic' or 'none')"
            )),
        }
    }
}

/// An inclusive range of ports, `1 <= start <= end`; one port when `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// Number of ports; 0 only for a range that starts after it ends.
    pub fn len(&self) -> u32 {
        (u32::from(self.end) + 1).saturating_sub(u32::from(self.start))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The fields are public (and come from JSON too): what `FromStr` guarantees, checked.
    pub fn check(&self) -> Result<(), String> {
        if self.start == 0 {
            return Err("port 0 is not valid (ports are 1-65535)".into());
        }
        if self.start > self.end {
            return Err(format!(
                "the range starts at {} after it ends at {}",
                self.start, self.end
            ));
        }
        Ok(())
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| -> Result<u16, String> {
            // u16's parser takes a leading '+'; a port is digits only.
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("'{s}' is not a port or a range PORT-PORT"));
            }
            p.parse::<u16>()
                .map_err(|_| format!("port {p} is out of range (ports are 1-65535)"))
        };
        let r = match s.split_once('-') {
            None => PortRange::single(port(s)?),
            Some((a, b)) => PortRange {
                start: port(a)?,
                end: port(b)?,
            },
        };
        r.check().map_err(|e| format!("'{s}': {e}"))?;
        Ok(r)
    }
}

/// The guest a forward goes to: by name (resolved to its address when the forward is
/// applied), by MAC address, or by IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestRef {
    Name(String),
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    Mac(String),
    Addr(IpAddr),
}

/// The longest guest name, as for a DNS name.
const MAX_GUEST_NAME: usize = 253;

impl GuestRef {
    /// A MAC address (six hex pairs separated by ':', any case), an IPv4 or IPv6 address,
    /// else a guest name: 1-253 characters of `A-Z a-z 0-9 . _ -`, not starting with '-' or '.'.
    pub fn parse(s: &str) -> Result<GuestRef, String> {
        if let Some(m) = parse_mac(s) {
            return Ok(GuestRef::Mac(m));
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(GuestRef::Addr(a));
        }
        check_guest_name(s)?;
        Ok(GuestRef::Name(s.to_string()))
    }

    /// A hand-built value reads back as itself from its text: a valid name that is not an
    /// address, or a MAC in its normal form.
    pub fn check(&self) -> Result<(), String> {
        match self {
            GuestRef::Name(n) => {
                check_guest_name(n)?;
                if n.parse::<IpAddr>().is_ok() {
                    return Err(format!("guest name '{n}' is an IP address, not a name"));
                }
                Ok(())
            }
            GuestRef::Mac(m) => match parse_mac(m) {
                Some(norm) if &norm == m => Ok(()),
                _ => Err(format!(
                    "guest MAC '{m}' is not six lower-case hex pairs separated by ':'"
                )),
            },
            GuestRef::Addr(_) => Ok(()),
        }
    }
}

impl fmt::Display for GuestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestRef::Name(s) | GuestRef::Mac(s) => f.write_str(s),
            GuestRef::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Six pairs of hex digits separated by ':', lower-cased; `None` for anything else.
fn parse_mac(s: &str) -> Option<String> {
    let groups: Vec<&str> = s.split(':').collect();
    if groups.len() != 6
        || !groups
            .iter()
            .all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(s.parse::<MacAddr>().ok()?.to_string())
}

fn check_guest_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the guest must not be empty".into());
    }
    if s.len() > MAX_GUEST_NAME {
        return Err(format!(
            "guest name is {} characters long, more than {MAX_GUEST_NAME}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "'{}' is not a guest name, MAC address or IP address ({c:?} is not allowed in a name)",
            s.escape_debug()
        ));
    }
    if s.starts_with(['-', '.']) {
        return Err(format!("guest name '{s}' must not start with '-' or '.'"));
    }
    Ok(())
}

/// The CLI's `--to GUEST[:PORT[-PORT]]`: `vm1`, `vm1:80`, `vm1:80-90`, `10.0.0.5:80`,
/// `[fd00::5]:80`, `fd00::5` (a bare IPv6 address has no port), `52:54:00:aa:bb:cc` and
/// `52:54:00:aa:bb:cc:80` (a MAC, then the port as a 7th group).
pub fn parse_target(s: &str) -> Result<(GuestRef, Option<PortRange>), String> {
    let ports = |p: &str| p.parse::<PortRange>().map(Some);
    if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(format!("'{s}': missing ']' after the IPv6 address"));
        };
        let a: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("'{s}': '{addr}' in brackets is not an IPv6 address"))?;
        let p = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => ports(p).map_err(|e| format!("'{s}': {e}"))?,
                None => return Err(format!("'{s}': expected ':PORT' after ']'")),
            },
        };
        return Ok((GuestRef::Addr(IpAddr::V6(a)), p));
    }
    let whole = match GuestRef::parse(s) {
        Ok(g) => return Ok((g, None)),
        Err(e) => e,
    };
    let Some((head, p)) = s.rsplit_once(':') else {
        return Err(whole);
    };
    let g = match GuestRef::parse(head) {
        Ok(GuestRef::Addr(IpAddr::V6(_))) => {
            return Err(format!(
                "'{s}': write an IPv6 address with ports in brackets: [{head}]:{p}"
            ));
        }
        Ok(g) => g,
        Err(e) => return Err(format!("'{s}': {e}")),
    };
    let p = ports(p).map_err(|e| format!("'{s}': {e}"))?;
    Ok((g, p))
}

/// A port forward from the host to a guest on a NAT network (destination NAT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    pub proto: FwdProto,
    /// The host address the forward listens on; `None` for every address of the host.
    pub address: Option<IpAddr>,
    /// Host ports.
    pub ports: PortRange,
    pub to: GuestRef,
    /// Guest ports, as many as `ports` (the same ports unless given).
    pub to_ports: PortRange,
}

impl PortForward {
    /// How errors name the forward: `tcp 8080`, `udp 192.0.2.7:53`, `tcp [2001:db8::1]:80`.
    fn label(&self) -> String {
        match self.address {
            None => format!("{} {}", self.proto, self.ports),
            Some(a) => format!("{} {}:{}", self.proto, bracket(a), self.ports),
        }
    }

    /// Checks on this forward alone; `ips` are the network's subnets.
    fn check(&self, ips: &[IpDef]) -> Result<(), String> {
        self.ports
            .check()
            .map_err(|e| format!("host ports {}: {e}", self.ports))?;
        self.to_ports
            .check()
            .map_err(|e| format!("guest ports {}: {e}", self.to_ports))?;
        if self.ports.len() != self.to_ports.len() {
            return Err(format!(
                "host ports {} ({}) and guest ports {} ({}) differ in size",
                self.ports,
                self.ports.len(),
                self.to_ports,
                self.to_ports.len()
            ));
        }
        if self.ports.len() > MAX_FORWARD_PORTS {
            return Err(format!(
                "host ports {} are {} ports, more than the {MAX_FORWARD_PORTS} one forward may have",
                self.ports,
                self.ports.len()
            ));
        }
        if let Some(a) = self.address
            && (a.is_unspecified()
                || a.is_multicast()
                || a == IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
        {
            return Err(format!(
                "host address {a} is not a unicast address (leave the address out to listen on every address of the host)"
            ));
        }
        self.to.check()?;
        let GuestRef::Addr(g) = self.to else {
            return Ok(());
        };
        if let Some(a) = self.address
            && a.is_ipv4() != g.is_ipv4()
        {
            return Err(format!(
                "host and guest addresses of different families ({a} and {g})"
            ));
        }
        let Some(ip) = ips.iter().find(|ip| ip.network().contains(&g)) else {
            let nets: Vec<String> = ips.iter().map(|ip| ip.network().to_string()).collect();
            let has = if nets.is_empty() {
                "it has no <ip>".to_string()
            } else {
                format!("its subnets: {}", nets.join(", "))
            };
            return Err(format!("guest address {g} is not on this network ({has})"));
        };
        let net = ip.network();
        if g == ip.address {
            return Err(format!(
                "guest address {g} is the host's own address on this network"
            ));
        }
        if reserved_network_addr(&net) == Some(g) {
            return Err(format!("guest address {g} is the network address of {net}"));
        }
        if ipv4_broadcast(&net) == Some(g) {
            return Err(format!(
                "guest address {g} is the broadcast address of {net}"
            ));
        }
        Ok(())
    }

    fn to_element(&self) -> XmlElement {
        let mut attributes = vec![("proto".to_string(), self.proto.to_string())];
        if let Some(a) = self.address {
            attributes.push(("address".into(), a.to_string()));
        }
        attributes.push(("port".into(), self.ports.to_string()));
        attributes.push(("to".into(), self.to.to_string()));
        if self.to_ports != self.ports {
            attributes.push(("toPort".into(), self.to_ports.to_string()));
        }
        XmlElement {
            name: format!("{PREFIX}:forward"),
            namespaces: Vec::new(),
            attributes,
            children: Vec::new(),
        }
    }
}

/// An address as it is written before `:PORT`: IPv6 in brackets.
fn bracket(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// One line for listings: `tcp *:8080-8081 -> vm1:80-81`, `udp 192.0.2.7:53 -> 52:54:00:aa:bb:cc:53`.
impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.address.map_or_else(|| "*".to_string(), bracket);
        let guest = match &self.to {
            GuestRef::Addr(a) => bracket(*a),
            g => g.to_string(),
        };
        write!(
            f,
            "{} {host}:{} -> {guest}:{}",
            self.proto, self.ports, self.to_ports
        )
    }
}

/// Everything kvnet keeps in its `<metadata>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KvnetExt {
    /// `<kvnet:filterref filter='…'/>`: the filter of every guest port of the network
    /// (a port may choose its own); none when absent.
    #[serde(default, skip_serializing_if = "TrafficFilter::is_none")]
    pub filter: TrafficFilter,
    #[serde(default)]
    pub forwards: Vec<PortForward>,
}

impl KvnetExt {
    pub fn is_empty(&self) -> bool {
        self.forwards.is_empty() && self.filter == TrafficFilter::None
    }

    fn to_element(&self) -> XmlElement {
        let filter = (self.filter != TrafficFilter::None).then(|| {
            XmlNode::Element(XmlElement {
                name: format!("{PREFIX}:filterref"),
                namespaces: Vec::new(),
                attributes: vec![("filter".into(), self.filter.to_string())],
                children: Vec::new(),
            })
        });
        XmlElement {
            name: format!("{PREFIX}:network"),
            namespaces: vec![(PREFIX.to_string(), KVNET_NS.to_string())],
            attributes: Vec::new(),
            children: filter
                .into_iter()
                .chain(
                    self.forwards
                        .iter()
                        .map(|f| XmlNode::Element(f.to_element())),
                )
                .collect(),
        }
    }
}

fn is_kvnet(e: &XmlElement) -> bool {
    e.own_namespace() == Some(KVNET_NS)
}

/// `(prefix, local name)` of a qualified name; the prefix is empty when there is none.
fn split_name(name: &str) -> (&str, &str) {
    name.split_once(':').unwrap_or(("", name))
}

/// The namespace a prefix maps to in nested scopes, innermost last.
fn lookup<'a>(prefix: &str, scopes: &[&'a [(String, String)]]) -> Option<&'a str> {
    scopes
        .iter()
        .rev()
        .find_map(|s| s.iter().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str()))
}

/// The local name of an element in kvnet's namespace, `None` for any other element.
fn kvnet_local<'a>(e: &'a XmlElement, scopes: &[&[(String, String)]]) -> Option<&'a str> {
    let (prefix, local) = split_name(&e.name);
    (lookup(prefix, scopes) == Some(KVNET_NS)).then_some(local)
}

fn no_text(path: &str, children: &[XmlNode]) -> Result<(), ModelError> {
    if children
        .iter()
        .any(|c| matches!(c, XmlNode::Text(t) if !t.trim().is_empty()))
    {
        return Err(ModelError::new(path, "unexpected text content"));
    }
    Ok(())
}

fn parse_root(root: &XmlElement) -> Result<KvnetExt, ModelError> {
    if kvnet_local(root, &[&root.namespaces]) != Some("network") {
        return Err(ModelError::new(
            "network/metadata",
            format!(
                "unknown element <{}> in kvnet's namespace {KVNET_NS} (expected <network>)",
                root.name
            ),
        ));
    }
    if let Some((a, _)) = root.attributes.first() {
        return Err(ModelError::new(
            ROOT_PATH,
            format!("unknown attribute '{a}'"),
        ));
    }
    no_text(ROOT_PATH, &root.children)?;
    let elements = || {
        root.children.iter().filter_map(|c| match c {
            XmlNode::Element(e) => Some(e),
            _ => None,
        })
    };
    // Counted before any is parsed, so a huge file costs little.
    let count = elements()
        .filter(|e| !e.name.ends_with("filterref"))
        .count();
    if count > MAX_FORWARDS {
        return Err(ModelError::new(
            ROOT_PATH,
            format!("{count} port forwards, more than the {MAX_FORWARDS} a network may have"),
        ));
    }
    let mut ext = KvnetExt::default();
    let mut filters = 0;
    for e in elements() {
        match kvnet_local(e, &[&root.namespaces, &e.namespaces]) {
            Some("forward") => {
                let p = forward_path(ext.forwards.len());
                ext.forwards.push(parse_forward(&p, e)?);
            }
            Some("filterref") => {
                filters += 1;
                let p = format!("{ROOT_PATH}/kvnet:filterref[{filters}]");
                if filters > 1 {
                    return Err(ModelError::new(p, "a network has one <filterref>"));
                }
                ext.filter = parse_filterref(&p, e)?;
            }
            _ => {
                return Err(ModelError::new(
                    ROOT_PATH,
                    format!("unknown element <{}>", e.name),
                ));
            }
        }
    }
    Ok(ext)
}

fn parse_filterref(p: &str, e: &XmlElement) -> Result<TrafficFilter, ModelError> {
    let err = |m: String| ModelError::new(p, m);
    let mut filter = None;
    for (n, v) in &e.attributes {
        match n.as_str() {
            "filter" => filter = Some(v.as_str()),
            _ => return Err(err(format!("unknown attribute '{n}'"))),
        }
    }
    no_text(p, &e.children)?;
    if let Some(c) = e.children.iter().find_map(|c| match c {
        XmlNode::Element(c) => Some(c),
        _ => None,
    }) {
        return Err(err(format!(
            "unknown element <{}> (kvnet's filters take no parameters)",
            c.name
        )));
    }
    required(p, filter, "filter")?
        .parse()
        .map_err(|e| err(format!("attribute 'filter': {e}")))
}

fn required<'v>(p: &str, v: Option<&'v str>, name: &str) -> Result<&'v str, ModelError> {
    v.ok_or_else(|| ModelError::new(p, format!("missing required attribute '{name}'")))
}

fn parse_forward(p: &str, e: &XmlElement) -> Result<PortForward, ModelError> {
    let err = |m: String| ModelError::new(p, m);
    let (mut proto, mut address, mut port, mut to, mut to_port) = (None, None, None, None, None);
    for (n, v) in &e.attributes {
        let slot = match n.as_str() {
            "proto" => &mut proto,
            "address" => &mut address,
            "port" => &mut port,
            "to" => &mut to,
            "toPort" => &mut to_port,
            _ => return Err(err(format!("unknown attribute '{n}'"))),
        };
        *slot = Some(v.as_str());
    }
    let proto = required(p, proto, "proto")?
        .parse::<FwdProto>()
        .map_err(|e| err(format!("attribute 'proto': {e}")))?;
    let address = address
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| err(format!("attribute 'address': '{a}' is not an IP address")))
        })
        .transpose()?;
    let ports = required(p, port, "port")?
        .parse::<PortRange>()
        .map_err(|e| err(format!("attribute 'port': {e}")))?;
    let to =
        GuestRef::parse(required(p, to, "to")?).map_err(|e| err(format!("attribute 'to': {e}")))?;
    let to_ports = match to_port {
        None => ports,
        Some(t) => t
            .parse::<PortRange>()
            .map_err(|e| err(format!("attribute 'toPort': {e}")))?,
    };
    no_text(p, &e.children)?;
    if let Some(c) = e.children.iter().find_map(|c| match c {
        XmlNode::Element(c) => Some(c),
        _ => None,
    }) {
        return Err(err(format!("unknown element <{}>", c.name)));
    }
    Ok(PortForward {
        proto,
        address,
        ports,
        to,
        to_ports,
    })
}

impl Network {
    /// kvnet's extension, read from the `<metadata>` element in [`KVNET_NS`] (any prefix);
    /// empty when there is none.
    pub fn kvnet_ext(&self) -> Result<KvnetExt, ModelError> {
        match self.metadata.iter().flatten().find(|e| is_kvnet(e)) {
            None => Ok(KvnetExt::default()),
            Some(e) => parse_root(e),
        }
    }

    /// Store `ext` as `<kvnet:network>`: in place of the current kvnet element (other
    /// metadata keeps its order), appended when there is none, removed when `ext` is empty;
    /// a `<metadata>` left empty by the removal goes too.
    pub fn set_kvnet_ext(&mut self, ext: &KvnetExt) {
        let new = (!ext.is_empty()).then(|| ext.to_element());
        let Some(meta) = self.metadata.as_mut() else {
            self.metadata = new.map(|e| vec![e]);
            return;
        };
        let Some(first) = meta.iter().position(is_kvnet) else {
            meta.extend(new);
            return;
        };
        // One element per namespace, as libvirt keeps it: later ones (only possible in a
        // hand-built model) go too.
        let mut i = 0;
        meta.retain(|e| {
            let keep = !is_kvnet(e) || i == first;
            i += 1;
            keep
        });
        match new {
            Some(e) => meta[first] = e,
            None => {
                meta.remove(first);
                if meta.is_empty() {
                    self.metadata = None;
                }
            }
        }
    }

    /// Whether `ext` may go with this network: [`Network::validate`] checks the network's
    /// own extension with it; a client can check a changed one before storing it.
    pub fn check_kvnet_ext(&self, ext: &KvnetExt) -> Result<(), ModelError> {
        if ext.filter != TrafficFilter::None
            && crate::Profile::of(self).bridge == crate::BridgeRole::None
        {
            return Err(ModelError::new(
                format!("{ROOT_PATH}/kvnet:filterref"),
                format!(
                    "filter '{}' needs a network with a bridge; forward mode '{}' gives guests host NICs",
                    ext.filter,
                    self.forward_mode()
                ),
            ));
        }
        let fw = &ext.forwards;
        if fw.is_empty() {
            return Ok(());
        }
        if fw.len() > MAX_FORWARDS {
            return Err(ModelError::new(
                ROOT_PATH,
                format!(
                    "{} port forwards, more than the {MAX_FORWARDS} a network may have",
                    fw.len()
                ),
            ));
        }
        let mode = self.forward_mode();
        for (i, f) in fw.iter().enumerate() {
            let err =
                |m: String| ModelError::new(forward_path(i), format!("forward {}: {m}", f.label()));
            if mode != ForwardMode::Nat {
                return Err(err(format!(
                    "port forwards need a NAT network (forward mode 'nat'), this one is '{mode}'"
                )));
            }
            f.check(&self.ips).map_err(err)?;
        }
        // Overlaps: sorted by (proto, address, start), each forward is compared with the one
        // reaching furthest before it in its group.
        let mut order: Vec<usize> = (0..fw.len()).collect();
        order.sort_by_key(|&i| (fw[i].proto, fw[i].address, fw[i].ports.start, i));
        let mut reach: Option<usize> = None;
        for &i in &order {
            let same = |j: usize| fw[j].proto == fw[i].proto && fw[j].address == fw[i].address;
            match reach {
                Some(j) if same(j) && fw[i].ports.start <= fw[j].ports.end => {
                    let (a, b) = (i.min(j), i.max(j));
                    return Err(ModelError::new(
                        forward_path(b),
                        format!(
                            "forward {}: its host ports overlap those of forward {} (same protocol and host address)",
                            fw[b].label(),
                            fw[a].label()
                        ),
                    ));
                }
                Some(j) if same(j) && fw[i].ports.end <= fw[j].ports.end => {}
                _ => reach = Some(i),
            }
        }
        Ok(())
    }

    /// The network's own extension, checked ([`Network::validate`] calls it).
    pub(crate) fn check_kvnet(&self) -> Result<(), ModelError> {
        self.check_kvnet_ext(&self.kvnet_ext()?)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    const KV: &str = KVNET_NS;

    /// A NAT network on 10.0.0.0/24 and fd00::/64 with `meta` as its `<metadata>` content.
    fn nat_net(meta: &str) -> String {
        format!(
            "<network>\n  <name>fw</name>\n  <metadata>{meta}</metadata>\n  <forward mode='nat'/>\n  \
             <ip address='10.0.0.1' prefix='24'/>\n  <ip family='ipv6' address='fd00::1' prefix='64'/>\n</network>"
        )
    }

    /// `<kvnet:network>` holding `inner`.
    fn kv(inner: &str) -> String {
        format!("<kvnet:network xmlns:kvnet='{KV}'>{inner}</kvnet:network>")
    }

    fn net(xml: &str) -> Network {
        Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    fn reject(xml: &str) -> ModelError {
        match Network::from_xml(xml) {
            Ok(n) => panic!("accepted:\n{}", n.to_xml()),
            Err(e) => e,
        }
    }

    fn pr(start: u16, end: u16) -> PortRange {
        PortRange { start, end }
    }

    fn fwd(proto: FwdProto, address: Option<&str>, ports: PortRange, to: &str) -> PortForward {
        PortForward {
            proto,
            address: address.map(|a| a.parse().unwrap()),
            ports,
            to: GuestRef::parse(to).unwrap(),
            to_ports: ports,
        }
    }

    fn ext(forwards: Vec<PortForward>) -> KvnetExt {
        KvnetExt {
            forwards,
            ..KvnetExt::default()
        }
    }

    #[test]
    fn filterref_round_trips_and_is_checked() {
        let n = net(&nat_net(&kv("<kvnet:filterref filter='clean-traffic'/>")));
        let e = n.kvnet_ext().unwrap();
        assert_eq!(e.filter, TrafficFilter::CleanTraffic);
        assert!(e.forwards.is_empty() && !e.is_empty());
        let again = net(&n.to_xml());
        assert_eq!(again.kvnet_ext().unwrap(), e);
        assert!(
            n.to_xml()
                .contains(r#"<kvnet:filterref filter="clean-traffic"/>"#)
        );
        // Set to none, the element goes (and the empty metadata with it).
        let mut m = n.clone();
        m.set_kvnet_ext(&KvnetExt::default());
        assert!(!m.to_xml().contains("kvnet"), "{}", m.to_xml());

        let bad = [
            (
                "<kvnet:filterref filter='no-spoof'/>",
                "unknown traffic filter 'no-spoof'",
            ),
            ("<kvnet:filterref/>", "missing required attribute 'filter'"),
            (
                "<kvnet:filterref filter='clean-traffic' x='1'/>",
                "unknown attribute 'x'",
            ),
            (
                "<kvnet:filterref filter='clean-traffic'><kvnet:parameter/></kvnet:filterref>",
                "take no parameters",
            ),
            (
                "<kvnet:filterref filter='clean-traffic'/><kvnet:filterref filter='none'/>",
                "one <filterref>",
            ),
        ];
        for (inner, want) in bad {
            let e = reject(&nat_net(&kv(inner)));
            assert!(e.to_string().contains(want), "{inner}: {e}");
        }
        // A network without a bridge has no ports to filter.
        let direct = format!(
            "<network><name>d</name><metadata>{}</metadata><forward mode='bridge'>\
             <interface dev='eth9'/></forward></network>",
            kv("<kvnet:filterref filter='clean-traffic'/>")
        );
        let e = reject(&direct);
        assert!(
            e.to_string().contains("needs a network with a bridge"),
            "{e}"
        );
    }

    /// The message of the error `check_kvnet_ext` gives for these forwards on a NAT network.
    fn check_msg(forwards: Vec<PortForward>) -> String {
        let n = net(&nat_net(""));
        n.check_kvnet_ext(&ext(forwards)).unwrap_err().message
    }

    const ROUND_TRIP_IN: &str = r#"<network>
  <name>fw</name>
  <metadata>
    <app:info xmlns:app="urn:app" v="1"/>
    <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
      <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
      <!-- DNS -->
      <kvnet:forward proto="udp" port="53" to="52:54:00:AA:BB:CC" toPort="53"/>
    </kvnet:network>
    <other:x xmlns:other="urn:other"/>
  </metadata>
  <forward mode='nat'/>
  <bridge name='virbr7'/>
  <ip address='10.0.0.1' prefix='24'/>
</network>
"#;

    const ROUND_TRIP_OUT: &str = r#"<network>
  <name>fw</name>
  <metadata>
    <app:info xmlns:app="urn:app" v="1"/>
    <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
      <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
      <kvnet:forward proto="udp" port="53" to="52:54:00:aa:bb:cc"/>
      <kvnet:forward proto="tcp" port="2222" to="10.0.0.5" toPort="22"/>
    </kvnet:network>
    <other:x xmlns:other="urn:other"/>
  </metadata>
  <forward mode='nat'/>
  <bridge name='virbr7' stp='on' delay='0'/>
  <ip address='10.0.0.1' prefix='24'>
  </ip>
</network>
"#;

    #[test]
    fn round_trip_keeps_foreign_metadata_and_its_order() {
        let mut n = net(ROUND_TRIP_IN);
        let mut e = n.kvnet_ext().unwrap();
        assert_eq!(
            e.forwards,
            vec![
                PortForward {
                    proto: FwdProto::Tcp,
                    address: Some("192.0.2.7".parse().unwrap()),
                    ports: pr(8080, 8081),
                    to: GuestRef::Name("vm1".into()),
                    to_ports: pr(80, 81),
                },
                PortForward {
                    proto: FwdProto::Udp,
                    address: None,
                    ports: pr(53, 53),
                    to: GuestRef::Mac("52:54:00:aa:bb:cc".into()),
                    to_ports: pr(53, 53),
                },
            ]
        );
        e.forwards.push(PortForward {
            to_ports: pr(22, 22),
            ..fwd(FwdProto::Tcp, None, pr(2222, 2222), "10.0.0.5")
        });
        n.set_kvnet_ext(&e);
        assert_eq!(n.to_xml(), ROUND_TRIP_OUT);
        // What kvnet writes reads back the same, and defines again.
        let back = net(&n.to_xml());
        assert_eq!(back, n);
        assert_eq!(back.kvnet_ext().unwrap(), e);
    }

    #[test]
    fn set_then_read_back_and_serde() {
        let mut n = net(&nat_net("").replace("  <metadata></metadata>\n", ""));
        assert_eq!(n.metadata, None);
        assert_eq!(n.kvnet_ext().unwrap(), KvnetExt::default());
        let e = ext(vec![
            PortForward {
                to_ports: pr(80, 81),
                ..fwd(FwdProto::Tcp, Some("192.0.2.7"), pr(8080, 8081), "vm1")
            },
            fwd(FwdProto::Udp, Some("2001:db8::7"), pr(53, 53), "fd00::53"),
        ]);
        n.set_kvnet_ext(&e);
        assert_eq!(n.metadata.as_ref().map(Vec::len), Some(1));
        assert_eq!(n.kvnet_ext().unwrap(), e);
        n.validate().unwrap();
        let x = n.to_xml();
        assert!(
            x.contains(
                "  <metadata>\n    <kvnet:network xmlns:kvnet=\"http://kvnet.org/xmlns/network/1.0\">\n      \
                 <kvnet:forward proto=\"tcp\" address=\"192.0.2.7\" port=\"8080-8081\" to=\"vm1\" toPort=\"80-81\"/>\n      \
                 <kvnet:forward proto=\"udp\" address=\"2001:db8::7\" port=\"53\" to=\"fd00::53\"/>\n    \
                 </kvnet:network>\n  </metadata>\n"
            ),
            "{x}"
        );
        assert_eq!(net(&x).kvnet_ext().unwrap(), e);
        // Setting it again changes nothing.
        let before = n.clone();
        n.set_kvnet_ext(&e);
        assert_eq!(n, before);

        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"forwards":[{"proto":"tcp","address":"192.0.2.7","ports":{"start":8080,"end":8081},"to":{"name":"vm1"},"to_ports":{"start":80,"end":81}},{"proto":"udp","address":"2001:db8::7","ports":{"start":53,"end":53},"to":{"addr":"fd00::53"},"to_ports":{"start":53,"end":53}}]}"#
        );
        assert_eq!(serde_json::from_str::<KvnetExt>(&j).unwrap(), e);
        assert_eq!(
            serde_json::from_str::<KvnetExt>("{}").unwrap(),
            KvnetExt::default()
        );
    }

    #[test]
    fn empty_ext_removes_the_element() {
        // Foreign metadata stays, in order.
        let mut n = net(ROUND_TRIP_IN);
        n.set_kvnet_ext(&KvnetExt::default());
        let names: Vec<&str> = n
            .metadata
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["app:info", "other:x"]);
        assert_eq!(n.kvnet_ext().unwrap(), KvnetExt::default());

        // Only kvnet's element: <metadata> goes too.
        let mut n = net(&nat_net(&kv(
            "<kvnet:forward proto='tcp' port='80' to='vm1'/>",
        )));
        n.set_kvnet_ext(&KvnetExt::default());
        assert_eq!(n.metadata, None);
        assert!(!n.to_xml().contains("metadata"), "{}", n.to_xml());

        // Nothing to remove: <metadata/> (or its absence) is left as it was.
        let mut n = net(&nat_net(""));
        assert_eq!(n.metadata, Some(vec![]));
        n.set_kvnet_ext(&KvnetExt::default());
        assert_eq!(n.metadata, Some(vec![]));
        n.metadata = None;
        n.set_kvnet_ext(&KvnetExt::default());
        assert_eq!(n.metadata, None);
    }

    #[test]
    fn a_hand_built_duplicate_kvnet_element_is_dropped() {
        let mut n = net(&nat_net(""));
        let one = ext(vec![fwd(FwdProto::Tcp, None, pr(80, 80), "vm1")]);
        n.set_kvnet_ext(&one);
        let kv_elem = n.metadata.as_ref().unwrap()[0].clone();
        let foreign = XmlElement {
            name: "a:b".into(),
            namespaces: vec![("a".into(), "urn:a".into())],
            ..XmlElement::default()
        };
        n.metadata = Some(vec![
            foreign.clone(),
            kv_elem.clone(),
            kv_elem,
            foreign.clone(),
        ]);
        let two = ext(vec![fwd(FwdProto::Udp, None, pr(53, 53), "vm2")]);
        n.set_kvnet_ext(&two);
        let m = n.metadata.as_ref().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], foreign);
        assert_eq!(m[2], foreign);
        assert_eq!(n.kvnet_ext().unwrap(), two);
    }

    #[test]
    fn any_prefix_bound_to_the_namespace() {
        let want = ext(vec![fwd(FwdProto::Tcp, None, pr(80, 80), "vm1")]);
        for meta in [
            // Another prefix, the child inheriting it from the root element.
            format!(
                "<k:network xmlns:k='{KV}'>\n <k:forward proto='tcp' port='80' to='vm1'/>\n</k:network>"
            ),
            // The default namespace.
            format!("<network xmlns='{KV}'><forward proto='tcp' port='80' to='vm1'/></network>"),
            // A child declaring a prefix of its own for the same namespace.
            format!(
                "<k:network xmlns:k='{KV}'><j:forward xmlns:j='{KV}' proto='tcp' port='80' to='vm1'/></k:network>"
            ),
        ] {
            let mut n = net(&nat_net(&meta));
            assert_eq!(n.kvnet_ext().unwrap(), want, "{meta}");
            // Written back with kvnet's own prefix.
            n.set_kvnet_ext(&want);
            let x = n.to_xml();
            assert!(
                x.contains("<kvnet:forward proto=\"tcp\" port=\"80\" to=\"vm1\"/>"),
                "{x}"
            );
            assert_eq!(net(&x).kvnet_ext().unwrap(), want);
        }
        // The prefix declared on <network> itself, above <metadata>.
        let xml = nat_net("<k:network><k:forward proto='tcp' port='80' to='vm1'/></k:network>")
            .replacen("<network>", &format!("<network xmlns:k='{KV}'>"), 1);
        let n = net(&xml);
        assert_eq!(n.kvnet_ext().unwrap(), want);
        assert_eq!(net(&n.to_xml()).kvnet_ext().unwrap(), want);
        // The child's prefix declared on <metadata>, the root's on the root itself.
        let xml = nat_net(&format!(
            "<k:network xmlns:k='{KV}'><j:forward proto='tcp' port='80' to='vm1'/></k:network>"
        ))
        .replacen("<metadata>", &format!("<metadata xmlns:j='{KV}'>"), 1);
        let n = net(&xml);
        assert_eq!(n.kvnet_ext().unwrap(), want);
        assert_eq!(net(&n.to_xml()), n);
    }

    /// The error `from_xml` gives for `meta` in a NAT network: (line, element, message).
    fn meta_err(meta: &str) -> (Option<u32>, String, String) {
        let e = reject(&nat_net(meta));
        (e.line, e.element, e.message)
    }

    #[test]
    fn unknown_elements_and_attributes_are_errors() {
        let f1 = "network/metadata/kvnet:network/kvnet:forward[1]";
        let f2 = "network/metadata/kvnet:network/kvnet:forward[2]";
        let root = "network/metadata/kvnet:network";
        let cases: Vec<(String, &str, String)> = vec![
            (
                kv("<kvnet:forward proto='tcp' port='80' to='vm1' bogus='1'/>"),
                f1,
                "unknown attribute 'bogus'".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80' to='vm1' kvnet:to='vm2'/>"),
                f1,
                "unknown attribute 'kvnet:to'".into(),
            ),
            (
                format!("<kvnet:network xmlns:kvnet='{KV}' version='2'/>"),
                root,
                "unknown attribute 'version'".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80' to='vm1'/><kvnet:bogus/>"),
                root,
                "unknown element <kvnet:bogus>".into(),
            ),
            (
                kv("<x:forward xmlns:x='urn:x' proto='tcp' port='80' to='vm1'/>"),
                root,
                "unknown element <x:forward>".into(),
            ),
            (
                kv("<forward proto='tcp' port='80' to='vm1'/>"),
                root,
                "unknown element <forward>".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80' to='vm1'><kvnet:x/></kvnet:forward>"),
                f1,
                "unknown element <kvnet:x>".into(),
            ),
            (kv("stray"), root, "unexpected text content".into()),
            (
                kv("<kvnet:forward proto='tcp' port='80' to='vm1'>text</kvnet:forward>"),
                f1,
                "unexpected text content".into(),
            ),
            (
                format!("<kvnet:net xmlns:kvnet='{KV}'/>"),
                "network/metadata",
                format!(
                    "unknown element <kvnet:net> in kvnet's namespace {KV} (expected <network>)"
                ),
            ),
            (
                kv(
                    "<kvnet:forward proto='tcp' port='80' to='vm1'/><kvnet:forward port='81' to='vm1'/>",
                ),
                f2,
                "missing required attribute 'proto'".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' to='vm1'/>"),
                f1,
                "missing required attribute 'port'".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80'/>"),
                f1,
                "missing required attribute 'to'".into(),
            ),
            (
                kv("<kvnet:forward proto='TCP' port='80' to='vm1'/>"),
                f1,
                "attribute 'proto': unknown protocol 'TCP' (expected 'tcp' or 'udp')".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='0' to='vm1'/>"),
                f1,
                "attribute 'port': '0': port 0 is not valid (ports are 1-65535)".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80' toPort='90-81' to='vm1'/>"),
                f1,
                "attribute 'toPort': '90-81': the range starts at 90 after it ends at 81".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' address='host' port='80' to='vm1'/>"),
                f1,
                "attribute 'address': 'host' is not an IP address".into(),
            ),
            (
                kv("<kvnet:forward proto='tcp' port='80' to='-vm'/>"),
                f1,
                "attribute 'to': guest name '-vm' must not start with '-' or '.'".into(),
            ),
        ];
        for (meta, path, msg) in cases {
            let (line, element, message) = meta_err(&meta);
            assert_eq!(
                (element.as_str(), message.as_str()),
                (path, msg.as_str()),
                "{meta}"
            );
            // Each points at the line of the element (all on <metadata>'s line here).
            assert_eq!(line, Some(3), "{meta}");
        }
        // Without the element, a network with the same XML is fine.
        net(&nat_net(""));
    }

    #[test]
    fn errors_point_at_the_forward_line() {
        let meta = format!(
            "\n    <k:network xmlns:k='{KV}'>\n      <k:forward proto='tcp' port='80' to='vm1'/>\n      \
             <k:forward proto='tcp' port='79-80' to='vm2'/>\n    </k:network>\n  "
        );
        let e = reject(&nat_net(&meta));
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(
            e.to_string(),
            "line 6: <network/metadata/kvnet:network/kvnet:forward[2]>: forward tcp 79-80: its host ports \
             overlap those of forward tcp 80 (same protocol and host address)"
        );
        let e = reject(&nat_net(&meta.replace("port='80'", "port='80' x='1'")));
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.message, "unknown attribute 'x'");
    }

    #[test]
    fn port_forwards_need_nat() {
        let meta = kv("<kvnet:forward proto='tcp' port='8080' to='vm1'/>");
        for (mode, name) in [
            ("<forward mode='route'/>", "route"),
            ("<forward mode='open'/>", "open"),
            ("", "none"),
        ] {
            let xml = nat_net(&meta).replace("<forward mode='nat'/>", mode);
            let e = reject(&xml);
            assert_eq!(
                e.message,
                format!(
                    "forward tcp 8080: port forwards need a NAT network (forward mode 'nat'), this one is '{name}'"
                )
            );
            assert_eq!(e.element, "network/metadata/kvnet:network/kvnet:forward[1]");
            // Without forwards, the element is no trouble.
            net(&xml.replace(&meta, &kv("")));
        }
    }

    #[test]
    fn port_range_checks() {
        let t = FwdProto::Tcp;
        let bad = |ports: PortRange, to_ports: PortRange| {
            check_msg(vec![PortForward {
                to_ports,
                ..fwd(t, None, ports, "vm1")
            }])
        };
        assert_eq!(
            bad(pr(0, 10), pr(1, 11)),
            "forward tcp 0-10: host ports 0-10: port 0 is not valid (ports are 1-65535)"
        );
        assert_eq!(
            bad(pr(10, 10), pr(0, 0)),
            "forward tcp 10: guest ports 0: port 0 is not valid (ports are 1-65535)"
        );
        assert_eq!(
            bad(pr(90, 80), pr(90, 80)),
            "forward tcp 90-80: host ports 90-80: the range starts at 90 after it ends at 80"
        );
        assert_eq!(
            bad(pr(8080, 8081), pr(80, 80)),
            "forward tcp 8080-8081: host ports 8080-8081 (2) and guest ports 80 (1) differ in size"
        );
    }

    #[test]
    fn at_most_4096_ports_per_forward() {
        let t = FwdProto::Tcp;
        let n = net(&nat_net(""));
        let ok = ext(vec![fwd(t, None, pr(1001, 5096), "vm1")]);
        n.check_kvnet_ext(&ok).unwrap();
        let e = n
            .check_kvnet_ext(&ext(vec![fwd(t, None, pr(1000, 5096), "vm1")]))
            .unwrap_err();
        assert_eq!(
            e.message,
            "forward tcp 1000-5096: host ports 1000-5096 are 4097 ports, more than the 4096 one forward may have"
        );
        // From XML too.
        let e = reject(&nat_net(&kv(
            "<kvnet:forward proto='udp' port='1-65535' to='vm1'/>",
        )));
        assert_eq!(
            e.message,
            "forward udp 1-65535: host ports 1-65535 are 65535 ports, more than the 4096 one forward may have"
        );
    }

    #[test]
    fn overlapping_forwards_are_refused() {
        let (t, u) = (FwdProto::Tcp, FwdProto::Udp);
        let a = Some("192.0.2.7");
        let b = Some("192.0.2.8");
        let n = net(&nat_net(""));
        // Different protocol, address (None is not an address) or ports: fine.
        n.check_kvnet_ext(&ext(vec![
            fwd(t, None, pr(80, 90), "vm1"),
            fwd(u, None, pr(80, 90), "vm1"),
            fwd(t, a, pr(80, 90), "vm1"),
            fwd(t, b, pr(85, 85), "vm1"),
            fwd(t, None, pr(91, 91), "vm1"),
            fwd(t, None, pr(70, 79), "vm1"),
            fwd(t, a, pr(1, 79), "vm2"),
        ]))
        .unwrap();
        assert_eq!(
            check_msg(vec![
                fwd(t, None, pr(8080, 8090), "vm1"),
                fwd(u, None, pr(8085, 8085), "vm1"),
                fwd(t, None, pr(8085, 8085), "vm2"),
            ]),
            "forward tcp 8085: its host ports overlap those of forward tcp 8080-8090 (same protocol and host address)"
        );
        // Named in document order, whichever starts first.
        let e = net(&nat_net(""))
            .check_kvnet_ext(&ext(vec![
                fwd(u, a, pr(53, 60), "vm1"),
                fwd(u, a, pr(100, 200), "vm1"),
                fwd(u, a, pr(40, 53), "vm2"),
            ]))
            .unwrap_err();
        assert_eq!(e.element, "network/metadata/kvnet:network/kvnet:forward[3]");
        assert_eq!(
            e.message,
            "forward udp 192.0.2.7:40-53: its host ports overlap those of forward udp 192.0.2.7:53-60 \
             (same protocol and host address)"
        );
        // A forward hidden inside a long one that an earlier, shorter one follows.
        assert!(
            check_msg(vec![
                fwd(t, None, pr(1, 100), "vm1"),
                fwd(t, None, pr(2, 3), "vm1"),
                fwd(t, None, pr(50, 50), "vm1"),
            ])
            .starts_with("forward tcp 2-3: its host ports overlap those of forward tcp 1-100")
        );
        assert!(
            check_msg(vec![
                fwd(t, None, pr(80, 80), "vm1"),
                fwd(t, None, pr(80, 80), "vm1")
            ])
            .starts_with("forward tcp 80: its host ports overlap those of forward tcp 80 ")
        );
    }

    #[test]
    fn guest_addresses_are_on_the_network() {
        let t = FwdProto::Tcp;
        let n = net(&nat_net(""));
        n.check_kvnet_ext(&ext(vec![
            fwd(t, None, pr(80, 80), "10.0.0.5"),
            fwd(t, None, pr(81, 81), "fd00::5"),
            fwd(t, Some("192.0.2.7"), pr(82, 82), "10.0.0.254"),
            fwd(t, Some("2001:db8::7"), pr(83, 83), "fd00::ffff"),
        ]))
        .unwrap();
        let one =
            |address: Option<&str>, to: &str| check_msg(vec![fwd(t, address, pr(80, 80), to)]);
        assert_eq!(
            one(None, "10.9.9.9"),
            "forward tcp 80: guest address 10.9.9.9 is not on this network (its subnets: 10.0.0.0/24, fd00::/64)"
        );
        assert_eq!(
            one(Some("192.0.2.7"), "fd00::5"),
            "forward tcp 192.0.2.7:80: host and guest addresses of different families (192.0.2.7 and fd00::5)"
        );
        assert_eq!(
            one(Some("2001:db8::7"), "10.0.0.5"),
            "forward tcp [2001:db8::7]:80: host and guest addresses of different families (2001:db8::7 and 10.0.0.5)"
        );
        assert_eq!(
            one(None, "10.0.0.1"),
            "forward tcp 80: guest address 10.0.0.1 is the host's own address on this network"
        );
        assert_eq!(
            one(None, "10.0.0.0"),
            "forward tcp 80: guest address 10.0.0.0 is the network address of 10.0.0.0/24"
        );
        assert_eq!(
            one(None, "10.0.0.255"),
            "forward tcp 80: guest address 10.0.0.255 is the broadcast address of 10.0.0.0/24"
        );
        assert_eq!(
            one(Some("0.0.0.0"), "10.0.0.5"),
            "forward tcp 0.0.0.0:80: host address 0.0.0.0 is not a unicast address (leave the address out \
             to listen on every address of the host)"
        );
        // A network without <ip>.
        let mut bare = n.clone();
        bare.ips.clear();
        let e = bare
            .check_kvnet_ext(&ext(vec![fwd(t, None, pr(80, 80), "10.0.0.5")]))
            .unwrap_err();
        assert_eq!(
            e.message,
            "forward tcp 80: guest address 10.0.0.5 is not on this network (it has no <ip>)"
        );
        // Through define.
        let e = reject(&nat_net(&kv(
            "<kvnet:forward proto='tcp' port='80' to='10.9.9.9'/>",
        )));
        assert!(
            e.message
                .starts_with("forward tcp 80: guest address 10.9.9.9 is not on this network"),
            "{e}"
        );
    }

    #[test]
    fn hand_built_guests_must_read_back_as_themselves() {
        let t = FwdProto::Tcp;
        let with = |to: GuestRef| {
            check_msg(vec![PortForward {
                to,
                ..fwd(t, None, pr(80, 80), "vm1")
            }])
        };
        assert_eq!(
            with(GuestRef::Mac("52:54:00:AA:BB:CC".into())),
            "forward tcp 80: guest MAC '52:54:00:AA:BB:CC' is not six lower-case hex pairs separated by ':'"
        );
        assert_eq!(
            with(GuestRef::Name("10.0.0.5".into())),
            "forward tcp 80: guest name '10.0.0.5' is an IP address, not a name"
        );
        assert_eq!(
            with(GuestRef::Name("a b".into())),
            "forward tcp 80: 'a b' is not a guest name, MAC address or IP address (' ' is not allowed in a name)"
        );
    }

    #[test]
    fn at_most_10000_forwards() {
        let n = net(&nat_net(""));
        let many = |count: u16| {
            ext((1..=count)
                .map(|p| fwd(FwdProto::Udp, None, pr(p, p), "vm1"))
                .collect())
        };
        n.check_kvnet_ext(&many(10_000)).unwrap();
        let e = n.check_kvnet_ext(&many(10_001)).unwrap_err();
        assert_eq!(e.element, "network/metadata/kvnet:network");
        assert_eq!(
            e.message,
            "10001 port forwards, more than the 10000 a network may have"
        );
        // Refused before any is read from XML.
        let body = "<kvnet:forward/>".repeat(10_001);
        let e = reject(&nat_net(&kv(&body)));
        assert_eq!(
            e.message,
            "10001 port forwards, more than the 10000 a network may have"
        );
    }

    #[test]
    fn display_for_listings() {
        let mut f = PortForward {
            to_ports: pr(80, 81),
            ..fwd(FwdProto::Tcp, None, pr(8080, 8081), "vm1")
        };
        assert_eq!(f.to_string(), "tcp *:8080-8081 -> vm1:80-81");
        f = fwd(
            FwdProto::Udp,
            Some("192.0.2.7"),
            pr(53, 53),
            "52:54:00:AA:bb:cc",
        );
        assert_eq!(f.to_string(), "udp 192.0.2.7:53 -> 52:54:00:aa:bb:cc:53");
        f = fwd(FwdProto::Tcp, Some("2001:db8::7"), pr(443, 443), "fd00::5");
        assert_eq!(f.to_string(), "tcp [2001:db8::7]:443 -> [fd00::5]:443");
    }

    #[test]
    fn proto_and_port_range_text() {
        assert_eq!("tcp".parse::<FwdProto>(), Ok(FwdProto::Tcp));
        assert_eq!("udp".parse::<FwdProto>(), Ok(FwdProto::Udp));
        assert!("sctp".parse::<FwdProto>().is_err());
        assert_eq!(FwdProto::Udp.to_string(), "udp");

        let r: PortRange = "8080-8081".parse().unwrap();
        assert_eq!(
            (r, r.len(), r.to_string()),
            (pr(8080, 8081), 2, "8080-8081".into())
        );
        let r: PortRange = "22".parse().unwrap();
        assert_eq!((r, r.len(), r.to_string()), (pr(22, 22), 1, "22".into()));
        assert_eq!("80-80".parse::<PortRange>().unwrap().to_string(), "80");
        assert_eq!("1-65535".parse::<PortRange>().unwrap().len(), 65535);
        assert_eq!(pr(2, 1).len(), 0);
        assert!(pr(2, 1).is_empty());
        assert!(pr(80, 90).overlaps(&pr(90, 95)));
        assert!(!pr(80, 90).overlaps(&pr(91, 95)));
        assert_eq!(PortRange::single(7), pr(7, 7));
        for (bad, msg) in [
            ("", "'' is not a port or a range PORT-PORT"),
            ("0", "'0': port 0 is not valid (ports are 1-65535)"),
            ("0-5", "'0-5': port 0 is not valid (ports are 1-65535)"),
            ("65536", "port 65536 is out of range (ports are 1-65535)"),
            (
                "90-80",
                "'90-80': the range starts at 90 after it ends at 80",
            ),
            ("+80", "'+80' is not a port or a range PORT-PORT"),
            ("80-", "'80-' is not a port or a range PORT-PORT"),
            ("-80", "'-80' is not a port or a range PORT-PORT"),
            (
                "80-90-100",
                "'80-90-100' is not a port or a range PORT-PORT",
            ),
            (" 80", "' 80' is not a port or a range PORT-PORT"),
            ("http", "'http' is not a port or a range PORT-PORT"),
        ] {
            assert_eq!(bad.parse::<PortRange>(), Err(msg.to_string()), "{bad}");
        }
    }

    #[test]
    fn guest_ref_parse() {
        let name = |s: &str| GuestRef::Name(s.into());
        let mac = |s: &str| GuestRef::Mac(s.into());
        for (s, want) in [
            ("vm1", name("vm1")),
            ("web.example_1-a", name("web.example_1-a")),
            ("52:54:00:AA:bb:cc", mac("52:54:00:aa:bb:cc")),
            (
                "10.0.0.5",
                GuestRef::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))),
            ),
            (
                "fd00::5",
                GuestRef::Addr(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5))),
            ),
        ] {
            assert_eq!(GuestRef::parse(s), Ok(want), "{s}");
        }
        assert_eq!(
            GuestRef::parse(&"a".repeat(253)),
            Ok(name(&"a".repeat(253)))
        );
        for (bad, msg) in [
            ("", "the guest must not be empty"),
            ("-vm", "guest name '-vm' must not start with '-' or '.'"),
            (".vm", "guest name '.vm' must not start with '-' or '.'"),
            (
                "vm 1",
                "'vm 1' is not a guest name, MAC address or IP address (' ' is not allowed in a name)",
            ),
            (
                "52:54:0:aa:bb:cc",
                "'52:54:0:aa:bb:cc' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
            ),
            (
                "vm\n",
                "'vm\\n' is not a guest name, MAC address or IP address ('\\n' is not allowed in a name)",
            ),
        ] {
            assert_eq!(GuestRef::parse(bad), Err(msg.to_string()), "{bad:?}");
        }
        assert_eq!(
            GuestRef::parse(&"a".repeat(254)),
            Err("guest name is 254 characters long, more than 253".into())
        );
        assert!(GuestRef::parse("vé").is_err());
    }

    #[test]
    fn parse_target_forms() {
        let name = |s: &str| GuestRef::Name(s.into());
        let ip = |s: &str| GuestRef::Addr(s.parse().unwrap());
        for (s, g, p) in [
            ("vm1", name("vm1"), None),
            ("vm1:80", name("vm1"), Some(pr(80, 80))),
            ("vm1:80-90", name("vm1"), Some(pr(80, 90))),
            ("10.0.0.5", ip("10.0.0.5"), None),
            ("10.0.0.5:80", ip("10.0.0.5"), Some(pr(80, 80))),
            ("[fd00::5]:80", ip("fd00::5"), Some(pr(80, 80))),
            ("[fd00::5]:80-81", ip("fd00::5"), Some(pr(80, 81))),
            ("[fd00::5]", ip("fd00::5"), None),
            ("fd00::5", ip("fd00::5"), None),
            // A bare IPv6 address ending in what could be a port is the address.
            ("fd00::5:80", ip("fd00::5:80"), None),
            // Eight groups are an IPv6 address, not a MAC and a port.
            (
                "52:54:00:aa:bb:cc:dd:80",
                ip("52:54:0:aa:bb:cc:dd:80"),
                None,
            ),
            (
                "52:54:00:aa:bb:cc",
                GuestRef::Mac("52:54:00:aa:bb:cc".into()),
                None,
            ),
            (
                "52:54:00:AA:BB:CC:80",
                GuestRef::Mac("52:54:00:aa:bb:cc".into()),
                Some(pr(80, 80)),
            ),
            (
                "52:54:00:aa:bb:cc:80-82",
                GuestRef::Mac("52:54:00:aa:bb:cc".into()),
                Some(pr(80, 82)),
            ),
        ] {
            assert_eq!(parse_target(s), Ok((g, p)), "{s}");
        }
        for (bad, msg) in [
            ("", "the guest must not be empty"),
            (":80", "':80': the guest must not be empty"),
            ("vm1:", "'vm1:': '' is not a port or a range PORT-PORT"),
            (
                "vm1:0",
                "'vm1:0': '0': port 0 is not valid (ports are 1-65535)",
            ),
            (
                "vm1:http",
                "'vm1:http': 'http' is not a port or a range PORT-PORT",
            ),
            (
                "vm1:80:90",
                "'vm1:80:90': 'vm1:80' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
            ),
            (
                "vm1:90-80",
                "'vm1:90-80': '90-80': the range starts at 90 after it ends at 80",
            ),
            (
                "fd00::5:80-90",
                "'fd00::5:80-90': write an IPv6 address with ports in brackets: [fd00::5]:80-90",
            ),
            ("[fd00::5", "'[fd00::5': missing ']' after the IPv6 address"),
            (
                "[10.0.0.5]:80",
                "'[10.0.0.5]:80': '10.0.0.5' in brackets is not an IPv6 address",
            ),
            ("[fd00::5]80", "'[fd00::5]80': expected ':PORT' after ']'"),
            (
                "[fd00::5]:",
                "'[fd00::5]:': '' is not a port or a range PORT-PORT",
            ),
            (
                "52:54:00:aa:bb:8",
                "'52:54:00:aa:bb:8': '52:54:00:aa:bb' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
            ),
            (
                "52:54:00:aa:bb:cc:zz",
                "'52:54:00:aa:bb:cc:zz': 'zz' is not a port or a range PORT-PORT",
            ),
            (
                "-vm:80",
                "'-vm:80': guest name '-vm' must not start with '-' or '.'",
            ),
            (
                "vm 1",
                "'vm 1' is not a guest name, MAC address or IP address (' ' is not allowed in a name)",
            ),
        ] {
            assert_eq!(parse_target(bad), Err(msg.to_string()), "{bad:?}");
        }
    }
}
