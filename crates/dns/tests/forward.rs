//! Routing (localOnly, forwardPlainNames, forwarders, no-resolv, isolated, loops) and the
//! forwarding state machine (ID mapping, reply validation, retries, timeouts, bounds, TC).

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use kvnet_dns::{Decision, Engine, Limits, Peer};

const R1: &str = "192.0.2.1:53";
const R2: &str = "192.0.2.2:53";

fn with_resolv(head: &str) -> Engine {
    let mut e = engine(head);
    e.set_upstreams(vec![sa(R1), sa(R2)]);
    e
}

fn upstream_of(e: &mut Engine, name: &str) -> Option<std::net::SocketAddr> {
    match e.handle_query(now0(), client(), &query(0x4242, name, RecordType::A)) {
        Decision::Forward { to, .. } => Some(to.addr),
        Decision::Answer { .. } | Decision::Drop => None,
    }
}

#[test]
fn unknown_names_go_to_the_host_resolvers_in_order() {
    let mut e = with_resolv("");
    let (to, bytes) = ask_forward(&mut e, "www.example.org.", RecordType::A);
    assert_eq!(to, Peer::udp(sa(R1)));
    // Same question, fresh ID.
    let orig = query(0x1234, "www.example.org.", RecordType::A);
    assert_eq!(bytes[2..], orig[2..]);
    assert_eq!(e.pending_len(), 1);
}

#[test]
fn forwarded_ids_look_random_and_differ() {
    let mut e = with_resolv("");
    let mut ids = std::collections::HashSet::new();
    for i in 0..50u16 {
        let d = e.handle_query(
            now0(),
            client(),
            &query(i, &format!("h{i}.example.org."), RecordType::A),
        );
        let (_, b) = forward_of(d);
        ids.insert(u16::from_be_bytes([b[0], b[1]]));
    }
    assert!(ids.len() >= 49);
    // Deterministic for a given seed.
    let mut a = with_resolv("");
    let mut b = with_resolv("");
    let x = forward_of(a.handle_query(now0(), client(), &query(1, "a.org.", RecordType::A)));
    let y = forward_of(b.handle_query(now0(), client(), &query(1, "a.org.", RecordType::A)));
    assert_eq!(x, y);
}

