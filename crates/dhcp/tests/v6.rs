//! The DHCPv6 engine against scripted clients: every message type, static hosts,
//! exhaustion, expiry and the journal.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, IANA, IATA, Message, MessageType, OptionCode, Status,
    UnknownOption,
};
use dhcproto::{Decodable, Decoder, Encodable};
use kvnet_dhcp::v6::{
    self, Config, Effect, Event, LeaseRecord, LeaseState, LeaseTable, Server, duid_ll, duid_mac,
    duid_uuid,
};
use kvnet_model::{MacAddr, Network};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;
const SERVER_DUID: [u8; 18] = [0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn a(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xca2, 2, 0, 0, 0, last)
}

const NET: &str = "<network><name>v6</name><forward mode='nat'/>
  <domain name='example.org'/>
  <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'><dhcp>
    <range start='2001:db8:ca2:2::100' end='2001:db8:ca2:2::1ff'/>
    <host id='0:3:0:1:0:16:3e:11:22:33' name='peter' ip='2001:db8:ca2:2::3'/>
    <host name='paul' ip='2001:db8:ca2:2::4'/>
  </dhcp></ip></network>";

fn net(xml: &str) -> Network {
    Network::from_xml(xml).expect("test network parses")
}

fn server(xml: &str) -> Server {
    let n = net(xml);
    let idx = v6::ip_index(&n).expect("an IPv6 <dhcp>");
    Server::new(
        Config::from_network(&n, idx, SERVER_DUID.to_vec()).expect("config"),
        LeaseTable::new(),
    )
}

/// A network whose range holds `n` addresses from ::100, with `lease` in the range.
fn small(n: u16, lease: &str) -> String {
    format!(
        "<network><name>s</name><forward mode='nat'/>
  <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'><dhcp>
    <range start='2001:db8:ca2:2::100' end='2001:db8:ca2:2::{:x}'>{lease}</range>
  </dhcp></ip></network>",
        0x100 + n - 1
    )
}

fn client(n: u8) -> Vec<u8> {
    duid_ll(MacAddr([0x52, 0x54, 0, 0, 0, n]))
}

/// A client message: type, client DUID, server DUID, IA_NAs (iaid, addresses), extras.
fn msg(
    t: MessageType,
    duid: Option<&[u8]>,
    server: bool,
    ias: &[(u32, &[Ipv6Addr])],
    extra: Vec<DhcpOption>,
) -> Vec<u8> {
    let mut m = Message::new_with_id(t, [1, 2, 3]);
    let o = m.opts_mut();
    if let Some(d) = duid {
        o.insert(DhcpOption::ClientId(d.to_vec()));
    }
    if server {
        o.insert(DhcpOption::ServerId(SERVER_DUID.to_vec()));
    }
    for (iaid, addrs) in ias {
        let mut opts = DhcpOptions::new();
        for &addr in *addrs {
            opts.insert(DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            }));
        }
        o.insert(DhcpOption::IANA(IANA {
            id: *iaid,
            t1: 0,
            t2: 0,
            opts,
        }));
    }
    for e in extra {
        o.insert(e);
    }
    m.to_vec().unwrap()
}

/// The common case of [`msg`]: client `n`'s message with one IA_NA (IAID 1) naming
/// `addrs`, and no other option.
fn pkt(t: MessageType, n: u8, server: bool, addrs: &[Ipv6Addr]) -> Vec<u8> {
    msg(t, Some(&client(n)), server, &[(1, addrs)], vec![])
}

fn sent(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(b) => Some(Message::decode(&mut Decoder::new(b)).expect("reply decodes")),
            _ => None,
        })
        .collect()
}

fn one(effects: &[Effect]) -> Message {
    let s = sent(effects);
    assert_eq!(s.len(), 1, "{effects:?}");
    s.into_iter().next().unwrap()
}

fn persisted(effects: &[Effect]) -> Vec<LeaseRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn iana(m: &Message) -> IANA {
    match m.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(i)) => i.clone(),
        other => panic!("no IA_NA in {m:?}: {other:?}"),
    }
}

