//! Direct (macvtap) networks: a guest port is a macvtap on one of the network's pool
//! devices (host NICs), in the network's mode, passed to qemu by descriptor. kvnet runs
//! no bridge, DHCP, DNS or firewall for them: the LAN does, as with libvirt.
//!
//! The choice of device is libvirt's (`networkAllocatePort`): passthrough takes a
//! device no port uses, the other modes the least used one (the first on a tie).

use super::{PortRec, Ports, free_name, parse_mac, random_mac, vhost};
use crate::ids::{entropy, group_id, user_id};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request::PortCreate;
use kvnet_api::{CreatedPort, PortKind};
use kvnet_host::{Netlink, macvtap};
use kvnet_model::{MacAddr, MacvtapMode};
use std::collections::HashSet;
use std::time::Duration;
use tracing::{info, warn};

/// How long devtmpfs may take to make a new macvtap's /dev/tapN.
const DEVICE_WAIT: Duration = Duration::from_secs(2);

/// A running direct network, as the port verbs need it.
pub struct Pool {
    pub network: String,
    pub mode: MacvtapMode,
    /// The pool's devices: its `<interface>`s, or its `<pf>`'s virtual functions.
    pub devices: Vec<String>,
}

impl Pool {
    /// The pool of direct network `net` (`None`: not a direct network): its
    /// `<interface>`s, else the virtual functions of its `<pf>`, read under `sys`.
    pub fn of(net: &kvnet_model::Network, sys: &std::path::Path) -> Option<Result<Pool>> {
        let mode = net.profile().macvtap?;
        let f = net.forward.as_ref()?;
        let devices = if !f.interfaces.is_empty() {
            Ok(f.interfaces.iter().map(|i| i.dev.clone()).collect())
        } else if let Some(pf) = &f.pf {
            kvnet_host::sriov::vf_netdevs(sys, pf).map_err(|why| {
                anyhow!("network '{}' takes its devices from {pf}'s SR-IOV virtual functions, but {why}", net.name)
            })
        } else {
            Err(anyhow!(
                "network '{}' names no device (<interface> or <pf>)",
                net.name
            ))
        };
        Some(devices.map(|devices| Pool {
            network: net.name.clone(),
            mode,
            devices,
        }))
    }
}

/// How many ports of `recs` sit on each pool device, in pool order (the live XML's
/// `<interface connections>`).
pub fn connections(devices: &[String], recs: &[PortRec]) -> Vec<(String, u32)> {
    devices
        .iter()
        .map(|d| {
            let n = recs
                .iter()
                .filter(|r| r.parent.as_deref() == Some(d.as_str()))
                .count();
            (d.clone(), u32::try_from(n).unwrap_or(u32::MAX))
        })
        .collect()
}

/// The device a new port of `pool` goes on, given the ports of the network (`recs`)
/// and the devices other networks' ports use (`elsewhere`: device → "network 'n' port p").
pub fn choose(
    pool: &Pool,
    recs: &[PortRec],
    elsewhere: &[(String, String)],
) -> Result<String, String> {
    if pool.devices.is_empty() {
        return Err(format!("network '{}' has no pool device", pool.network));
    }
    let used = connections(&pool.devices, recs);
    if pool.mode == MacvtapMode::Passthrough {
        // A device another network's port holds is not free either: two macvtaps on
        // one passthrough device cannot both work.
        return used
            .iter()
            .find(|(d, n)| *n == 0 && !elsewhere.iter().any(|(e, _)| e == d))
            .map(|(d, _)| d.clone())
            .ok_or_else(|| {
                format!(
                    "network '{}' requires exclusive access to its devices ({}), and none is free",
                    pool.network,
                    pool.devices.join(", ")
                )
            });
    }
    // min_by_key keeps the first of equals: libvirt's tie-break.
    let (dev, _) = used
        .iter()
        .min_by_key(|(_, n)| *n)
        .expect("the pool is not empty");
    Ok(dev.clone())
}

