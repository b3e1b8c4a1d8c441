//! Guest ports: the TAPs on a network's bridge that kvnet knows about. The registry is
//! kept per network in STATE_DIR/ports/NAME.json, written atomically and fsynced, so it
//! survives a kvnetd restart, a `kill -9` and (for persistent TAPs, re-created at the
//! network's next start) a reboot. Putting a TAP on a bridge is [`plug`]'s.

pub mod direct;
pub mod hostdev;
mod plug;
pub mod vhost;
pub mod vlan;

use crate::ids::{entropy, group_id, user_id};
use crate::paths::Paths;
use crate::store::{self, Durability};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request::PortCreate;
use kvnet_api::{CreatedPort, Port, PortKind};
use kvnet_host::{Link, Netlink, tap};
use kvnet_model::MacAddr;
use kvnet_model::TrafficFilter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::IpAddr;
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
    /// `port-create --isolated yes|no`; without it the network's `<port isolated>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    /// `port-create --filter`; without it the network's `<kvnet:filterref>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TrafficFilter>,
    /// `port-create --ip`: addresses the filter lets the guest send from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// `port-create --portgroup/--inbound/--outbound` (crate::qos).
    #[serde(default, skip_serializing_if = "crate::qos::PortQos::is_empty")]
    pub qos: crate::qos::PortQos,
    /// Macvtap ports: the pool device the macvtap is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Macvtap passthrough: the device's own MAC, given back at port-delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_mac: Option<MacAddr>,
    /// Hostdev: kvnet bound the device (`parent`) to vfio-pci and gives it back at
    /// port-delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
}

/// Where the kernel shows devices: SR-IOV virtual functions, PCI drivers.
pub const SYSFS: &str = "/sys";

/// What a network gives its ports unless they choose otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortDefaults {
    /// `<port isolated='yes'/>`.
    pub isolated: bool,
    /// `<kvnet:filterref filter=…/>`.
    pub filter: TrafficFilter,
    /// `<bridge macTableManager='libvirt'>`: kvnet keeps the forwarding table.
    pub mac_table: bool,
}

impl PortDefaults {
    pub fn of(net: &kvnet_model::Network) -> PortDefaults {
        PortDefaults {
            isolated: net.isolated_port == Some(true),
            filter: net.kvnet_ext().map(|e| e.filter).unwrap_or_default(),
            mac_table: net.bridge.as_ref().and_then(|b| b.mac_table_manager)
                == Some(kvnet_model::MacTableManager::Libvirt),
        }
    }
}

impl PortRec {
    /// The port on `network`, whose defaults are `d`.
    pub fn view(&self, network: &str, d: PortDefaults) -> Port {
        Port {
            ifname: self.ifname.clone(),
            mac: self.mac.map(|m| m.to_string()),
            network: network.to_string(),
            kind: self.kind,
            queues: self.queues,
            isolated: self.isolated.unwrap_or(d.isolated),
            filter: self.filter.unwrap_or(d.filter),
            ips: self.ips.clone(),
            learned_mac: None,
            dropped: None,
            portgroup: self.qos.portgroup.clone(),
            inbound: self.qos.inbound.clone(),
            outbound: self.qos.outbound.clone(),
            parent: self.parent.clone(),
        }
    }

    /// Whether the bridge port is isolated: the port's own choice, else its network's.
    pub fn isolated(&self, t: &Target) -> bool {
        self.isolated.unwrap_or(t.defaults.isolated)
    }

    /// The MAC to give a static forwarding entry, when kvnet keeps the network's table
    /// (`macTableManager='libvirt'`) and knows the guest's MAC; a port without one keeps
    /// the kernel's learning.
    pub fn fdb(&self, t: &Target) -> Option<MacAddr> {
        self.mac.filter(|_| t.defaults.mac_table)
    }
}