/// (address, valid lifetime) of the IA_NA's first IAADDR, or its status.
fn addr_of(m: &Message) -> Result<(Ipv6Addr, u32), Status> {
    let ia = iana(m);
    if let Some(DhcpOption::IAAddr(x)) = ia.opts.get(OptionCode::IAAddr) {
        return Ok((x.addr, x.valid_life));
    }
    match ia.opts.get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Err(s.status),
        _ => panic!("IA_NA with neither address nor status: {ia:?}"),
    }
}

fn top_status(m: &Message) -> Option<Status> {
    match m.opts().get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Some(s.status),
        _ => None,
    }
}

fn ignored(effects: &[Effect]) -> bool {
    effects.iter().all(|e| !matches!(e, Effect::Send(_)))
        && effects
            .iter()
            .any(|e| matches!(e, Effect::Log(Event::Ignored { .. })))
}

/// Solicit then Request; the bound address.
fn bind(s: &mut Server, now: u64, duid: &[u8]) -> Result<Ipv6Addr, Status> {
    let adv = one(&s.handle(
        now,
        &msg(MessageType::Solicit, Some(duid), false, &[(1, &[])], vec![]),
    ));
    let offered = addr_of(&adv)?.0;
    let e = s.handle(
        now,
        &msg(
            MessageType::Request,
            Some(duid),
            true,
            &[(1, &[offered])],
            vec![],
        ),
    );
    addr_of(&one(&e)).map(|x| x.0)
}

#[test]
fn solicit_advertises_with_the_network_options_and_holds_the_address() {
    let mut s = server(NET);
    let e = s.handle(
        NOW,
        &msg(
            MessageType::Solicit,
            Some(&client(1)),
            false,
            &[(7, &[])],
            vec![],
        ),
    );
    assert!(persisted(&e).is_empty(), "an Advertise is not journalled");
    let m = one(&e);
    assert_eq!(m.msg_type(), MessageType::Advertise);
    assert_eq!(m.xid(), [1, 2, 3]);
    assert_eq!(
        m.opts().get(OptionCode::ServerId),
        Some(&DhcpOption::ServerId(SERVER_DUID.to_vec()))
    );
    assert_eq!(
        m.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(client(1)))
    );
    assert_eq!(
        m.opts().get(OptionCode::DomainNameServers),
        Some(&DhcpOption::DomainNameServers(vec![a(1)]))
    );
    let dsl = m
        .opts()
        .iter()
        .find(|o| OptionCode::from(*o) == OptionCode::DomainSearchList)
        .expect("domain list");
    let mut wire = Vec::new();
    dsl.encode(&mut dhcproto::Encoder::new(&mut wire)).unwrap();
    assert!(wire.ends_with(b"\x07example\x03org\x00"), "{wire:?}");
    let ia = iana(&m);
    assert_eq!(
        (ia.id, ia.t1, ia.t2),
        (7, 1800, 3150),
        "T1 = 1/2, T2 = 7/8 of 1 h"
    );
    assert_eq!(addr_of(&m), Ok((a(0x100), 3600)));
    // Held for this client: another one is advertised the next address.
    let m2 = one(&s.handle(
        NOW,
        &msg(
            MessageType::Solicit,
            Some(&client(2)),
            false,
            &[(7, &[])],
            vec![],
        ),
    ));
    assert_eq!(addr_of(&m2).unwrap().0, a(0x101));
    // The same client asking again gets the same address.
    let m3 = one(&s.handle(
        NOW + 1,
        &msg(
            MessageType::Solicit,
            Some(&client(1)),
            false,
            &[(7, &[])],
            vec![],
        ),
    ));
    assert_eq!(addr_of(&m3).unwrap().0, a(0x100));
}

