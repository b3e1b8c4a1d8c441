//! The EVPN fabric: which hosts carry kvnet's overlay networks, their VTEP addresses
//! and the BGP AS they share (`/etc/kvnet/fabric.toml`), and the FRR configuration
//! each of them runs. Pure: text in, validated fabric or frr.conf text out.
//!
//! ```toml
//! asn = 65000
//! route-reflectors = ["host1"]   # optional; absent or empty = full mesh
//! [[host]]
//! name = "host1"
//! vtep = "10.255.0.1"
//! ```

use serde::Deserialize;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// Where the fabric file lives by default.
pub const DEFAULT_FABRIC_PATH: &str = "/etc/kvnet/fabric.toml";

/// The BGP peer group every session of the fabric belongs to in frr.conf.
const PEER_GROUP: &str = "VTEP";

/// A refused fabric file, or a host the fabric does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// Not TOML, or not the fabric's shape (unknown key, wrong type); the TOML
    /// parser's message names the line and the key.
    #[error("{0}")]
    Syntax(String),
    /// A value the fabric cannot use: `field` says where (`asn`, `host[2].vtep`...).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// `frr_config` for a name that is not a host of the fabric.
    #[error("no host {name} in the fabric (hosts: {})", known.join(", "))]
    UnknownHost { name: String, known: Vec<String> },
}

/// The fabric: one iBGP AS whose hosts exchange EVPN routes, in a full mesh or through
/// route reflectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fabric {
    pub asn: u32,
    pub hosts: Vec<FabricHost>,
    /// Names of hosts; empty = full mesh.
    pub route_reflectors: Vec<String>,
}

