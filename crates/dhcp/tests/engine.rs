//! Protocol behaviour of the engine, one scenario per test.

mod common;

use std::net::Ipv4Addr;

use common::*;
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use kvnet_dhcp::{
    Config, Destination, Effect, Event, LeaseRecord, LeaseState, LeaseTable, LeaseTime, Server,
    StaticHost,
};

#[test]
fn dora_gives_address_and_all_options() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let offer = send(&mut s, NOW, Pkt::discover(m));
    assert_eq!(offer.kind(), MessageType::Offer);
    assert_eq!(offer.yiaddr(), ip(2));
    assert!(offer.persists.is_empty(), "offers are not journalled");
    assert_eq!(offer.dest(), Destination::Hardware { ip: ip(2), mac: m });
    assert_eq!(offer.dest().port(), 68);

    let ack = send(&mut s, NOW, Pkt::select(m, ip(2)));
    assert_eq!(ack.kind(), MessageType::Ack);
    let r = ack.reply();
    assert_eq!(r.yiaddr(), ip(2));
    assert_eq!(r.xid(), Pkt::discover(m).0.xid());
    assert_eq!(r.chaddr(), &m.0);
    use DhcpOption as O;
    let want = [
        (OptionCode::ServerIdentifier, O::ServerIdentifier(SERVER)),
        (
            OptionCode::SubnetMask,
            O::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        ),
        (OptionCode::BroadcastAddr, O::BroadcastAddr(ip(255))),
        (OptionCode::Router, O::Router(vec![SERVER])),
        (
            OptionCode::DomainNameServer,
            O::DomainNameServer(vec![SERVER]),
        ),
        (
            OptionCode::DomainName,
            O::DomainName("example.org".to_string()),
        ),
        (OptionCode::AddressLeaseTime, O::AddressLeaseTime(3600)),
        (OptionCode::Renewal, O::Renewal(1800)),
        (OptionCode::Rebinding, O::Rebinding(3150)),
    ];
    for (code, val) in want {
        assert_eq!(opt(r, code), Some(&val), "{code:?}");
        assert_eq!(opt(offer.reply(), code), Some(&val), "offer {code:?}");
    }
    assert!(opt(r, OptionCode::InterfaceMtu).is_none());
    assert!(opt(r, OptionCode::ClientIdentifier).is_none());

    // The journal write comes before the reply that depends on it.
    assert!(matches!(ack.effects[0], Effect::Persist(_)));
    assert!(matches!(ack.effects[1], Effect::Send { .. }));
    assert_eq!(
        ack.persists,
        vec![LeaseRecord {
            ip_address: ip(2),
            mac_address: m,
            client_id: None,
            hostname: None,
            expiry_time: NOW + 3600,
            state: LeaseState::Bound,
        }]
    );
    assert!(
        ack.logs
            .iter()
            .any(|e| matches!(e, Event::Ack { ip: a, .. } if *a == ip(2)))
    );
}

#[test]
fn broadcast_flag_and_second_client() {
    let mut s = server(NAT_NET);
    let a = dora(&mut s, NOW, mac(1));
    let offer = send(&mut s, NOW, Pkt::discover(mac(2)).broadcast());
    assert_eq!(offer.dest(), Destination::Broadcast);
    assert_ne!(offer.yiaddr(), a);
    assert_eq!(offer.dest().ip(), Ipv4Addr::BROADCAST);
}

#[test]
fn client_id_is_echoed_and_recorded() {
    let mut s = server(NAT_NET);
    let id = [1, 0x52, 0x54, 0, 0, 0, 7];
    let o = send(&mut s, NOW, Pkt::discover(mac(7)).client_id(&id));
    assert_eq!(
        opt(o.reply(), OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(id.to_vec()))
    );
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(7), o.yiaddr())
            .client_id(&id)
            .hostname("guest7"),
    );
    assert_eq!(
        a.persists[0].client_id.as_deref(),
        Some("01:52:54:00:00:00:07")
    );
    let l = s.leases(NOW);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].hostname.as_deref(), Some("guest7"));
    assert_eq!(l[0].prefix, 24);
    assert_eq!(l[0].expiry_time, NOW + 3600);
    // Same client id from another NIC: same lease.
    let again = send(&mut s, NOW + 5, Pkt::discover(mac(8)).client_id(&id));
    assert_eq!(again.yiaddr(), o.yiaddr());
}

#[test]
fn renew_and_rebind_extend_by_unicast() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    let t1 = NOW + 1800;
    let renew = send(&mut s, t1, Pkt::renew(m, a));
    assert_eq!(renew.kind(), MessageType::Ack);
    assert_eq!(renew.dest(), Destination::Unicast(a));
    assert_eq!(renew.reply().ciaddr(), a);
    assert_eq!(renew.persists[0].expiry_time, t1 + 3600);

    // Rebinding is broadcast by the client, but it has an address: unicast back.
    let t2 = t1 + 3150;
    let rebind = send(&mut s, t2, Pkt::renew(m, a).broadcast());
    assert_eq!(rebind.kind(), MessageType::Ack);
    assert_eq!(rebind.dest(), Destination::Unicast(a));
    assert_eq!(s.leases(t2)[0].expiry_time, t2 + 3600);
}

#[test]
fn renew_of_unknown_but_free_address_is_acked() {
    // Authoritative: after losing state, a client renewing a free address keeps it.
    let mut s = server(NAT_NET);
    let r = send(&mut s, NOW, Pkt::renew(mac(1), ip(77)));
    assert_eq!(r.kind(), MessageType::Ack);
    assert_eq!(r.yiaddr(), ip(77));
}

