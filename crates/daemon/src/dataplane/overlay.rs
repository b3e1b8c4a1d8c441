//! An overlay network's VXLAN port (`<kvnet:overlay>`): made on the network's bridge at
//! start, checked at adoption, deleted at stop. Which hosts carry the VNI and where each
//! guest is, FRR's zebra and bgpd learn from the kernel (BGP EVPN): kvnet only makes the
//! device, without data-plane learning and with neighbour suppression. Its DHCP fence is
//! the firewall's ([`super::fence`]).

use anyhow::{Context, Result, anyhow, bail};
use kvnet_host::{Netlink, VxlanSpec};
use kvnet_model::{Network, Overlay};
use std::net::{IpAddr, Ipv4Addr};

/// The guest MTU assumed when the VTEP is on a loopback (a routed underlay whose path
/// MTU the host cannot see): Ethernet's, less VXLAN's headers.
const ASSUMED_UNDERLAY_MTU: u32 = 1500;

/// The overlay of `net`, if it is one.
pub fn of(net: &Network) -> Option<Overlay> {
    net.kvnet_ext().ok()?.overlay
}

/// Where the tunnel starts on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub vtep: Ipv4Addr,
    /// The underlay device (index, MTU), unless the VTEP is on a loopback.
    pub dev: Option<(u32, u32)>,
}

impl Underlay {
    /// The MTU the network's guests get (see [`Overlay::guest_mtu`]); behind a loopback
    /// VTEP, `<mtu>` is trusted and its absence means 1450.
    pub fn guest_mtu(&self, o: &Overlay, network_mtu: Option<u32>) -> Result<u32, String> {
        match (self.dev, network_mtu) {
            (Some((_, mtu)), m) => o.guest_mtu(m, mtu),
            (None, Some(m)) => Ok(m),
            (None, None) => o.guest_mtu(None, ASSUMED_UNDERLAY_MTU),
        }
    }
}

/// Finds the VTEP: `local` (it must be an address of this host) or the first IPv4
/// address of `dev`, and the underlay device that carries it. A lookup by name or one
/// address dump: a start costs the same beside a thousand bridges.
pub async fn underlay(nl: &Netlink, o: &Overlay) -> Result<Underlay> {
    let carrier = |l: &kvnet_host::Link| (!l.loopback).then_some((l.index, l.mtu));
    if let Some(name) = &o.dev {
        let l = nl
            .link(name)
            .await?
            .ok_or_else(|| anyhow!("underlay interface {name} does not exist"))?;
        let addrs = nl.addresses(l.index).await?;
        let vtep = match o.local {
            Some(a) if addrs.iter().any(|n| n.addr() == IpAddr::V4(a)) => a,
            Some(a) => bail!("VTEP address {a} is not an address of {name}"),
            None => addrs
                .iter()
                .find_map(|a| match a.addr() {
                    IpAddr::V4(v) if !v.is_loopback() => Some(v),
                    _ => None,
                })
                .ok_or_else(|| {
                    anyhow!("underlay interface {name} has no IPv4 address for the VTEP")
                })?,
        };
        return Ok(Underlay {
            vtep,
            dev: carrier(&l),
        });
    }
    let vtep = o
        .local
        .context("an overlay names its VTEP ('local') or underlay ('dev')")?;
    let not_here = || anyhow!("VTEP address {vtep} is not an address of this host");
    let index = nl
        .link_with_address(IpAddr::V4(vtep))
        .await?
        .ok_or_else(not_here)?;
    let l = nl.link_by_index(index).await?.ok_or_else(not_here)?;
    Ok(Underlay {
        vtep,
        dev: carrier(&l),
    })
}

/// The VXLAN device `o` wants on this host.
pub fn spec(o: &Overlay, u: &Underlay, mtu: u32) -> VxlanSpec {
    VxlanSpec {
        name: o.device(),
        vni: o.vni,
        local: u.vtep,
        port: o.port(),
        dev: u.dev.map(|(i, _)| i),
        mtu,
    }
}

/// Makes the VXLAN port on bridge `bridge` (an index), up; returns its index. On error
/// nothing is left.
pub async fn create(nl: &Netlink, s: &VxlanSpec, bridge: u32) -> Result<u32> {
    let idx = nl
        .create_vxlan(s)
        .await
        .with_context(|| format!("create VXLAN device {}", s.name))?;
    let res = async {
        nl.set_master(idx, Some(bridge)).await?;
        nl.set_port_overlay(idx).await?;
        nl.set_up(idx, true).await
    }
    .await;
    if let Err(e) = res {
        let _ = nl.delete_link(idx).await;
        return Err(anyhow::Error::from(e).context(format!("put {} on its bridge", s.name)));
    }
    Ok(idx)
}

/// At adoption: the VXLAN port as `s` says, on bridge `bridge`; a missing or different
/// one is made again. Returns what was corrected.
pub async fn ensure(nl: &Netlink, s: &VxlanSpec, bridge: u32) -> Result<Vec<String>> {
    if let Some(l) = nl.link(&s.name).await? {
        let info = nl.vxlan_info(l.index).await?;
        let same = info == Some((s.vni, Some(s.local), s.port, false));
        if same && l.master == Some(bridge) && l.up && l.mtu == s.mtu {
            return Ok(Vec::new());
        }
        nl.delete_link(l.index).await?;
    }
    create(nl, s, bridge).await?;
    Ok(vec![format!("VXLAN device {}", s.name)])
}

/// Deletes the overlay's VXLAN device, if there is one.
pub async fn delete(nl: &Netlink, o: &Overlay) -> Result<()> {
    if let Some(l) = nl.link(&o.device()).await? {
        nl.delete_link(l.index)
            .await
            .with_context(|| format!("delete VXLAN device {}", o.device()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o() -> Overlay {
        Overlay {
            vni: 100,
            local: None,
            dev: Some("eth1".into()),
            port: None,
        }
    }

    #[test]
    fn a_loopback_vtep_trusts_the_networks_mtu() {
        let lo = Underlay {
            vtep: Ipv4Addr::new(10, 255, 0, 1),
            dev: None,
        };
        assert_eq!(lo.guest_mtu(&o(), None), Ok(1450));
        assert_eq!(lo.guest_mtu(&o(), Some(8950)), Ok(8950));
        let eth = Underlay {
            dev: Some((2, 9000)),
            ..lo
        };
        assert_eq!(eth.guest_mtu(&o(), None), Ok(8950));
        assert!(eth.guest_mtu(&o(), Some(9000)).is_err());
    }

    #[test]
    fn the_spec_binds_the_underlay_device_only_when_there_is_one() {
        let u = Underlay {
            vtep: Ipv4Addr::new(10, 255, 0, 1),
            dev: Some((7, 1500)),
        };
        let s = spec(&o(), &u, 1450);
        assert_eq!(
            s,
            VxlanSpec {
                name: "kvx100".into(),
                vni: 100,
                local: u.vtep,
                port: 4789,
                dev: Some(7),
                mtu: 1450
            }
        );
        let s = spec(&o(), &Underlay { dev: None, ..u }, 1450);
        assert_eq!(s.dev, None);
    }
}