/// One host: its FRR hostname and its VTEP address (also its BGP router id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricHost {
    pub name: String,
    pub vtep: Ipv4Addr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFabric {
    // Wider than u32 so that 0 and out-of-range values get our message, not serde's.
    asn: i64,
    #[serde(default)]
    route_reflectors: Vec<String>,
    #[serde(default)]
    host: Vec<RawHost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    // A string, so that a bad address is reported with its host.
    vtep: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> FabricError {
    FabricError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A hostname FRR and DNS both accept: RFC 1123 label.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "{name:?} must have 1 to 63 characters (it has {})",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
    {
        return Err(format!("{name:?}: {c:?} is not allowed (A-Z, a-z, 0-9, -)"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(format!("{name:?} must not begin or end with '-'"));
    }
    Ok(())
}

/// A VTEP must be a unicast address other hosts can send VXLAN to.
fn check_vtep(text: &str) -> Result<Ipv4Addr, String> {
    let a: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address"))?;
    let why = if a.is_unspecified() {
        "the unspecified address"
    } else if a.is_broadcast() {
        "the broadcast address"
    } else if a.is_multicast() {
        "a multicast address"
    } else if a.is_loopback() {
        "a loopback address (127.0.0.0/8): other hosts cannot reach it"
    } else if a.octets()[0] >= 240 {
        "reserved (240.0.0.0/4)"
    } else {
        return Ok(a);
    };
    Err(format!("{a} is {why}; a VTEP needs a unicast address"))
}

impl Fabric {
    /// Parses and validates a fabric file.
    pub fn parse(text: &str) -> Result<Fabric, FabricError> {
        let raw: RawFabric =
            toml::from_str(text).map_err(|e| FabricError::Syntax(e.to_string().trim().into()))?;
        // 0 is reserved (RFC 7607), 23456 is AS_TRANS (RFC 6793): neither names an AS.
        let asn = match raw.asn {
            0 => return Err(invalid("asn", "0 is reserved (RFC 7607)")),
            23456 => {
                return Err(invalid(
                    "asn",
                    "23456 is AS_TRANS (RFC 6793), not a real AS",
                ));
            }
            n => u32::try_from(n)
                .map_err(|_| invalid("asn", format!("{n} is not in 1..=4294967295")))?,
        };
        if raw.host.is_empty() {
            return Err(invalid("host", "the fabric needs at least one [[host]]"));
        }
        let mut hosts: Vec<FabricHost> = Vec::with_capacity(raw.host.len());
        for (i, h) in raw.host.into_iter().enumerate() {
            let at = |f: &str| format!("host[{}].{f}", i + 1);
            check_name(&h.name).map_err(|r| invalid(at("name"), r))?;
            let vtep = check_vtep(&h.vtep).map_err(|r| invalid(at("vtep"), r))?;
            if let Some(o) = hosts.iter().find(|o| o.name.eq_ignore_ascii_case(&h.name)) {
                return Err(invalid(
                    at("name"),
                    format!("{} is already a host (names are case-insensitive)", o.name),
                ));
            }
            if let Some(o) = hosts.iter().find(|o| o.vtep == vtep) {
                return Err(invalid(
                    at("vtep"),
                    format!("{vtep} is already host {}'s VTEP", o.name),
                ));
            }
            hosts.push(FabricHost { name: h.name, vtep });
        }
        let mut route_reflectors: Vec<String> = Vec::new();
        for r in raw.route_reflectors {
            let Some(h) = hosts.iter().find(|h| h.name.eq_ignore_ascii_case(&r)) else {
                return Err(invalid(
                    "route-reflectors",
                    format!("{r:?} is not a [[host]] of the fabric"),
                ));
            };
            if route_reflectors.contains(&h.name) {
                return Err(invalid(
                    "route-reflectors",
                    format!("{r:?} is listed twice"),
                ));
            }
            route_reflectors.push(h.name.clone());
        }
        Ok(Fabric {
            asn,
            hosts,
            route_reflectors,
        })
    }

    pub fn host(&self, name: &str) -> Option<&FabricHost> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Index (0-based, in file order) and entry of the host whose VTEP is `vtep`.
    pub fn by_vtep(&self, vtep: Ipv4Addr) -> Option<(usize, &FabricHost)> {
        self.hosts.iter().enumerate().find(|(_, h)| h.vtep == vtep)
    }

    fn is_reflector(&self, name: &str) -> bool {
        self.route_reflectors.iter().any(|r| r == name)
    }

    /// The hosts `name` has a BGP session with: everyone else in a full mesh or on a
    /// reflector, only the reflectors on a client.
    pub fn peers(&self, name: &str) -> Result<Vec<&FabricHost>, FabricError> {
        let me = self.host_or_err(name)?;
        let everyone = self.route_reflectors.is_empty() || self.is_reflector(&me.name);
        Ok(self
            .hosts
            .iter()
            .filter(|h| h.name != me.name && (everyone || self.is_reflector(&h.name)))
            .collect())
    }

    fn host_or_err(&self, name: &str) -> Result<&FabricHost, FabricError> {
        self.host(name).ok_or_else(|| FabricError::UnknownHost {
            name: name.to_string(),
            known: self.hosts.iter().map(|h| h.name.clone()).collect(),
        })
    }

    /// frr.conf for host `name`: one iBGP instance, router id = VTEP, EVPN only
    /// (`no bgp default ipv4-unicast`), every VNI zebra sees advertised.
    pub fn frr_config(&self, name: &str) -> Result<String, FabricError> {
        let me = self.host_or_err(name)?;
        let peers = self.peers(name)?;
        let g = PEER_GROUP;
        let mut c = String::new();
        // `datacenter`: 3/9 s keepalive/hold and 10 s connect retry, so a host that
        // goes away is noticed in seconds rather than minutes.
        let _ = writeln!(c, "frr defaults datacenter");
        let _ = writeln!(c, "hostname {}", me.name);
        let _ = writeln!(c, "!");
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", me.vtep);
        let _ = writeln!(c, " no bgp default ipv4-unicast");
        let _ = writeln!(c, " neighbor {g} peer-group");
        let _ = writeln!(c, " neighbor {g} remote-as internal");
        // Sessions from the VTEP address, which is what the peers have configured.
        let _ = writeln!(c, " neighbor {g} update-source {}", me.vtep);
        for p in &peers {
            let _ = writeln!(c, " neighbor {} peer-group {g}", p.vtep);
        }
        let _ = writeln!(c, " !");
        let _ = writeln!(c, " address-family l2vpn evpn");
        let _ = writeln!(c, "  neighbor {g} activate");
        if self.is_reflector(&me.name) {
            // Per neighbor, so that two reflectors peer as ordinary iBGP neighbours.
            for p in peers.iter().filter(|p| !self.is_reflector(&p.name)) {
                let _ = writeln!(c, "  neighbor {} route-reflector-client", p.vtep);
            }
        }
        let _ = writeln!(c, "  advertise-all-vni");
        let _ = writeln!(c, " exit-address-family");
        let _ = writeln!(c, "exit");
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
