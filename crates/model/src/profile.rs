//! The mode profile: per forward mode, what kvnet owns and does on the host. This is
//! the one place that matches on [`ForwardMode`] for behaviour (the parser and
//! validator still match on it for what the XML may say); everything else — the
//! daemon's lifecycle, the firewall input, the DHCP/DNS/RA configs — reads these plain
//! values. Next to it, [`Network::not_applied`]: what a definition asks for that kvnet
//! keeps but does not apply yet.
//!
//! To support a new mode: give it a row in [`Profile::of`], and teach the daemon's
//! lifecycle whatever new [`BridgeRole`] or [`FirewallRole`] it needs.

use crate::{ForwardMode, Network};

/// Who provides the bridge guests plug into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeRole {
    /// kvnet creates the bridge, addresses it, keeps it as defined and deletes it at
    /// destroy (libvirt's "virtual" networks: nat, route, open, isolated).
    Managed,
    /// An existing host bridge (`<forward mode='bridge'>` with `<bridge name>`): kvnet
    /// checks it exists and plugs ports into it, never changes or deletes it.
    Host,
    /// No bridge: guests get a device on a host NIC (macvtap, hostdev).
    None,
}

/// The rules kvnet's nftables table holds for a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallRole {
    /// None: `open` (libvirt adds no rules) and the modes without a managed bridge.
    None,
    /// Guests out through source NAT, established traffic back in.
    Nat,
    /// Routed subnets reachable both ways.
    Route,
    /// Guests reach only the host's services and each other.
    Isolated,
}

/// What the guest services (DHCP, DNS, RA) of a network do beyond its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRole {
    /// Guests route through the host: DHCP's router option, a non-zero RA router
    /// lifetime. Not on isolated networks (libvirt's `ra-param=*,0,0`).
    pub default_router: bool,
    /// Names the network cannot answer go to the host's resolvers; isolated networks
    /// only use their `<forwarder>`s (libvirt writes `no-resolv`).
    pub host_resolvers: bool,
}

/// The mode of the macvtap device a guest of a direct network gets on a pool device
/// (the kernel's `MACVLAN_MODE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvtapMode {
    /// Guests on one device reach each other inside the host (`forward mode='bridge'`).
    Bridge,
    /// Guests reach only the LAN, never each other, even through a reflecting switch.
    Private,
    /// Every frame goes out to the LAN switch (802.1Qbg reflective relay).
    Vepa,
    /// One guest takes the device exclusively.
    Passthrough,
}

impl MacvtapMode {
    /// The name `ip link` uses for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvtapMode::Bridge => "bridge",
            MacvtapMode::Private => "private",
            MacvtapMode::Vepa => "vepa",
            MacvtapMode::Passthrough => "passthru",
        }
    }
}

/// What kvnet owns and does for a network, decided by its forward mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub mode: ForwardMode,
    pub bridge: BridgeRole,
    /// The network needs the host to forward (ip_forward, and IPv6 forwarding when it
    /// has IPv6 addresses) while it runs.
    pub forwarding: bool,
    pub firewall: FirewallRole,
    /// kvnetd serves DHCP, DNS and router advertisements on the network's bridge.
    pub guest_services: bool,
    pub guests: GuestRole,
    /// Direct networks: the mode of the macvtap each guest port gets on a pool device.
    pub macvtap: Option<MacvtapMode>,
    /// Hostdev networks: each guest port is a PCI device (an SR-IOV virtual function)
    /// handed to qemu's vfio-pci.
    pub hostdev: bool,
    /// Why kvnet refuses to start the network, when it does.
    pub unsupported: Option<String>,
}

impl Profile {
    /// The profile of `net`: its forward mode, and for `bridge` whether it is a host
    /// bridge or a macvtap pool (`<interface>`s).
    pub fn of(net: &Network) -> Profile {
        let mode = net.forward_mode();
        let managed = |firewall, forwarding| Profile {
            mode,
            bridge: BridgeRole::Managed,
            forwarding,
            firewall,
            guest_services: true,
            guests: GuestRole {
                default_router: mode != ForwardMode::Isolated,
                host_resolvers: mode != ForwardMode::Isolated,
            },
            macvtap: None,
            hostdev: false,
            unsupported: None,
        };
        let unmanaged = |bridge, macvtap, unsupported: Option<&str>| Profile {
            mode,
            bridge,
            forwarding: false,
            firewall: FirewallRole::None,
            guest_services: false,
            guests: GuestRole {
                default_router: false,
                host_resolvers: false,
            },
            macvtap,
            hostdev: mode == ForwardMode::Hostdev,
            unsupported: unsupported.map(|why| {
                format!(
                    "network '{}': forward mode '{mode}' {why} is not supported by kvnet yet",
                    net.name
                )
            }),
        };
        match mode {
            ForwardMode::Nat => managed(FirewallRole::Nat, true),
            ForwardMode::Route => managed(FirewallRole::Route, true),
            ForwardMode::Open => managed(FirewallRole::None, true),
            ForwardMode::Isolated => managed(FirewallRole::Isolated, false),
            ForwardMode::Bridge
                if net
                    .forward
                    .as_ref()
                    .is_some_and(|f| !f.interfaces.is_empty()) =>
            {
                unmanaged(BridgeRole::None, Some(MacvtapMode::Bridge), None)
            }
            ForwardMode::Bridge => unmanaged(BridgeRole::Host, None, None),
            ForwardMode::Private => unmanaged(BridgeRole::None, Some(MacvtapMode::Private), None),
            ForwardMode::Vepa => unmanaged(BridgeRole::None, Some(MacvtapMode::Vepa), None),
            ForwardMode::Passthrough => {
                unmanaged(BridgeRole::None, Some(MacvtapMode::Passthrough), None)
            }
            // Only vfio: legacy KVM assignment ('kvm') left Linux in 4.12.
            ForwardMode::Hostdev
                if net
                    .forward
                    .as_ref()
                    .and_then(|f| f.driver.as_ref())
                    .and_then(|d| d.name.as_deref())
                    .is_some_and(|n| n != "vfio") =>
            {
                unmanaged(
                    BridgeRole::None,
                    None,
                    Some(
                        "with a <driver> other than 'vfio' (legacy KVM device assignment is gone from Linux)",
                    ),
                )
            }
            ForwardMode::Hostdev => unmanaged(BridgeRole::None, None, None),
        }
    }

