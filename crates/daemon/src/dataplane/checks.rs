//! Pure decisions of the dataplane: what a network needs from the host (its bridge,
//! addresses, sysctls), and whether it may start next to what is already there. No I/O:
//! the caller passes in what it read. What kvnet owns per forward mode comes from the
//! mode profile (`kvnet_model::Profile`).

use ipnet::IpNet;
use kvnet_host::procroutes::HostRoute;
use kvnet_host::{BridgeSpec, Link};
use kvnet_model::{BridgeRole, Network};
use std::net::Ipv4Addr;

/// Host-wide sysctls a network needs while it runs.
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
pub const IP6_FORWARD: &str = "net/ipv6/conf/all/forwarding";

fn has_ipv6(net: &Network) -> bool {
    net.ips.iter().any(|ip| ip.is_ipv6())
}

/// Kernel STP cannot forward on a new port before 2 × its 2 s minimum forward delay, so
/// a guest's first DHCP packets would be lost. With libvirt's default `delay='0'` the
/// admin asked for no delay: kvnet keeps `stp='on'` in the definition and runs the bridge
/// without kernel STP (guests are leaf ports). A delay of 2 s or more is an explicit
/// request and gets real kernel STP with that delay. See docs/stp.md.
pub fn stp_policy(net: &Network) -> (bool, u32) {
    let (stp, delay) = net
        .bridge
        .as_ref()
        .map(|b| (b.stp.unwrap_or(true), b.delay.unwrap_or(0)))
        .unwrap_or((true, 0));
    if stp && delay >= 2 {
        (true, delay * 100)
    } else {
        (false, delay * 100)
    }
}

pub fn bridge_spec(net: &Network) -> Option<BridgeSpec> {
    let name = net.bridge_name()?.to_string();
    let (stp, forward_delay_cs) = stp_policy(net);
    Some(BridgeSpec {
        name,
        mac: net.mac.as_ref().map(|m| m.0),
        mtu: net.mtu,
        stp,
        forward_delay_cs,
    })
}

/// The addresses kvnet puts on the bridge, with their prefix.
pub fn bridge_addresses(net: &Network) -> Vec<IpNet> {
    net.ips
        .iter()
        .filter_map(|ip| IpNet::new(ip.address, ip.prefix_len()).ok())
        .collect()
}

/// The host-wide forwarding sysctls `net` needs while it runs.
pub fn forwarding_sysctls(net: &Network) -> Vec<&'static str> {
    if !net.profile().forwarding {
        return Vec::new();
    }
    let mut v = vec![IP_FORWARD];
    if has_ipv6(net) {
        v.push(IP6_FORWARD);
    }
    v
}

/// Per-bridge sysctls as libvirt sets them: no autoconfiguration from guests' RAs, and no
/// IPv6 at all on a bridge whose network has no IPv6 address.
pub fn bridge_sysctls(net: &Network, bridge: &str) -> Vec<(String, &'static str)> {
    let conf = format!("net/ipv6/conf/{bridge}");
    vec![
        (
            format!("{conf}/disable_ipv6"),
            if has_ipv6(net) { "0" } else { "1" },
        ),
        (format!("{conf}/accept_ra"), "0"),
        (format!("{conf}/autoconf"), "0"),
    ]
}

