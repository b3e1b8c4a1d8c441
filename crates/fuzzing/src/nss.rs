//! The NSS module's index reader (crates/nss), which runs inside every program on the
//! host that resolves a name. The input is an index file as it sits at
//! /run/kvnet/nss-hosts: whole, torn, hostile or garbage. Besides never panicking,
//! every answer of the bounded binary search must be an address the file holds for
//! that name, at most `MAX_ADDRS` of them, and of the family asked for.

use nss_kvnet::index::{self, Family, MAX_ADDRS};
use std::net::IpAddr;

pub fn run(data: &[u8]) {
    index::fuzz_one(data);
    let parsed = index::parse(data);
    let names = data
        .split(|&b| b == b'\n' || b == b' ')
        .take(16)
        .filter_map(index::normalize);
    for name in names {
        for fam in [Family::V4, Family::V6, Family::Any] {
            let got = index::lookup(data, &name, fam);
            assert!(got.len() <= MAX_ADDRS, "{name}: {} addresses", got.len());
            let family_ok = |ip: &IpAddr| match fam {
                Family::V4 => ip.is_ipv4(),
                Family::V6 => ip.is_ipv6(),
                Family::Any => true,
            };
            assert!(got.iter().all(family_ok), "{name} {fam:?}: {got:?}");
            // A well-formed index answers exactly what it holds for the name.
            if let Ok(all) = &parsed {
                let mut want: Vec<IpAddr> = Vec::new();
                for (n, ip) in all {
                    if *n == name && family_ok(ip) && !want.contains(ip) {
                        want.push(*ip);
                    }
                }
                want.truncate(MAX_ADDRS);
                assert_eq!(got, want, "{name} {fam:?}");
            }
        }
    }
}