#[test]
fn request_binds_and_the_lease_is_persisted_before_the_reply() {
    let mut s = server(NET);
    one(&s.handle(NOW, &pkt(MessageType::Solicit, 1, false, &[])));
    let e = s.handle(NOW, &pkt(MessageType::Request, 1, true, &[a(0x100)]));
    let persist = e
        .iter()
        .position(|x| matches!(x, Effect::Persist(_)))
        .expect("persist");
    let send = e
        .iter()
        .position(|x| matches!(x, Effect::Send(_)))
        .expect("send");
    assert!(persist < send, "{e:?}");
    let rec = &persisted(&e)[0];
    assert_eq!(
        (rec.ip_address, rec.iaid, rec.state, rec.expiry_time),
        (a(0x100), 1, LeaseState::Bound, NOW + 3600)
    );
    assert_eq!(rec.duid, "00:03:00:01:52:54:00:00:00:01");
    let m = one(&e);
    assert_eq!(m.msg_type(), MessageType::Reply);
    assert_eq!(addr_of(&m), Ok((a(0x100), 3600)));
    let l = s.leases(NOW);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].prefix, 64);
    assert_eq!(l[0].client_id, "00:03:00:01:52:54:00:00:00:01");
    assert_eq!(l[0].mac_address, Some(MacAddr([0x52, 0x54, 0, 0, 0, 1])));
}

#[test]
fn messages_that_break_the_identifier_rules_are_ignored() {
    let mut s = server(NET);
    let d = client(1);
    // Request without our server id, or with another's.
    assert!(ignored(&s.handle(
        NOW,
        &msg(MessageType::Request, Some(&d), false, &[(1, &[])], vec![])
    )));
    let mut other = msg(MessageType::Renew, Some(&d), false, &[(1, &[])], vec![]);
    other.extend_from_slice(&[0, 2, 0, 4, 0, 4, 9, 9]);
    assert!(ignored(&s.handle(NOW, &other)));
    // Solicit with a server id, or without a client id.
    assert!(ignored(&s.handle(
        NOW,
        &msg(MessageType::Solicit, Some(&d), true, &[(1, &[])], vec![])
    )));
    assert!(ignored(&s.handle(
        NOW,
        &msg(MessageType::Solicit, None, false, &[(1, &[])], vec![])
    )));
    // Server messages.
    assert!(ignored(&s.handle(
        NOW,
        &msg(MessageType::Advertise, Some(&d), true, &[], vec![])
    )));
    assert!(s.leases(NOW).is_empty());
}

#[test]
fn rapid_commit_binds_at_the_solicit() {
    let mut s = server(NET);
    let e = s.handle(
        NOW,
        &msg(
            MessageType::Solicit,
            Some(&client(1)),
            false,
            &[(1, &[])],
            vec![DhcpOption::RapidCommit],
        ),
    );
    assert_eq!(persisted(&e).len(), 1);
    let m = one(&e);
    assert_eq!(m.msg_type(), MessageType::Reply);
    assert!(m.opts().get(OptionCode::RapidCommit).is_some());
    assert_eq!(addr_of(&m).unwrap().0, a(0x100));
    assert_eq!(s.leases(NOW).len(), 1);
}

#[test]
fn renew_and_rebind_extend_and_unknown_bindings_get_nobinding() {
    let mut s = server(NET);
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    for (t, server_id) in [(MessageType::Renew, true), (MessageType::Rebind, false)] {
        let e = s.handle(
            NOW + 1800,
            &msg(t, Some(&client(1)), server_id, &[(1, &[ip])], vec![]),
        );
        assert_eq!(persisted(&e)[0].expiry_time, NOW + 1800 + 3600, "{t:?}");
        assert_eq!(addr_of(&one(&e)), Ok((ip, 3600)), "{t:?}");
    }
    // An IA the server never bound, naming an address leased to another.
    let e = s.handle(NOW + 1800, &pkt(MessageType::Renew, 2, true, &[ip]));
    assert_eq!(addr_of(&one(&e)), Err(Status::NoBinding));
    assert!(persisted(&e).is_empty());
}