/// The bridge of an active network, as the port verbs need it.
pub struct Target {
    pub network: String,
    pub bridge: Link,
    pub defaults: PortDefaults,
    /// The network's addresses, which `--ip` must lie in.
    pub subnets: Vec<kvnet_model::IpDef>,
    /// The VLANs of the network's `<vlan>` its ports belong to ([`vlan::members`]);
    /// empty: the bridge's default.
    pub vlans: Vec<kvnet_host::VlanMember>,
    /// The VLANs of each portgroup with a `<vlan>`, for the ports in it.
    pub portgroup_vlans: Vec<(String, Vec<kvnet_host::VlanMember>)>,
    /// The portgroup of ports that name none (`default='yes'`).
    pub default_portgroup: Option<String>,
}

impl Target {
    /// The VLANs of a port in `portgroup` (else the default portgroup): that
    /// portgroup's `<vlan>`, else the network's.
    pub fn vlans_of(&self, portgroup: Option<&str>) -> &[kvnet_host::VlanMember] {
        portgroup
            .or(self.default_portgroup.as_deref())
            .and_then(|g| self.portgroup_vlans.iter().find(|(n, _)| n == g))
            .map_or(&self.vlans, |(_, v)| v)
    }
}

/// `port-create --ip`: each address a guest address of one of the network's subnets.
fn check_ips(t: &Target, ips: &[IpAddr]) -> Result<()> {
    for &a in ips {
        let Some(ip) = t.subnets.iter().find(|ip| ip.network().contains(&a)) else {
            let nets: Vec<String> = t.subnets.iter().map(|i| i.network().to_string()).collect();
            bail!(
                "address {a} is not on network '{}' (its subnets: {})",
                t.network,
                if nets.is_empty() {
                    "none".into()
                } else {
                    nets.join(", ")
                }
            );
        };
        if a == ip.address {
            bail!(
                "address {a} is the host's own address on network '{}'",
                t.network
            );
        }
        if a.is_multicast() || a.is_unspecified() {
            bail!("address {a} cannot be a guest's: it is not unicast");
        }
    }
    Ok(())
}

