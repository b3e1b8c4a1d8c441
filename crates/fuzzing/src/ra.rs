//! ICMPv6 messages from guests to the router advertisement engine (what the socket's
//! filter lets through), with their source and hop limit, and time. Control byte: bit 0
//! gives hop limit 255 (else the payload's last byte), bit 1 the unspecified source
//! (else fe80::1), bit 2 fails the send of the RA that follows, the top five bits move
//! the clock ([`crate::advance`], in seconds). At most one RA leaves per step; each is
//! an RA (type 134) of whole 8-byte options; a solicitation the engine accepts is one
//! [`kvnet_ra::parse_solicit`] accepts.

use std::net::Ipv6Addr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kvnet_model::{MacAddr, Network};
use kvnet_ra::{Config, Engine, ROUTER_ADVERTISEMENT, parse_solicit};

/// Two prefixes (one SLAAC, one DHCPv6), an MTU, RDNSS and DNSSL: every option.
pub const NETWORK: &str = "<network><name>fr</name><forward mode='nat'/>
  <bridge name='virbr9'/><domain name='example.org'/><mtu size='1500'/>
  <ip family='ipv6' address='2001:db8:1::1' prefix='64'/>
  <ip family='ipv6' address='2001:db8:2::1' prefix='64'>
    <dhcp><range start='2001:db8:2::10' end='2001:db8:2::ff'/></dhcp></ip></network>";

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let net = Network::from_xml(NETWORK).expect("the fuzz network parses");
        Config::from_network(&net, net.profile().guests)
            .expect("it advertises")
            .with_source_mac(Some(MacAddr([0x52, 0x54, 0, 1, 2, 3])))
    })
}

pub fn run(data: &[u8]) {
    let mut now = Instant::now();
    let mut e = Engine::new(config().clone(), 7, now);
    for (ctrl, payload) in crate::Steps(data) {
        now += Duration::from_secs(crate::advance(ctrl));
        let hop_limit = if ctrl & 1 != 0 {
            255
        } else {
            payload.last().copied().unwrap_or(64)
        };
        let from = if ctrl & 2 != 0 {
            Ipv6Addr::UNSPECIFIED
        } else {
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
        };
        let parsed = parse_solicit(payload);
        if let Ok(rs) = e.on_solicit(now, from, hop_limit, payload) {
            assert_eq!(parsed, Ok(rs), "accepted what the parser refuses");
        }
        if let Some(ra) = e.poll(now) {
            check_ra(&ra);
            if ctrl & 4 != 0 {
                e.on_send_failed(now);
            } else {
                e.on_sent();
            }
        }
        assert_eq!(e.poll(now), None, "two RAs at one instant");
    }
    check_ra(&e.final_ra());
}

fn check_ra(ra: &[u8]) {
    assert!(
        ra.len() >= 16 && ra[0] == ROUTER_ADVERTISEMENT,
        "not an RA: {ra:?}"
    );
    let mut rest = &ra[16..];
    while let [_, len, ..] = *rest {
        let len = usize::from(len) * 8;
        assert!(
            len > 0 && len <= rest.len(),
            "an option of bad length: {ra:?}"
        );
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "a trailing partial option: {ra:?}");
}
