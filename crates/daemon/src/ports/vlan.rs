//! VLANs on a bridge (`<vlan>`), through the kernel's bridge VLAN filtering, as Incus
//! has them (libvirt has VLANs only for Open vSwitch and SR-IOV): the pure plan of which
//! VLANs a port belongs to. An access port (one tag) carries its VLAN untagged; a trunk
//! (`trunk='yes'` or several tags) carries each tagged, and the tag with `nativeMode`
//! is where untagged frames go (`untagged`: they also leave untagged).

use kvnet_host::VlanMember;
use kvnet_model::{NativeMode, Network, Vlan};

/// What every new bridge port belongs to: the bridge's default VLAN 1, untagged.
pub const DEFAULT: VlanMember = VlanMember {
    vid: 1,
    pvid: true,
    untagged: true,
};

/// The memberships of a port with `vlan`.
pub fn members(vlan: &Vlan) -> Vec<VlanMember> {
    let trunk = vlan.trunk == Some(true) || vlan.tags.len() > 1;
    vlan.tags
        .iter()
        .map(|t| match (trunk, t.native_mode) {
            (false, _) | (true, Some(NativeMode::Untagged)) => VlanMember {
                vid: t.id,
                pvid: true,
                untagged: true,
            },
            (true, Some(NativeMode::Tagged)) => VlanMember {
                vid: t.id,
                pvid: true,
                untagged: false,
            },
            (true, None) => VlanMember {
                vid: t.id,
                pvid: false,
                untagged: false,
            },
        })
        .collect()
}

/// Whether `net` asks for VLANs on its bridge (its own `<vlan>` or a portgroup's).
pub fn needed(net: &Network) -> bool {
    net.vlan.is_some() || net.portgroups.iter().any(|p| p.vlan.is_some())
}

/// The VLANs of a port that names no portgroup, and of the host on a bridge kvnet
/// owns (so its DHCP and DNS serve those ports): the default portgroup's `<vlan>`, else
/// the network's; empty: the bridge's default VLAN.
pub fn default_members(net: &Network) -> Vec<VlanMember> {
    net.portgroups
        .iter()
        .find(|p| p.is_default)
        .and_then(|p| p.vlan.as_ref())
        .or(net.vlan.as_ref())
        .map(members)
        .unwrap_or_default()
}

/// A bridge carries VLANs 1 to 4094 only: 0 means "priority tag" and 4095 is reserved
/// (libvirt's schema allows both).
pub fn check(net: &Network) -> Result<(), String> {
    let all = net
        .vlan
        .iter()
        .chain(net.portgroups.iter().filter_map(|p| p.vlan.as_ref()));
    for v in all {
        if let Some(t) = v.tags.iter().find(|t| !(1..=4094).contains(&t.id)) {
            return Err(format!(
                "network '{}': vlan tag {} cannot be used on a Linux bridge (1 to 4094)",
                net.name, t.id
            ));
        }
    }
    Ok(())
}

/// Why a network's VLANs cannot be carried here, from what the kernel says about
/// the bridge (`filtering`: [`kvnet_host::link::bridge_vlan_filtering`]) and whether
/// kvnet owns it (then kvnet turns filtering on).
pub fn refusal(
    net: &Network,
    bridge: &str,
    filtering: Option<bool>,
    owned: bool,
) -> Option<String> {
    match filtering {
        None => Some(missing_kernel_feature(net)),
        Some(false) if !owned => Some(format!(
            "network '{}' asks for VLANs (<vlan>), and host bridge {bridge} does not filter VLANs: turn it on with `ip link set {bridge} type bridge vlan_filtering 1`",
            net.name
        )),
        _ => None,
    }
}