/// Checks made at start against the other active networks and the host, as libvirt
/// does (and stricter: any overlap, not only an identical route, is a conflict).
/// `bridge_link` is the host link named like the network's bridge, if there is one.
pub fn check_start(
    net: &Network,
    active: &[&Network],
    routes: &[HostRoute],
    bridge_link: Option<&Link>,
) -> Result<(), String> {
    let subnets: Vec<IpNet> = net.ips.iter().map(|ip| ip.network()).collect();
    let role = net.profile().bridge;
    let owns_bridge = role == BridgeRole::Managed;
    for other in active.iter().filter(|o| o.name != net.name) {
        for ip in &other.ips {
            let theirs = ip.network();
            if let Some(mine) = subnets.iter().find(|s| overlaps(s, &theirs)) {
                return Err(format!(
                    "subnet {mine} of network '{}' overlaps {theirs} of active network '{}'",
                    net.name, other.name
                ));
            }
        }
        if owns_bridge && net.bridge_name().is_some() && net.bridge_name() == other.bridge_name() {
            return Err(format!(
                "bridge name '{}' is already used by active network '{}'",
                net.bridge_name().unwrap_or_default(),
                other.name
            ));
        }
    }
    for r in routes {
        // The default route and link-local prefixes cover everything; only specific
        // routes say a subnet is in use.
        if r.dest.prefix_len() == 0 || is_link_local(&r.dest) || r.dev == "lo" {
            continue;
        }
        if let Some(mine) = subnets.iter().find(|s| overlaps(s, &r.dest)) {
            return Err(format!(
                "subnet {mine} of network '{}' is already in use on the host: route {} dev {}",
                net.name, r.dest, r.dev
            ));
        }
    }
    let br = net.bridge_name();
    if owns_bridge && let (Some(br), Some(l)) = (br, bridge_link) {
        return Err(if l.kind.as_deref() == Some("bridge") {
            format!("bridge '{br}' already exists on the host and is not managed by kvnet")
        } else {
            format!(
                "bridge name '{br}' is taken by a host link of type {}",
                l.kind.as_deref().unwrap_or("unknown")
            )
        });
    }
    if role == BridgeRole::Host
        && let Some(br) = br
    {
        match bridge_link {
            Some(l) if l.kind.as_deref() == Some("bridge") => {}
            Some(l) => {
                return Err(format!(
                    "'{br}' is a {} link, not a bridge",
                    l.kind.as_deref().unwrap_or("non-bridge")
                ));
            }
            None => return Err(format!("host bridge '{br}' does not exist")),
        }
    }
    Ok(())
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn is_link_local(n: &IpNet) -> bool {
    match n {
        IpNet::V4(v) => v.addr().is_link_local(),
        IpNet::V6(v) => (v.addr().segments()[0] & 0xffc0) == 0xfe80 || v.addr().is_multicast(),
    }
}

/// The built-in `default` network: 192.168.122.0/24 unless the host already routes it or
/// another defined network uses it; then the next free 192.168.N.0/24 (as libvirt's
/// packaging does).
pub fn default_network_xml(routes: &[HostRoute], defined: &[&Network]) -> Option<String> {
    let used = |n: u8| {
        let net = IpNet::new(Ipv4Addr::new(192, 168, n, 0).into(), 24).expect("valid prefix");
        routes
            .iter()
            .any(|r| r.dest.prefix_len() > 0 && overlaps(&r.dest, &net))
            || defined
                .iter()
                .any(|d| d.ips.iter().any(|ip| overlaps(&ip.network(), &net)))
    };
    let n = (122..=254).find(|&n| !used(n))?;
    Some(format!(
        "<network>\n  <name>default</name>\n  <bridge name='virbr0'/>\n  <forward/>\n  \
         <ip address='192.168.{n}.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
         <range start='192.168.{n}.2' end='192.168.{n}.254'/>\n    </dhcp>\n  </ip>\n</network>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(xml: &str) -> Network {
        Network::from_xml(xml).unwrap()
    }

    fn nat(name: &str, br: &str, third: u8) -> Network {
        net(&format!(
            "<network><name>{name}</name><forward mode='nat'/><bridge name='{br}'/>\
             <ip address='192.168.{third}.1' prefix='24'><dhcp><range start='192.168.{third}.2' end='192.168.{third}.254'/></dhcp></ip></network>"
        ))
    }

    fn route(dest: &str, dev: &str) -> HostRoute {
        HostRoute {
            dest: dest.parse().unwrap(),
            dev: dev.into(),
        }
    }

    fn link(index: u32, name: &str, kind: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            mac: None,
            mtu: 1500,
            up: true,
            master: None,
            loopback: false,
        }
    }

    #[test]
    fn stp_default_runs_without_kernel_stp_and_long_delay_gets_it() {
        assert_eq!(stp_policy(&nat("a", "virbr9", 9)), (false, 0));
        let n = net("<network><name>a</name><bridge name='b0' stp='on' delay='4'/></network>");
        assert_eq!(stp_policy(&n), (true, 400));
        let n = net("<network><name>a</name><bridge name='b0' stp='off' delay='4'/></network>");
        assert_eq!(stp_policy(&n), (false, 400));
    }

    #[test]
    fn sysctls_follow_the_mode() {
        assert_eq!(forwarding_sysctls(&nat("a", "v", 1)), vec![IP_FORWARD]);
        let iso = net(
            "<network><name>i</name><bridge name='v'/><ip address='10.0.0.1' prefix='24'/></network>",
        );
        assert!(forwarding_sysctls(&iso).is_empty());
        assert_eq!(
            bridge_sysctls(&iso, "v")[0],
            ("net/ipv6/conf/v/disable_ipv6".to_string(), "1")
        );
        let r6 = net(
            "<network><name>r</name><forward mode='route'/><bridge name='v'/>\
             <ip family='ipv6' address='2001:db8::1' prefix='64'/></network>",
        );
        assert_eq!(forwarding_sysctls(&r6), vec![IP_FORWARD, IP6_FORWARD]);
        assert_eq!(bridge_sysctls(&r6, "v")[0].1, "0");
    }

    #[test]
    fn overlapping_active_network_is_refused() {
        let a = nat("a", "virbr1", 1);
        let b = nat("b", "virbr2", 1);
        let err = check_start(&b, &[&a], &[], None).unwrap_err();
        assert!(err.contains("overlaps") && err.contains("'a'"), "{err}");
        assert!(check_start(&nat("c", "virbr3", 3), &[&a], &[], None).is_ok());
    }

    #[test]
    fn host_route_conflict_names_the_device() {
        let a = nat("a", "virbr1", 1);
        let err = check_start(&a, &[], &[route("192.168.0.0/16", "eth0")], None).unwrap_err();
        assert!(err.contains("route 192.168.0.0/16 dev eth0"), "{err}");
        let err = check_start(&a, &[], &[route("192.168.1.64/26", "eth0")], None).unwrap_err();
        assert!(
            err.contains("192.168.1.64/26"),
            "a more specific route conflicts: {err}"
        );
        for harmless in [
            route("0.0.0.0/0", "eth0"),
            route("169.254.0.0/16", "eth0"),
            route("192.168.1.1/32", "lo"),
        ] {
            assert!(check_start(&a, &[], &[harmless], None).is_ok());
        }
    }

    #[test]
    fn bridge_name_taken_by_other_link() {
        let a = nat("a", "virbr1", 1);
        let err = check_start(&a, &[], &[], Some(&link(3, "virbr1", "veth"))).unwrap_err();
        assert!(err.contains("type veth"), "{err}");
        let err = check_start(&a, &[], &[], Some(&link(3, "virbr1", "bridge"))).unwrap_err();
        assert!(err.contains("not managed by kvnet"), "{err}");
    }

    #[test]
    fn bridge_mode_needs_an_existing_bridge() {
        let b =
            net("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>");
        let err = check_start(&b, &[], &[], None).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = check_start(&b, &[], &[], Some(&link(2, "br0", "veth"))).unwrap_err();
        assert!(err.contains("not a bridge"), "{err}");
        assert!(check_start(&b, &[], &[], Some(&link(2, "br0", "bridge"))).is_ok());
    }

    #[test]
    fn default_network_moves_off_a_used_subnet() {
        let xml = default_network_xml(&[], &[]).unwrap();
        assert!(xml.contains("192.168.122.1"));
        let d = net(&xml);
        assert_eq!(d.forward_mode(), kvnet_model::ForwardMode::Nat);
        let xml = default_network_xml(&[route("192.168.122.0/24", "eth0")], &[]).unwrap();
        assert!(xml.contains("192.168.123.1") && xml.contains("192.168.123.254"));
        let other = nat("x", "virbr1", 123);
        let xml = default_network_xml(&[route("192.168.122.0/24", "eth0")], &[&other]).unwrap();
        assert!(xml.contains("192.168.124.1"));
    }
}
