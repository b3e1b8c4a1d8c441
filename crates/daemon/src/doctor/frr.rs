//! The doctor's EVPN judgements, pure: the fabric file, what vtysh answered and the
//! VNIs this host's networks carry in; findings out. The shell (`doctor::evpn`) runs
//! vtysh and `ip`. Without a fabric file FRR is still checked when a network has a
//! VXLAN port with neither `remote` nor `group`: only EVPN can give it remote VTEPs.
//!
//! Seen on FRR 8.4 (fixtures in `testdata/`, from `testdata/capture-frr.sh`):
//! `show bgp l2vpn evpn summary json` is `{}` without a BGP instance or without the
//! l2vpn evpn address family, else `{"routerId", "peers": {"<ip>": {"state", ...}}}`;
//! `show evpn vni json` prints nothing when EVPN is off, else `{"<vni>": {"vni",
//! "vxlanIf", "remoteVteps": [...]}}` (`remoteVteps` absent when there are none). With
//! bgpd down, vtysh exits 1 and says "bgpd is not running"; with no daemon at all,
//! "Exiting: failed to connect to any daemons.".

use kvnet_api::{Check, Finding};
use kvnet_model::Fabric;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What FRR said, as the shell got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frr {
    /// No vtysh on this host: FRR is not installed.
    NoVtysh,
    /// vtysh failed (no daemon answered, a timeout): what it said.
    Failed(String),
    /// The outputs of `show bgp l2vpn evpn summary json` and `show evpn vni json`.
    Answered { summary: String, vnis: String },
}

/// A VNI this host's network carries (a VXLAN device on its bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayVni {
    pub vni: u32,
    pub network: String,
    /// The VXLAN device.
    pub device: String,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "routerId")]
    router_id: Option<Ipv4Addr>,
    #[serde(default)]
    peers: BTreeMap<String, Peer>,
}

#[derive(Deserialize)]
struct Peer {
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct Vni {
    #[serde(default, rename = "remoteVteps")]
    remote_vteps: Vec<String>,
}

fn evpn(network: Option<&str>, culprit: String, detail: String, fix: String) -> Finding {
    Finding {
        check: Check::Evpn,
        problem: true,
        network: network.map(str::to_string),
        culprit,
        detail,
        fix,
    }
}

const LOAD: &str = "load this host's configuration: 'kvnet fabric-config' (it prints how)";

/// The fabric file exists but is refused.
pub fn bad_fabric(path: &str, error: &str) -> Finding {
    evpn(
        None,
        format!("{path}: {error}"),
        "the fabric file is invalid: the doctor cannot check FRR against it".into(),
        format!("fix the file ('kvnet fabric-config --fabric {path}' shows the same error)"),
    )
}

/// The findings about FRR on this host: whether it answers, its sessions (with the
/// other hosts of `fabric`, when there is a fabric file), and the VNIs it advertises
/// among `expected`.
///
/// A VNI without remote VTEPs is a note, not a problem: a network may not be started
/// on the other hosts yet, and its guests here still reach each other.
pub fn judge(fabric: Option<&Fabric>, frr: &Frr, expected: &[OverlayVni]) -> Vec<Finding> {
    let why = match fabric {
        Some(_) => "the host is in an EVPN fabric",
        None => "networks have VXLAN ports that only EVPN gives remote VTEPs",
    };
    let (summary, vnis) = match frr {
        Frr::NoVtysh => {
            return vec![evpn(
                None,
                "FRR: vtysh not found".into(),
                format!("{why} but FRR is not installed: overlay networks reach no other host"),
                format!("'apt-get install frr', set bgpd=yes in /etc/frr/daemons, then {LOAD}"),
            )];
        }
        Frr::Failed(msg) => {
            return vec![evpn(
                None,
                format!("FRR: {}", first_line(msg)),
                format!(
                    "{why} but FRR does not answer: no EVPN routes are exchanged, overlay networks reach no other host"
                ),
                "'systemctl start frr' with bgpd=yes in /etc/frr/daemons; see 'journalctl -u frr'"
                    .into(),
            )];
        }
        Frr::Answered { summary, vnis } => (summary, vnis),
    };
    let mut out = Vec::new();
    out.extend(sessions(fabric, summary));
    out.extend(advertised(fabric, vnis, expected));
    out
}

fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or("vtysh failed")
}