#[test]
fn init_reboot_right_and_wrong() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    let ok = send(&mut s, NOW + 10, Pkt::init_reboot(m, a));
    assert_eq!(ok.kind(), MessageType::Ack);
    assert_eq!(ok.yiaddr(), a);

    // Moved from another network: wrong subnet, NAK by broadcast.
    let nak = send(
        &mut s,
        NOW + 20,
        Pkt::init_reboot(mac(2), Ipv4Addr::new(10, 0, 0, 5)),
    );
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(nak.dest(), Destination::Broadcast);
    assert_eq!(nak.reply().yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(nak.persists.is_empty());
    assert_eq!(
        opt(nak.reply(), OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );

    // Someone else's address: NAK, and the holder keeps it.
    let nak = send(&mut s, NOW + 30, Pkt::init_reboot(mac(2), a));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(s.leases(NOW + 30)[0].mac_address, m);

    // Outside every range (but in the subnet): NAK.
    let nak = send(&mut s, NOW + 40, Pkt::init_reboot(mac(3), SERVER));
    assert_eq!(nak.kind(), MessageType::Nak);
}

#[test]
fn request_for_other_server_is_ignored_and_frees_offer() {
    let xml = small_net(10, 10, "", "");
    let mut s = server(&xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.yiaddr(), ip(10));
    // Pool of one is held by the offer.
    assert!(send(&mut s, NOW, Pkt::discover(mac(2))).silent());
    let other = Ipv4Addr::new(192, 168, 122, 99);
    let r = send(
        &mut s,
        NOW,
        Pkt::new(MessageType::Request, mac(1))
            .server_id(other)
            .requested(ip(10)),
    );
    assert!(r.silent() && r.persists.is_empty());
    assert_eq!(send(&mut s, NOW, Pkt::discover(mac(2))).yiaddr(), ip(10));
}

#[test]
fn offer_is_held_then_reclaimed_for_another_client() {
    let xml = small_net(10, 10, "", "");
    let mut s = server(&xml);
    send(&mut s, NOW, Pkt::discover(mac(1)));
    // A full pool keeps the offer its client's for a few seconds...
    assert!(send(&mut s, NOW + 2, Pkt::discover(mac(2))).silent());
    // ...then gives it to the next client rather than refusing it.
    let late = send(&mut s, NOW + 3, Pkt::discover(mac(2)));
    assert_eq!(late.yiaddr(), ip(10));
    // The first client's late REQUEST is refused now.
    let nak = send(&mut s, NOW + 4, Pkt::select(mac(1), ip(10)));
    assert_eq!(nak.kind(), MessageType::Nak);
}

#[test]
fn release_then_rediscover_gets_same_address() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    dora(&mut s, NOW, mac(2));
    let r = send(&mut s, NOW + 100, Pkt::release(m, a));
    assert!(r.silent());
    assert_eq!(r.persists.len(), 1);
    assert_eq!(r.persists[0].state, LeaseState::Released);
    assert_eq!(r.persists[0].expiry_time, NOW + 100);
    assert_eq!(s.leases(NOW + 100).len(), 1);
    assert_eq!(send(&mut s, NOW + 200, Pkt::discover(m)).yiaddr(), a);
    // A release of an address the client does not hold changes nothing.
    let bogus = send(&mut s, NOW + 300, Pkt::release(mac(3), ip(3)));
    assert!(bogus.persists.is_empty());
    assert_eq!(s.leases(NOW + 300).len(), 1);
}

#[test]
fn decline_quarantines_the_address() {
    let mut s = server(&small_net(10, 11, "", ""));
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    assert_eq!(a, ip(10));
    let d = send(&mut s, NOW + 1, Pkt::decline(m, a));
    assert!(d.silent());
    assert_eq!(d.persists[0].state, LeaseState::Released);
    assert!(s.leases(NOW + 1).is_empty());
    assert_eq!(send(&mut s, NOW + 2, Pkt::discover(m)).yiaddr(), ip(11));
    send(&mut s, NOW + 2, Pkt::select(m, ip(11)));
    assert!(send(&mut s, NOW + 3, Pkt::discover(mac(2))).silent());
    // After the quarantine (600 s), .10 is back.
    assert_eq!(
        send(&mut s, NOW + 601, Pkt::discover(mac(2))).yiaddr(),
        ip(10)
    );
}

#[test]
fn decline_by_non_holder_is_ignored() {
    let mut s = server(&small_net(10, 11, "", ""));
    let a = dora(&mut s, NOW, mac(1));
    let d = send(&mut s, NOW, Pkt::decline(mac(2), ip(11)));
    assert!(d.persists.is_empty());
    assert_eq!(send(&mut s, NOW, Pkt::discover(mac(2))).yiaddr(), ip(11));
    assert_eq!(s.leases(NOW)[0].ip_address, a);
}

#[test]
fn declined_offer_is_not_offered_again() {
    let mut s = server(&small_net(10, 11, "", ""));
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    send(&mut s, NOW, Pkt::decline(mac(1), o.yiaddr()));
    assert_eq!(send(&mut s, NOW, Pkt::discover(mac(1))).yiaddr(), ip(11));
}

const STATIC_NET: &str = "<network><name>s</name><forward mode='nat'/>
  <ip address='192.168.122.1' prefix='24'><dhcp>
    <range start='192.168.122.10' end='192.168.122.20'/>
    <host mac='52:54:00:00:00:aa' name='bymac' ip='192.168.122.10'/>
    <host name='byid' id='01:52:54:00:00:00:bb' ip='192.168.122.11'>
      <lease expiry='2' unit='hours'/>
    </host>
    <host name='byname' ip='192.168.122.100'/>
  </dhcp></ip></network>";

#[test]
fn static_host_by_mac_wins_and_is_never_given_away() {
    let mut s = server(STATIC_NET);
    // Others never get .10 or .11, even when asking for them.
    let o = send(&mut s, NOW, Pkt::discover(mac(1)).requested(ip(10)));
    assert_eq!(o.yiaddr(), ip(12));
    let nak = send(&mut s, NOW, Pkt::init_reboot(mac(2), ip(11)));
    assert_eq!(nak.kind(), MessageType::Nak);

    let host = mac(0xaa);
    let o = send(&mut s, NOW, Pkt::discover(host).requested(ip(15)));
    assert_eq!(o.yiaddr(), ip(10));
    assert_eq!(
        opt(o.reply(), OptionCode::Hostname),
        Some(&DhcpOption::Hostname("bymac".to_string()))
    );
    let a = send(&mut s, NOW, Pkt::select(host, ip(10)));
    assert_eq!(a.persists[0].hostname.as_deref(), Some("bymac"));
    // The host may not take another address.
    let nak = send(&mut s, NOW, Pkt::init_reboot(host, ip(15)));
    assert_eq!(nak.kind(), MessageType::Nak);
}

#[test]
fn static_host_by_client_id_gets_its_lease_time() {
    let mut s = server(STATIC_NET);
    let id = [1, 0x52, 0x54, 0, 0, 0, 0xbb];
    let o = send(&mut s, NOW, Pkt::discover(mac(5)).client_id(&id));
    assert_eq!(o.yiaddr(), ip(11));
    assert_eq!(
        opt(o.reply(), OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(7200))
    );
    let a = send(&mut s, NOW, Pkt::select(mac(5), ip(11)).client_id(&id));
    assert_eq!(a.persists[0].expiry_time, NOW + 7200);
}

#[test]
fn static_host_by_name_outside_the_range() {
    let mut s = server(STATIC_NET);
    let o = send(&mut s, NOW, Pkt::discover(mac(6)).hostname("ByName"));
    assert_eq!(o.yiaddr(), ip(100));
    let a = send(&mut s, NOW, Pkt::select(mac(6), ip(100)).hostname("ByName"));
    assert_eq!(a.kind(), MessageType::Ack);
    // Without the name, the same address is refused.
    let nak = send(&mut s, NOW, Pkt::init_reboot(mac(7), ip(100)));
    assert_eq!(nak.kind(), MessageType::Nak);
}

