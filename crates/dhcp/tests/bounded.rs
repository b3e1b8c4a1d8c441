//! What keeps a network's journal bounded: renewals answered from their record (the
//! renewal rule), the network's budget of lease changes, and a failed journal write
//! taking the table back to what the journal holds.

mod common;

use common::*;
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use kvnet_dhcp::{Effect, Event, LeaseState, RateLimit, Server, replay};

fn lease_time(o: &Out) -> Option<u32> {
    match opt(o.reply(), OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
    }
}

fn t1(o: &Out) -> Option<u32> {
    match opt(o.reply(), OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) => Some(*t),
        _ => None,
    }
}

#[test]
fn early_renewals_are_answered_from_the_record_and_never_past_it() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    // 500 renewals in the first quarter of the hour: not one journal line, and each ACK
    // promises what is left of the recorded lease.
    for dt in 1..=500u64 {
        let r = send(&mut s, NOW + dt, Pkt::renew(m, a));
        assert_eq!((r.kind(), r.yiaddr()), (MessageType::Ack, a));
        assert!(r.persists.is_empty(), "renewal at +{dt} was journalled");
        assert_eq!(lease_time(&r), Some(3600 - dt as u32));
        assert_eq!(t1(&r), Some((3600 - dt as u32) / 2));
    }
    assert_eq!(s.leases(NOW + 500)[0].expiry_time, NOW + 3600);
    // Past the quarter: a new line and a whole hour.
    let r = send(&mut s, NOW + 901, Pkt::renew(m, a));
    assert_eq!(r.persists.len(), 1);
    assert_eq!(r.persists[0].expiry_time, NOW + 901 + 3600);
    assert_eq!(lease_time(&r), Some(3600));
    // And a SELECTING request (a client that rebooted) reuses it too.
    let r = send(&mut s, NOW + 902, Pkt::select(m, a));
    assert!(r.persists.is_empty());
    assert_eq!(lease_time(&r), Some(3599));
}

#[test]
fn a_renewal_that_changes_the_record_is_journalled() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    let r = send(&mut s, NOW + 1, Pkt::renew(m, a).hostname("newname"));
    assert_eq!(r.persists.len(), 1);
    assert_eq!(r.persists[0].hostname.as_deref(), Some("newname"));
    assert_eq!(lease_time(&r), Some(3600));
    // The name is kept by the next renewal without one: nothing changes.
    assert!(send(&mut s, NOW + 2, Pkt::renew(m, a)).persists.is_empty());
    let r = send(&mut s, NOW + 3, Pkt::renew(m, a).client_id(&[1, 2, 3]));
    assert_eq!(r.persists.len(), 1, "a client id is recorded");
}

#[test]
fn a_record_not_yet_reported_durable_is_never_reused() {
    let mut s = server(NAT_NET);
    let m = mac(1);
    let a = dora(&mut s, NOW, m);
    // A lease change and the holder's renewal in the same batch (no report in between):
    // the renewal is journalled too, so its ACK depends on the batch's write.
    let e = s.handle(NOW + 1, &Pkt::decline(mac(2), ip(50)).bytes());
    assert!(Out::of(e).persists.is_empty());
    let b = s.handle(NOW + 1, &Pkt::select(mac(3), ip(60)).bytes());
    assert_eq!(Out::of(b).persists.len(), 1);
    let r = Out::of(s.handle(NOW + 1, &Pkt::renew(mac(3), ip(60)).bytes()));
    assert_eq!(r.persists.len(), 1, "ACK of an unrecorded binding");
    s.recorded(true);
    let r = send(&mut s, NOW + 2, Pkt::renew(mac(3), ip(60)));
    assert!(r.persists.is_empty());
    assert!(send(&mut s, NOW + 2, Pkt::renew(m, a)).persists.is_empty());
}

#[test]
fn a_failed_write_takes_the_table_back_to_the_journal() {
    let mut s = server(NAT_NET);
    let mut journal = String::new();
    let keep = |o: &Out, j: &mut String| {
        for r in &o.persists {
            j.push_str(&kvnet_dhcp::encode_record(r));
        }
    };
    let a = dora(&mut s, NOW, mac(1));
    journal.push_str(&kvnet_dhcp::compact(s.table()));
    // The disk is full: a new binding, a move and a release are all lost with their
    // replies; the table forgets them.
    let fresh = Out::of(s.handle(NOW + 10, &Pkt::select(mac(2), ip(3)).bytes()));
    let moved = Out::of(s.handle(NOW + 10, &Pkt::init_reboot(mac(1), ip(30)).bytes()));
    assert_eq!(fresh.persists.len() + moved.persists.len(), 3);
    // In the same batch an offer goes past the new record, to the next fresh address.
    assert_eq!(
        Out::of(s.handle(NOW + 10, &Pkt::discover(mac(5)).bytes())).yiaddr(),
        ip(4)
    );
    s.recorded(false);
    assert_eq!(*s.table(), replay(&journal));
    assert!(s.table().get(ip(3)).is_none());
    assert_eq!(s.table().get(a).map(|r| r.state), Some(LeaseState::Bound));
    // The holder's renewal needs no new promise: answered from the durable record.
    let r = Out::of(s.handle(NOW + 11, &Pkt::renew(mac(1), a).bytes()));
    assert_eq!(r.kind(), MessageType::Ack);
    assert!(r.persists.is_empty());
    // Once space is back the retried requests are journalled and answered.
    let r = Out::of(s.handle(NOW + 12, &Pkt::select(mac(1), ip(30)).bytes()));
    assert_eq!((r.kind(), r.persists.len()), (MessageType::Ack, 2));
    keep(&r, &mut journal);
    s.recorded(true);
    assert_eq!(*s.table(), replay(&journal));
    // The address the rollback unleased is a fresh one again, first in line.
    let o = send(&mut s, NOW + 13, Pkt::discover(mac(4)));
    assert_eq!(o.yiaddr(), ip(3));
}