#[test]
fn confirm_says_whether_the_addresses_are_on_link() {
    let mut s = server(NET);
    let m = one(&s.handle(NOW, &pkt(MessageType::Confirm, 1, false, &[a(0x150)])));
    assert_eq!(top_status(&m), Some(Status::Success));
    let off: Ipv6Addr = "2001:db8:9::5".parse().unwrap();
    let m = one(&s.handle(NOW, &pkt(MessageType::Confirm, 1, false, &[off])));
    assert_eq!(top_status(&m), Some(Status::NotOnLink));
    assert!(ignored(
        &s.handle(NOW, &pkt(MessageType::Confirm, 1, false, &[]))
    ));
}

#[test]
fn release_frees_the_address_for_another_client() {
    let mut s = server(&small(1, ""));
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    assert_eq!(bind(&mut s, NOW, &client(2)), Err(Status::NoAddrsAvail));
    let e = s.handle(NOW + 5, &pkt(MessageType::Release, 1, true, &[ip]));
    let rec = &persisted(&e)[0];
    assert_eq!(
        (rec.state, rec.expiry_time),
        (LeaseState::Released, NOW + 5)
    );
    assert_eq!(top_status(&one(&e)), Some(Status::Success));
    assert!(s.leases(NOW + 5).is_empty());
    assert_eq!(bind(&mut s, NOW + 6, &client(2)), Ok(ip));
}

#[test]
fn declined_addresses_are_quarantined() {
    let mut s = server(&small(2, ""));
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    let e = s.handle(NOW, &pkt(MessageType::Decline, 1, true, &[ip]));
    assert_eq!(persisted(&e)[0].state, LeaseState::Released);
    assert!(
        e.iter()
            .any(|x| matches!(x, Effect::Log(Event::Decline { .. })))
    );
    // The client comes back and gets the other address; nobody gets the declined one.
    assert_eq!(bind(&mut s, NOW + 1, &client(1)), Ok(a(0x101)));
    assert_eq!(bind(&mut s, NOW + 1, &client(2)), Err(Status::NoAddrsAvail));
    assert_eq!(s.next_deadline(), Some(NOW + 600));
    s.expire(NOW + 600);
    assert_eq!(bind(&mut s, NOW + 600, &client(2)), Ok(ip));
}

#[test]
fn information_request_gets_the_options_without_addresses() {
    let mut s = server(NET);
    for duid in [Some(&client(1)[..]), None] {
        let m = one(&s.handle(
            NOW,
            &msg(MessageType::InformationRequest, duid, false, &[], vec![]),
        ));
        assert_eq!(m.msg_type(), MessageType::Reply);
        assert!(m.opts().get(OptionCode::DomainNameServers).is_some());
        assert!(m.opts().get(OptionCode::IANA).is_none());
    }
    // No DNS server when DNS is disabled.
    let mut s = server(&NET.replace("<domain", "<dns enable='no'/><domain"));
    let m = one(&s.handle(
        NOW,
        &msg(MessageType::InformationRequest, None, false, &[], vec![]),
    ));
    assert!(m.opts().get(OptionCode::DomainNameServers).is_none());
}

#[test]
fn static_hosts_by_duid_and_by_name_win_over_the_range() {
    let mut s = server(NET);
    let peter = [0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33];
    assert_eq!(bind(&mut s, NOW, &peter), Ok(a(3)));
    assert_eq!(s.leases(NOW)[0].hostname.as_deref(), Some("peter"));
    // Option 39: flags, then "paul.example.org" as DNS labels.
    let mut fqdn = vec![0];
    fqdn.extend_from_slice(b"\x04paul\x07example\x03org\x00");
    let paul = client(9);
    let name = DhcpOption::Unknown(UnknownOption::new(OptionCode::ClientFqdn, fqdn));
    let adv = one(&s.handle(
        NOW,
        &msg(
            MessageType::Solicit,
            Some(&paul),
            false,
            &[(1, &[])],
            vec![name.clone()],
        ),
    ));
    assert_eq!(addr_of(&adv).unwrap().0, a(4));
    let e = s.handle(
        NOW,
        &msg(
            MessageType::Request,
            Some(&paul),
            true,
            &[(1, &[a(4)])],
            vec![name],
        ),
    );
    assert_eq!(addr_of(&one(&e)).unwrap().0, a(4));
    // Anyone else asking for a reserved address gets one from the range.
    let e = s.handle(NOW, &pkt(MessageType::Solicit, 3, false, &[a(3)]));
    assert_eq!(addr_of(&one(&e)).unwrap().0, a(0x100));
}