#[test]
fn a_reservation_for_a_mac_is_never_given_to_a_client_that_takes_its_name() {
    let mut s = server(STATIC_NET);
    let owner = mac(0xaa);
    assert_eq!(send(&mut s, NOW, Pkt::discover(owner)).yiaddr(), ip(10));
    assert_eq!(
        send(&mut s, NOW, Pkt::select(owner, ip(10))).kind(),
        MessageType::Ack
    );
    // Another guest calling itself "bymac" (or the client id host's "byid") gets a
    // dynamic address, and asking for the reserved one is refused.
    for name in ["bymac", "BYID"] {
        let o = send(&mut s, NOW, Pkt::discover(mac(9)).hostname(name));
        assert!(
            ![ip(10), ip(11)].contains(&o.yiaddr()),
            "{name}: {:?}",
            o.yiaddr()
        );
        let nak = send(&mut s, NOW, Pkt::init_reboot(mac(9), ip(10)).hostname(name));
        assert_eq!(nak.kind(), MessageType::Nak, "{name}");
    }
    // The owner keeps its lease and renews it.
    let a = send(&mut s, NOW + 60, Pkt::renew(owner, ip(10)));
    assert_eq!(a.kind(), MessageType::Ack);
    assert_eq!(
        s.leases(NOW + 60)
            .iter()
            .filter(|l| l.ip_address == ip(10))
            .count(),
        1
    );
}

#[test]
fn a_name_reservation_never_moves_a_live_lease() {
    let mut s = server(STATIC_NET);
    assert_eq!(
        send(&mut s, NOW, Pkt::select(mac(6), ip(100)).hostname("byname")).kind(),
        MessageType::Ack
    );
    // A second guest with the same name gets no claim on the address while it lives.
    let o = send(&mut s, NOW, Pkt::discover(mac(7)).hostname("byname"));
    assert_ne!(o.yiaddr(), ip(100));
    let nak = send(
        &mut s,
        NOW,
        Pkt::init_reboot(mac(7), ip(100)).hostname("byname"),
    );
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(
        send(&mut s, NOW + 60, Pkt::renew(mac(6), ip(100))).kind(),
        MessageType::Ack
    );
}

#[test]
fn static_host_takes_its_address_from_a_dynamic_lease() {
    // A lease from before the reservation existed.
    let mut t = LeaseTable::new();
    t.apply(LeaseRecord {
        ip_address: ip(10),
        mac_address: mac(1),
        client_id: None,
        hostname: None,
        expiry_time: NOW + 1000,
        state: LeaseState::Bound,
    });
    let mut s = Server::new(config(STATIC_NET), t);
    let host = mac(0xaa);
    assert_eq!(send(&mut s, NOW, Pkt::discover(host)).yiaddr(), ip(10));
    let a = send(&mut s, NOW, Pkt::select(host, ip(10)));
    assert_eq!(a.persists.len(), 2);
    assert_eq!(a.persists[0].mac_address, mac(1));
    assert_eq!(a.persists[0].state, LeaseState::Released);
    assert_eq!(a.persists[1].mac_address, host);
    assert!(
        a.logs
            .iter()
            .any(|e| matches!(e, Event::Revoked { previous, .. } if *previous == mac(1)))
    );
    let nak = send(&mut s, NOW + 1, Pkt::renew(mac(1), ip(10)));
    assert_eq!(nak.kind(), MessageType::Nak);
    let views = s.leases(NOW + 1);
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].mac_address, host);
}

#[test]
fn moving_client_releases_old_address_first() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    let r = send(&mut s, NOW + 5, Pkt::init_reboot(m, ip(200)));
    assert_eq!(r.kind(), MessageType::Ack);
    assert_eq!(r.persists.len(), 2);
    assert_eq!(
        (r.persists[0].ip_address, r.persists[0].state),
        (a, LeaseState::Released)
    );
    assert_eq!(
        (r.persists[1].ip_address, r.persists[1].state),
        (ip(200), LeaseState::Bound)
    );
    assert_eq!(s.leases(NOW + 5).len(), 1);
}