/// qemu arguments for a macvtap passed as descriptors `first_fd..` (one per queue),
/// and the shell redirections that open them on `device`.
pub fn qemu_args(
    device: &str,
    mac: MacAddr,
    queues: u16,
    vhost: bool,
    first_fd: u32,
) -> (Vec<String>, Vec<String>) {
    let fds: Vec<u32> = (first_fd..first_fd + u32::from(queues.max(1))).collect();
    let v = if vhost { "on" } else { "off" };
    let mut netdev = String::from("tap,id=net0,");
    if fds.len() == 1 {
        netdev += &format!("fd={}", fds[0]);
    } else {
        let list: Vec<String> = fds.iter().map(u32::to_string).collect();
        netdev += &format!("fds={}", list.join(":"));
    }
    netdev += &format!(",vhost={v}");
    let mut nic = format!("virtio-net-pci,netdev=net0,mac={mac}");
    if queues > 1 {
        nic += &format!(",mq=on,vectors={}", 2 * u32::from(queues) + 2);
    }
    let redirects = fds.iter().map(|fd| format!("{fd}<>{device}")).collect();
    (
        vec!["-netdev".into(), netdev, "-device".into(), nic],
        redirects,
    )
}

/// The first descriptor qemu is handed (after stdin, stdout and stderr).
const FIRST_FD: u32 = 3;

impl Ports {
    /// port-create on a direct network: a macvtap on a pool device, registered, then
    /// made; on failure nothing stays (the link is deleted, the port unregistered).
    pub async fn create_macvtap(
        &mut self,
        nl: &Netlink,
        pool: &Pool,
        a: PortCreate,
        qos: crate::qos::PortQos,
    ) -> Result<CreatedPort> {
        let network = &pool.network;
        let direct = || format!("network '{network}' is a direct (macvtap) network");
        if !a.ips.is_empty() || a.filter.is_some_and(|f| !f.is_none()) {
            bail!(
                "{}: its guests are on the LAN, where kvnet filters nothing (--ip and --filter need a bridge)",
                direct()
            );
        }
        if a.isolated.is_some() {
            bail!(
                "{}: --isolated needs a bridge (use forward mode='private' to keep guests apart)",
                direct()
            );
        }
        let queues = a.queues.unwrap_or(1);
        if !(1..=super::MAX_QUEUES).contains(&queues) {
            bail!(
                "queues must be between 1 and {}, not {queues}",
                super::MAX_QUEUES
            );
        }
        let owner = a.owner.as_deref().map(user_id).transpose()?;
        let group = a.group.as_deref().map(group_id).transpose()?;
        let links = nl.links().await?;
        let mut used: HashSet<String> = links.iter().map(|l| l.name.clone()).collect();
        used.extend(self.by_net.values().flatten().map(|p| p.ifname.clone()));
        let ifname = match a.ifname {
            Some(n) => {
                kvnet_model::ifname::check(&n).map_err(|e| anyhow!("interface name '{n}' {e}"))?;
                if used.contains(&n) {
                    bail!("interface {n} already exists");
                }
                n
            }
            None => free_name("macvtap", &used),
        };
        let macs = self.used_macs(&links);
        let mac = match a.mac {
            Some(m) => {
                let m = parse_mac(&m)?;
                if let Some(p) = self.of(network).iter().find(|p| p.mac == Some(m)) {
                    bail!(
                        "MAC address {m} is already used on network '{network}' by port {}",
                        p.ifname
                    );
                }
                m
            }
            None => random_mac(&macs, entropy),
        };
        let elsewhere: Vec<(String, String)> = self
            .by_net
            .iter()
            .filter(|(n, _)| *n != network)
            .flat_map(|(n, ps)| {
                ps.iter().filter_map(move |p| {
                    let d = p.parent.clone()?;
                    Some((d, format!("network '{n}' port {}", p.ifname)))
                })
            })
            .collect();
        let parent = choose(pool, self.of(network), &elsewhere).map_err(|e| anyhow!(e))?;
        let parent_link = nl.link(&parent).await?.ok_or_else(|| {
            anyhow!("pool device {parent} of network '{network}' does not exist on the host")
        })?;
        let rec = PortRec {
            ifname: ifname.clone(),
            mac: Some(mac),
            kind: PortKind::Macvtap,
            queues,
            owner,
            group,
            isolated: None,
            filter: None,
            ips: Vec::new(),
            parent: Some(parent.clone()),
            // Passthrough gives the device the guest's MAC: its own comes back at delete.
            parent_mac: (pool.mode == MacvtapMode::Passthrough)
                .then_some(parent_link.mac.map(MacAddr))
                .flatten(),
            managed: false,
            // Its rates and portgroup: shaped on the macvtap (crate::qos::sync_direct).
            qos,
        };
        let mut ports = self.of(network).to_vec();
        ports.push(rec.clone());
        // Registered first: a kvnetd killed before the link exists leaves a port the next
        // start makes, never a macvtap nobody lists.
        self.save(network, ports)?;
        let device = match make(nl, &rec, pool.mode).await {
            Ok(d) => d,
            Err(e) => {
                self.unregister(network, &ifname);
                return Err(e.context(format!(
                    "cannot create port {ifname} on network '{network}'"
                )));
            }
        };
        crate::hooks::kill_point("port-create:plugged");
        info!(network = %network, "port {ifname} created: macvtap ({}) on {parent}, guest MAC {mac}", pool.mode.as_str());
        let vhost = vhost::decide(
            vhost::device(std::path::Path::new(vhost::VHOST_NET)),
            &vhost::runner(owner, group),
        );
        let (qemu_args, fds) = qemu_args(&device, mac, queues, vhost.is_ok(), FIRST_FD);
        Ok(CreatedPort {
            port: rec.view(network, super::PortDefaults::default()),
            qemu_args,
            vhost_off: vhost.err(),
            fds,
        })
    }

