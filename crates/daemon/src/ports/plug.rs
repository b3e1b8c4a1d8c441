//! Putting TAPs on a bridge over netlink, and the checks that come first.

use super::{PortRec, Target, tap_mac};
use anyhow::{Context, Result, anyhow, bail};
use kvnet_host::{Link, Netlink, tap};
use kvnet_model::MacAddr;

/// Refuse a guest MAC another port of the network (`ports`), or a guest behind its
/// bridge, already uses. `own` is the TAP being registered (its FDB entries are its own).
pub async fn check_mac_free(
    nl: &Netlink,
    ports: &[PortRec],
    t: &Target,
    mac: MacAddr,
    own: &str,
) -> Result<()> {
    let network = &t.network;
    if let Some(p) = ports.iter().find(|p| p.mac == Some(mac) && p.ifname != own) {
        bail!(
            "MAC address {mac} is already used on network '{network}' by port {}",
            p.ifname
        );
    }
    for e in nl.bridge_fdb(t.bridge.index).await? {
        if e.mac != mac.0 {
            continue;
        }
        let port = nl.link_by_index(e.port).await?;
        let name = port
            .map(|l| l.name)
            .unwrap_or_else(|| format!("#{}", e.port));
        if name != own {
            bail!(
                "MAC address {mac} is already used on network '{network}' by a guest behind {name} (bridge {} forwarding table)",
                t.bridge.name
            );
        }
    }
    Ok(())
}

/// Put an existing TAP on the bridge: MAC (persistent ports), MTU, master, port
/// isolation (`<port isolated>`), the forwarding table (`fdb`: the guest's MAC when the
/// network has `<bridge macTableManager='libvirt'>`), up. What is already right is left
/// alone; isolation and the table are set every time, as the link does not tell them.
pub async fn plug(
    nl: &Netlink,
    tap: &Link,
    t: &Target,
    mac: Option<[u8; 6]>,
    isolated: bool,
    fdb: Option<MacAddr>,
    portgroup: Option<&str>,
) -> Result<()> {
    let (name, bridge) = (&tap.name, &t.bridge);
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
    let vlans = t.vlans_of(portgroup);
    if !vlans.is_empty() {
        nl.set_port_vlans(tap.index, vlans, &[super::vlan::DEFAULT], false)
            .await
            .with_context(|| format!("set the VLANs of {name}"))?;
    }
    nl.set_port_isolated(tap.index, isolated)
        .await
        .with_context(|| format!("set port isolation of {name}"))?;
    // libvirt's macTableManager: the bridge neither learns nor floods on this port; it
    // reaches the guest through a static entry for the MAC kvnet knows.
    if let Some(m) = fdb {
        nl.set_port_learning(tap.index, false)
            .await
            .with_context(|| format!("turn off learning on {name}"))?;
        nl.add_static_fdb(tap.index, m.0)
            .await
            .with_context(|| format!("add {m} to the forwarding table for {name}"))?;
    }
    if !tap.up {
        nl.set_up(tap.index, true)
            .await
            .with_context(|| format!("set {name} up"))?;
    }
    Ok(())
}

/// Create (if missing) and plug a persistent port's TAP; a TAP created here is deleted
/// again when plugging fails.
pub async fn realize(nl: &Netlink, rec: &PortRec, t: &Target) -> Result<()> {
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
        let mac = rec.mac.map(|m| tap_mac(m.0));
        let portgroup = rec.qos.portgroup.as_deref();
        plug(nl, &link, t, mac, rec.isolated(t), rec.fdb(t), portgroup).await
    }
    .await;
    if res.is_err() && created {
        let _ = tap::delete(&rec.ifname);
    }
    res
}