#[test]
fn infinite_lease() {
    let xml = small_net(10, 20, "<lease expiry='0'/>", "");
    let mut s = server(&xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    let r = o.reply();
    assert_eq!(
        opt(r, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(u32::MAX))
    );
    assert!(opt(r, OptionCode::Renewal).is_none());
    assert!(opt(r, OptionCode::Rebinding).is_none());
    let a = send(&mut s, NOW, Pkt::select(mac(1), o.yiaddr()));
    assert_eq!(a.persists[0].expiry_time, 0);
    let far = NOW + 10 * 365 * 86400;
    assert_eq!(s.leases(far).len(), 1);
    assert_eq!(s.leases(far)[0].expiry_time, 0);
    assert!(s.expire(far).is_empty());
}

#[test]
fn lease_units() {
    for (lease, secs) in [
        ("<lease expiry='150' unit='seconds'/>", 150),
        ("<lease expiry='30'/>", 1800),
        ("<lease expiry='3' unit='hours'/>", 10800),
        ("", 3600),
    ] {
        let c = config(&small_net(10, 20, lease, ""));
        assert_eq!(c.ranges[0].lease, LeaseTime::Finite(secs), "{lease}");
    }
}

#[test]
fn short_lease_expires_and_is_reclaimed() {
    let xml = small_net(10, 10, "<lease expiry='2'/>", "");
    let mut s = server(&xml);
    let a = dora(&mut s, NOW, mac(1));
    assert_eq!(s.leases(NOW + 119).len(), 1);
    assert!(s.leases(NOW + 120).is_empty(), "exact at the expiry second");
    assert!(send(&mut s, NOW + 119, Pkt::discover(mac(2))).silent());
    assert_eq!(s.next_deadline(), Some(NOW + 120));
    let ev = s.expire(NOW + 120);
    assert_eq!(ev, vec![Effect::Log(Event::Expired { ip: a, mac: mac(1) })]);
    assert!(s.expire(NOW + 181).is_empty(), "reported once");
    assert_eq!(s.next_deadline(), None);
    let b = dora(&mut s, NOW + 181, mac(2));
    assert_eq!(b, a);
    // The previous holder now finds it taken.
    let nak = send(&mut s, NOW + 182, Pkt::renew(mac(1), a));
    assert_eq!(nak.kind(), MessageType::Nak);
}

#[test]
fn expired_lease_comes_back_to_its_client() {
    let xml = small_net(10, 20, "<lease expiry='2'/>", "");
    let mut s = server(&xml);
    let a = dora(&mut s, NOW, mac(1));
    dora(&mut s, NOW, mac(2));
    assert_eq!(send(&mut s, NOW + 1000, Pkt::discover(mac(1))).yiaddr(), a);
}

#[test]
fn reuse_takes_the_oldest_free_address_first() {
    let xml = small_net(10, 12, "<lease expiry='2'/>", "");
    let mut s = server(&xml);
    let a = dora(&mut s, NOW, mac(1));
    let b = dora(&mut s, NOW + 10, mac(2));
    let c = dora(&mut s, NOW + 20, mac(3));
    assert_eq!((a, b, c), (ip(10), ip(11), ip(12)));
    // Past the first quarter of its lease, the renewal extends it.
    send(&mut s, NOW + 40, Pkt::renew(mac(1), a));
    // At +200 all expired: .11 (expired +130) is older than .12 (+140) and .10 (+160).
    assert_eq!(send(&mut s, NOW + 200, Pkt::discover(mac(9))).yiaddr(), b);
}

#[test]
fn pool_exhaustion_logs_and_stays_silent() {
    let mut s = server(&small_net(10, 11, "", ""));
    dora(&mut s, NOW, mac(1));
    dora(&mut s, NOW, mac(2));
    let o = send(&mut s, NOW, Pkt::discover(mac(3)));
    assert!(o.silent());
    assert!(
        o.logs
            .iter()
            .any(|e| matches!(e, Event::PoolExhausted { mac: m } if *m == mac(3)))
    );
    // One line per exhaustion, not per DISCOVER: retries and other clients stay quiet...
    assert!(send(&mut s, NOW + 1, Pkt::discover(mac(3))).logs.is_empty());
    assert!(send(&mut s, NOW + 2, Pkt::discover(mac(4))).logs.is_empty());
    // ...until a minute has passed, or the pool had room again in between.
    assert_eq!(send(&mut s, NOW + 61, Pkt::discover(mac(3))).logs.len(), 1);
    send(&mut s, NOW + 62, Pkt::release(mac(1), ip(10)));
    dora(&mut s, NOW + 62, mac(5));
    assert_eq!(send(&mut s, NOW + 63, Pkt::discover(mac(3))).logs.len(), 1);
}

#[test]
fn note_in_use_is_skipped_by_allocation() {
    let mut s = server(&small_net(10, 12, "", ""));
    assert!(s.note_in_use(ip(10), mac(0x99), NOW).is_empty());
    let o = send(&mut s, NOW, Pkt::discover(mac(1)).requested(ip(10)));
    assert_eq!(o.yiaddr(), ip(11));
    // The machine seen on it may have it.
    assert_eq!(send(&mut s, NOW, Pkt::discover(mac(0x99))).yiaddr(), ip(10));
    // Outside our subnet: nothing to do.
    assert!(
        s.note_in_use(Ipv4Addr::new(10, 1, 1, 1), mac(5), NOW)
            .is_empty()
    );
}

#[test]
fn conflict_after_offer_abandons_it() {
    let mut s = server(&small_net(10, 12, "", ""));
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.yiaddr(), ip(10));
    let e = s.note_in_use(ip(10), mac(0x99), NOW + 1);
    assert!(matches!(e[..], [Effect::Log(Event::Conflict { .. })]));
    let nak = send(&mut s, NOW + 1, Pkt::select(mac(1), ip(10)));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(
        send(&mut s, NOW + 2, Pkt::discover(mac(1))).yiaddr(),
        ip(11)
    );
}

#[test]
fn conflict_after_ack_abandons_the_lease() {
    let mut s = server(&small_net(10, 12, "", ""));
    let a = dora(&mut s, NOW, mac(1));
    // The holder itself being seen is expected.
    assert!(s.note_in_use(a, mac(1), NOW + 1).is_empty());
    let e = s.note_in_use(a, mac(0x99), NOW + 2);
    assert!(
        matches!(&e[0], Effect::Persist(r) if r.state == LeaseState::Released && r.ip_address == a)
    );
    assert!(s.leases(NOW + 2).is_empty());
    assert_eq!(
        send(&mut s, NOW + 3, Pkt::renew(mac(1), a)).kind(),
        MessageType::Nak
    );
    assert_ne!(send(&mut s, NOW + 4, Pkt::discover(mac(1))).yiaddr(), a);
    // After the hold (600 s) the address is usable again.
    assert!(s.expire(NOW + 700).is_empty());
    assert_eq!(
        send(&mut s, NOW + 700, Pkt::discover(mac(2)).requested(a)).yiaddr(),
        a
    );
}

#[test]
fn offers_of_addresses_the_client_does_not_hold_are_probed_first() {
    let mut s = server(&small_net(10, 12, "", ""));
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.probes, vec![ip(10)]);
    // The probe leaves before the OFFER, to give a squatter's answer a head start.
    assert!(matches!(o.effects[0], Effect::Probe(a) if a == ip(10)));
    // A repeated DISCOVER for the same offer, and the holder coming back, are not probed.
    assert!(send(&mut s, NOW, Pkt::discover(mac(1))).probes.is_empty());
    dora(&mut s, NOW, mac(1));
    let again = send(&mut s, NOW + 10, Pkt::discover(mac(1)));
    assert_eq!(again.yiaddr(), ip(10));
    assert!(again.probes.is_empty());
    // A squatter answering the probe: the REQUEST for the offer is refused, the next
    // DISCOVER gets (and probes) another address.
    let o = send(&mut s, NOW, Pkt::discover(mac(2)));
    assert_eq!(o.probes, vec![ip(11)]);
    s.note_in_use(ip(11), mac(0x99), NOW);
    let nak = send(&mut s, NOW, Pkt::select(mac(2), ip(11)));
    assert_eq!(nak.kind(), MessageType::Nak);
    let o = send(&mut s, NOW + 1, Pkt::discover(mac(2)));
    assert_eq!((o.yiaddr(), o.probes.clone()), (ip(12), vec![ip(12)]));
}

#[test]
fn only_acks_of_fresh_bindings_wait_for_the_probe() {
    let mut s = server(&small_net(10, 12, "", ""));
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.after_probe, vec![None], "OFFERs never wait");
    // The first ACK of an address names it: the shell holds it while the probe sent with
    // the OFFER may still be answered.
    let ack = send(&mut s, NOW, Pkt::select(mac(1), ip(10)));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.after_probe, vec![Some(ip(10))]);
    // The holder asking again (a retransmitted REQUEST, INIT-REBOOT, renewal, rebinding)
    // already has the address: nothing to wait for.
    for p in [
        Pkt::select(mac(1), ip(10)),
        Pkt::init_reboot(mac(1), ip(10)),
        Pkt::renew(mac(1), ip(10)),
        Pkt::renew(mac(1), ip(10)).broadcast(),
    ] {
        let r = send(&mut s, NOW + 1, p);
        assert_eq!(r.kind(), MessageType::Ack);
        assert_eq!(r.after_probe, vec![None]);
    }
    // A NAK and an INFORM answer bind nothing.
    let nak = send(&mut s, NOW + 1, Pkt::init_reboot(mac(2), ip(10)));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(nak.after_probe, vec![None]);
    let inf = send(&mut s, NOW + 1, Pkt::inform(mac(3), ip(11)));
    assert_eq!(inf.kind(), MessageType::Ack);
    assert_eq!(inf.after_probe, vec![None]);
    // A client moving to another address binds it afresh; so does one whose lease ran
    // out or was released.
    let moved = send(&mut s, NOW + 2, Pkt::init_reboot(mac(1), ip(12)));
    assert_eq!(moved.kind(), MessageType::Ack);
    assert_eq!(moved.after_probe, vec![Some(ip(12))]);
    send(&mut s, NOW + 3, Pkt::release(mac(1), ip(12)));
    let back = send(&mut s, NOW + 4, Pkt::init_reboot(mac(1), ip(12)));
    assert_eq!(back.kind(), MessageType::Ack);
    assert_eq!(back.after_probe, vec![Some(ip(12))]);
}

