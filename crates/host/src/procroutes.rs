//! The routing table as `/proc/net/route` and `/proc/net/ipv6_route` show it.
//!
//! Checking a new network's subnets against the host's routes needs every route, but
//! only its prefix and device. A netlink dump builds full route messages and then needs a
//! link lookup per device; these text tables carry the device name and cost a fraction
//! of that, which keeps a start's checks flat as the number of networks grows.

use crate::HostError;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub dest: IpNet,
    pub dev: String,
}

/// IPv4 main-table and IPv6 routes of the calling thread's network namespace.
pub fn read() -> Result<Vec<HostRoute>, HostError> {
    let v4 = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| HostError::new("read /proc/net/route", e))?;
    let mut routes = parse_v4(&v4);
    // Without IPv6 in the kernel the file is missing, which is no error.
    if let Ok(v6) = std::fs::read_to_string("/proc/net/ipv6_route") {
        routes.extend(parse_v6(&v6));
    }
    Ok(routes)
}

/// `Iface Destination Gateway Flags RefCnt Use Metric Mask …`, addresses as the kernel's
/// in-memory (network order) u32 printed in hex.
pub fn parse_v4(text: &str) -> Vec<HostRoute> {
    let addr = |h: &str| {
        u32::from_str_radix(h, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dev, dest, mask) = (f.first()?, addr(f.get(1)?)?, addr(f.get(7)?)?);
            let prefix = u32::from(mask).count_ones() as u8;
            Some(HostRoute {
                dest: IpNet::new(dest.into(), prefix).ok()?.trunc(),
                dev: dev.to_string(),
            })
        })
        .collect()
}

/// `dest plen src splen nexthop metric refcnt use flags dev`, addresses as 32 hex digits.
pub fn parse_v6(text: &str) -> Vec<HostRoute> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = f.first()?;
            if hex.len() != 32 {
                return None;
            }
            let dest = Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            Some(HostRoute {
                dest: IpNet::new(dest.into(), prefix).ok()?.trunc(),
                dev: f.get(9)?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_routes() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    virbr0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_v4(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dest, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(
            r[1],
            HostRoute {
                dest: "192.168.122.0/24".parse().unwrap(),
                dev: "virbr0".into()
            }
        );
    }

    #[test]
    fn parses_ipv6_routes() {
        let text = "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 \
                    00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1\n\
                    00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                    00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                    garbage\n";
        let r = parse_v6(text);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            HostRoute {
                dest: "2001:db8::/64".parse().unwrap(),
                dev: "eth1".into()
            }
        );
        assert_eq!(r[1].dest.prefix_len(), 0);
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse_v4("header\nshort line\n").is_empty());
        assert!(parse_v6("zz 40\n").is_empty());
    }
}
