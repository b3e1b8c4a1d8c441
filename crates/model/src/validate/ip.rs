//! Checks on addressing: each `<ip>` with its DHCP ranges, hosts and leases, the
//! static `<route>`s, and the network and broadcast addresses a subnet reserves.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{R, dns_name, fail, family_of, non_empty};
use crate::ModelError;
use crate::types::*;

pub(crate) fn ipv4_broadcast(net: &ipnet::IpNet) -> Option<IpAddr> {
    match net {
        ipnet::IpNet::V4(n) if n.prefix_len() < 31 => Some(IpAddr::V4(n.broadcast())),
        _ => None,
    }
}

/// Network address for subnets where it is not a usable host (not /31, /32, /127, /128).
pub(crate) fn reserved_network_addr(net: &ipnet::IpNet) -> Option<IpAddr> {
    let usable_all = match net {
        ipnet::IpNet::V4(n) => n.prefix_len() >= 31,
        ipnet::IpNet::V6(n) => n.prefix_len() >= 127,
    };
    if usable_all {
        None
    } else {
        Some(net.network())
    }
}

impl Network {
    pub(super) fn check_ips(&self) -> R {
        let mut dhcp4 = false;
        let mut dhcp6 = false;
        for (i, ip) in self.ips.iter().enumerate() {
            let p = format!("network/ip[{}]", i + 1);
            check_ip(&p, ip)?;
            if ip.has_dhcp() {
                let seen = if ip.is_ipv6() { &mut dhcp6 } else { &mut dhcp4 };
                if *seen {
                    let fam = if ip.is_ipv6() { "IPv6" } else { "IPv4" };
                    return fail(
                        format!("{p}/dhcp"),
                        format!(
                            "multiple {fam} dhcp sections found -- dhcp is supported only for a single {fam} address on each network"
                        ),
                    );
                }
                *seen = true;
            }
        }
        Ok(())
    }