/// The lowest free `PREFIXN`: libvirt names guest TAPs `vnetN`, macvtaps `macvtapN`.
pub fn free_name(prefix: &str, used: &HashSet<String>) -> String {
    (0u32..)
        .map(|n| format!("{prefix}{n}"))
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

/// qemu arguments for a port-create'd TAP; `vhost` when its qemu can open
/// /dev/vhost-net ([`vhost::decide`]).
pub fn qemu_args(ifname: &str, mac: MacAddr, queues: u16, vhost: bool) -> Vec<String> {
    let v = if vhost { "on" } else { "off" };
    let mut netdev = format!("tap,id=net0,ifname={ifname},script=no,downscript=no,vhost={v}");
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

/// The registered ports of every network.
pub struct Ports {
    paths: Paths,
    by_net: BTreeMap<String, Vec<PortRec>>,
}

impl Ports {
    pub fn load(paths: &Paths) -> Result<Ports> {
        let mut by_net = BTreeMap::new();
        let dir = paths.ports_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Ports {
                    paths: paths.clone(),
                    by_net,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            // Temp files end in .tmp, quarantined ones in .bad-TIME.
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            match fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
            {
                Ok(ports) => {
                    by_net.insert(name.to_string(), ports);
                }
                // One torn file must not keep kvnetd (and every network's DHCP) down;
                // the TAPs it listed still work, they are just not listed.
                Err(e) => {
                    let why = format!("unreadable ports of network '{name}': {e:#}");
                    store::quarantine(&path, &why);
                }
            }
        }
        Ok(Ports {
            paths: paths.clone(),
            by_net,
        })
    }

    fn of(&self, network: &str) -> &[PortRec] {
        self.by_net
            .get(network)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Write a network's ports (none: remove its file), then keep them.
    fn save(&mut self, network: &str, ports: Vec<PortRec>) -> Result<()> {
        let path = self.paths.ports(network);
        if ports.is_empty() {
            store::remove_if_exists(&path)?;
            self.by_net.remove(network);
            return Ok(());
        }
        let dir = self.paths.ports_dir();
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        store::write_atomic(
            &path,
            &serde_json::to_vec_pretty(&ports)?,
            0o600,
            Durability::Durable,
        )?;
        self.by_net.insert(network.to_string(), ports);
        Ok(())
    }

    /// Names of a network's ports, for errors that must list them.
    pub fn names(&self, network: &str) -> Vec<String> {
        self.of(network).iter().map(|p| p.ifname.clone()).collect()
    }

    /// MACs a new guest must not take: the host's links' and every registered port's.
    fn used_macs(&self, links: &[Link]) -> HashSet<[u8; 6]> {
        let mut used: HashSet<[u8; 6]> = links.iter().filter_map(|l| l.mac).collect();
        used.extend(
            self.by_net
                .values()
                .flatten()
                .filter_map(|p| p.mac.map(|m| m.0)),
        );
        used
    }

    /// The network a TAP is registered on.
    fn owner(&self, ifname: &str) -> Option<(&str, &PortRec)> {
        self.by_net.iter().find_map(|(n, ps)| {
            ps.iter()
                .find(|p| p.ifname == ifname)
                .map(|p| (n.as_str(), p))
        })
    }

    /// port-create, first half: checks the request, picks the name and MAC and registers
    /// the port (no TAP yet). The caller readies what must hold before the TAP is on the
    /// bridge (its filter), then calls [`Ports::realize`].
    pub async fn register(
        &mut self,
        nl: &Netlink,
        t: &Target,
        a: PortCreate,
        qos: crate::qos::PortQos,
    ) -> Result<PortRec> {
        let queues = a.queues.unwrap_or(1);
        if !(1..=MAX_QUEUES).contains(&queues) {
            bail!("queues must be between 1 and {MAX_QUEUES}, not {queues}");
        }
        check_ips(t, &a.ips)?;
        let owner = a.owner.as_deref().map(user_id).transpose()?;
        let group = a.group.as_deref().map(group_id).transpose()?;
        let links = nl.links().await?;
        let ifname = match a.ifname {
            Some(n) => {
                kvnet_model::ifname::check(&n).map_err(|e| anyhow!("interface name '{n}' {e}"))?;
                if links.iter().any(|l| l.name == n) {
                    bail!("interface {n} already exists");
                }
                if let Some((net, _)) = self.owner(&n) {
                    bail!("port {n} is already registered on network '{net}'");
                }
                n
            }
            None => {
                let mut used: HashSet<String> = links.iter().map(|l| l.name.clone()).collect();
                used.extend(self.by_net.values().flatten().map(|p| p.ifname.clone()));
                free_name("vnet", &used)
            }
        };
        let mac = match a.mac {
            Some(m) => {
                let m = parse_mac(&m)?;
                plug::check_mac_free(nl, self.of(&t.network), t, m, &ifname).await?;
                m
            }
            None => {
                let mut used = self.used_macs(&links);
                used.extend(
                    nl.bridge_fdb(t.bridge.index)
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
            isolated: a.isolated,
            filter: a.filter,
            ips: a.ips,
            qos,
            parent: None,
            parent_mac: None,
            managed: false,
        };
        let network = &t.network;
        let mut ports = self.of(network).to_vec();
        ports.push(rec.clone());
        // Registered before the TAP exists: a kvnetd killed in between leaves a port whose
        // TAP the next one makes when it adopts the network, never a TAP nobody lists.
        self.save(network, ports)?;
        Ok(rec)
    }

    /// port-create, second half: the registered port's TAP, made and plugged; on failure
    /// the port is unregistered again.
    pub async fn realize(&mut self, nl: &Netlink, t: &Target, rec: PortRec) -> Result<CreatedPort> {
        let network = &t.network;
        let (ifname, queues) = (rec.ifname.clone(), rec.queues);
        let Some(mac) = rec.mac else {
            bail!("port {ifname} has no guest MAC to create a TAP for");
        };
        if let Err(e) = plug::realize(nl, &rec, t).await {
            self.unregister(network, &ifname);
            return Err(e.context(format!(
                "cannot create port {ifname} on network '{network}'"
            )));
        }
        crate::hooks::kill_point("port-create:plugged");
        info!(network = %network, "port {ifname} created (guest MAC {mac}, {queues} queues)");
        let vhost = vhost::decide(
            vhost::device(std::path::Path::new(vhost::VHOST_NET)),
            &vhost::runner(rec.owner, rec.group),
        );
        Ok(CreatedPort {
            port: rec.view(network, t.defaults),
            qemu_args: qemu_args(&ifname, mac, queues, vhost.is_ok()),
            vhost_off: vhost.err(),
            fds: Vec::new(),
        })
    }

    /// Forget a port registered by [`Ports::register`] whose creation failed.
    pub fn unregister(&mut self, network: &str, ifname: &str) {
        let mut ports = self.of(network).to_vec();
        ports.retain(|p| p.ifname != ifname);
        if let Err(e) = self.save(network, ports) {
            warn!(network = %network, "port {ifname} stays registered: {e:#}");
        }
    }

    /// port-attach: register a TAP someone else made and put it on the target's bridge.
    pub async fn attach(
        &mut self,
        nl: &Netlink,
        t: &Target,
        ifname: &str,
        mac: Option<&str>,
        kind: PortKind,
    ) -> Result<Port> {
        let network = &t.network;
        let info = nl
            .tun_info(ifname)
            .await?
            .filter(|i| i.tap)
            .ok_or_else(|| anyhow!("{ifname} is not an existing TAP device"))?;
        if let Some((other, _)) = self.owner(ifname)
            && other != network
        {
            bail!("port {ifname} is already registered on network '{other}'");
        }
        let mac = mac.map(parse_mac).transpose()?;
        if let Some(m) = mac {
            plug::check_mac_free(nl, self.of(network), t, m, ifname).await?;
        }
        let link = nl
            .link(ifname)
            .await?
            .ok_or_else(|| anyhow!("TAP {ifname} vanished"))?;
        let known = self.of(network).iter().find(|p| p.ifname == ifname);
        let isolated = known.map_or(t.defaults.isolated, |p| p.isolated(t));
        let fdb = mac
            .or(known.and_then(|p| p.mac))
            .filter(|_| t.defaults.mac_table);
        let portgroup = known.and_then(|p| p.qos.portgroup.as_deref());
        plug::plug(nl, &link, t, None, isolated, fdb, portgroup)
            .await
            .with_context(|| format!("cannot attach {ifname} to network '{network}'"))?;
        let mut ports = self.of(network).to_vec();
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
                    isolated: None,
                    filter: None,
                    ips: Vec::new(),
                    qos: Default::default(),
                    parent: None,
                    parent_mac: None,
                    managed: false,
                };
                ports.push(rec.clone());
                rec
            }
        };
        self.save(network, ports)?;
        info!(network = %network, "port {ifname} attached ({})", rec.kind.as_str());
        Ok(rec.view(network, t.defaults))
    }

    /// port-delete, on `network` (known to exist) or whichever has the port.
    pub async fn delete(
        &mut self,
        nl: &Netlink,
        network: Option<&str>,
        ifname: &str,
    ) -> Result<String> {
        let (net, rec) = match network {
            Some(n) => {
                let p = self
                    .of(n)
                    .iter()
                    .find(|p| p.ifname == ifname)
                    .ok_or_else(|| anyhow!("network '{n}' has no port {ifname}"))?;
                (n.to_string(), p.clone())
            }
            None => self
                .owner(ifname)
                .map(|(n, p)| (n.to_string(), p.clone()))
                .ok_or_else(|| anyhow!("no network has a port {ifname}"))?,
        };
        if rec.kind == PortKind::Persistent {
            tap::delete(ifname)?;
        } else if rec.kind == PortKind::Macvtap {
            direct::unmake(nl, &rec).await?;
        } else if rec.kind == PortKind::Hostdev {
            hostdev::unassign(std::path::Path::new(SYSFS), &rec)?;
        } else if let Some(link) = nl.link(ifname).await?
            && link.master.is_some()
        {
            // qemu's TAP goes when qemu closes it; until then it is off the network.
            nl.set_master(link.index, None).await?;
        }
        crate::hooks::kill_point("port-delete:detached");
        let mut ports = self.of(&net).to_vec();
        ports.retain(|p| p.ifname != ifname);
        self.save(&net, ports)?;
        info!(network = %net, "port {ifname} deleted");
        Ok(net)
    }

    /// The ports of a network (known to exist; `d`, its port defaults). Ports qemu
    /// made whose TAP is gone (qemu exited without a downscript) are forgotten here.
    pub async fn list(
        &mut self,
        nl: &Netlink,
        network: &str,
        d: PortDefaults,
    ) -> Result<Vec<Port>> {
        let ports = self.of(network).to_vec();
        let mut keep = Vec::new();
        for p in &ports {
            if matches!(
                p.kind,
                PortKind::Persistent | PortKind::Macvtap | PortKind::Hostdev
            ) || nl.link(&p.ifname).await?.is_some()
            {
                keep.push(p.clone());
            }
        }
        if keep.len() != ports.len() {
            self.save(network, keep.clone())?;
        }
        Ok(keep.iter().map(|p| p.view(network, d)).collect())
    }

    /// At a network's start: put its ports back on the bridge, re-creating persistent
    /// TAPs that are gone (after a reboot) and forgetting vanished qemu TAPs. Returns
    /// warnings: a port that fails leaves the network up.
    pub async fn replug(&mut self, nl: &Netlink, t: &Target) -> Vec<String> {
        let network = &t.network;
        let ports = self.of(network).to_vec();
        let mut warnings = Vec::new();
        let mut keep = Vec::new();
        for p in &ports {
            let res = if p.kind == PortKind::Persistent {
                plug::realize(nl, p, t).await.map(|()| true)
            } else {
                match nl.link(&p.ifname).await {
                    Ok(Some(l)) => plug::plug(
                        nl,
                        &l,
                        t,
                        None,
                        p.isolated(t),
                        p.fdb(t),
                        p.qos.portgroup.as_deref(),
                    )
                    .await
                    .map(|()| true),
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
            && let Err(e) = self.save(network, keep)
        {
            warnings.push(format!("network '{network}': {e:#}"));
        }
        warnings
    }

    /// Record a registered port's QoS (crate::qos).
    pub fn set_qos(&mut self, network: &str, ifname: &str, qos: crate::qos::PortQos) -> Result<()> {
        let mut ports = self.of(network).to_vec();
        if let Some(p) = ports.iter_mut().find(|p| p.ifname == ifname) {
            p.qos = qos;
        }
        self.save(network, ports)
    }

    /// The registered ports of `network`, as stored.
    pub fn recs(&self, network: &str) -> &[PortRec] {
        self.of(network)
    }

    /// Whether the network has ports to put back at its start.
    pub fn has_ports(&self, network: &str) -> bool {
        !self.of(network).is_empty()
    }

    /// At a network's stop: take its ports off `bridge`. A bridge kvnet deletes would
    /// drop them anyway; a host bridge (forward mode bridge) would not.
    pub async fn unplug(&self, nl: &Netlink, network: &str, bridge: &str) -> Vec<String> {
        let bridge = match nl.link(bridge).await {
            Ok(Some(b)) => b,
            Ok(None) => return Vec::new(),
            Err(e) => return vec![format!("detach ports: {e}")],
        };
        let mut errors = Vec::new();
        for p in self.of(network) {
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
    pub async fn drop_network(&mut self, nl: &Netlink, network: &str) {
        for p in self.of(network).to_vec() {
            let res = match p.kind {
                PortKind::Persistent => tap::delete(&p.ifname).map_err(anyhow::Error::from),
                PortKind::Macvtap => direct::unmake(nl, &p).await,
                PortKind::Hostdev => hostdev::unassign(std::path::Path::new(SYSFS), &p),
                _ => Ok(()),
            };
            if let Err(e) = res {
                warn!(network = %network, "{e:#}");
            }
        }
        if let Err(e) = self.save(network, Vec::new()) {
            warn!(network = %network, "{e:#}");
        }
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
        assert_eq!(free_name("vnet", &used), "vnet2");
        assert_eq!(free_name("vnet", &HashSet::new()), "vnet0");
        assert_eq!(free_name("macvtap", &used), "macvtap0");
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
            qemu_args("vnet0", mac, 1, false),
            [
                "-netdev",
                "tap,id=net0,ifname=vnet0,script=no,downscript=no,vhost=off",
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"
            ]
        );
        let a = qemu_args("vnet1", mac, 4, false);
        assert!(qemu_args("vnet1", mac, 1, true)[1].contains(",vhost=on"));
        assert!(a[1].ends_with(",queues=4"), "{a:?}");
        assert!(a[3].ends_with(",mq=on,vectors=10"), "{a:?}");
    }

    #[test]
    fn a_ports_vlans_are_its_portgroups_else_the_default_portgroups_else_the_networks() {
        let m = |vid| kvnet_host::VlanMember {
            vid,
            pvid: true,
            untagged: true,
        };
        let mut t = Target {
            network: "n".into(),
            bridge: Link {
                index: 1,
                name: "br0".into(),
                kind: Some("bridge".into()),
                mac: None,
                mtu: 1500,
                up: true,
                master: None,
                loopback: false,
            },
            defaults: PortDefaults::default(),
            subnets: Vec::new(),
            vlans: vec![m(5)],
            portgroup_vlans: vec![("web".into(), vec![m(10)]), ("db".into(), vec![m(20)])],
            default_portgroup: None,
        };
        assert_eq!(t.vlans_of(Some("db")), [m(20)]);
        assert_eq!(
            t.vlans_of(Some("plain")),
            [m(5)],
            "a portgroup without <vlan>"
        );
        assert_eq!(t.vlans_of(None), [m(5)]);
        t.default_portgroup = Some("web".into());
        assert_eq!(t.vlans_of(None), [m(10)]);
        assert_eq!(t.vlans_of(Some("db")), [m(20)]);
    }

    #[test]
    fn guest_macs_must_be_unicast() {
        assert!(parse_mac("52:54:00:00:00:01").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert!(parse_mac("52:54:00").is_err());
    }

    #[test]
    fn registry_round_trips_and_empty_removes_the_file() {
        let (_d, p) = crate::store::testdir::paths();
        assert!(Ports::load(&p).unwrap().by_net.is_empty());
        let rec = PortRec {
            ifname: "vnet0".into(),
            mac: Some("52:54:00:00:00:01".parse().unwrap()),
            kind: PortKind::Persistent,
            queues: 2,
            owner: Some(1000),
            group: None,
            isolated: Some(true),
            filter: Some(TrafficFilter::CleanTraffic),
            ips: vec!["10.0.0.9".parse().unwrap()],
            qos: Default::default(),
            parent: None,
            parent_mac: None,
            managed: false,
        };
        let mut ports = Ports::load(&p).unwrap();
        ports.save("default", vec![rec.clone()]).unwrap();
        assert_eq!(Ports::load(&p).unwrap().of("default"), [rec]);
        assert_eq!(ports.names("default"), ["vnet0"]);
        assert_eq!(ports.owner("vnet0").map(|(n, _)| n), Some("default"));
        ports.save("default", Vec::new()).unwrap();
        assert!(!p.ports("default").exists());
        assert!(Ports::load(&p).unwrap().by_net.is_empty());
    }

    #[test]
    fn a_torn_ports_file_is_quarantined_and_the_others_load() {
        let (_d, p) = crate::store::testdir::paths();
        let mut ports = Ports::load(&p).unwrap();
        let rec = PortRec {
            ifname: "vnet0".into(),
            mac: None,
            kind: PortKind::Helper,
            queues: 1,
            owner: None,
            group: None,
            isolated: None,
            filter: None,
            ips: Vec::new(),
            qos: Default::default(),
            parent: None,
            parent_mac: None,
            managed: false,
        };
        ports.save("good", vec![rec.clone()]).unwrap();
        fs::write(p.ports("torn"), b"[{\"ifname\": \"vn").unwrap();
        let loaded = Ports::load(&p).unwrap();
        assert_eq!(loaded.of("good"), [rec]);
        assert!(!loaded.has_ports("torn"));
        assert!(!p.ports("torn").exists());
        let aside = fs::read_dir(p.ports_dir())
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().starts_with("torn.json.bad-")
            })
            .count();
        assert_eq!(aside, 1);
    }
}