/// The message for a kernel without bridge VLAN filtering.
pub fn missing_kernel_feature(net: &Network) -> String {
    format!(
        "network '{}' asks for VLANs (<vlan>), which need VLAN filtering on its bridge, and this kernel has none (CONFIG_BRIDGE_VLAN_FILTERING is off)",
        net.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(xml: &str) -> Vlan {
        let n = Network::from_xml(&format!(
            "<network><name>v</name><forward mode='bridge'/><bridge name='br0'/>{xml}</network>"
        ))
        .unwrap();
        n.vlan.unwrap()
    }

    #[test]
    fn the_host_is_on_the_default_portgroups_vlans_else_the_networks() {
        let n = |xml: &str| {
            Network::from_xml(&format!(
                "<network><name>v</name><bridge name='br0'/>{xml}</network>"
            ))
            .unwrap()
        };
        let access = |vid| vec![m(vid, true, true)];
        let pg = "<portgroup name='a'><vlan><tag id='20'/></vlan></portgroup>";
        let default_pg =
            "<portgroup name='d' default='yes'><vlan><tag id='30'/></vlan></portgroup>";
        let net_vlan = "<vlan><tag id='10'/></vlan>";
        assert_eq!(default_members(&n("")), []);
        assert_eq!(
            default_members(&n(pg)),
            [],
            "a named portgroup is not the host's"
        );
        assert_eq!(default_members(&n(&format!("{net_vlan}{pg}"))), access(10));
        assert_eq!(
            default_members(&n(&format!("{net_vlan}{pg}{default_pg}"))),
            access(30)
        );
    }

    fn m(vid: u16, pvid: bool, untagged: bool) -> VlanMember {
        VlanMember {
            vid,
            pvid,
            untagged,
        }
    }

    #[test]
    fn access_ports_and_trunks() {
        assert_eq!(
            members(&vlan("<vlan><tag id='10'/></vlan>")),
            [m(10, true, true)]
        );
        assert_eq!(
            members(&vlan("<vlan trunk='yes'><tag id='10'/></vlan>")),
            [m(10, false, false)]
        );
        assert_eq!(
            members(&vlan("<vlan><tag id='10'/><tag id='20'/></vlan>")),
            [m(10, false, false), m(20, false, false)]
        );
        assert_eq!(
            members(&vlan(
                "<vlan trunk='yes'><tag id='10' nativeMode='untagged'/><tag id='20'/></vlan>"
            )),
            [m(10, true, true), m(20, false, false)]
        );
        assert_eq!(
            members(&vlan(
                "<vlan trunk='yes'><tag id='10'/><tag id='20' nativeMode='tagged'/></vlan>"
            )),
            [m(10, false, false), m(20, true, false)]
        );
    }

    #[test]
    fn tags_a_bridge_cannot_carry_and_kernels_without_filtering() {
        let net = |xml: &str| {
            Network::from_xml(&format!(
                "<network><name>v</name><forward mode='bridge'/><bridge name='br0'/>{xml}</network>"
            ))
            .unwrap()
        };
        let n = net("<vlan><tag id='4095'/></vlan>");
        assert!(needed(&n));
        assert_eq!(
            check(&n).unwrap_err(),
            "network 'v': vlan tag 4095 cannot be used on a Linux bridge (1 to 4094)"
        );
        assert!(check(&net("<vlan><tag id='0'/></vlan>")).is_err());
        let pg = net("<portgroup name='a'><vlan><tag id='0'/></vlan></portgroup>");
        assert!(needed(&pg) && check(&pg).is_err());
        let ok = net("<vlan><tag id='4094'/></vlan>");
        assert_eq!(check(&ok), Ok(()));
        assert!(!needed(&net("")));
        assert!(
            refusal(&ok, "br0", None, true)
                .unwrap()
                .contains("CONFIG_BRIDGE_VLAN_FILTERING is off")
        );
        assert!(
            refusal(&ok, "br0", Some(false), false)
                .unwrap()
                .contains("vlan_filtering 1")
        );
        assert_eq!(refusal(&ok, "br0", Some(false), true), None);
        assert_eq!(refusal(&ok, "br0", Some(true), false), None);
    }
}