#[test]
fn the_network_budget_bounds_lease_changes_not_renewals() {
    // A /24: a burst of 256 changes, then 16 a second.
    let mut s = server(NAT_NET);
    assert_eq!(
        s.config().change_rate,
        RateLimit {
            burst: 256,
            per_sec: 16
        }
    );
    // One guest, rotating MACs, each at most 2 packets a second (the per-client limit):
    // the first 253 bind (the pool), the rest find it full.
    let mut acked = Vec::new();
    for i in 0..253u32 {
        let m = kvnet_model::MacAddr([0x02, 0, 0, 0, (i >> 8) as u8, i as u8]);
        acked.push((m, dora(&mut s, NOW, m)));
    }
    // Releases: 3 more changes pass, then the budget is spent.
    let mut limited = 0;
    let mut passed = 0;
    for &(m, a) in &acked[..20] {
        let r = send(&mut s, NOW, Pkt::release(m, a));
        passed += r.persists.len();
        limited += r
            .logs
            .iter()
            .filter(|e| matches!(e, Event::ChangesLimited { .. }))
            .count();
    }
    assert_eq!(passed, 3);
    assert_eq!(limited, 1, "logged once while it lasts");
    // While it is spent the holders still renew: past the quarter (a journal line
    // bounded by the renewal rule) and within it (no line at all).
    let (m, a) = acked[100];
    let r = send(&mut s, NOW + 1000, Pkt::renew(m, a));
    assert_eq!((r.kind(), r.persists.len()), (MessageType::Ack, 1));
    // 1000 s refilled the bucket; spend it again with new bindings of released addresses.
    let before = s.leases(NOW + 1000).len();
    let mut acks = 0;
    for i in 0..300u32 {
        let m = kvnet_model::MacAddr([0x06, 0, 0, 0, (i >> 8) as u8, i as u8]);
        let o = send(&mut s, NOW + 1000, Pkt::discover(m));
        if o.silent() {
            continue;
        }
        let r = send(&mut s, NOW + 1000, Pkt::select(m, o.yiaddr()));
        acks += usize::from(!r.silent());
    }
    assert!(acks <= 3, "only the 3 released addresses were free: {acks}");
    assert_eq!(s.leases(NOW + 1000).len(), before + acks);
    let r = send(&mut s, NOW + 1001, Pkt::renew(m, a));
    assert_eq!(r.kind(), MessageType::Ack);
    assert!(r.persists.is_empty());
}

#[test]
fn a_spent_budget_drops_new_bindings_until_it_refills() {
    let xml = small_net(2, 254, "", "");
    let mut cfg = config(&xml);
    cfg.change_rate = RateLimit {
        burst: 5,
        per_sec: 2,
    };
    let mut s = Server::new(cfg, kvnet_dhcp::LeaseTable::new());
    let mut bound = 0;
    let mut dropped = 0;
    for n in 1..=10 {
        let o = send(&mut s, NOW, Pkt::discover(mac(n)));
        assert_eq!(o.kind(), MessageType::Offer, "offers cost nothing");
        let r = send(&mut s, NOW, Pkt::select(mac(n), o.yiaddr()));
        if r.silent() {
            dropped += 1;
            assert!(r.persists.is_empty());
        } else {
            bound += 1;
        }
    }
    assert_eq!((bound, dropped), (5, 5));
    // A second later two more; the others' offers still stand and they retry.
    let acks = (6..=10)
        .filter(|&n| {
            let o = send(&mut s, NOW + 1, Pkt::discover(mac(n)));
            !send(&mut s, NOW + 1, Pkt::select(mac(n), o.yiaddr())).silent()
        })
        .count();
    assert_eq!(acks, 2);
    // A release with the budget spent is dropped, and the lease stays: safe, as the
    // address is only held longer.
    let a = s.leases(NOW + 1)[0].ip_address;
    let holder = s.leases(NOW + 1)[0].mac_address;
    let r = send(&mut s, NOW + 1, Pkt::release(holder, a));
    assert!(r.persists.is_empty());
    assert!(s.leases(NOW + 1).iter().any(|l| l.ip_address == a));
    assert!(
        r.effects
            .iter()
            .all(|e| !matches!(e, Effect::Send { .. } | Effect::Persist(_)))
    );
}

#[test]
fn the_budget_follows_the_pool() {
    let big = "<network><name>big</name><forward mode='nat'/>
  <ip address='10.77.0.1' prefix='16'><dhcp>
    <range start='10.77.0.10' end='10.77.255.250'/>
  </dhcp></ip></network>";
    assert_eq!(
        config(big).change_rate,
        RateLimit {
            burst: 65_521,
            per_sec: 109
        }
    );
    assert_eq!(RateLimit::for_pool(1 << 100).burst, 65_536);
    assert_eq!(RateLimit::for_pool(0).burst, 256);
}
