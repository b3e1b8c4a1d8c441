//! The journal format and crash recovery.

mod common;

use common::*;
use dhcproto::v4::MessageType;
use kvnet_dhcp::{
    Effect, LeaseRecord, LeaseState, LeaseTable, Server, compact, encode_record, replay,
};

fn rec(last: u8, m: u8, expiry: u64) -> LeaseRecord {
    LeaseRecord {
        ip_address: ip(last),
        mac_address: mac(m),
        client_id: Some("01:52:54:00:00:00:01".into()),
        hostname: Some("vm".into()),
        expiry_time: expiry,
        state: LeaseState::Bound,
    }
}

/// Append what the shell would make durable.
fn journal(effects: &[Effect], into: &mut String) {
    for e in effects {
        if let Effect::Persist(r) = e {
            into.push_str(&encode_record(r));
        }
    }
}

#[test]
fn record_is_one_json_line_with_libvirt_names() {
    let line = encode_record(&rec(5, 1, 1_718_000_000));
    assert_eq!(
        line,
        "{\"ip-address\":\"192.168.122.5\",\"mac-address\":\"52:54:00:00:00:01\",\
         \"client-id\":\"01:52:54:00:00:00:01\",\"hostname\":\"vm\",\
         \"expiry-time\":1718000000,\"state\":\"bound\"}\n"
    );
    let mut bare = rec(6, 2, 0);
    bare.client_id = None;
    bare.hostname = None;
    bare.state = LeaseState::Released;
    let line = encode_record(&bare);
    assert_eq!(line.matches('\n').count(), 1);
    assert!(!line.contains("client-id") && line.contains("\"released\""));
}

#[test]
fn replay_rebuilds_and_later_records_win() {
    let mut text = String::new();
    text.push_str(&encode_record(&rec(5, 1, 100)));
    text.push_str(&encode_record(&rec(6, 2, 200)));
    let mut moved = rec(5, 3, 300);
    moved.client_id = None;
    text.push_str(&encode_record(&moved));
    let t = replay(&text);
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(ip(5)), Some(&moved));
    assert_eq!(t.get(ip(6)), Some(&rec(6, 2, 200)));
    assert_eq!(replay(&compact(&t)), t);
    assert!(replay("").is_empty());
}

#[test]
fn replay_tolerates_torn_and_glued_lines() {
    let a = encode_record(&rec(5, 1, 100));
    let b = encode_record(&rec(6, 2, 200));
    for cut in 0..b.len() {
        let text = format!("{a}{}", &b[..cut]);
        let t = replay(&text);
        let whole = cut + 1 >= b.len();
        assert_eq!(t.len(), if whole { 2 } else { 1 }, "cut at {cut}");
        assert_eq!(t.get(ip(5)), Some(&rec(5, 1, 100)));
    }
    // A torn write followed by an append that did not start on a new line.
    let c = encode_record(&rec(7, 3, 300));
    let text = format!("{a}{}{c}", &b[..20]);
    let t = replay(&text);
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(ip(7)), Some(&rec(7, 3, 300)));
    // Garbage in the middle is skipped, not fatal.
    let text = format!("{a}not json\n\u{0}\u{1}\n{c}");
    assert_eq!(replay(&text).len(), 2);
}

#[test]
fn a_partial_line_is_skipped_and_every_good_line_after_it_kept() {
    // A write that failed part way (a full disk) and was not taken back, then appends
    // once space returned: whatever the cut, the lines after it are all replayed.
    let (a, b) = (
        encode_record(&rec(5, 1, 100)),
        encode_record(&rec(6, 2, 200)),
    );
    let later: String = (7..12).map(|n| encode_record(&rec(n, n, 300))).collect();
    for cut in 1..b.len() - 1 {
        for sep in ["", "\n"] {
            let t = replay(&format!("{a}{}{sep}{later}", &b[..cut]));
            assert_eq!(t.len(), 6, "cut at {cut}, separator {sep:?}");
            assert!(t.get(ip(6)).is_none());
            assert_eq!(t.get(ip(11)), Some(&rec(11, 11, 300)));
        }
    }
}

#[test]
fn crash_and_replay_keeps_every_client_on_its_address() {
    let mut s = server(NAT_NET);
    let mut j = String::new();
    let mut held = Vec::new();
    for n in 1..=5 {
        let m = mac(n);
        let o = s.handle(NOW, &Pkt::discover(m).bytes());
        journal(&o, &mut j);
        let a = Out::of(o).yiaddr();
        let e = s.handle(NOW, &Pkt::select(m, a).bytes());
        journal(&e, &mut j);
        held.push((m, a));
    }
    // Client 5 releases; client 6's ACK is torn mid-write (the ACK was never sent).
    let e = s.handle(NOW + 1, &Pkt::release(mac(5), held[4].1).bytes());
    journal(&e, &mut j);
    let o = Out::of(s.handle(NOW + 1, &Pkt::discover(mac(6)).bytes()));
    let e = s.handle(NOW + 1, &Pkt::select(mac(6), o.yiaddr()).bytes());
    let Effect::Persist(r) = &e[0] else {
        panic!("ACK without a journal write first")
    };
    let line = encode_record(r);
    j.push_str(&line[..line.len() / 2]);

    let mut s = Server::new(config(NAT_NET), replay(&j));
    assert_eq!(s.leases(NOW + 2).len(), 4);
    for &(m, a) in &held[..4] {
        let r = send(&mut s, NOW + 2, Pkt::renew(m, a));
        assert_eq!((r.kind(), r.yiaddr()), (MessageType::Ack, a));
        assert_eq!(send(&mut s, NOW + 3, Pkt::discover(m)).yiaddr(), a);
    }
    // The released address goes back to its old client before anyone else.
    assert_eq!(
        send(&mut s, NOW + 4, Pkt::discover(mac(5))).yiaddr(),
        held[4].1
    );
    let fresh = send(&mut s, NOW + 4, Pkt::discover(mac(9))).yiaddr();
    assert!(held.iter().all(|&(_, a)| a != fresh));
}

#[test]
fn leases_survive_stop_and_start() {
    let mut s = server(NAT_NET);
    let a = dora(&mut s, NOW, mac(1));
    let table: LeaseTable = s.into_table();
    let mut s = Server::new(config(NAT_NET), table);
    assert_eq!(send(&mut s, NOW + 60, Pkt::discover(mac(1))).yiaddr(), a);
    assert_eq!(s.leases(NOW + 60)[0].ip_address, a);
}

#[test]
fn lease_view_serializes_like_libvirt_status() {
    let mut s = server(NAT_NET);
    send(
        &mut s,
        NOW,
        Pkt::select(mac(1), ip(9)).client_id(&[1, 0x52, 0x54, 0, 0, 0, 1]),
    );
    let v = serde_json::to_value(&s.leases(NOW)[0]).unwrap();
    assert_eq!(v["ip-address"], "192.168.122.9");
    assert_eq!(v["mac-address"], "52:54:00:00:00:01");
    assert_eq!(v["client-id"], "01:52:54:00:00:00:01");
    assert_eq!(v["expiry-time"], NOW + 3600);
    assert_eq!(v["prefix"], 24);
}
