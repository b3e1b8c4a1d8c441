//! Whether a host process already listens on a port a forward takes: the forward still
//! wins for packets from outside (DNAT comes before the socket lookup), so the process
//! stops getting them; kvnet says so when the forward is added. Read from
//! /proc/net/{tcp,tcp6,udp,udp6}; the parsing is pure.

use std::net::IpAddr;

/// Local ports in `table` (a /proc/net/tcp-style text) bound in `state` (0A: TCP
/// LISTEN, 07: an unconnected UDP socket), with their local address (None: any).
pub fn bound_ports(table: &str, state: &str) -> Vec<(Option<IpAddr>, u16)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let st = cols.nth(1)?;
            if st != state {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some((proc_addr(addr), port))
        })
        .collect()
}

/// /proc's hex address (32-bit words in host order); None for the wildcard.
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let addr = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    (!addr.is_unspecified()).then_some(addr)
}

/// The first port of `ports` a host socket of `proto` ("tcp"/"udp") is bound to on
/// `address` (or on any address when None), if any.
pub fn first_taken(proto: &str, address: Option<IpAddr>, ports: (u16, u16)) -> Option<u16> {
    let state = if proto == "tcp" { "0A" } else { "07" };
    ["", "6"]
        .iter()
        .filter_map(|v| std::fs::read_to_string(format!("/proc/net/{proto}{v}")).ok())
        .flat_map(|t| bound_ports(&t, state))
        .filter(|(a, p)| {
            (ports.0..=ports.1).contains(p) && (a.is_none() || address.is_none() || *a == address)
        })
        .map(|(_, p)| p)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_procs_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        let got = bound_ports(tcp, "0A");
        assert_eq!(
            got,
            vec![(None, 8080), (Some("127.0.0.1".parse().unwrap()), 53)]
        );
        let tcp6 = "header\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(
            bound_ports(tcp6, "0A"),
            vec![(Some("::1".parse().unwrap()), 22)]
        );
        assert!(bound_ports("header\n garbage\n", "0A").is_empty());
    }
}
