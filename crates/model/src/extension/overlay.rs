//! `<kvnet:overlay vni='…' [local='…'] [dev='…'] [port='…']/>`: the network spans hosts.
//! Every host has the same definition; each puts a VXLAN device with the network's VNI on
//! the bridge, and FRR (BGP EVPN) tells the hosts where each guest is. `local` is the
//! host's VTEP address, `dev` the underlay interface (the VTEP is its first IPv4 address
//! when `local` is absent); one of them, so that one file can serve every host (`dev`).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{PREFIX, no_text};
use crate::ModelError;
use crate::xmltree::{XmlElement, XmlNode};

/// VXLAN's own headers over IPv4: outer IP (20), UDP (8), VXLAN (8), inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// IANA's VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// VNIs are 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Overlay {
    pub vni: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// None: [`VXLAN_PORT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Overlay {
    /// The VXLAN device on the network's bridge: one per VNI on a host.
    pub fn device(&self) -> String {
        format!("kvx{}", self.vni)
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(VXLAN_PORT)
    }

    /// The MTU guests get: the network's `<mtu>` when it fits in the underlay's MTU with
    /// VXLAN's headers, else an error naming both; without `<mtu>`, the underlay's less
    /// the headers.
    pub fn guest_mtu(&self, network_mtu: Option<u32>, underlay_mtu: u32) -> Result<u32, String> {
        let room = underlay_mtu.saturating_sub(VXLAN_OVERHEAD);
        match network_mtu {
            None if room >= 576 => Ok(room),
            None => Err(format!(
                "the underlay's MTU {underlay_mtu} leaves {room} bytes for guests' frames after VXLAN's {VXLAN_OVERHEAD}: too small"
            )),
            Some(m) if m <= room => Ok(m),
            Some(m) => Err(format!(
                "<mtu size='{m}'> does not fit the underlay: its MTU {underlay_mtu} less VXLAN's {VXLAN_OVERHEAD} bytes leaves {room}"
            )),
        }
    }

    pub(super) fn to_element(&self) -> XmlElement {
        let mut attributes = vec![("vni".to_string(), self.vni.to_string())];
        if let Some(l) = self.local {
            attributes.push(("local".into(), l.to_string()));
        }
        if let Some(d) = &self.dev {
            attributes.push(("dev".into(), d.clone()));
        }
        if let Some(p) = self.port {
            attributes.push(("port".into(), p.to_string()));
        }
        XmlElement {
            name: format!("{PREFIX}:overlay"),
            namespaces: Vec::new(),
            attributes,
            children: Vec::new(),
        }
    }
}

/// An interface name the kernel accepts: 1 to 15 bytes, no '/', ':' or whitespace.
fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 || s == "." || s == ".." {
        return Err(format!("'{s}' is not an interface name (1 to 15 bytes)"));
    }
    match s
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        Some(c) => Err(format!("'{s}' is not an interface name ({c:?} in it)")),
        None => Ok(()),
    }
}

pub(super) fn parse_overlay(p: &str, e: &XmlElement) -> Result<Overlay, ModelError> {
    let err = |m: String| ModelError::new(p, m);
    let (mut vni, mut local, mut dev, mut port) = (None, None, None, None);
    for (n, v) in &e.attributes {
        let v = v.as_str();
        match n.as_str() {
            "vni" => {
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_VNI).contains(n))
                    .ok_or_else(|| {
                        err(format!(
                            "attribute 'vni': '{v}' is not a VNI (1 to {MAX_VNI})"
                        ))
                    })?;
                vni = Some(n);
            }
            "local" => {
                let a: Ipv4Addr = v
                    .parse()
                    .map_err(|_| err(format!("attribute 'local': '{v}' is not an IPv4 address")))?;
                if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
                    return Err(err(format!(
                        "attribute 'local': {a} cannot be a VTEP address (a unicast address other hosts reach)"
                    )));
                }
                local = Some(a);
            }
            "dev" => {
                check_ifname(v).map_err(|m| err(format!("attribute 'dev': {m}")))?;
                dev = Some(v.to_string());
            }
            "port" => {
                let n: u16 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(format!(
                        "attribute 'port': '{v}' is not a UDP port (1 to 65535)"
                    ))
                })?;
                port = Some(n);
            }
            _ => return Err(err(format!("unknown attribute '{n}'"))),
        }
    }
    no_text(p, &e.children)?;
    if let Some(c) = e.children.iter().find_map(|c| match c {
        XmlNode::Element(c) => Some(c),
        _ => None,
    }) {
        return Err(err(format!("unknown element <{}>", c.name)));
    }
    let vni = vni.ok_or_else(|| err("missing required attribute 'vni'".into()))?;
    if local.is_none() && dev.is_none() {
        return Err(err(
            "needs 'local' (the VTEP address) or 'dev' (the underlay interface)".into(),
        ));
    }
    Ok(Overlay {
        vni,
        local,
        dev,
        port,
    })
}