fn big_net() -> String {
    "<network><name>big</name><forward mode='nat'/>
  <ip address='192.168.122.1' prefix='16'><dhcp>
    <range start='192.168.0.10' end='192.168.99.250'/>
  </dhcp></ip></network>"
        .to_string()
}

fn mac16(i: u32) -> kvnet_model::MacAddr {
    kvnet_model::MacAddr([0x52, 0x54, 0, 1, (i >> 8) as u8, i as u8])
}

#[test]
fn clients_find_their_leases_in_a_large_table() {
    // A /16 with thousands of leases: each client still gets its own address back, a
    // client id wins over the MAC, and fresh addresses are handed out in order.
    let mut s = server(&big_net());
    let n = 3000u32;
    let addr = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 0, 10)) + i);
    for i in 0..n {
        let m = mac16(i);
        let o = send(&mut s, NOW, Pkt::discover(m));
        assert_eq!(o.yiaddr(), addr(i));
        assert_eq!(
            send(&mut s, NOW, Pkt::select(m, addr(i))).kind(),
            MessageType::Ack
        );
    }
    for i in (0..n).step_by(97) {
        assert_eq!(
            send(&mut s, NOW + 5, Pkt::discover(mac16(i))).yiaddr(),
            addr(i)
        );
    }
    // A client id follows its client to another MAC.
    let (a, b) = (mac16(n + 5), mac16(n + 6));
    assert_eq!(
        send(&mut s, NOW + 5, Pkt::discover(a).client_id(&[1, 9])).yiaddr(),
        addr(n)
    );
    let ack = send(&mut s, NOW + 5, Pkt::select(a, addr(n)).client_id(&[1, 9]));
    assert_eq!(ack.kind(), MessageType::Ack);
    let o = send(&mut s, NOW + 5, Pkt::discover(b).client_id(&[1, 9]));
    assert_eq!(o.yiaddr(), addr(n));
    // Released, then back: the released record still belongs to it.
    let m = mac16(5);
    let rel = send(&mut s, NOW + 6, Pkt::release(m, addr(5)));
    assert_eq!(rel.persists.len(), 1);
    assert_eq!(send(&mut s, NOW + 7, Pkt::discover(m)).yiaddr(), addr(5));
    // A reconfiguration (new range start) restarts the search for never-used addresses.
    let mut cfg = s.config().clone();
    cfg.ranges[0].start = Ipv4Addr::new(192, 168, 0, 2);
    s.reconfigure(cfg);
    let o = send(&mut s, NOW + 8, Pkt::discover(mac16(n + 1)));
    assert_eq!(o.yiaddr(), Ipv4Addr::new(192, 168, 0, 2));
}

#[test]
fn flood_from_one_mac_does_not_starve_others() {
    let mut s = server(NAT_NET);
    let mut replies = 0;
    let mut limited = 0;
    for _ in 0..1000 {
        let o = send(&mut s, NOW, Pkt::discover(mac(1)));
        replies += o.sends.len();
        limited += o
            .logs
            .iter()
            .filter(|e| matches!(e, Event::RateLimited { .. }))
            .count();
    }
    assert_eq!(replies, 10, "burst");
    assert_eq!(limited, 1, "logged once per dry spell");
    assert_eq!(dora(&mut s, NOW, mac(2)), ip(3));
    // Tokens come back with time (2 per second).
    let later: usize = (0..5)
        .map(|_| send(&mut s, NOW + 1, Pkt::discover(mac(1))).sends.len())
        .sum();
    assert_eq!(later, 2);
}

#[test]
fn malformed_packets_are_dropped_with_rate_limited_logs() {
    let mut s = server(NAT_NET);
    let mut logs = 0;
    for i in 0..100u8 {
        let e = s.handle(NOW, &[i; 50]);
        assert!(e.iter().all(|e| matches!(e, Effect::Log(_))));
        logs += e.len();
    }
    assert_eq!(logs, 20);
    let e = s.handle(NOW + 10, &[0; 10]);
    assert!(e.contains(&Effect::Log(Event::Suppressed { count: 80 })));
    // A BOOTREPLY, or an OFFER sent to us, is not served.
    let mut p = Pkt::new(MessageType::Offer, mac(1));
    assert!(Out::of(s.handle(NOW + 20, &p.bytes())).silent());
    p.0.set_opcode(dhcproto::v4::Opcode::BootReply);
    assert!(Out::of(s.handle(NOW + 20, &p.bytes())).silent());
}

#[test]
fn isolated_network_has_no_router() {
    let xml = "<network><name>iso</name>
      <ip address='10.0.0.1' prefix='16'><dhcp><range start='10.0.0.10' end='10.0.0.20'/></dhcp></ip>
    </network>";
    let mut s = server(xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.yiaddr(), Ipv4Addr::new(10, 0, 0, 10));
    assert!(opt(o.reply(), OptionCode::Router).is_none());
    assert_eq!(
        opt(o.reply(), OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)))
    );
    assert_eq!(
        opt(o.reply(), OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 0, 0, 1
        )]))
    );
}