#[test]
fn a_duid_reservation_is_never_given_to_a_client_that_takes_its_name() {
    let mut s = server(NET);
    // "peter" is reserved for a DUID: another client sending that FQDN gets the range.
    let mut fqdn = vec![0];
    fqdn.extend_from_slice(b"\x05peter\x00");
    let name = DhcpOption::Unknown(UnknownOption::new(OptionCode::ClientFqdn, fqdn));
    let other = client(7);
    let adv = one(&s.handle(
        NOW,
        &msg(
            MessageType::Solicit,
            Some(&other),
            false,
            &[(1, &[])],
            vec![name],
        ),
    ));
    assert_ne!(addr_of(&adv).unwrap().0, a(3));
}

#[test]
fn an_exhausted_range_answers_noaddrsavail() {
    let mut s = server(&small(2, ""));
    assert_eq!(bind(&mut s, NOW, &client(1)), Ok(a(0x100)));
    assert_eq!(bind(&mut s, NOW, &client(2)), Ok(a(0x101)));
    assert_eq!(bind(&mut s, NOW, &client(3)), Err(Status::NoAddrsAvail));
    let e = s.handle(NOW, &pkt(MessageType::Request, 3, true, &[]));
    assert_eq!(addr_of(&one(&e)), Err(Status::NoAddrsAvail));
    assert!(persisted(&e).is_empty());
}

#[test]
fn one_message_reserves_at_most_eight_addresses() {
    let mut s = server(NET);
    let ias: Vec<(u32, &[Ipv6Addr])> = (0..20).map(|i| (i, &[][..])).collect();
    let e = s.handle(
        NOW,
        &msg(MessageType::Solicit, Some(&client(1)), false, &ias, vec![]),
    );
    let m = one(&e);
    let n = m.opts().get_all(OptionCode::IANA).map_or(0, <[_]>::len);
    assert_eq!(n, 8, "{m:?}");
}

#[test]
fn temporary_addresses_are_refused() {
    let mut s = server(NET);
    let ta = DhcpOption::IATA(IATA {
        id: 5,
        opts: DhcpOptions::new(),
    });
    let m = one(&s.handle(
        NOW,
        &msg(MessageType::Solicit, Some(&client(1)), false, &[], vec![ta]),
    ));
    let Some(DhcpOption::IATA(ia)) = m.opts().get(OptionCode::IATA) else {
        panic!("no IA_TA in {m:?}");
    };
    assert!(matches!(
        ia.opts.get(OptionCode::StatusCode),
        Some(DhcpOption::StatusCode(c)) if c.status == Status::NoAddrsAvail
    ));
}

#[test]
fn leases_expire_and_their_address_goes_to_another_client() {
    let mut s = server(&small(1, "<lease expiry='2' unit='minutes'/>"));
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    assert_eq!(s.next_deadline(), Some(NOW + 120));
    assert_eq!(
        bind(&mut s, NOW + 119, &client(2)),
        Err(Status::NoAddrsAvail)
    );
    let e = s.expire(NOW + 120);
    assert!(
        matches!(&e[..], [Effect::Log(Event::Expired { ip: x, .. })] if *x == ip),
        "{e:?}"
    );
    assert!(s.expire(NOW + 121).is_empty(), "reported once");
    assert!(s.leases(NOW + 120).is_empty());
    assert_eq!(bind(&mut s, NOW + 121, &client(2)), Ok(ip));
}

