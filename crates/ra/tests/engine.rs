//! The RA engine: configuration from the XML, byte-exact encoding, solicitation
//! parsing and the schedule.

use kvnet_model::{MacAddr, Network};
use kvnet_ra::*;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

fn net(forward: &str, extra: &str, ips: &str) -> Network {
    let xml =
        format!("<network><name>n</name>{forward}<bridge name='kvra0'/>{extra}{ips}</network>");
    Network::from_xml(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"))
}

const V6: &str = "<ip family='ipv6' address='fd00:77::1' prefix='64'/>";
const NAT: &str = "<forward mode='nat'/>";

fn cfg(forward: &str, extra: &str, ips: &str) -> Config {
    advertised(&net(forward, extra, ips)).expect("advertises")
}

/// The config kvnetd builds for `n`: its guest role from the mode profile.
fn advertised(n: &Network) -> Option<Config> {
    Config::from_network(n, n.profile().guests)
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[rustfmt::skip]
const FULL_RA: [u8; 112] = [
    // type 134, code 0, checksum 0 (kernel), hop limit 64, flags 0, router lifetime 1800
    0x86, 0x00, 0x00, 0x00, 0x40, 0x00, 0x07, 0x08,
    // reachable time, retrans timer: unspecified
    0, 0, 0, 0, 0, 0, 0, 0,
    // source link-layer address, 1 × 8 bytes
    0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    // MTU 1400
    0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0x78,
    // prefix information, 4 × 8 bytes: /64, L and A, valid 86400, preferred 14400
    0x03, 0x04, 0x40, 0xc0, 0x00, 0x01, 0x51, 0x80,
    0x00, 0x00, 0x38, 0x40, 0x00, 0x00, 0x00, 0x00,
    0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    // RDNSS, 3 × 8 bytes, lifetime 1800, fd00:77::1
    0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x07, 0x08,
    0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0x01,
    // DNSSL, 3 × 8 bytes, lifetime 1800, "lab.test" as labels, zero padding
    0x1f, 0x03, 0x00, 0x00, 0x00, 0x00, 0x07, 0x08,
    3, b'l', b'a', b'b', 4, b't', b'e', b's',
    b't', 0, 0, 0, 0, 0, 0, 0,
];

fn full_cfg() -> Config {
    cfg(NAT, "<mtu size='1400'/><domain name='lab.test'/>", V6).with_source_mac(Some(MAC))
}

#[test]
fn full_ra_is_byte_exact() {
    assert_eq!(encode_ra(&full_cfg(), false), FULL_RA);
}

#[test]
fn final_ra_has_router_and_dns_lifetimes_zero() {
    let ra = encode_ra(&full_cfg(), true);
    let mut want = FULL_RA;
    want[6..8].copy_from_slice(&[0, 0]);
    want[68..72].copy_from_slice(&[0; 4]);
    want[92..96].copy_from_slice(&[0; 4]);
    assert_eq!(ra, want);
    let e = Engine::new(full_cfg(), 1, Instant::now());
    assert_eq!(e.final_ra(), want);
}

#[test]
fn minimal_ra_without_dns_mtu_or_mac() {
    let c = cfg(NAT, "<dns enable='no'/>", V6);
    #[rustfmt::skip]
    let want: [u8; 48] = [
        0x86, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,
        0x03, 0x04, 64, 0xc0, 0x00, 0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0, 0, 0, 0,
        0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(encode_ra(&c, false), want);
}

#[test]
fn router_lifetime_per_forward_mode() {
    for (fwd, lifetime) in [
        (NAT, 1800u16),
        ("<forward mode='route'/>", 1800),
        ("<forward mode='open'/>", 1800),
        ("", 0),
    ] {
        let c = cfg(fwd, "", V6);
        assert_eq!(c.router_lifetime, lifetime, "{fwd:?}");
        let ra = encode_ra(&c, false);
        assert_eq!(u16::from_be_bytes([ra[6], ra[7]]), lifetime, "{fwd:?}");
        assert_eq!(ra[5], 0, "no M/O flags without IPv6 <dhcp>: {fwd:?}");
    }
}

#[test]
fn nothing_to_advertise_without_ipv6_or_an_own_bridge() {
    let v4 = "<ip address='192.168.50.1' prefix='24'/>";
    assert_eq!(advertised(&net(NAT, "", v4)), None);
    let ipv6_yes =
        Network::from_xml("<network ipv6='yes'><name>y</name><bridge name='kvra1'/></network>")
            .expect("parse");
    assert_eq!(advertised(&ipv6_yes), None);
    // Whether a network gets RAs at all is the mode profile's: a host bridge's does not.
    let bridged = Network::from_xml(
        "<network><name>b</name><forward mode='bridge'/><bridge name='br9'/></network>",
    )
    .expect("parse");
    assert!(!bridged.profile().guest_services);
}

#[test]
fn ipv6_dhcp_sets_managed_and_turns_slaac_off_for_its_prefix() {
    let ip = "<ip family='ipv6' address='fd00:77::1' prefix='64'><dhcp>\
              <range start='fd00:77::100' end='fd00:77::1ff'/></dhcp></ip>";
    let c = cfg(NAT, "", ip);
    assert!(c.managed);
    let ra = encode_ra(&c, false);
    assert_eq!(ra[5], 0x80);
    assert_eq!(ra[19], 0x80, "prefix on-link but not autonomous");
    // Another /64 without <dhcp> stays autonomous; the same prefix twice, once with
    // <dhcp>, is not.
    let ips = format!(
        "{ip}<ip family='ipv6' address='fd00:78::1' prefix='64'/>\
         <ip family='ipv6' address='fd00:77::2' prefix='64'/>"
    );
    let c = cfg(NAT, "", &ips);
    let got: Vec<(String, bool)> = c
        .prefixes
        .iter()
        .map(|p| (p.net.to_string(), p.autonomous))
        .collect();
    assert_eq!(
        got,
        [
            ("fd00:77::/64".to_string(), false),
            ("fd00:78::/64".to_string(), true),
        ]
    );
}

#[test]
fn only_a_64_is_autonomous_and_prefixes_are_deduplicated() {
    let ips = "<ip family='ipv6' address='fd00:77::1' prefix='64'/>\
               <ip family='ipv6' address='fd00:78::1' prefix='56'/>\
               <ip family='ipv6' address='fd00:79::1' prefix='96'/>\
               <ip address='192.168.50.1' prefix='24'/>";
    let c = cfg(NAT, "", ips);
    let got: Vec<(String, bool)> = c
        .prefixes
        .iter()
        .map(|p| (p.net.to_string(), p.autonomous))
        .collect();
    assert_eq!(
        got,
        [
            ("fd00:77::/64".to_string(), true),
            ("fd00:78::/56".to_string(), false),
            ("fd00:79::/96".to_string(), false),
        ]
    );
    assert_eq!(c.rdnss, Some("fd00:77::1".parse().unwrap()));
    let ra = encode_ra(&c, false);
    // Three prefix options after the header, then RDNSS.
    let flags: Vec<(u8, u8, u8)> = (0..3)
        .map(|i| {
            let o = &ra[16 + 32 * i..];
            (o[0], o[2], o[3])
        })
        .collect();
    assert_eq!(flags, [(3, 64, 0xc0), (3, 56, 0x80), (3, 96, 0x80)]);
    assert_eq!(ra[16 + 96], 25);
    assert_eq!(ra.len(), 16 + 96 + 24);
}

#[test]
fn option_presence_rules() {
    // DNS disabled: neither RDNSS nor DNSSL.
    let c = cfg(NAT, "<dns enable='no'/>", V6);
    assert_eq!((c.rdnss, c.dnssl.as_deref()), (None, None));
    // DNS enabled, no domain: RDNSS only.
    let c = cfg(NAT, "", V6);
    assert_eq!(c.rdnss, Some("fd00:77::1".parse().unwrap()));
    assert_eq!(c.dnssl, None);
    // Domain: DNSSL.
    let c = cfg(NAT, "<domain name='example.org'/>", V6);
    assert_eq!(c.dnssl.as_deref(), Some("example.org"));
    // MTU below the IPv6 minimum is left out; none without <mtu>.
    assert_eq!(cfg(NAT, "<mtu size='1200'/>", V6).mtu, None);
    assert_eq!(cfg(NAT, "<mtu size='9000'/>", V6).mtu, Some(9000));
    assert_eq!(cfg(NAT, "", V6).mtu, None);
    // No MAC given: no source link-layer option.
    let ra = encode_ra(&cfg(NAT, "<dns enable='no'/>", V6), false);
    assert_eq!(ra[16], 3, "first option is the prefix");
}

#[test]
fn dnssl_padding() {
    // "a.bc" = 1 a 2 b c 0 = 6 bytes: 8 + 6 = 14 → 16 (length 2).
    let c = cfg(NAT, "<domain name='a.bc'/>", V6);
    let ra = encode_ra(&c, false);
    let o = &ra[16 + 32 + 24..];
    assert_eq!(o.len(), 16);
    assert_eq!(&o[..2], &[31, 2]);
    assert_eq!(&o[8..], &[1, b'a', 2, b'b', b'c', 0, 0, 0]);
}

// ---- solicitations ----

const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

#[test]
fn solicitations_parse() {
    assert_eq!(
        parse_solicit(&[133, 0, 0x12, 0x34, 0, 0, 0, 0]),
        Ok(Solicitation {
            source_mac: None,
            has_source_lla: false
        })
    );
    let with_lla = [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7];
    assert_eq!(
        parse_solicit(&with_lla),
        Ok(Solicitation {
            source_mac: Some(MacAddr([2, 3, 4, 5, 6, 7])),
            has_source_lla: true
        })
    );
    // A link-layer address that is not Ethernet's: present, but no MAC.
    let long_lla = [
        133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        parse_solicit(&long_lla),
        Ok(Solicitation {
            source_mac: None,
            has_source_lla: true
        })
    );
    // Unknown options are skipped.
    let unknown = [
        133, 0, 0, 0, 0, 0, 0, 0, 99, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert!(parse_solicit(&unknown).is_ok());
    assert_eq!(parse_solicit(&[133, 0, 0, 0]), Err(RsError::TooShort));
    assert_eq!(
        parse_solicit(&[134, 0, 0, 0, 0, 0, 0, 0]),
        Err(RsError::NotSolicitation(134))
    );
    assert_eq!(
        parse_solicit(&[133, 1, 0, 0, 0, 0, 0, 0]),
        Err(RsError::BadCode(1))
    );
    let zero_len = [133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 3, 4, 5, 6, 7];
    assert_eq!(parse_solicit(&zero_len), Err(RsError::BadOption));
    let past_end = [133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7];
    assert_eq!(parse_solicit(&past_end), Err(RsError::BadOption));
    let stub = [133, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(parse_solicit(&stub), Err(RsError::BadOption));
}

#[test]
fn solicitations_need_hop_limit_255_and_no_lla_from_unspecified() {
    let rs = [133, 0, 0, 0, 0, 0, 0, 0];
    let with_lla = [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7];
    assert!(validate_solicit(LL, 255, &rs).is_ok());
    assert_eq!(validate_solicit(LL, 254, &rs), Err(RsError::HopLimit(254)));
    assert!(validate_solicit(Ipv6Addr::UNSPECIFIED, 255, &rs).is_ok());
    assert_eq!(
        validate_solicit(Ipv6Addr::UNSPECIFIED, 255, &with_lla),
        Err(RsError::UnspecifiedWithSourceLla)
    );
    let long_lla = [
        133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        validate_solicit(Ipv6Addr::UNSPECIFIED, 255, &long_lla),
        Err(RsError::UnspecifiedWithSourceLla)
    );
}

// ---- schedule ----

const RS: [u8; 8] = [133, 0, 0, 0, 0, 0, 0, 0];

/// Send times of the RAs over `until`, polling at every deadline.
fn run(e: &mut Engine, t0: Instant, until: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    loop {
        let t = e.next_deadline();
        if t > t0 + until {
            return out;
        }
        if e.poll(t).is_some() {
            e.on_sent();
            out.push(t - t0);
        }
    }
}

#[test]
fn unsolicited_schedule_initial_then_random_200_to_600() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 7, t0);
    assert_eq!(e.next_deadline(), t0);
    assert_eq!(e.poll(t0).as_deref(), Some(&FULL_RA[..]));
    e.on_sent();
    assert_eq!(e.poll(t0), None, "one at a time");
    assert_eq!(e.next_deadline(), t0 + s(16));
    assert_eq!(e.poll(t0 + s(15)), None);
    let times = run(&mut e, t0, s(100_000));
    assert_eq!(&times[..2], &[s(16), s(32)], "3 initial RAs, 16 s apart");
    let gaps: Vec<Duration> = times.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 150, "{}", gaps.len());
    assert!(
        gaps.iter().all(|g| *g >= s(200) && *g <= s(600)),
        "{gaps:?}"
    );
    assert!(gaps.iter().any(|g| *g < s(300)) && gaps.iter().any(|g| *g > s(500)));
    // Same seed, same schedule; another seed, another one.
    let again = run(&mut Engine::new(full_cfg(), 7, t0), t0, s(100_000));
    let other = run(&mut Engine::new(full_cfg(), 8, t0), t0, s(100_000));
    assert_eq!(again[0], Duration::ZERO);
    assert_eq!(times, again[1..]);
    assert_ne!(again, other);
}

#[test]
fn solicitation_is_answered_at_once_unless_an_ra_just_left() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 1, t0);
    assert!(e.poll(t0).is_some());
    e.on_sent();
    // 1 s after an RA: held until 3 s after it; a second RS shares that RA.
    e.on_solicit(t0 + s(1), LL, 255, &RS).expect("valid");
    assert_eq!(e.next_deadline(), t0 + s(3));
    assert_eq!(e.poll(t0 + s(2)), None);
    e.on_solicit(t0 + s(2), LL, 255, &RS).expect("valid");
    assert_eq!(e.next_deadline(), t0 + s(3));
    assert!(e.poll(t0 + s(3)).is_some());
    e.on_sent();
    assert_eq!(e.poll(t0 + s(3)), None);
    // The unsolicited schedule is unchanged by it.
    assert_eq!(e.next_deadline(), t0 + s(16));
    // Long after the last RA: answered at once.
    e.on_solicit(t0 + s(10), LL, 255, &RS).expect("valid");
    assert_eq!(e.next_deadline(), t0 + s(10));
    assert_eq!(e.poll(t0 + s(10) - ms(1)), None);
    assert!(e.poll(t0 + s(10)).is_some());
    e.on_sent();
    // Right after it, at 3 s.
    e.on_solicit(t0 + s(11), LL, 255, &RS).expect("valid");
    assert_eq!(e.next_deadline(), t0 + s(13));
}