#[test]
fn dns_disabled_means_no_dns_option() {
    let xml = "<network><name>nodns</name><forward mode='route'/><dns enable='no'/>
      <ip address='192.168.122.1' prefix='24'><dhcp><range start='192.168.122.10' end='192.168.122.20'/></dhcp></ip>
    </network>";
    let mut s = server(xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert!(opt(o.reply(), OptionCode::DomainNameServer).is_none());
    assert!(opt(o.reply(), OptionCode::DomainName).is_none());
    assert_eq!(
        opt(o.reply(), OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
}

#[test]
fn mtu_option() {
    let xml = "<network><name>m</name><forward mode='nat'/><mtu size='9000'/>
      <ip address='192.168.122.1' prefix='24'><dhcp><range start='192.168.122.10' end='192.168.122.20'/></dhcp></ip>
    </network>";
    let mut s = server(xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(
        opt(o.reply(), OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(9000))
    );
}

#[test]
fn bootp_file_and_server() {
    let xml = small_net(
        10,
        20,
        "",
        "<bootp file='pxelinux.0' server='192.168.122.5'/>",
    );
    let mut s = server(&xml);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.reply().siaddr(), ip(5));
    assert_eq!(
        o.reply().fname_str().and_then(Result::ok),
        Some("pxelinux.0\0")
    );
    let xml = small_net(10, 20, "", "<bootp file='boot.ipxe'/>");
    let o = send(&mut server(&xml), NOW, Pkt::discover(mac(1)));
    assert_eq!(o.reply().siaddr(), SERVER);
}

#[test]
fn tftp_makes_us_next_server() {
    let xml = "<network><name>t</name><forward mode='nat'/>
      <ip address='192.168.122.1' prefix='24'><tftp root='/srv/tftp'/>
        <dhcp><range start='192.168.122.10' end='192.168.122.20'/></dhcp></ip>
    </network>";
    let o = send(&mut server(xml), NOW, Pkt::discover(mac(1)));
    assert_eq!(o.reply().siaddr(), SERVER);
    assert!(o.reply().fname().is_none());
    let plain = send(&mut server(NAT_NET), NOW, Pkt::discover(mac(1)));
    assert_eq!(plain.reply().siaddr(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = server(NAT_NET);
    let a = Ipv4Addr::new(192, 168, 122, 250);
    let r = send(&mut s, NOW, Pkt::inform(mac(1), a));
    assert_eq!(r.kind(), MessageType::Ack);
    assert_eq!(r.dest(), Destination::Unicast(a));
    assert_eq!(r.reply().yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.reply().ciaddr(), a);
    assert!(opt(r.reply(), OptionCode::AddressLeaseTime).is_none());
    assert!(opt(r.reply(), OptionCode::Router).is_some());
    assert!(r.persists.is_empty());
    assert!(s.leases(NOW).is_empty());
}

#[test]
fn relayed_requests() {
    let mut s = server(NAT_NET);
    let relay = ip(254);
    let o = send(&mut s, NOW, Pkt::discover(mac(1)).giaddr(relay));
    assert_eq!(o.dest(), Destination::Relay(relay));
    assert_eq!(o.dest().port(), 67);
    assert_eq!(o.reply().giaddr(), relay);
    let nak = send(
        &mut s,
        NOW,
        Pkt::init_reboot(mac(2), Ipv4Addr::new(10, 0, 0, 1)).giaddr(relay),
    );
    assert_eq!(nak.dest(), Destination::Relay(relay));
    assert!(
        nak.reply().flags().broadcast(),
        "relay must broadcast a NAK"
    );
    let foreign = send(
        &mut s,
        NOW,
        Pkt::discover(mac(3)).giaddr(Ipv4Addr::new(10, 9, 9, 1)),
    );
    assert!(foreign.silent());
}

#[test]
fn from_network_errors_and_defaults() {
    let n = net("<network><name>b</name><forward mode='bridge'/><bridge name='br0'/></network>");
    assert!(Config::from_network(&n, 0, n.profile().guests).is_err());
    let n = net(NAT_NET);
    assert!(Config::from_network(&n, 1, n.profile().guests).is_err());
    let v6 = net("<network><name>v6</name>
      <ip family='ipv6' address='2001:db8::1' prefix='64'/></network>");
    assert!(Config::from_network(&v6, 0, v6.profile().guests).is_err());
    let c = config(NAT_NET);
    assert_eq!(c.server_ip, SERVER);
    assert_eq!(c.domain.as_deref(), Some("example.org"));
    assert_eq!(c.router, Some(SERVER));
    assert_eq!(c.default_lease, LeaseTime::Finite(3600));
}

#[test]
fn startup_drops_records_the_config_cannot_serve() {
    let mut t = LeaseTable::new();
    for a in [Ipv4Addr::new(10, 0, 0, 5), SERVER, ip(0), ip(255), ip(30)] {
        t.apply(LeaseRecord {
            ip_address: a,
            mac_address: mac(1),
            client_id: None,
            hostname: None,
            expiry_time: 0,
            state: LeaseState::Bound,
        });
    }
    let s = Server::new(config(NAT_NET), t);
    let l = s.leases(NOW);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].ip_address, ip(30));
}

#[test]
fn hand_built_config_with_static_host_without_address() {
    let mut c = Config::new(SERVER, "192.168.122.0/24".parse().unwrap());
    c.ranges.push(kvnet_dhcp::Range {
        start: ip(10),
        end: ip(20),
        lease: LeaseTime::Finite(600),
    });
    c.hosts.push(StaticHost {
        mac: Some(mac(1)),
        name: Some("named".into()),
        lease: Some(LeaseTime::Infinite),
        ..StaticHost::default()
    });
    let mut s = Server::new(c, LeaseTable::new());
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert_eq!(o.yiaddr(), ip(10));
    let a = send(&mut s, NOW, Pkt::select(mac(1), ip(10)));
    assert_eq!(a.persists[0].expiry_time, 0);
    assert_eq!(a.persists[0].hostname.as_deref(), Some("named"));
}

#[test]
fn event_display_is_readable() {
    let e = Event::Ack {
        ip: ip(5),
        mac: mac(1),
        hostname: Some("vm".into()),
        renewed: false,
    };
    assert_eq!(e.to_string(), "DHCPACK 192.168.122.5 52:54:00:00:00:01 vm");
}

/// A DISCOVER from `m` with raw option bytes spliced in before the end marker.
fn discover_with_raw_options(m: kvnet_model::MacAddr, raw: &[u8]) -> Vec<u8> {
    let mut b = Pkt::discover(m).bytes();
    let end = b.iter().rposition(|&x| x == 255).expect("end option");
    b.splice(end..end, raw.iter().copied());
    b
}

#[test]
fn hostile_options_are_ignored_not_fatal() {
    // Zero-length FQDN (81), short client-network-interface (94), empty BLQ status
    // (151) and rapid-commit with data (80): dhcproto asserts on these lengths.
    for raw in [
        &[81u8, 0][..],
        &[94, 1, 0],
        &[151, 0],
        &[80, 2, 1, 1],
        &[82, 3, 1, 5, 0],
        &[12, 2, 0xff, 0xfe],
        &[50, 3, 1, 2, 3],
    ] {
        let mut s = server(NAT_NET);
        let o = Out::of(s.handle(NOW, &discover_with_raw_options(mac(1), raw)));
        assert_eq!(o.kind(), MessageType::Offer, "{raw:?}");
        assert_eq!(o.yiaddr(), ip(2));
    }
    // An option running past the end of the packet is malformed.
    let mut s = server(NAT_NET);
    let mut b = Pkt::discover(mac(1)).bytes();
    let end = b.iter().rposition(|&x| x == 255).unwrap();
    b.truncate(end);
    b.extend([12, 40, b'a']);
    assert!(Out::of(s.handle(NOW, &b)).silent());
}

#[test]
fn split_options_are_concatenated() {
    // RFC 3396: option 50 sent in two pieces.
    let mut s = server(NAT_NET);
    let raw = [50, 2, 192, 168, 50, 2, 122, 77];
    let o = Out::of(s.handle(NOW, &discover_with_raw_options(mac(1), &raw)));
    assert_eq!(o.yiaddr(), ip(77));
}

#[test]
fn odd_hostnames_are_not_recorded() {
    let mut s = server(NAT_NET);
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(1), ip(9)).hostname("bad name;rm"),
    );
    assert_eq!(a.kind(), MessageType::Ack);
    assert_eq!(a.persists[0].hostname, None);
}

#[test]
fn reconfigure_keeps_leases_and_applies_new_rules() {
    let mut s = server(&small_net(10, 20, "", ""));
    let a = dora(&mut s, NOW, mac(1));
    let b = dora(&mut s, NOW, mac(2));
    // The range shrinks past b, and a becomes another host's reservation.
    s.reconfigure(config(&small_net(
        11,
        11,
        "",
        "<host mac='52:54:00:00:00:aa' ip='192.168.122.10'/>",
    )));
    assert_eq!(s.leases(NOW).len(), 2, "leases are kept");
    assert_eq!(
        send(&mut s, NOW + 1, Pkt::renew(mac(1), a)).kind(),
        MessageType::Nak
    );
    assert_eq!(
        send(&mut s, NOW + 1, Pkt::renew(mac(2), b)).kind(),
        MessageType::Ack
    );
    assert_eq!(send(&mut s, NOW + 2, Pkt::discover(mac(0xaa))).yiaddr(), a);
}

#[test]
fn a_dotted_hostname_keeps_its_first_label() {
    let mut s = server(NAT_NET);
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(1), ip(9)).hostname("web1.example.lan"),
    );
    assert_eq!(a.persists[0].hostname.as_deref(), Some("web1"));
}

