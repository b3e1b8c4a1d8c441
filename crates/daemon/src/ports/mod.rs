//! Guest ports: the TAPs on a network's bridge that kvnet knows about. The registry is
//! kept per network in STATE_DIR/ports/NAME.json, written atomically and fsynced, so it
//! survives a kvnetd restart, a `kill -9` and (for persistent TAPs, re-created at the
//! network's next start) a reboot. Putting a TAP on a bridge is [`plug`]'s.

pub mod direct;
pub mod hostdev;
mod naming;
mod plug;
mod record;
pub mod vhost;
pub mod vlan;

pub use naming::{free_name, qemu_args, random_mac, tap_mac};
pub use record::{PortDefaults, PortRec, Target};

use crate::ids::{entropy, group_id, user_id};
use crate::paths::Paths;
use crate::store::{self, Durability};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request::PortCreate;
use kvnet_api::{CreatedPort, Port, PortKind};
use kvnet_host::{Link, Netlink, tap};
use naming::parse_mac;
use record::check_ips;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use tracing::{info, warn};

/// The kernel's limit on the queues of one TAP (`MAX_TAP_QUEUES`).
pub const MAX_QUEUES: u16 = 256;

/// Where the kernel shows devices: SR-IOV virtual functions, PCI drivers.
pub const SYSFS: &str = "/sys";

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
    use kvnet_model::TrafficFilter;

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