/// The BGP sessions: every peer Established and, with a fabric, every host this one
/// should peer with configured.
fn sessions(fabric: Option<&Fabric>, json: &str) -> Vec<Finding> {
    let summary: Summary = match serde_json::from_str(json) {
        Ok(s) => s,
        Err(e) => {
            return vec![evpn(
                None,
                format!("FRR: unexpected answer to 'show bgp l2vpn evpn summary json': {e}"),
                format!("vtysh said: {}", first_line(json)),
                "check FRR by hand: vtysh -c 'show bgp l2vpn evpn summary'".into(),
            )];
        }
    };
    let Some(id) = summary.router_id else {
        return vec![evpn(
            None,
            "FRR: no BGP EVPN instance".into(),
            "bgpd runs without 'router bgp' and 'address-family l2vpn evpn': no EVPN routes are exchanged".into(),
            LOAD.into(),
        )];
    };
    let name_of = |ip: &str| {
        ip.parse()
            .ok()
            .and_then(|a| fabric?.by_vtep(a))
            .map(|(_, h)| h.name.as_str())
    };
    let mut out = Vec::new();
    for (ip, peer) in &summary.peers {
        let host = name_of(ip);
        let who = match host {
            Some(n) => format!("{n} ({ip})"),
            None => ip.clone(),
        };
        if peer.state != "Established" {
            out.push(evpn(
                None,
                format!("BGP peer {who}: {}", peer.state),
                format!("the EVPN session with {who} is not up: guests on overlay networks there are unreachable"),
                format!(
                    "check that FRR runs on {} and that {ip} answers from {id} ('ping -I {id} {ip}'; TCP port 179 open); 'vtysh -c \"show bgp neighbors {ip}\"' says why",
                    host.unwrap_or(ip)
                ),
            ));
        }
        if host.is_none() && fabric.is_some() {
            out.push(Finding {
                problem: false,
                ..evpn(
                    None,
                    format!("BGP peer {ip}"),
                    "a peer that is not a host of the fabric".into(),
                    format!("add it to the fabric file, or {LOAD}"),
                )
            });
        }
    }
    let Some(fabric) = fabric else {
        return out;
    };
    let Some((_, me)) = fabric.by_vtep(id) else {
        out.push(evpn(
            None,
            format!("BGP router id {id}"),
            "FRR's router id is no VTEP of the fabric: its configuration is not this host's in the fabric file".into(),
            LOAD.into(),
        ));
        return out;
    };
    // `peers` only fails for a host the fabric does not have, and `me` is one.
    for h in fabric.peers(&me.name).unwrap_or_default() {
        if !summary.peers.contains_key(&h.vtep.to_string()) {
            out.push(evpn(
                None,
                format!("no BGP session with {} ({})", h.name, h.vtep),
                format!(
                    "{} is a {} of this host in the fabric, but FRR has no such neighbor: routes to and from it are missing",
                    h.name,
                    if fabric.route_reflectors.contains(&h.name) {
                        "route reflector"
                    } else {
                        "peer"
                    }
                ),
                LOAD.into(),
            ));
        }
    }
    out
}

/// The VNIs: each expected one known to zebra, and learnt by the other hosts.
fn advertised(fabric: Option<&Fabric>, json: &str, expected: &[OverlayVni]) -> Vec<Finding> {
    // Without a fabric file, assume there are other hosts: that is what the port is for.
    let others = fabric.is_none_or(|f| f.hosts.len() > 1);
    // Nothing at all is what vtysh prints when EVPN is off.
    let known: BTreeMap<String, Vni> = if json.trim().is_empty() {
        BTreeMap::new()
    } else {
        match serde_json::from_str(json) {
            Ok(k) => k,
            Err(e) => {
                return vec![evpn(
                    None,
                    format!("FRR: unexpected answer to 'show evpn vni json': {e}"),
                    format!("vtysh said: {}", first_line(json)),
                    "check FRR by hand: vtysh -c 'show evpn vni'".into(),
                )];
            }
        }
    };
    let mut out = Vec::new();
    for x in expected {
        match known.get(&x.vni.to_string()) {
            None => out.push(evpn(
                Some(&x.network),
                format!("VNI {} ({}) not in FRR", x.vni, x.device),
                "zebra does not report the VNI: its guests' MACs and flood list are not advertised, other hosts do not reach them".into(),
                format!(
                    "check that {} is up and a port of the network's bridge, that zebra runs in this network namespace and that frr.conf has advertise-all-vni ({LOAD})",
                    x.device
                ),
            )),
            Some(v) if v.remote_vteps.is_empty() && others => {
                out.push(Finding {
                    problem: false,
                    ..evpn(
                        Some(&x.network),
                        format!("VNI {} ({}) has no remote VTEP", x.vni, x.device),
                        "no other host advertises this VNI: broadcasts stay on this host".into(),
                        "start the network on the other hosts; if it runs there, check their BGP sessions ('kvnet doctor' there)".into(),
                    )
                });
            }
            Some(_) => {}
        }
    }
    out
}

/// A VXLAN device and the bridge it is a port of, from `ip -j -d link show type vxlan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanLink {
    pub name: String,
    pub vni: u32,
    pub master: Option<String>,
    /// Neither `remote` nor `group`: its remote VTEPs can only come from EVPN.
    pub evpn: bool,
}

/// Parses `ip -j -d link show type vxlan`. Devices without an `id` (a "single VXLAN
/// device" in external mode, which carries many VNIs) are left out.
pub fn parse_vxlan_links(json: &str) -> Result<Vec<VxlanLink>, serde_json::Error> {
    let links: Vec<serde_json::Value> = if json.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(json)?
    };
    Ok(links
        .iter()
        .filter_map(|l| {
            let data = l.pointer("/linkinfo/info_data")?;
            let vni = data.get("id")?.as_u64()?;
            Some(VxlanLink {
                evpn: data.get("remote").is_none() && data.get("group").is_none(),
                name: l.get("ifname")?.as_str()?.to_string(),
                vni: u32::try_from(vni).ok()?,
                master: l.get("master").and_then(|m| m.as_str()).map(str::to_string),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests;