/// The reply's bytes as the engine sent them (a decoded message may drop options).
fn sent(o: &Out) -> Vec<u8> {
    o.effects
        .iter()
        .find_map(|e| match e {
            Effect::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .expect("a reply")
}

#[test]
fn option_81_names_the_lease_and_is_answered() {
    const DOMAIN_NET: &str = "<network><name>d</name><forward mode='nat'/><domain name='lan'/>
      <ip address='192.168.122.1' prefix='24'><dhcp>
        <range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";
    let mut s = server(DOMAIN_NET);
    // Canonical wire encoding (E), the client asking to update its A record itself.
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(1), ip(9))
            .hostname("ignored")
            .fqdn(0x04, b"\x04web1\x07example\x03lan\x00"),
    );
    assert_eq!(a.persists[0].hostname.as_deref(), Some("web1"));
    let raw = sent(&a);
    // S and O (the server does the update), E kept, RCODEs 255, web1.lan.
    let want = [&[81u8, 13, 0x07, 255, 255][..], b"\x04web1\x03lan\x00"].concat();
    assert!(raw.windows(want.len()).any(|w| w == want), "{raw:?}");
    // ASCII encoding.
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(2), ip(10)).fqdn(0x01, b"db.other.org"),
    );
    assert_eq!(a.persists[0].hostname.as_deref(), Some("db"));
    let raw = sent(&a);
    let want = [&[81u8, 9, 0x01, 255, 255][..], b"db.lan"].concat();
    assert!(raw.windows(want.len()).any(|w| w == want), "{raw:?}");
}

#[test]
fn the_newest_lease_holding_a_name_owns_it() {
    let mut s = server(NAT_NET);
    send(&mut s, NOW, Pkt::select(mac(1), ip(9)).hostname("vm"));
    // The guest is re-created with a new MAC and the same name.
    let a = send(&mut s, NOW + 5, Pkt::select(mac(2), ip(10)).hostname("VM"));
    let old = a
        .persists
        .iter()
        .find(|r| r.mac_address == mac(1))
        .expect("the old lease is recorded again");
    assert_eq!(old.hostname, None);
    assert!(
        a.logs
            .iter()
            .any(|e| matches!(e, Event::NameMoved { from, .. } if *from == mac(1)))
    );
    let named: Vec<_> = s
        .leases(NOW + 5)
        .into_iter()
        .filter_map(|l| l.hostname)
        .collect();
    assert_eq!(named, ["VM"]);
    // The old guest renewing under the name does not take it back silently: the newest
    // binding owns it, and the other loses it.
    let r = send(&mut s, NOW + 10, Pkt::renew(mac(1), ip(9)).hostname("vm"));
    assert_eq!(r.kind(), MessageType::Ack);
    let named: Vec<_> = s
        .leases(NOW + 10)
        .into_iter()
        .filter_map(|l| l.hostname.map(|h| (l.mac_address, h)))
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
}

#[test]
fn names_the_admin_defined_are_never_taken_by_a_lease() {
    let net = "<network><name>a</name><forward mode='nat'/><domain name='lan'/>
      <dns><host ip='192.168.122.201'><hostname>printer</hostname></host>
           <host ip='192.168.122.202'><hostname>nas.lan</hostname></host></dns>
      <ip address='192.168.122.1' prefix='24'><dhcp>
        <range start='192.168.122.2' end='192.168.122.100'/>
        <host mac='52:54:00:00:00:aa' name='fixed' ip='192.168.122.150'/></dhcp></ip></network>";
    let mut s = server(net);
    for (n, name) in ["printer", "NAS", "fixed"].into_iter().enumerate() {
        let a = send(
            &mut s,
            NOW,
            Pkt::select(mac(n as u8 + 1), ip(9 + n as u8)).hostname(name),
        );
        assert_eq!(a.kind(), MessageType::Ack, "{name}");
        assert_eq!(a.persists[0].hostname, None, "{name}");
        assert!(
            a.logs
                .iter()
                .any(|e| matches!(e, Event::NameRefused { .. })),
            "{name}: {:?}",
            a.logs
        );
    }
    // The static host itself keeps its name.
    let a = send(
        &mut s,
        NOW,
        Pkt::select(mac(0xaa), ip(150)).hostname("fixed"),
    );
    assert_eq!(a.persists[0].hostname.as_deref(), Some("fixed"));
}

#[test]
fn clients_that_never_request_do_not_fill_the_pool() {
    let mut s = server(&small_net(10, 14, "", ""));
    // One guest cycling MACs: five DISCOVERs, no REQUEST.
    for n in 1..=5 {
        assert!(!send(&mut s, NOW, Pkt::discover(mac(n))).silent());
    }
    // A real guest a few seconds later is offered the oldest offer's address, and binds.
    let o = send(&mut s, NOW + 3, Pkt::discover(mac(0x99)));
    assert_eq!(o.yiaddr(), ip(10));
    assert_eq!(
        send(&mut s, NOW + 3, Pkt::select(mac(0x99), ip(10))).kind(),
        MessageType::Ack
    );
}

