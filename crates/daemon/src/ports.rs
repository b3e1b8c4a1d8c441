//! Guest ports: the TAPs on a network's bridge that kvnet knows about. The registry is
//! kept per network in STATE_DIR/ports/NAME.json, written atomically and fsynced, so it
//! survives a kvnetd restart, a `kill -9` and (for persistent TAPs, re-created at the
//! network's next start) a reboot.

use crate::manager::Manager;
use crate::paths::Paths;
use crate::plan;
use crate::store::{self, Durability};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::{CreatedPort, Port, PortKind};
use kvnet_host::{Link, tap};
use kvnet_model::{MacAddr, Network};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use tracing::{info, warn};

/// The kernel's limit on the queues of one TAP (`MAX_TAP_QUEUES`).
pub const MAX_QUEUES: u16 = 256;

/// One registered port, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortRec {
    pub ifname: String,
    pub mac: Option<MacAddr>,
    pub kind: PortKind,
    pub queues: u16,
    /// Who may open a persistent TAP (kept to re-create it after a reboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
}

impl PortRec {
    pub fn view(&self, network: &str) -> Port {
        Port {
            ifname: self.ifname.clone(),
            mac: self.mac.map(|m| m.to_string()),
            network: network.to_string(),
            kind: self.kind,
            queues: self.queues,
        }
    }
}

/// What port-create asks for, before names and MACs are settled.
pub struct CreateArgs {
    pub ifname: Option<String>,
    pub mac: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub queues: Option<u16>,
}

pub fn load_all(paths: &Paths) -> Result<BTreeMap<String, Vec<PortRec>>> {
    let mut out = BTreeMap::new();
    let dir = paths.ports_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| !n.starts_with('.'))
        else {
            continue;
        };
        let ports: Vec<PortRec> = fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
            .with_context(|| format!("ports file {}", path.display()))?;
        out.insert(name.to_string(), ports);
    }
    Ok(out)
}

pub fn save(paths: &Paths, network: &str, ports: &[PortRec]) -> Result<()> {
    let path = paths.ports(network);
    if ports.is_empty() {
        return store::remove_if_exists(&path);
    }
    fs::create_dir_all(paths.ports_dir())
        .with_context(|| format!("create {}", paths.ports_dir().display()))?;
    store::write_atomic(
        &path,
        &serde_json::to_vec_pretty(ports)?,
        0o600,
        Durability::Durable,
    )
}

/// The lowest free `vnetN`, as libvirt names guest TAPs.
pub fn free_name(used: &HashSet<String>) -> String {
    (0u32..)
        .map(|n| format!("vnet{n}"))
        .find(|n| !used.contains(n))
        .expect("some vnetN is free")
}

/// A random 52:54:00:xx:xx:xx (qemu's prefix) not in `used`.
pub fn random_mac(used: &HashSet<[u8; 6]>, mut rand: impl FnMut() -> u64) -> MacAddr {
    loop {
        let r = rand().to_le_bytes();
        let mac = [0x52, 0x54, 0x00, r[0], r[1], r[2]];
        if !used.contains(&mac) && !used.contains(&tap_mac(mac)) {
            return MacAddr(mac);
        }
    }
}

/// The TAP's own MAC: the guest's with a first byte of 0xFE, as libvirt does, so the
/// bridge never adopts it (a bridge takes its lowest port MAC) and it differs from
/// the guest's.
pub fn tap_mac(guest: [u8; 6]) -> [u8; 6] {
    let mut m = guest;
    m[0] = 0xfe;
    m
}

/// qemu arguments for a port-create'd TAP. vhost stays off: an unprivileged qemu
/// usually cannot open /dev/vhost-net.
pub fn qemu_args(ifname: &str, mac: MacAddr, queues: u16) -> Vec<String> {
    let mut netdev = format!("tap,id=net0,ifname={ifname},script=no,downscript=no,vhost=off");
    let mut device = format!("virtio-net-pci,netdev=net0,mac={mac}");
    if queues > 1 {
        netdev += &format!(",queues={queues}");
        // virtio-net wants a vector per queue in each direction, plus config and control.
        device += &format!(",mq=on,vectors={}", 2 * u32::from(queues) + 2);
    }
    vec!["-netdev".into(), netdev, "-device".into(), device]
}

fn parse_mac(s: &str) -> Result<MacAddr> {
    let m: MacAddr = s.parse().map_err(|e: String| anyhow!("{e}"))?;
    if m.is_multicast() || m.is_zero() {
        bail!("MAC address '{s}' cannot be a guest's: it is multicast or zero");
    }
    Ok(m)
}