#[test]
fn local_only_domain_is_never_forwarded() {
    let mut e = with_resolv("<domain name='example.com' localOnly='yes'/>");
    let m = ask(&mut e, "nobody.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // The apex exists (RFC 8020): its SOA is answered, and the NXDOMAIN carries it.
    let m = ask(&mut e, "example.com.", RecordType::SOA);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    let m = ask(&mut e, "nobody.example.com.", RecordType::A);
    assert_eq!(m.authorities.len(), 1, "{m:?}");
    assert_eq!(e.pending_len(), 0);
    assert_eq!(upstream_of(&mut e, "www.example.org."), Some(sa(R1)));
    // Without localOnly the domain is forwarded.
    let mut e = with_resolv("<domain name='example.com'/>");
    assert_eq!(upstream_of(&mut e, "nobody.example.com."), Some(sa(R1)));
}

#[test]
fn forward_plain_names_no() {
    let mut e = with_resolv("<dns forwardPlainNames='no'/>");
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    let m = ask(&mut e, "intranet.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(&mut e, "intranet.", RecordType::MX);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    assert_eq!(upstream_of(&mut e, "www.example.org."), Some(sa(R1)));
    assert_eq!(e.pending_len(), 1);

    // The default forwards plain names.
    let mut e = with_resolv("");
    assert_eq!(upstream_of(&mut e, "intranet."), Some(sa(R1)));
}

#[test]
fn forwarder_domains_longest_suffix() {
    let mut e = with_resolv(
        "<dns>\
         <forwarder domain='corp.lan' addr='10.9.0.1'/>\
         <forwarder domain='eu.corp.lan' addr='10.9.0.2' port='5353'/>\
         <forwarder domain='public.eu.corp.lan'/>\
         </dns>",
    );
    assert_eq!(
        upstream_of(&mut e, "host.corp.lan."),
        Some(sa("10.9.0.1:53"))
    );
    assert_eq!(upstream_of(&mut e, "corp.lan."), Some(sa("10.9.0.1:53")));
    assert_eq!(
        upstream_of(&mut e, "host.EU.corp.lan."),
        Some(sa("10.9.0.2:5353"))
    );
    assert_eq!(
        upstream_of(&mut e, "eu.corp.lan."),
        Some(sa("10.9.0.2:5353"))
    );
    // Domain-only forwarder: local only, even below a forwarded zone.
    assert_eq!(upstream_of(&mut e, "www.public.eu.corp.lan."), None);
    let m = ask(&mut e, "www.public.eu.corp.lan.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // Suffix match is per label.
    assert_eq!(upstream_of(&mut e, "notcorp.lan."), Some(sa(R1)));
    assert_eq!(upstream_of(&mut e, "www.example.org."), Some(sa(R1)));
}

#[test]
fn several_forwarders_for_one_domain_are_tried_in_order() {
    let mut e = with_resolv(
        "<dns><forwarder domain='corp.lan' addr='10.9.0.1'/><forwarder domain='corp.lan' addr='10.9.0.2'/></dns>",
    );
    let t = now0();
    let (to, _) = forward_of(e.handle_query(t, client(), &query(1, "a.corp.lan.", RecordType::A)));
    assert_eq!(to.addr, sa("10.9.0.1:53"));
    let d = e.poll_timeouts(secs(t, 3));
    let (to, _) = forward_of(d.into_iter().next().unwrap());
    assert_eq!(to.addr, sa("10.9.0.2:53"));
}

#[test]
fn local_data_wins_over_forwarders() {
    let mut e = with_resolv(
        "<domain name='corp.lan'/><dns><forwarder domain='corp.lan' addr='10.9.0.1'/></dns>",
    );
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.corp.lan.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    assert_eq!(
        upstream_of(&mut e, "other.corp.lan."),
        Some(sa("10.9.0.1:53"))
    );
}

#[test]
fn forwarder_without_domain_replaces_resolv_conf() {
    let mut e = with_resolv(
        "<dns><forwarder addr='8.8.8.8'/><forwarder addr='2001:4860:4860::8888'/></dns>",
    );
    let t = now0();
    let (to, _) = forward_of(e.handle_query(t, client(), &query(1, "example.org.", RecordType::A)));
    assert_eq!(to.addr, sa("8.8.8.8:53"));
    let (to, _) = forward_of(e.poll_timeouts(secs(t, 3)).remove(0));
    assert_eq!(to.addr, sa("[2001:4860:4860::8888]:53"));
    // The host's resolvers are never asked.
    let d = e.poll_timeouts(secs(t, 6));
    assert!(matches!(&d[..], [Decision::Answer { .. }]));
}

#[test]
fn isolated_network_forwards_nothing() {
    let net = network("", "<domain name='example.com'/>", "");
    let mut e = engine_for(&net);
    e.set_upstreams(vec![sa(R1)]);
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.example.com.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    let m = ask(&mut e, "www.example.org.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(e.pending_len(), 0);
}

#[test]
fn isolated_network_still_uses_explicit_forwarders() {
    // libvirt writes server= lines for an isolated network too; only resolv.conf is off.
    let net = network(
        "",
        "<dns><forwarder domain='corp.lan' addr='10.9.0.1'/></dns>",
        "",
    );
    let mut e = engine_for(&net);
    e.set_upstreams(vec![sa(R1)]);
    assert_eq!(upstream_of(&mut e, "a.corp.lan."), Some(sa("10.9.0.1:53")));
    assert_eq!(upstream_of(&mut e, "a.example.org."), None);
}

#[test]
fn route_mode_uses_resolv_conf() {
    let net = network("<forward mode='route'/>", "", "");
    let mut e = engine_for(&net);
    e.set_upstreams(vec![sa(R2)]);
    assert_eq!(upstream_of(&mut e, "a.example.org."), Some(sa(R2)));
}

#[test]
fn upstreams_on_our_own_addresses_are_skipped() {
    let mut e = engine("");
    e.set_upstreams(vec![
        sa("192.168.122.1:53"),
        sa("[2001:db8:ac10:fd01::1]:53"),
        sa("0.0.0.0:53"),
        sa(R2),
    ]);
    assert_eq!(upstream_of(&mut e, "a.example.org."), Some(sa(R2)));
    e.set_upstreams(vec![sa("192.168.122.1:53")]);
    let m = ask(&mut e, "b.example.org.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    // The same for explicit forwarders.
    let mut e = engine("<dns><forwarder addr='192.168.122.1'/></dns>");
    assert_eq!(
        rcode(&ask(&mut e, "c.example.org.", RecordType::A)),
        ResponseCode::Refused
    );
}

#[test]
fn other_networks_addresses_are_skipped_too() {
    let mut e = engine("");
    e.set_upstreams(vec![sa("10.55.0.1:53"), sa(R1)]);
    let local = std::sync::Arc::new(kvnet_dns::LocalAddrs::default());
    local.replace([ip("10.55.0.1")]);
    e.set_local_addrs(local);
    assert_eq!(upstream_of(&mut e, "a.example.org."), Some(sa(R1)));
}

#[test]
fn domain_only_forwarder_alone_keeps_the_domain_local() {
    // The scenario of libvirt issue 597: never forwarded, whatever resolv.conf says.
    let mut e = with_resolv("<domain name='internal'/><dns><forwarder domain='internal'/></dns>");
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.internal.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    assert_eq!(
        rcode(&ask(&mut e, "bogus.internal.", RecordType::A)),
        ResponseCode::NXDomain
    );
    assert_eq!(e.pending_len(), 0);
    assert_eq!(upstream_of(&mut e, "www.example.org."), Some(sa(R1)));
}

#[test]
fn explicit_upstreams_win_over_local_only_for_the_same_zone() {
    let mut e = with_resolv(
        "<domain name='corp.lan' localOnly='yes'/><dns><forwarder domain='corp.lan' addr='10.9.0.1'/></dns>",
    );
    assert_eq!(upstream_of(&mut e, "a.corp.lan."), Some(sa("10.9.0.1:53")));
}

#[test]
fn local_ptr_zone_is_not_forwarded() {
    let net = network("<forward mode='nat'/>", "", "localPtr='yes'");
    let mut e = engine_for(&net);
    e.set_upstreams(vec![sa(R1)]);
    let m = ask(&mut e, "77.122.168.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(&mut e, "122.168.192.in-addr.arpa.", RecordType::SOA);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // Other subnets, and our subnet without localPtr, are forwarded.
    assert_eq!(upstream_of(&mut e, "1.2.0.10.in-addr.arpa."), Some(sa(R1)));
    let mut e = with_resolv("");
    assert_eq!(
        upstream_of(&mut e, "77.122.168.192.in-addr.arpa."),
        Some(sa(R1))
    );
}

#[test]
fn valid_reply_restores_the_client_id() {
    let mut e = with_resolv("");
    let t = now0();
    let c = client();
    let d = e.handle_query(t, c, &query(0xBEEF, "www.example.org.", RecordType::A));
    let (up, fwd) = forward_of(d);
    let reply = reply_to(&fwd, "203.0.113.7");
    match e.handle_upstream_reply(t, up, &reply) {
        Decision::Answer { to, bytes } => {
            assert_eq!(to, c);
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.metadata.id, 0xBEEF);
            assert_eq!(addrs(&m), vec![ip("203.0.113.7")]);
            assert_eq!(bytes[2..], reply[2..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.pending_len(), 0);
    assert_eq!(e.next_timeout(), None);
    // A duplicate reply finds nothing pending.
    assert_eq!(e.handle_upstream_reply(t, up, &reply), Decision::Drop);
}

#[test]
fn mismatched_replies_are_dropped() {
    let mut e = with_resolv("");
    let t = now0();
    let (up, fwd) =
        forward_of(e.handle_query(t, client(), &query(7, "www.example.org.", RecordType::A)));
    let good = reply_to(&fwd, "203.0.113.7");

    let mut wrong_id = good.clone();
    wrong_id[1] ^= 0x55;
    assert_eq!(e.handle_upstream_reply(t, up, &wrong_id), Decision::Drop);

    assert_eq!(
        e.handle_upstream_reply(t, Peer::udp(sa(R2)), &good),
        Decision::Drop
    );
    assert_eq!(
        e.handle_upstream_reply(t, Peer::udp(sa("192.0.2.1:5353")), &good),
        Decision::Drop
    );
    assert_eq!(
        e.handle_upstream_reply(t, Peer::tcp(sa(R1)), &good),
        Decision::Drop
    );

    let mut other_q = query(0, "www.example.net.", RecordType::A);
    other_q[..2].copy_from_slice(&fwd[..2]);
    assert_eq!(
        e.handle_upstream_reply(t, up, &reply_to(&other_q, "1.2.3.4")),
        Decision::Drop
    );
    let mut other_t = query(0, "www.example.org.", RecordType::AAAA);
    other_t[..2].copy_from_slice(&fwd[..2]);
    assert_eq!(
        e.handle_upstream_reply(t, up, &reply_rcode(&other_t, ResponseCode::NoError)),
        Decision::Drop
    );

    // A query (QR=0) echoed back is not a reply.
    assert_eq!(e.handle_upstream_reply(t, up, &fwd), Decision::Drop);
    // Truncated garbage.
    assert_eq!(e.handle_upstream_reply(t, up, &good[..15]), Decision::Drop);
    assert_eq!(e.handle_upstream_reply(t, up, &[]), Decision::Drop);

    // None of that disturbed the pending query: the genuine reply still lands.
    assert_eq!(e.pending_len(), 1);
    assert!(matches!(
        e.handle_upstream_reply(t, up, &good),
        Decision::Answer { .. }
    ));
}

#[test]
fn reply_question_is_compared_case_insensitively() {
    let mut e = with_resolv("");
    let t = now0();
    let (up, fwd) =
        forward_of(e.handle_query(t, client(), &query(7, "www.Example.org.", RecordType::A)));
    let mut q = query(0, "WWW.EXAMPLE.ORG.", RecordType::A);
    q[..2].copy_from_slice(&fwd[..2]);
    assert!(matches!(
        e.handle_upstream_reply(t, up, &reply_to(&q, "1.2.3.4")),
        Decision::Answer { .. }
    ));
}

#[test]
fn timeouts_retry_then_servfail() {
    let mut e = with_resolv("");
    let t = now0();
    let c = client();
    let (up1, fwd1) =
        forward_of(e.handle_query(t, c, &query(0x0101, "slow.example.org.", RecordType::A)));
    assert_eq!(up1.addr, sa(R1));
    assert_eq!(e.next_timeout(), Some(t + Duration::from_secs(2)));
    assert!(e.poll_timeouts(t + Duration::from_millis(1999)).is_empty());

    let mut d = e.poll_timeouts(secs(t, 2));
    assert_eq!(d.len(), 1);
    let (up2, fwd2) = forward_of(d.remove(0));
    assert_eq!(up2.addr, sa(R2));
    assert_ne!(fwd1[..2], fwd2[..2]);
    // The first upstream's late reply is no longer accepted.
    assert_eq!(
        e.handle_upstream_reply(secs(t, 2), up1, &reply_to(&fwd1, "1.1.1.1")),
        Decision::Drop
    );

    let mut d = e.poll_timeouts(secs(t, 4));
    assert_eq!(d.len(), 1);
    match d.remove(0) {
        Decision::Answer { to, bytes } => {
            assert_eq!(to, c);
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.metadata.id, 0x0101);
            assert_eq!(rcode(&m), ResponseCode::ServFail);
            assert_eq!(m.queries[0].name().to_ascii(), "slow.example.org.");
            assert!(m.metadata.recursion_available);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.pending_len(), 0);
    assert_eq!(e.next_timeout(), None);
    assert!(e.poll_timeouts(secs(t, 100)).is_empty());
}

#[test]
fn max_attempts_caps_retries() {
    let limits = Limits {
        max_attempts: 1,
        ..Limits::default()
    };
    let mut e = engine_limits("", limits);
    e.set_upstreams(vec![sa(R1), sa(R2)]);
    let t = now0();
    forward_of(e.handle_query(t, client(), &query(1, "a.org.", RecordType::A)));
    let d = e.poll_timeouts(secs(t, 2));
    assert!(matches!(&d[..], [Decision::Answer { .. }]));
}

#[test]
fn servfail_and_refused_from_upstream_try_the_next() {
    let mut e = with_resolv("");
    let t = now0();
    let c = client();
    let (up1, fwd1) = forward_of(e.handle_query(t, c, &query(3, "a.example.org.", RecordType::A)));
    let (up2, fwd2) =
        forward_of(e.handle_upstream_reply(t, up1, &reply_rcode(&fwd1, ResponseCode::ServFail)));
    assert_eq!(up2.addr, sa(R2));
    // The last upstream's error is passed on as it is.
    match e.handle_upstream_reply(t, up2, &reply_rcode(&fwd2, ResponseCode::Refused)) {
        Decision::Answer { to, bytes } => {
            assert_eq!(to, c);
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.metadata.id, 3);
            assert_eq!(rcode(&m), ResponseCode::Refused);
        }
        other => panic!("{other:?}"),
    }
    // NXDOMAIN is an answer, not a failure.
    let (up, fwd) = forward_of(e.handle_query(t, c, &query(4, "b.example.org.", RecordType::A)));
    let d = e.handle_upstream_reply(t, up, &reply_rcode(&fwd, ResponseCode::NXDomain));
    assert_eq!(rcode(&answer_of(d)), ResponseCode::NXDomain);
}

#[test]
fn pending_table_is_bounded_oldest_evicted() {
    let limits = Limits {
        max_pending: 4,
        ..Limits::default()
    };
    let mut e = engine_limits("", limits);
    e.set_upstreams(vec![sa(R1)]);
    let t = now0();
    let mut sent = Vec::new();
    for i in 0..10u16 {
        let d = e.handle_query(
            t + Duration::from_millis(u64::from(i)),
            client(),
            &query(i, &format!("n{i}.org."), RecordType::A),
        );
        sent.push(forward_of(d));
        assert!(e.pending_len() <= 4);
    }
    assert_eq!(e.pending_len(), 4);
    let (up, fwd) = &sent[0];
    assert_eq!(
        e.handle_upstream_reply(t, *up, &reply_to(fwd, "1.2.3.4")),
        Decision::Drop
    );
    let (up, fwd) = &sent[9];
    assert!(matches!(
        e.handle_upstream_reply(t, *up, &reply_to(fwd, "1.2.3.4")),
        Decision::Answer { .. }
    ));
    assert_eq!(e.pending_len(), 3);
}

#[test]
fn a_flood_keeps_memory_bounded() {
    let mut e = with_resolv("");
    let t = now0();
    for i in 0..5000u32 {
        let c = Peer::udp(sa(&format!("192.168.122.{}:{}", 2 + i % 200, 1024 + i)));
        let _ = e.handle_query(
            t,
            c,
            &query(i as u16, &format!("x{i}.example.org."), RecordType::A),
        );
    }
    assert_eq!(e.pending_len(), Limits::default().max_pending);
}

#[test]
fn retransmissions_are_not_forwarded_twice() {
    let mut e = with_resolv("");
    let t = now0();
    let q = query(77, "dup.example.org.", RecordType::A);
    forward_of(e.handle_query(t, client(), &q));
    assert_eq!(e.handle_query(t, client(), &q), Decision::Drop);
    assert_eq!(e.pending_len(), 1);
    // Another client with the same ID is a different query.
    let other = Peer::udp(sa("192.168.122.51:40000"));
    forward_of(e.handle_query(t, other, &q));
    assert_eq!(e.pending_len(), 2);
}

#[test]
fn tcp_queries_are_forwarded_over_tcp() {
    let mut e = with_resolv("");
    let t = now0();
    let c = Peer::tcp(sa("192.168.122.50:50000"));
    let (up, fwd) =
        forward_of(e.handle_query(t, c, &query(9, "big.example.org.", RecordType::TXT)));
    assert_eq!(up, Peer::tcp(sa(R1)));
    assert_eq!(
        e.handle_upstream_reply(t, Peer::udp(sa(R1)), &reply_to(&fwd, "1.2.3.4")),
        Decision::Drop
    );
    match e.handle_upstream_reply(t, up, &reply_to(&fwd, "1.2.3.4")) {
        Decision::Answer { to, .. } => assert_eq!(to, c),
        other => panic!("{other:?}"),
    }
}

fn big_reply(fwd: &[u8], n: usize) -> Vec<u8> {
    let q = Message::from_vec(fwd).unwrap();
    let mut r = Message::from_vec(&reply_to(fwd, "1.1.1.1")).unwrap();
    let rec = r.answers[0].clone();
    for _ in 1..n {
        r.answers.push(rec.clone());
    }
    r.queries = q.queries.clone();
    r.to_vec().unwrap()
}

#[test]
fn oversized_upstream_replies_are_truncated_for_udp_clients() {
    let mut e = with_resolv("");
    let t = now0();
    let (up, fwd) = forward_of(e.handle_query(
        t,
        client(),
        &query(0x5151, "many.example.org.", RecordType::A),
    ));
    let reply = big_reply(&fwd, 60);
    assert!(reply.len() > 512);
    let Decision::Answer { bytes, .. } = e.handle_upstream_reply(t, up, &reply) else {
        panic!()
    };
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert_eq!(m.metadata.id, 0x5151);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries[0].name().to_ascii(), "many.example.org.");

    // With EDNS 4096 the client takes up to our 1232.
    let q = query_edns(0x5252, "many.example.org.", RecordType::A, 4096);
    let (up, fwd) = forward_of(e.handle_query(t, client(), &q));
    let Decision::Answer { bytes, .. } = e.handle_upstream_reply(t, up, &big_reply(&fwd, 60))
    else {
        panic!()
    };
    assert!(!Message::from_vec(&bytes).unwrap().metadata.truncation);

    // TCP clients get everything.
    let c = Peer::tcp(sa("192.168.122.50:50001"));
    let (up, fwd) =
        forward_of(e.handle_query(t, c, &query(0x5353, "many.example.org.", RecordType::A)));
    let Decision::Answer { bytes, .. } = e.handle_upstream_reply(t, up, &big_reply(&fwd, 200))
    else {
        panic!()
    };
    assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 200);
}

#[test]
fn set_config_applies_without_losing_pending_queries() {
    let mut e = with_resolv("");
    let t = now0();
    let (up, fwd) =
        forward_of(e.handle_query(t, client(), &query(1, "a.example.com.", RecordType::A)));
    let cfg = common::config(&nat("<domain name='example.com' localOnly='yes'/>"));
    e.set_config(cfg);
    assert_eq!(
        rcode(&ask(&mut e, "b.example.com.", RecordType::A)),
        ResponseCode::NXDomain
    );
    assert!(matches!(
        e.handle_upstream_reply(t, up, &reply_to(&fwd, "1.2.3.4")),
        Decision::Answer { .. }
    ));
}

#[test]
fn guest_names_follow_a_domain_change() {
    let mut e = engine("<domain name='old.lan'/>");
    e.set_guest_names(vec![("vm1.old.lan".to_string(), ip("192.168.122.10"))]);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.old.lan.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    let cfg = common::config(&nat("<domain name='new.lan'/>"));
    e.set_config(cfg);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.new.lan.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
}

#[test]
fn stats_count_local_forwarded_failed_and_latency() {
    let mut e = with_resolv("<domain name='lab' localOnly='yes'/>");
    // Local (authoritative NXDOMAIN for the network's domain), forwarded, dropped.
    ask(&mut e, "nothere.lab.", RecordType::A);
    let (to, fwd) = ask_forward(&mut e, "www.example.org.", RecordType::A);
    e.handle_query(now0(), client(), b"\x00");
    // The upstream answers 20 ms later.
    let reply = reply_to(&fwd, "198.51.100.7");
    let later = now0() + Duration::from_millis(20);
    answer_of(e.handle_upstream_reply(later, to, &reply));
    // Another query whose upstreams never answer: SERVFAIL in the end.
    ask_forward(&mut e, "slow.example.org.", RecordType::A);
    let mut t = now0();
    for _ in 0..20 {
        t += Duration::from_secs(5);
        e.poll_timeouts(t);
    }
    let st = e.stats();
    assert_eq!(st.queries, 4);
    assert_eq!((st.local, st.forwarded, st.dropped), (1, 2, 1));
    assert_eq!(st.upstream_answers, 1);
    assert_eq!(st.upstream_failures, 1, "{st:?}");
    assert!(st.retries >= 1, "{st:?}");
    assert_eq!(st.latency.count(), 1);
    assert!((0.02..1.0).contains(&st.latency.sum()), "{st:?}");
}