    /// kvnet creates and owns the network's bridge.
    pub fn owns_bridge(&self) -> bool {
        self.bridge == BridgeRole::Managed
    }
}

impl Network {
    /// This network's [`Profile`].
    pub fn profile(&self) -> Profile {
        Profile::of(self)
    }

    /// Features accepted and kept in the XML that kvnet does not apply, each as
    /// "<element> (what it would do)", e.g. for "X is accepted but not applied".
    pub fn not_applied(&self) -> Vec<String> {
        let mut out = Vec::new();
        // kvnet's DNS and DHCP servers apply the options the model translates; every
        // other one is named, and one kvnet cannot read or apply in its form says why.
        let kept: Vec<String> = self
            .dnsmasq()
            .into_iter()
            .filter_map(|o| match o {
                crate::DnsmasqOption::Other(n) => Some(n),
                crate::DnsmasqOption::Invalid { option, why }
                | crate::DnsmasqOption::Unsupported { option, why } => {
                    Some(format!("{option} ({why})"))
                }
                _ => None,
            })
            .collect();
        if !kept.is_empty() {
            out.push(format!(
                "<dnsmasq:options> {} (kvnet does not run dnsmasq)",
                kept.join(", ")
            ));
        }

        if let Some(f) = &self.forward {
            // A macvtap pool takes the VFs' netdevs, a hostdev pool the VFs; a passthrough
            // network's PCI addresses would need their netdevs, which libvirt finds
            // through the devices' drivers.
            if !f.addresses.is_empty() && !self.profile().hostdev {
                out.push(
                    "<forward><address> (PCI device pool of a passthrough network)".to_string(),
                );
            }
        }
        if self.virtualport.is_some() || self.portgroups.iter().any(|p| p.virtualport.is_some()) {
            out.push(
                "<virtualport> (Open vSwitch / 802.1Qbg / 802.1Qbh / midonet port profile)"
                    .to_string(),
            );
        }
        // On a bridge, kvnet's VLAN filtering carries the network's own <vlan>.
        if self.vlan.is_some() && self.profile().bridge == BridgeRole::None {
            out.push("<vlan> (VLAN tagging of a direct or hostdev network's devices)".to_string());
        }
        // libvirt acts on it for macvtap only, following qemu's rx-filter events (QMP),
        // which kvnet does not see; on a bridge it means nothing, there as here.
        if self.profile().macvtap.is_some()
            && (self.trust_guest_rx_filters == Some(true)
                || self
                    .portgroups
                    .iter()
                    .any(|p| p.trust_guest_rx_filters == Some(true)))
        {
            out.push(
                "trustGuestRxFilters (a guest's MAC and multicast changes applied to its macvtap)"
                    .to_string(),
            );
        }
        // On a bridge, a portgroup's <vlan> is its ports' VLANs (kvnetd's ports::vlan).
        if self.portgroups.iter().any(|p| p.vlan.is_some())
            && self.profile().bridge == BridgeRole::None
        {
            out.push(
                "<portgroup><vlan> (VLAN tagging of a direct or hostdev network's devices)"
                    .to_string(),
            );
        }
        // kvnetd shapes a bridge and its ports, and a direct network's macvtaps (its qos
        // module); a hostdev network's VFs belong to the guests.
        let profile = self.profile();
        if profile.hostdev
            && (self.bandwidth.is_some() || self.portgroups.iter().any(|p| p.bandwidth.is_some()))
        {
            out.push(
                "<bandwidth> (traffic shaping of a hostdev network's virtual functions)"
                    .to_string(),
            );
        }
        if profile.macvtap.is_some() {
            // A port takes its own rates or its portgroup's, never the network's; with
            // no bridge libvirt applies the network's nowhere either.
            if self.bandwidth.is_some() {
                out.push(
                    "<bandwidth> (network-wide shaping of a direct network, which has no bridge to shape)"
                        .to_string(),
                );
            }
            // A floor is a class under a bridge's HTB (libvirt: nat, route, open and
            // isolated networks only).
            let floor = |b: &Option<crate::Bandwidth>| {
                b.as_ref()
                    .and_then(|b| b.inbound.as_ref())
                    .is_some_and(|r| r.floor.is_some())
            };
            if self.portgroups.iter().any(|p| floor(&p.bandwidth)) {
                out.push(
                    "<portgroup><bandwidth><inbound floor> (guaranteed rate of a direct network's ports, which needs a bridge)"
                        .to_string(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(xml: &str) -> Network {
        Network::from_xml(xml).unwrap()
    }

    fn with_forward(fwd: &str) -> Network {
        net(&format!(
            "<network><name>n</name>{fwd}<bridge name='br0'/>{ip}</network>",
            ip = if fwd.contains("bridge") {
                ""
            } else {
                "<ip address='10.0.0.1' prefix='24'/>"
            }
        ))
    }

    #[test]
    fn every_mode_has_a_row() {
        // (forward element, bridge, forwarding, firewall, services, router, supported)
        let rows = [
            (
                "",
                BridgeRole::Managed,
                false,
                FirewallRole::Isolated,
                true,
                false,
                true,
            ),
            (
                "<forward mode='nat'/>",
                BridgeRole::Managed,
                true,
                FirewallRole::Nat,
                true,
                true,
                true,
            ),
            (
                "<forward mode='route'/>",
                BridgeRole::Managed,
                true,
                FirewallRole::Route,
                true,
                true,
                true,
            ),
            (
                "<forward mode='open'/>",
                BridgeRole::Managed,
                true,
                FirewallRole::None,
                true,
                true,
                true,
            ),
            (
                "<forward mode='bridge'/>",
                BridgeRole::Host,
                false,
                FirewallRole::None,
                false,
                false,
                true,
            ),
        ];
        for (fwd, bridge, forwarding, firewall, services, router, supported) in rows {
            let p = with_forward(fwd).profile();
            assert_eq!(p.bridge, bridge, "{fwd}");
            assert_eq!(p.forwarding, forwarding, "{fwd}");
            assert_eq!(p.firewall, firewall, "{fwd}");
            assert_eq!(p.guest_services, services, "{fwd}");
            assert_eq!(p.guests.default_router, router, "{fwd}");
            assert_eq!(p.guests.host_resolvers, router, "{fwd}");
            assert_eq!(p.unsupported.is_none(), supported, "{fwd}");
            assert_eq!(p.owns_bridge(), bridge == BridgeRole::Managed);
        }
    }

    #[test]
    fn macvtap_modes_have_no_bridge_nor_services() {
        for (xml, mode) in [
            (
                "<network><name>m</name><forward mode='bridge'><interface dev='eth1'/></forward></network>",
                MacvtapMode::Bridge,
            ),
            (
                "<network><name>m</name><forward mode='private' dev='eth1'/></network>",
                MacvtapMode::Private,
            ),
            (
                "<network><name>m</name><forward mode='vepa' dev='eth1'/></network>",
                MacvtapMode::Vepa,
            ),
            (
                "<network><name>m</name><forward mode='passthrough' dev='eth1'/></network>",
                MacvtapMode::Passthrough,
            ),
        ] {
            let p = net(xml).profile();
            assert_eq!(p.bridge, BridgeRole::None);
            assert!(!p.guest_services && p.firewall == FirewallRole::None && !p.forwarding);
            assert_eq!(p.macvtap, Some(mode), "{xml}");
            assert_eq!(p.unsupported, None, "{xml}");
        }
        assert_eq!(MacvtapMode::Passthrough.as_str(), "passthru");
        assert_eq!(
            with_forward("<forward mode='bridge'/>").profile().macvtap,
            None
        );
    }

    #[test]
    fn hostdev_takes_vfio_only() {
        let p = net(
            "<network><name>h</name><forward mode='hostdev' managed='yes'><pf dev='eth3'/></forward></network>",
        )
        .profile();
        assert_eq!(
            (p.bridge, p.macvtap, p.hostdev),
            (BridgeRole::None, None, true)
        );
        assert!(!p.guest_services && p.unsupported.is_none());
        let p = net(
            "<network><name>h</name><forward mode='hostdev'><driver name='kvm'/><pf dev='eth3'/></forward></network>",
        )
        .profile();
        assert_eq!(
            p.unsupported.as_deref(),
            Some(
                "network 'h': forward mode 'hostdev' with a <driver> other than 'vfio' (legacy KVM device assignment is gone from Linux) is not supported by kvnet yet"
            )
        );
    }

    #[test]
    fn ipv6_dhcp_and_router_advertisements_are_applied() {
        let n = net(
            "<network><name>v6</name><forward mode='nat'/><bridge name='v6br'/>\
             <ip family='ipv6' address='fd00::1' prefix='64'>\
             <dhcp><range start='fd00::10' end='fd00::20'/></dhcp></ip></network>",
        );
        assert_eq!(n.not_applied(), Vec::<String>::new());
    }
}