fn user_id(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    nix::unistd::User::from_name(s)
        .with_context(|| format!("look up user '{s}'"))?
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| anyhow!("no such user '{s}'"))
}

fn group_id(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    nix::unistd::Group::from_name(s)
        .with_context(|| format!("look up group '{s}'"))?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| anyhow!("no such group '{s}'"))
}

fn entropy() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

impl Manager {
    fn ports_of(&self, network: &str) -> &[PortRec] {
        self.ports
            .get(network)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn save_ports(&mut self, network: &str, ports: Vec<PortRec>) -> Result<()> {
        save(&self.paths, network, &ports)?;
        if ports.is_empty() {
            self.ports.remove(network);
        } else {
            self.ports.insert(network.to_string(), ports);
        }
        Ok(())
    }

    /// The bridge of an active network and its link.
    async fn active_bridge(&self, network: &str) -> Result<(Network, Link)> {
        let o = self
            .nets
            .get(network)
            .ok_or_else(|| anyhow!("network '{network}' not found"))?;
        let live = o
            .live
            .clone()
            .ok_or_else(|| anyhow!("network '{network}' is not active"))?;
        let br = plan::bridge_name(&live)
            .ok_or_else(|| anyhow!("network '{network}' has no bridge to put guests on"))?;
        let link = self
            .dp
            .nl
            .link(br)
            .await?
            .ok_or_else(|| anyhow!("bridge {br} of network '{network}' does not exist"))?;
        Ok((live, link))
    }

    /// Refuse a guest MAC another port of the network, or a guest behind its bridge,
    /// already uses. `own` is the TAP being registered (its FDB entries are its own).
    async fn check_mac_free(
        &self,
        network: &str,
        bridge: &Link,
        mac: MacAddr,
        own: &str,
    ) -> Result<()> {
        if let Some(p) = self
            .ports_of(network)
            .iter()
            .find(|p| p.mac == Some(mac) && p.ifname != own)
        {
            bail!(
                "MAC address {mac} is already used on network '{network}' by port {}",
                p.ifname
            );
        }
        for e in self.dp.nl.bridge_fdb(bridge.index).await? {
            if e.mac != mac.0 {
                continue;
            }
            let port = self.dp.nl.link_by_index(e.port).await?;
            let name = port
                .map(|l| l.name)
                .unwrap_or_else(|| format!("#{}", e.port));
            if name != own {
                bail!(
                    "MAC address {mac} is already used on network '{network}' by a guest behind {name} (bridge {} forwarding table)",
                    bridge.name
                );
            }
        }
        Ok(())
    }

    /// Put an existing TAP on the bridge: MTU, master, MAC (persistent ports), up.
    /// What is already right is left alone.
    async fn plug(&self, tap: &Link, bridge: &Link, mac: Option<[u8; 6]>) -> Result<()> {
        let nl = &self.dp.nl;
        let name = &tap.name;
        if let Some(m) = mac
            && tap.mac != Some(m)
        {
            nl.set_mac(tap.index, m)
                .await
                .with_context(|| format!("set MAC of {name}"))?;
        }
        if tap.mtu != bridge.mtu {
            nl.set_mtu(tap.index, bridge.mtu)
                .await
                .with_context(|| format!("set MTU of {name} to {}'s", bridge.name))?;
        }
        if tap.master != Some(bridge.index) {
            nl.set_master(tap.index, Some(bridge.index))
                .await
                .with_context(|| format!("attach {name} to bridge {}", bridge.name))?;
        }
        if !tap.up {
            nl.set_up(tap.index, true)
                .await
                .with_context(|| format!("set {name} up"))?;
        }
        Ok(())
    }

    /// Create (if missing) and plug a persistent port's TAP; a TAP created here is
    /// deleted again when plugging fails.
    async fn realize(&self, rec: &PortRec, bridge: &Link) -> Result<()> {
        let nl = &self.dp.nl;
        let created = match nl.tun_info(&rec.ifname).await? {
            Some(t) if t.tap => false,
            Some(_) => bail!("{} is a TUN device, not a TAP", rec.ifname),
            None if nl.link(&rec.ifname).await?.is_some() => {
                bail!("{} exists and is not a TAP device", rec.ifname)
            }
            None => {
                tap::create(&tap::TapConfig {
                    name: rec.ifname.clone(),
                    vnet_hdr: true,
                    queues: rec.queues,
                    owner: rec.owner,
                    group: rec.group,
                    persist: true,
                })?;
                true
            }
        };
        let res = async {
            let link = nl
                .link(&rec.ifname)
                .await?
                .ok_or_else(|| anyhow!("TAP {} vanished after creation", rec.ifname))?;
            self.plug(&link, bridge, rec.mac.map(|m| tap_mac(m.0)))
                .await
        }
        .await;
        if res.is_err() && created {
            let _ = tap::delete(&rec.ifname);
        }
        res
    }

    pub async fn port_create(&mut self, network: &str, a: CreateArgs) -> Result<CreatedPort> {
        let (_, bridge) = self.active_bridge(network).await?;
        let queues = a.queues.unwrap_or(1);
        if !(1..=MAX_QUEUES).contains(&queues) {
            bail!("queues must be between 1 and {MAX_QUEUES}, not {queues}");
        }
        let owner = a.owner.as_deref().map(user_id).transpose()?;
        let group = a.group.as_deref().map(group_id).transpose()?;
        let links = self.dp.nl.links().await?;
        let ifname = match a.ifname {
            Some(n) => {
                if !kvnet_model::ifname::is_valid(&n) {
                    bail!("'{n}' is not a valid interface name");
                }
                if links.iter().any(|l| l.name == n) {
                    bail!("interface {n} already exists");
                }
                if let Some((net, _)) = self.port_owner(&n) {
                    bail!("port {n} is already registered on network '{net}'");
                }
                n
            }
            None => {
                let mut used: HashSet<String> = links.iter().map(|l| l.name.clone()).collect();
                used.extend(self.ports.values().flatten().map(|p| p.ifname.clone()));
                free_name(&used)
            }
        };
        let mac = match a.mac {
            Some(m) => {
                let m = parse_mac(&m)?;
                self.check_mac_free(network, &bridge, m, &ifname).await?;
                m
            }
            None => {
                let mut used: HashSet<[u8; 6]> = links.iter().filter_map(|l| l.mac).collect();
                used.extend(
                    self.ports
                        .values()
                        .flatten()
                        .filter_map(|p| p.mac.map(|m| m.0)),
                );
                used.extend(
                    self.dp
                        .nl
                        .bridge_fdb(bridge.index)
                        .await?
                        .into_iter()
                        .map(|e| e.mac),
                );
                random_mac(&used, entropy)
            }
        };
        let rec = PortRec {
            ifname: ifname.clone(),
            mac: Some(mac),
            kind: PortKind::Persistent,
            queues,
            owner,
            group,
        };
        self.realize(&rec, &bridge)
            .await
            .with_context(|| format!("cannot create port {ifname} on network '{network}'"))?;
        let mut ports = self.ports_of(network).to_vec();
        ports.push(rec.clone());
        if let Err(e) = self.save_ports(network, ports) {
            let _ = tap::delete(&ifname);
            return Err(e);
        }
        info!(network = %network, "port {ifname} created (guest MAC {mac}, {queues} queues)");
        Ok(CreatedPort {
            port: rec.view(network),
            qemu_args: qemu_args(&ifname, mac, queues),
        })
    }

    /// The network a TAP is registered on.
    fn port_owner(&self, ifname: &str) -> Option<(&str, &PortRec)> {
        self.ports.iter().find_map(|(n, ps)| {
            ps.iter()
                .find(|p| p.ifname == ifname)
                .map(|p| (n.as_str(), p))
        })
    }

    /// The network to attach to: named, or the active one whose bridge this is.
    fn attach_target(&self, network: Option<&str>, bridge: Option<&str>) -> Result<String> {
        match (network, bridge) {
            (Some(n), None) => Ok(n.to_string()),
            (network, Some(br)) => {
                let found = self
                    .nets
                    .iter()
                    .find(|(_, o)| {
                        o.live
                            .as_ref()
                            .is_some_and(|l| plan::bridge_name(l) == Some(br))
                    })
                    .map(|(n, _)| n.clone())
                    .ok_or_else(|| anyhow!("no active kvnet network uses bridge {br}"))?;
                match network {
                    Some(n) if n != found => {
                        bail!("bridge {br} belongs to network '{found}', not '{n}'")
                    }
                    _ => Ok(found),
                }
            }
            (None, None) => bail!("port-attach needs a network or a bridge"),
        }
    }

    pub async fn port_attach(
        &mut self,
        network: Option<&str>,
        bridge: Option<&str>,
        ifname: &str,
        mac: Option<&str>,
    ) -> Result<Port> {
        let network = self.attach_target(network, bridge)?;
        let (_, br) = self.active_bridge(&network).await?;
        let info = self
            .dp
            .nl
            .tun_info(ifname)
            .await?
            .filter(|i| i.tap)
            .ok_or_else(|| anyhow!("{ifname} is not an existing TAP device"))?;
        if let Some((other, _)) = self.port_owner(ifname)
            && other != network
        {
            bail!("port {ifname} is already registered on network '{other}'");
        }
        let mac = mac.map(parse_mac).transpose()?;
        if let Some(m) = mac {
            self.check_mac_free(&network, &br, m, ifname).await?;
        }
        let link = self
            .dp
            .nl
            .link(ifname)
            .await?
            .ok_or_else(|| anyhow!("TAP {ifname} vanished"))?;
        self.plug(&link, &br, None)
            .await
            .with_context(|| format!("cannot attach {ifname} to network '{network}'"))?;
        let kind = if bridge.is_some() {
            PortKind::Helper
        } else {
            PortKind::Script
        };
        let mut ports = self.ports_of(&network).to_vec();
        let rec = match ports.iter_mut().find(|p| p.ifname == ifname) {
            // Registered again (e.g. a persistent port qemu's script also reports).
            Some(p) => {
                p.mac = mac.or(p.mac);
                p.clone()
            }
            None => {
                let rec = PortRec {
                    ifname: ifname.to_string(),
                    mac,
                    kind,
                    queues: if info.multi_queue {
                        info.queues.max(1)
                    } else {
                        1
                    },
                    owner: None,
                    group: None,
                };
                ports.push(rec.clone());
                rec
            }
        };
        self.save_ports(&network, ports)?;
        info!(network = %network, "port {ifname} attached ({})", rec.kind.as_str());
        Ok(rec.view(&network))
    }

    pub async fn port_delete(&mut self, network: Option<&str>, ifname: &str) -> Result<()> {
        let (net, rec) = match network {
            Some(n) => {
                self.nets
                    .get(n)
                    .ok_or_else(|| anyhow!("network '{n}' not found"))?;
                let p = self
                    .ports_of(n)
                    .iter()
                    .find(|p| p.ifname == ifname)
                    .ok_or_else(|| anyhow!("network '{n}' has no port {ifname}"))?;
                (n.to_string(), p.clone())
            }
            None => self
                .port_owner(ifname)
                .map(|(n, p)| (n.to_string(), p.clone()))
                .ok_or_else(|| anyhow!("no network has a port {ifname}"))?,
        };
        if rec.kind == PortKind::Persistent {
            tap::delete(ifname)?;
        } else if let Some(link) = self.dp.nl.link(ifname).await?
            && link.master.is_some()
        {
            // qemu's TAP goes when qemu closes it; until then it is off the network.
            self.dp.nl.set_master(link.index, None).await?;
        }
        let mut ports = self.ports_of(&net).to_vec();
        ports.retain(|p| p.ifname != ifname);
        self.save_ports(&net, ports)?;
        info!(network = %net, "port {ifname} deleted");
        Ok(())
    }

    /// The ports of a network. Ports qemu made whose TAP is gone (qemu exited without
    /// a downscript) are forgotten here.
    pub async fn port_list(&mut self, network: &str) -> Result<Vec<Port>> {
        if !self.nets.contains_key(network) {
            bail!("network '{network}' not found");
        }
        let ports = self.ports_of(network).to_vec();
        let mut keep = Vec::new();
        for p in &ports {
            if p.kind == PortKind::Persistent || self.dp.nl.link(&p.ifname).await?.is_some() {
                keep.push(p.clone());
            }
        }
        if keep.len() != ports.len() {
            self.save_ports(network, keep.clone())?;
        }
        Ok(keep.iter().map(|p| p.view(network)).collect())
    }

    /// At a network's start: put its ports back on the bridge, re-creating persistent
    /// TAPs that are gone (after a reboot) and forgetting vanished qemu TAPs. Returns
    /// warnings: a port that fails leaves the network up.
    pub async fn replug_ports(&mut self, network: &str) -> Vec<String> {
        let ports = self.ports_of(network).to_vec();
        if ports.is_empty() {
            return Vec::new();
        }
        let bridge = match self.active_bridge(network).await {
            Ok((_, b)) => b,
            Err(e) => return vec![format!("network '{network}': ports not attached: {e:#}")],
        };
        let mut warnings = Vec::new();
        let mut keep = Vec::new();
        for p in ports.iter() {
            let res = if p.kind == PortKind::Persistent {
                self.realize(p, &bridge).await.map(|()| true)
            } else {
                match self.dp.nl.link(&p.ifname).await {
                    Ok(Some(l)) => self.plug(&l, &bridge, None).await.map(|()| true),
                    Ok(None) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            };
            match res {
                Ok(true) => keep.push(p.clone()),
                Ok(false) => {}
                Err(e) => {
                    warnings.push(format!(
                        "network '{network}': port {} not attached: {e:#}",
                        p.ifname
                    ));
                    keep.push(p.clone());
                }
            }
        }
        if keep.len() != ports.len()
            && let Err(e) = self.save_ports(network, keep)
        {
            warnings.push(format!("network '{network}': {e:#}"));
        }
        warnings
    }

    /// At a network's stop: take its ports off the bridge. A bridge kvnet deletes would
    /// drop them anyway; a host bridge (forward mode bridge) would not.
    pub async fn unplug_ports(&self, network: &str, live: &Network) -> Vec<String> {
        let Some(br) = plan::bridge_name(live) else {
            return Vec::new();
        };
        let nl = &self.dp.nl;
        let bridge = match nl.link(br).await {
            Ok(Some(b)) => b,
            Ok(None) => return Vec::new(),
            Err(e) => return vec![format!("detach ports: {e}")],
        };
        let mut errors = Vec::new();
        for p in self.ports_of(network) {
            let res = match nl.link(&p.ifname).await {
                Ok(Some(l)) if l.master == Some(bridge.index) => nl.set_master(l.index, None).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                errors.push(format!("detach port {}: {e}", p.ifname));
            }
        }
        errors
    }

    /// A transient network that stops is gone for good: so are its ports (the TAPs
    /// kvnet created are deleted).
    pub fn drop_ports(&mut self, network: &str) {
        for p in self.ports_of(network).to_vec() {
            if p.kind == PortKind::Persistent
                && let Err(e) = tap::delete(&p.ifname)
            {
                warn!(network = %network, "{e}");
            }
        }
        if let Err(e) = self.save_ports(network, Vec::new()) {
            warn!(network = %network, "{e:#}");
        }
    }

    /// Names of a network's ports, for errors that must list them.
    pub fn port_names(&self, network: &str) -> Vec<String> {
        self.ports_of(network)
            .iter()
            .map(|p| p.ifname.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_vnet_name() {
        let used: HashSet<String> = ["vnet0", "vnet1", "vnet3", "eth0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(free_name(&used), "vnet2");
        assert_eq!(free_name(&HashSet::new()), "vnet0");
    }

    #[test]
    fn random_mac_avoids_used_and_their_tap_twins() {
        let mut seq = [1u64, 2, 3].into_iter();
        let used: HashSet<[u8; 6]> = [[0x52, 0x54, 0, 1, 0, 0], [0xfe, 0x54, 0, 2, 0, 0]]
            .into_iter()
            .collect();
        let m = random_mac(&used, || seq.next().unwrap());
        assert_eq!(m.to_string(), "52:54:00:03:00:00");
        assert_eq!(tap_mac(m.0), [0xfe, 0x54, 0, 3, 0, 0]);
    }

    #[test]
    fn qemu_arguments() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(
            qemu_args("vnet0", mac, 1),
            [
                "-netdev",
                "tap,id=net0,ifname=vnet0,script=no,downscript=no,vhost=off",
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"
            ]
        );
        let a = qemu_args("vnet1", mac, 4);
        assert!(a[1].ends_with(",queues=4"), "{a:?}");
        assert!(a[3].ends_with(",mq=on,vectors=10"), "{a:?}");
    }

    #[test]
    fn guest_macs_must_be_unicast() {
        assert!(parse_mac("52:54:00:00:00:01").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert!(parse_mac("52:54:00").is_err());
    }

    #[test]
    fn ids_from_names_or_numbers() {
        assert_eq!(user_id("root").unwrap(), 0);
        assert_eq!(user_id("1234").unwrap(), 1234);
        assert_eq!(group_id("0").unwrap(), 0);
        let e = user_id("no-such-user-kvnet").unwrap_err().to_string();
        assert!(e.contains("no-such-user-kvnet"), "{e}");
    }

    #[test]
    fn registry_round_trips_and_empty_removes_the_file() {
        let d = std::env::temp_dir().join(format!("kvnet-ports-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let p = Paths::new(d.join("etc"), d.join("lib"), d.join("run"), None);
        assert!(load_all(&p).unwrap().is_empty());
        let rec = PortRec {
            ifname: "vnet0".into(),
            mac: Some("52:54:00:00:00:01".parse().unwrap()),
            kind: PortKind::Persistent,
            queues: 2,
            owner: Some(1000),
            group: None,
        };
        save(&p, "default", std::slice::from_ref(&rec)).unwrap();
        let all = load_all(&p).unwrap();
        assert_eq!(all["default"], vec![rec]);
        save(&p, "default", &[]).unwrap();
        assert!(load_all(&p).unwrap().is_empty());
        let _ = fs::remove_dir_all(&d);
    }
}