#[test]
fn infinite_leases_have_infinite_lifetimes() {
    let mut s = server(&small(1, "<lease expiry='0'/>"));
    bind(&mut s, NOW, &client(1)).unwrap();
    let m = one(&s.handle(NOW, &pkt(MessageType::Renew, 1, true, &[a(0x100)])));
    assert_eq!(addr_of(&m), Ok((a(0x100), u32::MAX)));
    assert_eq!(s.leases(NOW)[0].expiry_time, 0);
}

#[test]
fn the_journal_replays_skipping_a_torn_line() {
    let mut s = server(NET);
    let mut journal = String::new();
    for c in 1..=3 {
        let adv = one(&s.handle(
            NOW,
            &msg(
                MessageType::Solicit,
                Some(&client(c)),
                false,
                &[(1, &[])],
                vec![],
            ),
        ));
        let ip = addr_of(&adv).unwrap().0;
        let e = s.handle(
            NOW,
            &msg(
                MessageType::Request,
                Some(&client(c)),
                true,
                &[(1, &[ip])],
                vec![],
            ),
        );
        for r in persisted(&e) {
            journal.push_str(&v6::encode_record(&r));
        }
    }
    let e = s.handle(NOW, &pkt(MessageType::Release, 2, true, &[a(0x101)]));
    for r in persisted(&e) {
        journal.push_str(&v6::encode_record(&r));
    }
    assert_eq!(v6::replay(&journal), *s.table());
    // A crash tore the last write: the third lease is lost, the rest stays.
    let torn = &journal[..journal.len() - 20];
    let table = v6::replay(torn);
    assert_eq!(table.len(), 3);
    assert_eq!(table.get(a(0x101)).unwrap().state, LeaseState::Bound);
    assert_eq!(v6::replay(&v6::compact(&table)), table);
    // After a restart the same client gets the same address again.
    let n = net(NET);
    let mut s2 = Server::new(
        Config::from_network(&n, 0, SERVER_DUID.to_vec()).unwrap(),
        v6::replay(&journal),
    );
    assert_eq!(bind(&mut s2, NOW + 10, &client(3)), Ok(a(0x102)));
    assert_eq!(bind(&mut s2, NOW + 10, &client(4)), Ok(a(0x101)));
}

#[test]
fn duids_name_a_mac_only_when_they_carry_one() {
    let mac = MacAddr([0x52, 0x54, 0, 1, 2, 3]);
    assert_eq!(duid_mac(&duid_ll(mac)), Some(mac));
    let llt = [0, 1, 0, 1, 0x2a, 0, 0, 0, 0x52, 0x54, 0, 1, 2, 3];
    assert_eq!(duid_mac(&llt), Some(mac));
    assert_eq!(duid_mac(&duid_uuid([7; 16])), None);
    assert_eq!(duid_mac(&[0, 3, 0, 6, 1, 2]), None);
}

#[test]
fn config_maps_the_libvirt_example() {
    let n = net(NET);
    let c = Config::from_network(&n, 0, SERVER_DUID.to_vec()).unwrap();
    assert_eq!(c.server_ip, a(1));
    assert_eq!(c.prefix.to_string(), "2001:db8:ca2:2::/64");
    assert_eq!(c.ranges.len(), 1);
    assert_eq!(
        c.hosts[0].duid.as_deref(),
        Some(&[0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33][..])
    );
    assert_eq!(c.hosts[1].name.as_deref(), Some("paul"));
    assert_eq!(c.domain.as_deref(), Some("example.org"));
    let v4only = net(
        "<network><name>x</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip></network>",
    );
    assert_eq!(v6::ip_index(&v4only), None);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut s = server(NET);
        let _ = s.handle(NOW, &bytes);
    }

    #[test]
    fn random_options_after_a_client_header_never_panic(
        t in prop_oneof![Just(1u8), 3..=11u8],
        opts in proptest::collection::vec(any::<u8>(), 0..300),
        with_ids in any::<bool>(),
    ) {
        let mut s = server(NET);
        let mut b = vec![t, 1, 2, 3];
        if with_ids {
            b.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1]);
            b.extend_from_slice(&[0, 2, 0, 18]);
            b.extend_from_slice(&SERVER_DUID);
        }
        b.extend_from_slice(&opts);
        for e in s.handle(NOW, &b) {
            if let Effect::Send(r) = e {
                prop_assert!(Message::decode(&mut Decoder::new(&r)).is_ok());
            }
        }
    }
}