#[test]
fn invalid_solicitations_change_nothing() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 1, t0);
    assert!(e.poll(t0).is_some());
    e.on_sent();
    assert!(e.on_solicit(t0 + s(5), LL, 64, &RS).is_err());
    assert!(e.on_solicit(t0 + s(5), LL, 255, &[133, 0, 0]).is_err());
    assert!(
        e.on_solicit(t0 + s(5), LL, 255, &[135, 0, 0, 0, 0, 0, 0, 0])
            .is_err()
    );
    assert_eq!(e.next_deadline(), t0 + s(16));
}

#[test]
fn failed_sends_retry_with_backoff_and_do_not_count() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 1, t0);
    assert!(!e.has_advertised());
    let mut t = t0;
    let mut waits = Vec::new();
    for _ in 0..7 {
        assert!(e.poll(t).is_some());
        e.on_send_failed(t);
        let next = e.next_deadline();
        waits.push(next - t);
        assert_eq!(e.poll(next - ms(1)), None);
        t = next;
    }
    assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(16), s(16)]);
    assert!(!e.has_advertised());
    // A solicitation ends the backoff: tried again at once, and a failure then waits 1 s.
    assert!(e.poll(t).is_some());
    e.on_send_failed(t);
    let t = t + s(5);
    assert!(e.poll(t).is_none(), "held for 16 s");
    e.on_solicit(t, LL, 255, &RS).expect("valid");
    assert!(e.poll(t).is_some());
    e.on_send_failed(t);
    assert_eq!(e.next_deadline(), t + s(1));
    // Now it works: all three initial RAs still follow, 16 s apart.
    let t1 = t + s(1);
    assert!(e.poll(t1).is_some());
    e.on_sent();
    assert!(e.has_advertised());
    let times = run(&mut e, t1, s(40));
    assert_eq!(times, [s(16), s(32)]);
}

