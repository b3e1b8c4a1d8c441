//! An overlay network's VXLAN device: made without data-plane learning (FRR's zebra
//! installs the remote MACs), read back for adoption, and its bridge port flags.

use super::*;

/// An overlay network's VXLAN device ([`Netlink::create_vxlan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub local: std::net::Ipv4Addr,
    pub port: u16,
    /// The underlay device's index, when the VTEP is not on a loopback.
    pub dev: Option<u32>,
    pub mtu: u32,
}

impl Netlink {
    /// Creates a VXLAN device for an overlay network, down: `vni`, from VTEP `local`,
    /// UDP `port`, on underlay `dev` when given, without data-plane learning (remote
    /// MACs come from BGP EVPN through FRR's zebra), with `mtu`; returns its index.
    pub async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<u32, HostError> {
        let ctx = || format!("create vxlan {} (VNI {})", spec.name, spec.vni);
        let mut b = rtnetlink::LinkVxlan::new(&spec.name, spec.vni)
            .local(spec.local)
            .port(spec.port)
            .learning(false);
        if let Some(dev) = spec.dev {
            b = b.dev(dev);
        }
        let msg = b.mtu(spec.mtu).down().build();
        self.create(msg, &spec.name, ctx()).await
    }

    /// What [`Netlink::create_vxlan`] made, read back: (VNI, local VTEP, port, learning).
    pub async fn vxlan_info(
        &self,
        index: u32,
    ) -> Result<Option<(u32, Option<std::net::Ipv4Addr>, u16, bool)>, HostError> {
        use rtnetlink::packet_route::link::{InfoVxlan, LinkInfo};
        let ctx = || format!("read vxlan link #{index}");
        let Some(msg) = self
            .get_link_message(LinkUnspec::new_with_index(index).build())
            .await
            .map_err(|n| n.into_error(ctx()))?
        else {
            return Ok(None);
        };
        let mut out = (None, None, 4789, true);
        for a in &msg.attributes {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos {
                    if let LinkInfo::Data(InfoData::Vxlan(v)) = i {
                        for x in v {
                            match x {
                                InfoVxlan::Id(id) => out.0 = Some(*id),
                                InfoVxlan::Local(l) => out.1 = Some(*l),
                                InfoVxlan::Port(p) => out.2 = *p,
                                InfoVxlan::Learning(l) => out.3 = *l,
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        Ok(out.0.map(|vni| (vni, out.1, out.2, out.3)))
    }

    /// Bridge port flags of an overlay's VXLAN port: no learning (zebra installs the
    /// remote MACs) and neighbour suppression (the bridge answers ARP and ND from what
    /// EVPN told it, instead of flooding them to every host).
    pub async fn set_port_overlay(&self, index: u32) -> Result<(), HostError> {
        let b = LinkBridgePort::new(index)
            .append_info_data(InfoBridgePort::Learning(false))
            .append_info_data(InfoBridgePort::NeighSupress(true));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set overlay port flags of link #{index}")))
    }
}