#[test]
fn a_flooding_client_is_dropped_without_starving_the_others() {
    let mut s = server(NET);
    let solicit = |n| {
        msg(
            MessageType::Solicit,
            Some(&client(n)),
            false,
            &[(1, &[])],
            vec![],
        )
    };
    let mut answered = 0;
    let mut logged = 0;
    for _ in 0..100 {
        let e = s.handle(NOW, &solicit(1));
        answered += sent(&e).len();
        logged += e
            .iter()
            .filter(|e| matches!(e, Effect::Log(Event::RateLimited { .. })))
            .count();
    }
    assert_eq!(answered, 10, "the burst, then nothing");
    assert_eq!(logged, 1, "one line per episode");
    assert_eq!(bind(&mut s, NOW, &client(2)).map(|_| ()), Ok(()));
    // The flooder gets its next packet through once its bucket refills.
    assert_eq!(sent(&s.handle(NOW + 1, &solicit(1))).len(), 1);
}

/// T1 and T2 of the reply's first IA_NA.
fn t1_t2(m: &Message) -> (u32, u32) {
    let ia = iana(m);
    (ia.t1, ia.t2)
}

#[test]
fn early_renewals_reuse_the_record_and_later_ones_extend_it() {
    let mut s = server(NET);
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    s.recorded(true);
    // Within the first quarter of the hour: no journal line, the lifetimes left.
    let e = s.handle(NOW + 600, &pkt(MessageType::Renew, 1, true, &[ip]));
    assert!(persisted(&e).is_empty());
    let m = one(&e);
    assert_eq!(addr_of(&m), Ok((ip, 3000)));
    assert_eq!(t1_t2(&m), (1500, 2625));
    let e = s.handle(NOW + 601, &pkt(MessageType::Rebind, 1, false, &[ip]));
    assert!(persisted(&e).is_empty());
    // A Request for the binding it holds (after a Solicit) too.
    let e = s.handle(NOW + 602, &pkt(MessageType::Request, 1, true, &[ip]));
    assert!(persisted(&e).is_empty());
    assert_eq!(addr_of(&one(&e)), Ok((ip, 2998)));
    // Past the quarter: a new record, a whole hour.
    let e = s.handle(NOW + 901, &pkt(MessageType::Renew, 1, true, &[ip]));
    assert_eq!(persisted(&e)[0].expiry_time, NOW + 901 + 3600);
    assert_eq!(addr_of(&one(&e)), Ok((ip, 3600)));
    // Not yet reported durable: the next renewal is journalled as well.
    let e = s.handle(NOW + 902, &pkt(MessageType::Renew, 1, true, &[ip]));
    assert_eq!(persisted(&e).len(), 1);
}

#[test]
fn a_failed_write_takes_the_v6_table_back_and_renewals_go_on() {
    let mut s = server(NET);
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    s.recorded(true);
    let before = s.table().clone();
    let other = bind(&mut s, NOW + 1, &client(2)).unwrap();
    let e = s.handle(NOW + 1, &pkt(MessageType::Release, 1, true, &[ip]));
    assert_eq!(persisted(&e).len(), 1);
    s.recorded(false);
    assert_eq!(*s.table(), before);
    assert!(s.table().get(other).is_none());
    let e = s.handle(NOW + 2, &pkt(MessageType::Renew, 1, true, &[ip]));
    assert!(persisted(&e).is_empty());
    assert_eq!(addr_of(&one(&e)), Ok((ip, 3598)));
}