    /// At a direct network's start (or adoption): its macvtaps up, those gone (after a
    /// reboot, or a device that came back) made again. Returns warnings.
    pub async fn remake(&mut self, nl: &Netlink, pool: &Pool) -> Vec<String> {
        let mut warnings = Vec::new();
        for p in self.of(&pool.network).to_vec() {
            let res = match nl.link(&p.ifname).await {
                Ok(Some(l)) if l.up => Ok(()),
                Ok(Some(l)) => nl.set_up(l.index, true).await.map_err(anyhow::Error::from),
                Ok(None) => make(nl, &p, pool.mode).await.map(|_| ()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = res {
                warnings.push(format!(
                    "network '{}': port {} not made: {e:#}",
                    pool.network, p.ifname
                ));
            }
        }
        warnings
    }

    /// At a direct network's stop: its macvtaps down (they and their guests' descriptors
    /// stay, and come up at the next start).
    pub async fn quiet(&self, nl: &Netlink, network: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for p in self
            .of(network)
            .iter()
            .filter(|p| p.kind == PortKind::Macvtap)
        {
            if let Ok(Some(l)) = nl.link(&p.ifname).await
                && l.up
                && let Err(e) = nl.set_up(l.index, false).await
            {
                errors.push(format!("set port {} down: {e}", p.ifname));
            }
        }
        errors
    }
}

/// Make a registered macvtap port's link: on its device, with the guest's MAC, its
/// character device given to the port's owner, up. Returns the device's path.
async fn make(nl: &Netlink, rec: &PortRec, mode: MacvtapMode) -> Result<String> {
    let (name, parent) = (&rec.ifname, rec.parent.as_deref().unwrap_or_default());
    let mac = rec
        .mac
        .ok_or_else(|| anyhow!("port {name} has no guest MAC"))?;
    let link = nl
        .link(parent)
        .await?
        .ok_or_else(|| anyhow!("pool device {parent} does not exist on the host"))?;
    if !link.up {
        // A macvtap carries nothing while its device is down.
        nl.set_up(link.index, true)
            .await
            .with_context(|| format!("set pool device {parent} up"))?;
    }
    let index = match nl.link(name).await? {
        Some(l) if l.kind.as_deref() == Some("macvtap") => l.index,
        Some(l) => bail!(
            "{name} exists and is a {} link, not a macvtap",
            l.kind.as_deref().unwrap_or("physical")
        ),
        None => {
            nl.create_macvtap(name, link.index, mode.as_str(), mac.0)
                .await?
        }
    };
    let res = async {
        let dev = macvtap::prepare_device(index, rec.owner, rec.group, DEVICE_WAIT)?;
        nl.set_up(index, true).await?;
        Ok::<_, anyhow::Error>(dev.display().to_string())
    }
    .await;
    if res.is_err()
        && let Err(e) = nl.delete_link(index).await
    {
        warn!("macvtap {name} left behind: {e}");
    }
    res
}

/// Delete a macvtap port's link and the IFB its inbound went through, and give a
/// passthrough device its own MAC back.
pub async fn unmake(nl: &Netlink, rec: &PortRec) -> Result<()> {
    if let Some(l) = nl.link(&rec.ifname).await? {
        nl.delete_link(l.index)
            .await
            .with_context(|| format!("delete macvtap {}", rec.ifname))?;
    }
    let ifb = kvnet_host::ifb_name(&rec.ifname);
    nl.delete_ifb(&ifb)
        .await
        .with_context(|| format!("delete {ifb}"))?;
    if let (Some(parent), Some(mac)) = (&rec.parent, rec.parent_mac)
        && let Some(l) = nl.link(parent).await?
        && l.mac != Some(mac.0)
    {
        nl.set_mac(l.index, mac.0)
            .await
            .with_context(|| format!("give {parent} its MAC {mac} back"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(mode: MacvtapMode, devices: &[&str]) -> Pool {
        Pool {
            network: "lan".into(),
            mode,
            devices: devices.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn on(parent: &str, n: u8) -> PortRec {
        PortRec {
            ifname: format!("macvtap{n}"),
            mac: Some(MacAddr([0x52, 0x54, 0, 0, 0, n])),
            kind: PortKind::Macvtap,
            queues: 1,
            owner: None,
            group: None,
            isolated: None,
            filter: None,
            ips: Vec::new(),
            parent: Some(parent.into()),
            parent_mac: None,
            managed: false,
            qos: Default::default(),
        }
    }

    #[test]
    fn shared_modes_take_the_least_used_device_first_on_a_tie() {
        for mode in [MacvtapMode::Bridge, MacvtapMode::Private, MacvtapMode::Vepa] {
            let p = pool(mode, &["eth1", "eth2", "eth3"]);
            assert_eq!(choose(&p, &[], &[]).unwrap(), "eth1");
            let recs = [on("eth1", 1), on("eth2", 2), on("eth1", 3)];
            assert_eq!(choose(&p, &recs, &[]).unwrap(), "eth3");
            let recs = [on("eth1", 1), on("eth2", 2), on("eth3", 3)];
            assert_eq!(choose(&p, &recs, &[]).unwrap(), "eth1");
            // Other networks' ports do not count (libvirt counts per network).
            let other = [("eth1".to_string(), "network 'x' port macvtap9".to_string())];
            assert_eq!(choose(&p, &[], &other).unwrap(), "eth1");
        }
    }

    #[test]
    fn passthrough_takes_a_free_device_or_fails() {
        let p = pool(MacvtapMode::Passthrough, &["eth1", "eth2"]);
        assert_eq!(choose(&p, &[on("eth1", 1)], &[]).unwrap(), "eth2");
        let other = [("eth2".to_string(), "network 'x' port macvtap9".to_string())];
        let e = choose(&p, &[on("eth1", 1)], &other).unwrap_err();
        assert_eq!(
            e,
            "network 'lan' requires exclusive access to its devices (eth1, eth2), and none is free"
        );
        assert!(choose(&pool(MacvtapMode::Bridge, &[]), &[], &[]).is_err());
    }

    #[test]
    fn connections_count_per_device_in_pool_order() {
        let recs = [on("eth2", 1), on("eth2", 2), on("eth9", 3)];
        let c = connections(&["eth1".into(), "eth2".into()], &recs);
        assert_eq!(c, [("eth1".into(), 0), ("eth2".into(), 2)]);
    }

    #[test]
    fn qemu_gets_descriptors_one_per_queue() {
        let mac = MacAddr([0x52, 0x54, 0, 1, 2, 3]);
        let (args, fds) = qemu_args("/dev/tap7", mac, 1, false, 3);
        assert_eq!(
            args,
            [
                "-netdev",
                "tap,id=net0,fd=3,vhost=off",
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:01:02:03"
            ]
        );
        assert_eq!(fds, ["3<>/dev/tap7"]);
        let (args, fds) = qemu_args("/dev/tap7", mac, 3, true, 3);
        assert_eq!(args[1], "tap,id=net0,fds=3:4:5,vhost=on");
        assert!(args[3].ends_with(",mq=on,vectors=8"), "{args:?}");
        assert_eq!(fds, ["3<>/dev/tap7", "4<>/dev/tap7", "5<>/dev/tap7"]);
    }
}