#[test]
fn a_changed_config_is_announced_again() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 1, t0);
    for _ in 0..3 {
        let t = e.next_deadline();
        assert!(e.poll(t).is_some());
        e.on_sent();
    }
    let last = t0 + s(32);
    let periodic = e.next_deadline();
    assert!(periodic >= last + s(200));
    // Unchanged: nothing.
    e.set_config(full_cfg(), last + s(100));
    assert_eq!(e.next_deadline(), periodic);
    // Changed: at once, then the initial RAs again.
    let isolated = cfg("", "", V6);
    e.set_config(isolated.clone(), last + s(100));
    assert_eq!(e.config(), &isolated);
    assert_eq!(e.next_deadline(), last + s(100));
    let ra = e.poll(last + s(100)).expect("RA");
    e.on_sent();
    assert_eq!(&ra[6..8], &[0, 0]);
    assert_eq!(e.next_deadline(), last + s(116));
    // A change right after an RA waits for MIN_DELAY_BETWEEN_RAS.
    e.set_config(full_cfg(), last + s(101));
    assert_eq!(e.next_deadline(), last + s(103));
}

#[test]
fn a_new_bridge_mac_is_used_without_an_early_ra() {
    let t0 = Instant::now();
    let mut e = Engine::new(full_cfg(), 1, t0);
    assert!(e.poll(t0).is_some());
    e.on_sent();
    let other = MacAddr([2, 0, 0, 0, 0, 9]);
    e.set_source_mac(Some(other));
    assert_eq!(e.next_deadline(), t0 + s(16));
    let ra = e.poll(t0 + s(16)).expect("RA");
    assert_eq!(&ra[16..24], &[1, 1, 2, 0, 0, 0, 0, 9]);
}
