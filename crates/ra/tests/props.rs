//! Random bytes never panic the solicitation parser or the engine, and every RA the
//! engine encodes is a well-formed option list.

use kvnet_model::{MacAddr, Network};
use kvnet_ra::*;
use proptest::prelude::*;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

fn config(mtu: Option<u16>, domain: bool, prefix: u8, isolated: bool) -> Config {
    let xml = format!(
        "<network><name>p</name>{}<bridge name='kvp0'/>{}{}\
         <ip family='ipv6' address='fd00:1::1' prefix='{prefix}'/></network>",
        if isolated {
            ""
        } else {
            "<forward mode='nat'/>"
        },
        mtu.map(|m| format!("<mtu size='{m}'/>"))
            .unwrap_or_default(),
        if domain {
            "<domain name='x.example'/>"
        } else {
            ""
        },
    );
    let n = Network::from_xml(&xml).expect("parse");
    Config::from_network(&n, n.profile().guests)
        .expect("advertises")
        .with_source_mac(Some(MacAddr([2, 0, 0, 0, 0, 1])))
}

proptest! {
    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
                                as_rs in any::<bool>(), hop in any::<u8>(),
                                unspecified in any::<bool>()) {
        // Half of them look like solicitations, so the option walk sees random input.
        if as_rs && bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&[133, 0]);
        }
        let _ = parse_solicit(&bytes);
        let from = if unspecified { Ipv6Addr::UNSPECIFIED } else { "fe80::1".parse().unwrap() };
        let t0 = Instant::now();
        let mut e = Engine::new(config(None, true, 64, false), 3, t0);
        let _ = e.on_solicit(t0, from, hop, &bytes);
        let _ = e.poll(t0 + Duration::from_secs(1));
    }

    #[test]
    fn solicitations_with_random_options_parse(
        opts in proptest::collection::vec((any::<u8>(), 1u8..4, any::<u8>()), 0..6)) {
        let mut rs = vec![133, 0, 0, 0, 0, 0, 0, 0];
        for (kind, len, fill) in &opts {
            rs.push(*kind);
            rs.push(*len);
            rs.extend(std::iter::repeat_n(*fill, usize::from(*len) * 8 - 2));
        }
        prop_assert!(parse_solicit(&rs).is_ok());
        // Cut anywhere inside the options: rejected, never a panic.
        if rs.len() > 8 {
            let cut = 8 + (rs.len() - 8) / 2 + 1;
            if cut < rs.len() {
                prop_assert!(parse_solicit(&rs[..cut]).is_err());
            }
        }
    }

    #[test]
    fn encoded_ras_are_well_formed(mtu in proptest::option::of(1000u16..9000),
                                   domain in any::<bool>(), prefix in 16u8..=128,
                                   isolated in any::<bool>(), shutdown in any::<bool>()) {
        let ra = encode_ra(&config(mtu, domain, prefix, isolated), shutdown);
        prop_assert_eq!(ra[0], 134);
        prop_assert_eq!(ra.len() % 8, 0);
        let mut rest = &ra[16..];
        let mut kinds = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[1]) * 8;
            prop_assert!(len > 0 && len <= rest.len());
            kinds.push(rest[0]);
            rest = &rest[len..];
        }
        prop_assert!(kinds.contains(&3) && kinds.contains(&1) && kinds.contains(&25));
        prop_assert_eq!(kinds.contains(&5), mtu.is_some_and(|m| m >= 1280));
        prop_assert_eq!(kinds.contains(&31), domain);
    }
}