#[test]
fn the_network_budget_drops_v6_changes_but_not_renewals() {
    let n = net(NET);
    let mut cfg = Config::from_network(&n, 0, SERVER_DUID.to_vec()).expect("config");
    // 256 addresses in the range and 2 hosts.
    assert_eq!(
        cfg.change_rate,
        kvnet_dhcp::RateLimit {
            burst: 258,
            per_sec: 16
        }
    );
    cfg.change_rate = kvnet_dhcp::RateLimit {
        burst: 3,
        per_sec: 1,
    };
    let mut s = Server::new(cfg, LeaseTable::new());
    let ip = bind(&mut s, NOW, &client(1)).unwrap();
    assert!(bind(&mut s, NOW, &client(2)).is_ok());
    assert!(bind(&mut s, NOW, &client(3)).is_ok());
    s.recorded(true);
    // Spent: a new client's Request is dropped (its Solicit is still answered).
    let adv = one(&s.handle(NOW, &pkt(MessageType::Solicit, 4, false, &[])));
    let offered = addr_of(&adv).unwrap().0;
    let e = s.handle(NOW, &pkt(MessageType::Request, 4, true, &[offered]));
    assert!(sent(&e).is_empty() && persisted(&e).is_empty());
    assert!(
        e.iter()
            .any(|x| matches!(x, Effect::Log(Event::ChangesLimited { .. })))
    );
    let e = s.handle(NOW, &pkt(MessageType::Release, 2, true, &[a(0x101)]));
    assert!(
        sent(&e).is_empty() && persisted(&e).is_empty(),
        "logged once"
    );
    // Renewals go on, from the record and past the quarter.
    assert!(persisted(&s.handle(NOW + 1, &pkt(MessageType::Renew, 1, true, &[ip]))).is_empty());
    let e = s.handle(NOW + 1000, &pkt(MessageType::Renew, 1, true, &[ip]));
    assert_eq!(persisted(&e).len(), 1);
    // Refilled: the new client's retry binds.
    let e = s.handle(NOW + 1000, &pkt(MessageType::Request, 4, true, &[offered]));
    assert_eq!(addr_of(&one(&e)).map(|x| x.0), Ok(offered));
}

/// On an overlay network each host hands out new addresses from its slice of the range
/// only; a client asking for its address from another host's slice (it moved) gets it.
#[test]
fn hosts_of_an_overlay_lease_from_their_slices_and_keep_a_moved_client() {
    let n = net(&small(10, ""));
    let idx = v6::ip_index(&n).unwrap();
    let cfg = Config::from_network(&n, idx, SERVER_DUID.to_vec()).unwrap();
    for count in 1..=12usize {
        let mut seen = Vec::new();
        for index in 0..count {
            for r in cfg.clone().slice(index, count).own_ranges() {
                seen.extend(u128::from(r.start)..=u128::from(r.end));
            }
        }
        let all: Vec<u128> = (u128::from(a(0x100))..=u128::from(a(0x109))).collect();
        assert_eq!(seen, all, "{count} hosts cover the range once");
    }
    let mut h1 = Server::new(cfg.clone().slice(0, 2), LeaseTable::new());
    let mut h2 = Server::new(cfg.slice(1, 2), LeaseTable::new());
    let on1: Vec<Ipv6Addr> = (1..=5)
        .map(|c| bind(&mut h1, NOW, &client(c)).unwrap())
        .collect();
    let on2: Vec<Ipv6Addr> = (11..=15)
        .map(|c| bind(&mut h2, NOW, &client(c)).unwrap())
        .collect();
    assert_eq!(on1, (0x100..=0x104).map(a).collect::<Vec<_>>());
    assert_eq!(on2, (0x105..=0x109).map(a).collect::<Vec<_>>());
    assert_eq!(
        bind(&mut h1, NOW, &client(6)),
        Err(Status::NoAddrsAvail),
        "no borrowing from the other host's slice"
    );
    // client 1 moved to h2 and solicits its address.
    let adv = one(&h2.handle(
        NOW + 60,
        &msg(
            MessageType::Solicit,
            Some(&client(1)),
            false,
            &[(1, &[on1[0]])],
            vec![],
        ),
    ));
    assert_eq!(addr_of(&adv).map(|x| x.0), Ok(on1[0]));
}