    pub(super) fn check_routes(&self) -> R {
        for (i, r) in self.routes.iter().enumerate() {
            let p = format!("network/route[{}]", i + 1);
            let v6 = check_family(&p, "route", r.family.as_deref(), r.address)?;
            if r.netmask.is_some() && r.prefix.is_some() {
                return fail(p, "route cannot have both a prefix and a netmask");
            }
            if v6 && r.netmask.is_some() {
                return fail(p, "netmask is not allowed for an IPv6 route, use prefix");
            }
            if let Some(m) = r.netmask
                && netmask_bits(m).is_none()
            {
                return fail(p, format!("invalid netmask '{m}'"));
            }
            let max = if v6 { 128 } else { 32 };
            if let Some(pr) = r.prefix
                && pr > max
            {
                return fail(
                    p,
                    format!("invalid prefix {pr} for an {} route", family_of(r.address)),
                );
            }
            if r.gateway.is_ipv6() != v6 {
                return fail(
                    p,
                    format!(
                        "gateway {} is not an {} address",
                        r.gateway,
                        family_of(r.address)
                    ),
                );
            }
            if r.metric == Some(0) {
                return fail(p, "route metric must be greater than 0");
            }
            let dest = r.destination();
            if dest.addr() != r.address {
                return fail(
                    p,
                    format!(
                        "route address {} is not a network address for prefix {}",
                        r.address,
                        r.prefix_len()
                    ),
                );
            }
            let reachable = self
                .ips
                .iter()
                .any(|ip| ip.is_ipv6() == v6 && ip.network().contains(&r.gateway));
            if !reachable {
                return fail(
                    p,
                    format!(
                        "unreachable static route gateway '{}': not in any of the network's subnets",
                        r.gateway
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Returns whether the address is IPv6, after checking it agrees with `family`.
fn check_family(
    p: &str,
    what: &str,
    family: Option<&str>,
    addr: IpAddr,
) -> Result<bool, ModelError> {
    match family {
        None => {
            if addr.is_ipv6() {
                return Err(ModelError::new(
                    p,
                    format!(
                        "no family specified for non-IPv4 address '{addr}' in {what}; add family='ipv6'"
                    ),
                ));
            }
            Ok(false)
        }
        Some("ipv4") => {
            if addr.is_ipv6() {
                return Err(ModelError::new(
                    p,
                    format!("family 'ipv4' specified for non-IPv4 address '{addr}'"),
                ));
            }
            Ok(false)
        }
        Some("ipv6") => {
            if addr.is_ipv4() {
                return Err(ModelError::new(
                    p,
                    format!("family 'ipv6' specified for non-IPv6 address '{addr}'"),
                ));
            }
            Ok(true)
        }
        Some(f) => Err(ModelError::new(
            p,
            format!("unrecognized family '{f}', expected 'ipv4' or 'ipv6'"),
        )),
    }
}

fn check_ip(p: &str, ip: &IpDef) -> R {
    let v6 = check_family(p, "<ip>", ip.family.as_deref(), ip.address)?;
    if ip.address.is_unspecified() || ip.address.is_multicast() {
        return fail(
            p,
            format!("{} is not a usable interface address", ip.address),
        );
    }
    if ip.netmask.is_some() && ip.prefix.is_some() {
        return fail(p, "an <ip> cannot have both a prefix and a netmask");
    }
    if v6 && ip.netmask.is_some() {
        return fail(
            p,
            format!(
                "netmask not supported for IPv6 address '{}', use prefix",
                ip.address
            ),
        );
    }
    if let Some(m) = ip.netmask {
        match netmask_bits(m) {
            None => return fail(p, format!("invalid netmask '{m}': not contiguous")),
            Some(0) => return fail(p, format!("invalid netmask '{m}'")),
            Some(_) => {}
        }
    }
    let max = if v6 { 128 } else { 32 };
    match ip.prefix {
        Some(0) => return fail(p, "prefix must be greater than 0"),
        Some(x) if x > max => {
            return fail(p, format!("invalid {} prefix {x}", family_of(ip.address)));
        }
        _ => {}
    }
    if ip.prefix.is_none() && ip.netmask.is_none() && natural_prefix(ip.address).is_none() {
        return fail(
            p,
            format!(
                "cannot determine a default prefix for {}; give prefix or netmask",
                ip.address
            ),
        );
    }
    let net = ip.network();
    if reserved_network_addr(&net) == Some(ip.address) {
        return fail(
            p,
            format!("address {} is the network address of {net}", ip.address),
        );
    }
    if ipv4_broadcast(&net) == Some(ip.address) {
        return fail(
            p,
            format!("address {} is the broadcast address of {net}", ip.address),
        );
    }
    if let Some(t) = &ip.tftp_root {
        if v6 {
            return fail(
                format!("{p}/tftp"),
                "<tftp> is only supported on an IPv4 address",
            );
        }
        non_empty(&format!("{p}/tftp"), "tftp root", t)?;
    }
    let Some(d) = &ip.dhcp else { return Ok(()) };
    let dp = format!("{p}/dhcp");
    for (i, r) in d.ranges.iter().enumerate() {
        check_range(&format!("{dp}/range[{}]", i + 1), ip, &net, r)?;
    }
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for (i, h) in d.hosts.iter().enumerate() {
        let hp = format!("{dp}/host[{}]", i + 1);
        check_dhcp_host(&hp, ip, &net, h)?;
        if let Some(m) = h.mac
            && !macs.insert(m)
        {
            return fail(hp, format!("duplicate dhcp host mac {m}"));
        }
        if let Some(a) = h.ip
            && !ips.insert(a)
        {
            return fail(hp, format!("duplicate dhcp host ip {a}"));
        }
        if let Some(n) = &h.name
            && !names.insert(n.to_ascii_lowercase())
        {
            return fail(hp, format!("duplicate dhcp host name '{n}'"));
        }
        if let Some(x) = &h.id
            && !ids.insert(x.as_str())
        {
            return fail(hp, format!("duplicate dhcp host id '{x}'"));
        }
    }
    if let Some(b) = &d.bootp {
        let bp = format!("{dp}/bootp");
        if v6 {
            return fail(bp, "<bootp> is only supported on an IPv4 address");
        }
        non_empty(&bp, "bootp file", &b.file)?;
        if b.file.contains(',') {
            return fail(bp, format!("bootp file '{}' must not contain ','", b.file));
        }
        if let Some(s) = b.server
            && s.is_ipv6()
        {
            return fail(bp, format!("bootp server {s} is not an IPv4 address"));
        }
    }
    Ok(())
}

fn check_lease(p: &str, l: &Lease) -> R {
    if let Some(s) = l.seconds()
        && s < 120
    {
        return fail(
            format!("{p}/lease"),
            "the minimum lease time is 2 minutes (120 seconds), or 0 for infinite",
        );
    }
    Ok(())
}

fn check_range(p: &str, ip: &IpDef, net: &ipnet::IpNet, r: &DhcpRange) -> R {
    for (what, a) in [("start", r.start), ("end", r.end)] {
        if a.is_ipv6() != ip.is_ipv6() {
            return fail(
                p,
                format!(
                    "range {what} {a} is not an {} address like the network's",
                    family_of(ip.address)
                ),
            );
        }
        if !net.contains(&a) {
            return fail(p, format!("range {what} {a} is outside the network {net}"));
        }
    }
    if r.start > r.end {
        return fail(p, format!("range start {} is after end {}", r.start, r.end));
    }
    let covers = |a: IpAddr| r.start <= a && a <= r.end;
    if let Some(n) = reserved_network_addr(net)
        && covers(n)
    {
        return fail(
            p,
            format!(
                "range {} - {} includes the network address {n}",
                r.start, r.end
            ),
        );
    }
    if let Some(b) = ipv4_broadcast(net)
        && covers(b)
    {
        return fail(
            p,
            format!(
                "range {} - {} includes the broadcast address {b}",
                r.start, r.end
            ),
        );
    }
    if covers(ip.address) {
        return fail(
            p,
            format!(
                "range {} - {} includes the network's own address {}",
                r.start, r.end, ip.address
            ),
        );
    }
    if let Some(l) = &r.lease {
        check_lease(p, l)?;
    }
    Ok(())
}

pub(crate) fn check_dhcp_host(p: &str, ip: &IpDef, net: &ipnet::IpNet, h: &DhcpHost) -> R {
    let v6 = ip.is_ipv6();
    if let Some(m) = h.mac {
        if v6 {
            return fail(
                p,
                format!("invalid to specify MAC address '{m}' in an IPv6 static host definition"),
            );
        }
        if m.is_multicast() {
            return fail(
                p,
                format!("expected unicast mac address, found multicast '{m}'"),
            );
        }
    }
    if v6 {
        if h.id.is_none() && h.name.is_none() {
            return fail(
                p,
                "static host definition in an IPv6 network must have id or name attribute",
            );
        }
    } else if h.mac.is_none() && h.name.is_none() {
        return fail(
            p,
            "static host definition in an IPv4 network must have mac or name attribute",
        );
    }
    if let Some(id) = &h.id {
        non_empty(p, "host id", id)?;
        if let Some(c) = id.chars().find(|c| c.is_whitespace() || *c == ',') {
            return fail(
                p,
                format!("host id '{id}' contains the invalid character {c:?}"),
            );
        }
    }
    if let Some(n) = &h.name {
        dns_name(p, "host name", n)?;
    }
    if let Some(a) = h.ip {
        if a.is_ipv6() != v6 {
            return fail(
                p,
                format!(
                    "host ip {a} is not an {} address like the network's",
                    family_of(ip.address)
                ),
            );
        }
        if !net.contains(&a) {
            return fail(p, format!("host ip {a} is outside the network {net}"));
        }
        if a == ip.address
            || reserved_network_addr(net) == Some(a)
            || ipv4_broadcast(net) == Some(a)
        {
            return fail(
                p,
                format!("host ip {a} is the network's own, network or broadcast address"),
            );
        }
    }
    if let Some(l) = &h.lease {
        check_lease(p, l)?;
    }
    Ok(())
}