#[test]
fn a_client_asking_for_a_shorter_lease_gets_it_but_never_under_two_minutes() {
    let mut s = server(NAT_NET);
    let lease = |o: &Out| match opt(o.reply(), OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        other => panic!("{other:?}"),
    };
    let o = send(&mut s, NOW, Pkt::discover(mac(1)).lease(600));
    assert_eq!(lease(&o), 600);
    let a = send(&mut s, NOW, Pkt::select(mac(1), o.yiaddr()).lease(600));
    assert_eq!((lease(&a), a.persists[0].expiry_time), (600, NOW + 600));
    // Longer than configured: the network's hour. Shorter than the floor: two minutes.
    let a = send(&mut s, NOW, Pkt::select(mac(2), ip(20)).lease(86_400));
    assert_eq!(lease(&a), 3600);
    let a = send(&mut s, NOW, Pkt::select(mac(3), ip(21)).lease(10));
    assert_eq!(lease(&a), 120);
}

#[test]
fn options_come_in_the_order_the_client_asked_for_them() {
    let mut s = server(NAT_NET);
    let mut p = Pkt::discover(mac(1));
    let prl = [6u8, 3, 1, 28];
    p.0.opts_mut().insert(DhcpOption::ParameterRequestList(
        prl.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    let raw = sent(&send(&mut s, NOW, p));
    // The option codes in the order they were sent.
    let mut codes = Vec::new();
    let mut i = 240;
    while raw[i] != 255 {
        codes.push(raw[i]);
        i += 2 + raw[i + 1] as usize;
    }
    let asked: Vec<u8> = codes.iter().copied().filter(|c| prl.contains(c)).collect();
    assert_eq!(asked, prl, "{codes:?}");
    // Type and server id first; the asked ones before the rest.
    assert_eq!(&codes[..2], &[53, 54], "{codes:?}");
    let last_asked = codes.iter().rposition(|c| prl.contains(c)).unwrap();
    let first_unasked = codes
        .iter()
        .position(|c| ![53, 54, 51, 58, 59].contains(c) && !prl.contains(c))
        .unwrap_or(codes.len());
    assert!(last_asked < first_unasked, "{codes:?}");
}

#[test]
fn overloaded_options_in_the_file_field_are_read() {
    let mut s = server(NAT_NET);
    let mut b = Pkt::new(MessageType::Request, mac(1)).bytes();
    // Option 52 = 1 (file), before the end of the options field.
    let end = b[240..].iter().position(|&x| x == 255).unwrap() + 240;
    b.splice(end..end, [52, 1, 1]);
    // The file field: the requested address and a host name.
    let file = [&[50u8, 4, 192, 168, 122, 33, 12, 4][..], b"over", &[255]].concat();
    b[108..108 + file.len()].copy_from_slice(&file);
    let a = Out::of(s.handle(NOW, &b));
    assert_eq!(a.kind(), MessageType::Ack);
    assert_eq!(a.yiaddr(), ip(33));
    assert_eq!(a.persists[0].hostname.as_deref(), Some("over"));
}

#[test]
fn stats_count_messages_and_outcomes() {
    let mut s = server(&small_net(10, 11, "", ""));
    let (a, b) = (mac(1), mac(2));
    let ip_a = dora(&mut s, NOW, a);
    dora(&mut s, NOW, b);
    // The pool (two addresses) is exhausted for a third client.
    send(&mut s, NOW, Pkt::discover(mac(3)));
    send(&mut s, NOW + 1, Pkt::release(a, ip_a));
    s.handle(NOW + 1, b"not dhcp");
    let st = s.stats();
    assert_eq!(st.received["discover"], 3);
    assert_eq!(st.received["request"], 2);
    assert_eq!(st.received["release"], 1);
    assert_eq!((st.offers, st.acks, st.naks), (2, 2, 0));
    assert_eq!((st.no_address, st.releases, st.malformed), (1, 1, 1));
    // A NAK, then an expiry.
    send(&mut s, NOW + 2, Pkt::select(mac(4), ip(200)));
    let st = s.stats().clone();
    assert!(st.naks + st.ignored >= 1, "{st:?}");
    s.expire(NOW + 100_000);
    assert_eq!(s.stats().expirations, 1);
}

/// An overlay network's hosts share its ranges: each part is contiguous, the parts cover
/// every address once, and their sizes differ by one at most.
#[test]
fn slices_partition_the_ranges() {
    let cfg = config(&small_net(10, 19, "", ""));
    for count in 1..=12usize {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for index in 0..count {
            let own = cfg.clone().slice(index, count).own_ranges();
            assert!(own.len() <= 1);
            for r in own {
                let (s, e) = (u32::from(r.start), u32::from(r.end));
                sizes.push((s..=e).count());
                seen.extend(s..=e);
            }
        }
        let all: Vec<u32> = (u32::from(ip(10))..=u32::from(ip(19))).collect();
        assert_eq!(seen, all, "{count} hosts cover the range once, in order");
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{count}: {sizes:?}");
    }
    assert_eq!(cfg.clone().slice(9, 3).slice, Some((2, 3)), "index capped");
    assert_eq!(cfg.own_ranges(), cfg.ranges, "no slice: the whole ranges");
}

/// Two hosts of an overlay network never pick the same new address; a guest that moved
/// from one to the other keeps its address there.
#[test]
fn hosts_of_an_overlay_allocate_from_their_slices_and_honour_a_moved_guest() {
    let cfg = config(&small_net(10, 19, "", ""));
    let mut a = Server::new(cfg.clone().slice(0, 2), LeaseTable::new());
    let mut b = Server::new(cfg.slice(1, 2), LeaseTable::new());
    let on_a: Vec<Ipv4Addr> = (1..=5).map(|i| dora(&mut a, NOW, mac(i))).collect();
    let on_b: Vec<Ipv4Addr> = (11..=15).map(|i| dora(&mut b, NOW, mac(i))).collect();
    assert_eq!(on_a, (10..=14).map(ip).collect::<Vec<_>>());
    assert_eq!(on_b, (15..=19).map(ip).collect::<Vec<_>>());
    // Both slices are full: no borrowing from the other host's.
    let r = a.handle(NOW, &Pkt::discover(mac(6)).bytes());
    assert!(!r.iter().any(|e| matches!(e, Effect::Send { .. })), "{r:?}");
    // A guest of A moves to B and reboots: B acks its address.
    let moved = send(&mut b, NOW + 60, Pkt::init_reboot(mac(1), on_a[0]));
    assert_eq!(moved.kind(), MessageType::Ack);
    assert_eq!(moved.yiaddr(), on_a[0]);
}
