//! Fixtures and helpers shared by the integration tests.
#![allow(dead_code)]

use kvnet_firewall::{FwMode, FwNetwork};

fn subnets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn base(name: &str, bridge: &str, mode: FwMode, nets: &[&str]) -> FwNetwork {
    FwNetwork {
        name: name.into(),
        bridge: bridge.into(),
        mode,
        forward_dev: None,
        subnets: subnets(nets),
        nat_ipv6: false,
        nat_addresses: None,
        nat_ports: None,
        ipv6: nets.iter().any(|n| n.contains(':')),
        dhcpv4: true,
        dhcpv6: false,
        dns: true,
        tftp: false,
    }
}

/// libvirt's `default` network.
pub fn nat_default() -> FwNetwork {
    base("default", "virbr0", FwMode::Nat, &["192.168.122.0/24"])
}

pub fn nat_forward_dev() -> FwNetwork {
    FwNetwork {
        forward_dev: Some("eth1".into()),
        ..base("natdev", "virbr1", FwMode::Nat, &["192.168.100.0/24"])
    }
}

/// `<nat><address start end/><port start end/></nat>`, no DHCP.
pub fn nat_address_port() -> FwNetwork {
    FwNetwork {
        nat_addresses: Some((
            "203.0.113.10".parse().unwrap(),
            "203.0.113.20".parse().unwrap(),
        )),
        nat_ports: Some((2000, 3000)),
        dhcpv4: false,
        ..base("natsnat", "virbr2", FwMode::Nat, &["192.168.130.0/24"])
    }
}

/// NAT network with IPv6 but without `<nat ipv6='yes'>`: v6 is routed.
pub fn nat_ipv6_routed() -> FwNetwork {
    FwNetwork {
        dhcpv6: true,
        ..base(
            "nat6route",
            "virbr3",
            FwMode::Nat,
            &["192.168.140.0/24", "2001:db8:ca2:2::/64"],
        )
    }
}

/// NAT network with `<nat ipv6='yes'>` and a port range.
pub fn nat_ipv6_masq() -> FwNetwork {
    FwNetwork {
        nat_ipv6: true,
        nat_ports: Some((500, 1000)),
        dhcpv6: true,
        ..base(
            "nat6masq",
            "virbr4",
            FwMode::Nat,
            &["192.168.141.0/24", "fd00:141::/64"],
        )
    }
}

/// libvirt-live's `routed` network: forward dev wan0, v4 + v6.
pub fn route_v4v6() -> FwNetwork {
    FwNetwork {
        forward_dev: Some("wan0".into()),
        ..base(
            "routed",
            "virbr5",
            FwMode::Route,
            &["192.168.150.0/24", "2001:db8:ca2:3::/64"],
        )
    }
}

pub fn isolated() -> FwNetwork {
    FwNetwork {
        tftp: true,
        ..base(
            "isolated",
            "virbr6",
            FwMode::Isolated,
            &["192.168.152.0/24"],
        )
    }
}

/// A bridge name that needs escaping, with two v4 subnets.
pub fn nat_odd_bridge() -> FwNetwork {
    base(
        "odd \"name\"\nline",
        "br-lan.10",
        FwMode::Nat,
        &["10.20.0.0/24", "10.21.0.0/24"],
    )
}

/// Every fixture, in snapshot order.
pub fn all() -> Vec<(&'static str, FwNetwork)> {
    vec![
        ("nat_default", nat_default()),
        ("nat_forward_dev", nat_forward_dev()),
        ("nat_address_port", nat_address_port()),
        ("nat_ipv6_routed", nat_ipv6_routed()),
        ("nat_ipv6_masq", nat_ipv6_masq()),
        ("route_v4v6", route_v4v6()),
        ("isolated", isolated()),
        ("nat_odd_bridge", nat_odd_bridge()),
    ]
}

/// A NAT network number `i` (for scale tests): bridge kvs<i>, 10.<i/256>.<i%256>.0/24.
pub fn numbered(i: u32) -> FwNetwork {
    let net = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
    base(&format!("net{i}"), &format!("kvs{i}"), FwMode::Nat, &[&net])
}

/// `nft -f -` with `script` inside the named network namespace; nft's stderr on failure.
#[allow(dead_code)] // not every test file that includes this module runs nft
pub fn nft_script_in(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
