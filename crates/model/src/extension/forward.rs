//! Port forwards in kvnet's extension: `<kvnet:forward proto address port to toPort/>`,
//! the protocol, port ranges and guest references they are made of, and their checks.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{MAX_FORWARD_PORTS, PREFIX, no_text, required};
use crate::types::IpDef;
use crate::validate::{ipv4_broadcast, reserved_network_addr};
use crate::xmltree::{XmlElement, XmlNode};
use crate::{MacAddr, ModelError};

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
    pub(super) fn label(&self) -> String {
        match self.address {
            None => format!("{} {}", self.proto, self.ports),
            Some(a) => format!("{} {}:{}", self.proto, bracket(a), self.ports),
        }
    }

    /// Checks on this forward alone; `ips` are the network's subnets.
    pub(super) fn check(&self, ips: &[IpDef]) -> Result<(), String> {
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

    pub(super) fn to_element(&self) -> XmlElement {
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

pub(super) fn parse_forward(p: &str, e: &XmlElement) -> Result<PortForward, ModelError> {
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
