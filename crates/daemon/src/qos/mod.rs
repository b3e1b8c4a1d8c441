//! Quality of service (`<bandwidth>`): [`plan`] says what each device of a network
//! should have; [`sync`] reads what it has and applies only the difference, so running
//! it again (a kvnetd restart, a start, an update) changes nothing that is right.

pub mod plan;

use crate::ports::PortRec;
use anyhow::{Context, Result};
use kvnet_host::Netlink;
use kvnet_model::Network;
pub use plan::PortQos;
use tracing::info;

/// Bring network `net`'s bridge and its ports' TAPs (and their IFBs) to the plan; with
/// `only`, the bridge and that port (a port verb: the others have not changed). A port
/// whose TAP is missing is skipped (it is shaped when it is back).
pub async fn sync(
    nl: &Netlink,
    net: &Network,
    bridge: &str,
    ports: &[PortRec],
    only: Option<&str>,
) -> Result<()> {
    let ports: Vec<_> = ports
        .iter()
        .map(|p| (p.ifname.clone(), p.mac, p.qos.clone()))
        .collect();
    // One dump says which devices have qdiscs kvnet could have made: a device that
    // wants nothing and has none is not read.
    let shaped = nl.tc_devices().await?;
    for d in plan::network_plan(net, bridge, &ports) {
        if only.is_some_and(|o| o != d.dev && d.dev != bridge) {
            continue;
        }
        apply(nl, &d, &shaped)
            .await
            .with_context(|| format!("bandwidth of {} on network '{}'", d.dev, net.name))?;
    }
    Ok(())
}

/// Bring direct network `net`'s macvtaps (and their IFBs) to the plan
/// ([`plan::direct_plan`]); with `only`, that port. A missing macvtap is skipped (it
/// is shaped when it is made again, at the network's start).
pub async fn sync_direct(
    nl: &Netlink,
    net: &Network,
    ports: &[PortRec],
    only: Option<&str>,
) -> Result<()> {
    let ports: Vec<_> = ports
        .iter()
        .filter(|p| p.kind == kvnet_api::PortKind::Macvtap)
        .filter(|p| only.is_none_or(|o| o == p.ifname))
        .map(|p| (p.ifname.clone(), p.qos.clone()))
        .collect();
    if ports.is_empty() {
        return Ok(());
    }
    let shaped = nl.tc_devices().await?;
    for d in plan::direct_plan(net, &ports) {
        apply(nl, &d, &shaped)
            .await
            .with_context(|| format!("bandwidth of {} on network '{}'", d.dev, net.name))?;
    }
    Ok(())
}

async fn apply(
    nl: &Netlink,
    d: &plan::DevPlan,
    shaped: &std::collections::HashSet<u32>,
) -> Result<()> {
    let Some(link) = nl.link(&d.dev).await? else {
        return Ok(());
    };
    let bare = d.egress == Default::default() && d.ifb.is_none();
    if bare && !shaped.contains(&link.index) {
        return nl
            .delete_ifb(&kvnet_host::ifb_name(&d.dev))
            .await
            .map_err(Into::into);
    }
    let mut want = d.egress.clone();
    if let Some((name, shape)) = &d.ifb {
        let ifb = nl.ensure_ifb(name).await?;
        let cur = nl.tc_shape(ifb).await?;
        nl.tc_apply(ifb, &plan::changes(&cur, shape)).await?;
        want.redirect = Some(ifb);
    }
    let cur = nl.tc_shape(link.index).await?;
    let changes = plan::changes(&cur, &want);
    if !changes.is_empty() {
        info!("{}: {} traffic control change(s)", d.dev, changes.len());
        nl.tc_apply(link.index, &changes).await?;
    }
    if d.ifb.is_none() {
        nl.delete_ifb(&kvnet_host::ifb_name(&d.dev)).await?;
    }
    Ok(())
}

/// port-create's QoS (see [`plan::admit`]), beside the network's other ports.
pub fn admit(
    net: &Network,
    r: &kvnet_api::request::PortCreate,
    ports: &[PortRec],
) -> Result<PortQos> {
    let others: Vec<PortQos> = ports.iter().map(|p| p.qos.clone()).collect();
    let (inbound, outbound) = (r.inbound.as_deref(), r.outbound.as_deref());
    plan::admit(
        net,
        r.portgroup.as_deref(),
        inbound.cloned(),
        outbound.cloned(),
        &others,
    )
    .map_err(|e| anyhow::anyhow!("cannot create a port on network '{}': {e}", net.name))
}

/// A live change (a portgroup's `<bandwidth>`) must leave the ports' floors under the
/// network's inbound average, as port-create does.
pub fn check_floors(net: &Network, ports: &[PortRec]) -> Result<()> {
    let qos: Vec<PortQos> = ports.iter().map(|p| p.qos.clone()).collect();
    plan::floors_fit(net, &qos)
        .map_err(|e| anyhow::anyhow!("network '{}' not updated: {e}", net.name))
}

/// A port kvnet did not create (qemu's script, the bridge helper) is in the network's
/// default portgroup, as libvirt puts an interface naming none: the QoS to record (if
/// it has none yet) and its portgroup. `None`: not registered.
pub fn attached(
    net: &Network,
    ports: &[PortRec],
    ifname: &str,
) -> Option<(Option<PortQos>, Option<String>)> {
    let own = ports.iter().find(|p| p.ifname == ifname)?;
    if !own.qos.is_empty() {
        return Some((None, own.qos.portgroup.clone()));
    }
    let others: Vec<PortQos> = ports
        .iter()
        .filter(|p| p.ifname != ifname)
        .map(|p| p.qos.clone())
        .collect();
    match plan::admit(net, None, None, None, &others) {
        Ok(q) if !q.is_empty() => Some((Some(q.clone()), q.portgroup)),
        Ok(_) => Some((None, None)),
        Err(e) => {
            tracing::warn!(network = %net.name, "port {ifname}: default portgroup not applied: {e}");
            Some((None, None))
        }
    }
}

/// Remove kvnet's shaping from `dev` (a stopping network's bridge) and its IFB.
pub async fn unshape(nl: &Netlink, dev: &str) -> Result<()> {
    let d = plan::DevPlan {
        dev: dev.to_string(),
        egress: Default::default(),
        ifb: None,
    };
    apply(nl, &d, &nl.tc_devices().await?).await
}

/// A port that leaves kvnet: its shaping goes if its TAP stays (qemu's), and its IFB.
pub async fn forget(nl: &Netlink, dev: &str) -> Result<()> {
    unshape(nl, dev).await?;
    Ok(nl.delete_ifb(&kvnet_host::ifb_name(dev)).await?)
}
