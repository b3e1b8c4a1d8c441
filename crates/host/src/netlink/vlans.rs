//! Bridge VLAN filtering: the bridge's switch, and each port's VLAN memberships
//! (`bridge vlan add dev PORT vid N [pvid] [untagged]`).

use super::*;
use rtnetlink::packet_route::link::BridgeVlanInfoFlags;
use rtnetlink::{LinkBridgeVlan, LinkMessageBuilder};

/// One VLAN a bridge port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VlanMember {
    pub vid: u16,
    /// Untagged frames entering the port belong to this VLAN (one per port).
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// The RTM_SETLINK (add) or RTM_DELLINK (remove) message for port `index`'s
/// memberships `members`, family AF_BRIDGE, one `IFLA_BRIDGE_VLAN_INFO` each; with
/// `bridge_self`, `index` is a bridge and the memberships are its own (the host's).
pub fn vlan_message(
    index: u32,
    members: &[VlanMember],
    add: bool,
    bridge_self: bool,
) -> RouteNetlinkMessage {
    let mut b = LinkBridgeVlan::new(index);
    if bridge_self {
        b = b.bridge_self();
    }
    for m in members {
        let mut flags = BridgeVlanInfoFlags::empty();
        if m.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if m.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        b = b.vlan(m.vid, flags);
    }
    let msg = b.build();
    if add {
        RouteNetlinkMessage::SetLink(msg)
    } else {
        RouteNetlinkMessage::DelLink(msg)
    }
}

impl Netlink {
    /// Turns VLAN filtering on bridge `index` on or off. A kernel built without it
    /// (CONFIG_BRIDGE_VLAN_FILTERING) answers EOPNOTSUPP: [`HostError::errno`] tells.
    pub async fn set_vlan_filtering(&self, index: u32, on: bool) -> Result<(), HostError> {
        let msg = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
            .index(index)
            .vlan_filtering(on)
            .build();
        self.ack(RouteNetlinkMessage::NewLink(msg), 0)
            .await
            .map_err(|n| n.into_error(format!("set VLAN filtering on bridge #{index}")))
    }

    /// Makes port `index` a member of exactly `members`: the memberships it has beyond
    /// them (the bridge's default VLAN 1, a tag removed since) are removed.
    /// With `bridge_self`, `index` is the bridge and these are the host's memberships.
    pub async fn set_port_vlans(
        &self,
        index: u32,
        members: &[VlanMember],
        had: &[VlanMember],
        bridge_self: bool,
    ) -> Result<(), HostError> {
        let ctx = || format!("set the VLANs of link #{index}");
        let gone: Vec<VlanMember> = had
            .iter()
            .filter(|h| !members.iter().any(|m| m.vid == h.vid))
            .copied()
            .collect();
        if !members.is_empty() {
            self.ack(vlan_message(index, members, true, bridge_self), 0)
                .await
                .map_err(|n| n.into_error(ctx()))?;
        }
        if !gone.is_empty() {
            match self
                .ack(vlan_message(index, &gone, false, bridge_self), 0)
                .await
            {
                Err(n) if n.errno != libc::ENOENT => return Err(n.into_error(ctx())),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;

    fn bytes(m: &RouteNetlinkMessage) -> Vec<u8> {
        let (RouteNetlinkMessage::SetLink(l) | RouteNetlinkMessage::DelLink(l)) = m else {
            panic!("a link message");
        };
        let mut b = vec![0u8; l.buffer_len()];
        l.emit(&mut b);
        b
    }

    #[test]
    fn memberships_become_af_bridge_vlan_infos() {
        let m = vlan_message(
            7,
            &[
                VlanMember {
                    vid: 10,
                    pvid: true,
                    untagged: true,
                },
                VlanMember {
                    vid: 20,
                    pvid: false,
                    untagged: false,
                },
            ],
            true,
            false,
        );
        assert!(matches!(m, RouteNetlinkMessage::SetLink(_)));
        let b = bytes(&m);
        // ifinfomsg: family AF_BRIDGE (7), index 7.
        assert_eq!(b[0], 7);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 7);
        // IFLA_AF_SPEC (26), nesting two IFLA_BRIDGE_VLAN_INFO (2) of {flags, vid}:
        // PVID (2) | UNTAGGED (4) for 10, none for 20.
        let attrs = &b[16..];
        assert_eq!(u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff, 26);
        assert_eq!(
            &attrs[4..],
            &[
                8, 0, 2, 0, 6, 0, 10, 0, //
                8, 0, 2, 0, 0, 0, 20, 0
            ]
        );
        let one = [VlanMember {
            vid: 1,
            pvid: true,
            untagged: true,
        }];
        let d = vlan_message(7, &one, false, false);
        assert!(matches!(d, RouteNetlinkMessage::DelLink(_)));
        assert_eq!(&bytes(&d)[20..], &[8, 0, 2, 0, 6, 0, 1, 0]);
        // The bridge's own: IFLA_BRIDGE_FLAGS (0) = BRIDGE_FLAGS_SELF (2) first.
        let s = vlan_message(3, &one, true, true);
        assert_eq!(
            &bytes(&s)[20..],
            &[6, 0, 0, 0, 2, 0, 0, 0, 8, 0, 2, 0, 6, 0, 1, 0]
        );
    }
}
