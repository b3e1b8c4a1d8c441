//! Malformed input, odd opcodes and classes, config rejection, and a never-panics proptest.

mod common;

use common::*;
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use kvnet_dns::{Config, ConfigError, Decision, Engine, Peer};
use proptest::prelude::*;

#[test]
fn short_or_response_packets_are_dropped() {
    let mut e = engine("");
    let t = now0();
    assert_eq!(e.handle_query(t, client(), &[]), Decision::Drop);
    assert_eq!(e.handle_query(t, client(), &[0x12; 11]), Decision::Drop);
    let mut resp = query(5, "a.org.", RecordType::A);
    resp[2] |= 0x80;
    assert_eq!(e.handle_query(t, client(), &resp), Decision::Drop);
}

#[test]
fn unparseable_queries_get_formerr() {
    let mut e = engine("");
    // Header claims one question, none follows.
    let bytes = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let m = answer_of(e.handle_query(now0(), client(), &bytes));
    assert_eq!(m.metadata.id, 0xABCD);
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    assert!(m.metadata.recursion_desired);
    // A label pointer loop.
    let mut q = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    assert_eq!(
        rcode(&answer_of(e.handle_query(now0(), client(), &q))),
        ResponseCode::FormErr
    );
    // Oversized.
    let mut big = query(1, "a.org.", RecordType::A);
    big.resize(5000, 0);
    assert_eq!(
        rcode(&answer_of(e.handle_query(now0(), client(), &big))),
        ResponseCode::FormErr
    );
}

#[test]
fn an_answer_echoing_many_questions_stays_within_the_udp_limit() {
    // Found by fuzzing (fuzz/seeds/dns/crash-udp-answer-over-limit): an UPDATE with 72
    // questions got a 1,320-byte NOTIMP echoing them all, over UDP, without EDNS (512).
    let mut e = engine("");
    for op in [OpCode::Query, OpCode::Update] {
        let mut m = query_msg(9, "a.org.", RecordType::A);
        m.metadata.op_code = op;
        for i in 0..40 {
            // No common suffix: compression must not shrink them.
            let name = format!("{i}{}.t{i}.", "x".repeat(50));
            m.add_query(Query::query(
                Name::from_ascii(&name).unwrap(),
                RecordType::A,
            ));
        }
        let Decision::Answer { bytes, .. } = e.handle_query(now0(), client(), &m.to_vec().unwrap())
        else {
            panic!("expected an answer");
        };
        assert!(bytes.len() <= 512, "{op:?}: {} bytes", bytes.len());
        let a = Message::from_vec(&bytes).unwrap();
        assert!(a.metadata.truncation, "{op:?}: {a:?}");
        assert_eq!(a.metadata.id, 9);
    }
}

#[test]
fn question_count_must_be_one() {
    let mut e = engine("");
    let mut m = query_msg(1, "a.org.", RecordType::A);
    m.queries.clear();
    assert_eq!(
        rcode(&answer_of(e.handle_query(
            now0(),
            client(),
            &m.to_vec().unwrap()
        ))),
        ResponseCode::FormErr
    );
    let mut m = query_msg(1, "a.org.", RecordType::A);
    let q2 = m.queries[0].clone();
    m.add_query(q2);
    assert_eq!(
        rcode(&answer_of(e.handle_query(
            now0(),
            client(),
            &m.to_vec().unwrap()
        ))),
        ResponseCode::FormErr
    );
}

#[test]
fn other_opcodes_are_not_implemented() {
    let mut e = engine("");
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut m = query_msg(1, "a.org.", RecordType::SOA);
        m.metadata.op_code = op;
        let a = answer_of(e.handle_query(now0(), client(), &m.to_vec().unwrap()));
        assert_eq!(rcode(&a), ResponseCode::NotImp, "{op:?}");
    }
}

#[test]
fn edns_version_above_zero_gets_badvers() {
    let mut e = engine("");
    let mut m = query_msg(1, "a.org.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    m.edns = Some(edns);
    let a = answer_of(e.handle_query(now0(), client(), &m.to_vec().unwrap()));
    // 16 on the wire, split between the header and the OPT record; hickory decodes it with
    // the other name of 16, BADSIG.
    assert_eq!(u16::from(rcode(&a)), u16::from(ResponseCode::BADVERS));
    assert!(a.edns.is_some());
}

#[test]
fn other_classes_and_zone_transfers_are_refused() {
    let mut e = engine("");
    e.set_upstreams(vec![sa("192.0.2.1:53")]);
    let mut m = query_msg(1, "version.bind.", RecordType::TXT);
    m.queries[0].set_query_class(DNSClass::CH);
    let a = answer_of(e.handle_query(now0(), client(), &m.to_vec().unwrap()));
    assert_eq!(rcode(&a), ResponseCode::Refused);
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let tcp = Peer::tcp(sa("192.168.122.50:1"));
        let a = answer_of(e.handle_query(now0(), tcp, &query(1, "example.com.", t)));
        assert_eq!(rcode(&a), ResponseCode::Refused);
    }
    assert_eq!(e.pending_len(), 0);
}

#[test]
fn class_any_questions_are_answered() {
    let mut e = engine("");
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    let mut m = query_msg(1, "vm1.", RecordType::A);
    m.queries[0].set_query_class(DNSClass::ANY);
    let a = answer_of(e.handle_query(now0(), client(), &m.to_vec().unwrap()));
    assert_eq!(addrs(&a), vec![ip("192.168.122.10")]);
}

#[test]
fn edns_is_echoed() {
    let mut e = engine("");
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    let a = answer_of(e.handle_query(
        now0(),
        client(),
        &query_edns(1, "vm1.", RecordType::A, 1400),
    ));
    assert_eq!(a.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let a = answer_of(e.handle_query(now0(), client(), &query(1, "vm1.", RecordType::A)));
    assert!(a.edns.is_none());
}

#[test]
fn config_refuses_disabled_dns() {
    let off = nat("<dns enable='no'/>");
    assert_eq!(
        Config::from_network(&off, off.profile().guests),
        Err(ConfigError::Disabled)
    );
}

#[test]
fn config_reflects_the_definition() {
    let c = common::config(&nat("<domain name='Example.COM' localOnly='yes'/>\
         <dns forwardPlainNames='no'><forwarder addr='10.0.0.53' port='5353'/><forwarder domain='corp.lan'/></dns>"));
    assert_eq!(c.domain(), Some("example.com"));
    assert!(c.local_only());
    assert!(!c.forward_plain_names());
    assert!(!c.isolated());
    assert!(c.has_default_forwarders());
    assert_eq!(c.forwarders()[0].addr, Some(sa("10.0.0.53:5353")));
    assert_eq!(c.forwarders()[1].addr, None);
    assert_eq!(c.forwarders()[1].domain.as_deref(), Some("corp.lan"));
    assert_eq!(
        c.own_addrs(),
        [ip("192.168.122.1"), ip("2001:db8:ac10:fd01::1")]
    );
    let c = common::config(&nat(""));
    assert!(c.forward_plain_names());
    assert!(!c.has_default_forwarders());
    assert!(common::config(&network("", "", "")).isolated());
}

/// The model rejects these already; the engine checks again in case a definition reaches it
/// some other way (an older state file, a future code path).
#[test]
fn config_rejects_control_characters_everywhere() {
    let base = nat("<domain name='example.com'/><dns>\
         <forwarder domain='corp.lan' addr='10.0.0.53'/>\
         <txt name='t' value='v'/>\
         <srv service='ldap' protocol='tcp' domain='corp.lan' target='dc'/>\
         <host ip='192.168.122.5'><hostname>h</hostname></host></dns>");
    assert!(Config::from_network(&base, base.profile().guests).is_ok());
    type Edit = fn(&mut kvnet_model::Network);
    // Each error names the element that carries the bad string.
    let edits: [(&str, Edit); 9] = [
        ("domain name", |n| {
            n.domain.as_mut().unwrap().name = "ex\nample.com".into()
        }),
        ("TXT record name", |n| {
            n.dns.as_mut().unwrap().txts[0].name = "t\r".into()
        }),
        ("TXT record value", |n| {
            n.dns.as_mut().unwrap().txts[0].value = "v\r\nx".into()
        }),
        ("SRV service", |n| {
            n.dns.as_mut().unwrap().srvs[0].service = "ld\0ap".into()
        }),
        ("SRV protocol", |n| {
            n.dns.as_mut().unwrap().srvs[0].protocol = "tc\rp".into()
        }),
        ("SRV domain", |n| {
            n.dns.as_mut().unwrap().srvs[0].domain = Some("a\nb".into())
        }),
        ("SRV target", |n| {
            n.dns.as_mut().unwrap().srvs[0].target = Some("dc\n".into())
        }),
        ("forwarder domain", |n| {
            n.dns.as_mut().unwrap().forwarders[0].domain = Some("c\u{7f}".into())
        }),
        ("DNS hostname", |n| {
            n.dns.as_mut().unwrap().hosts[0].hostnames[0] = "h\n".into()
        }),
    ];
    for (what, edit) in edits {
        let mut n = base.clone();
        edit(&mut n);
        let err = Config::from_network(&n, n.profile().guests).unwrap_err();
        let ConfigError::Invalid { value, .. } = &err else {
            panic!("{what}: {err:?}")
        };
        assert!(
            !value.contains('\n') && !value.contains('\r'),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains('\n'), "{what}");
        assert!(err.to_string().starts_with(what), "{what}: {err}");
    }
}

#[test]
fn config_rejects_bad_labels() {
    let mut n = nat("<domain name='example.com'/>");
    n.domain.as_mut().unwrap().name = "a..b".into();
    assert!(Config::from_network(&n, n.profile().guests).is_err());
    n.domain.as_mut().unwrap().name = "a b".into();
    assert!(Config::from_network(&n, n.profile().guests).is_err());
}

fn fuzz_engine() -> Engine {
    let mut e = engine(
        "<domain name='example.com' localOnly='yes'/><dns forwardPlainNames='no'>\
         <forwarder domain='corp.lan' addr='10.9.0.1'/>\
         <txt name='t.example.com' value='hello'/>\
         <srv service='ldap' protocol='tcp' target='dc' port='389'/>\
         <host ip='192.168.122.5'><hostname>printer</hostname></host></dns>",
    );
    e.set_upstreams(vec![sa("192.0.2.1:53"), sa("192.0.2.2:53")]);
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    e
}

/// A valid query with `tail` bytes of junk appended or substituted, to reach the decoder's
/// deeper paths more often than uniform bytes do.
fn mutated_query() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "vm1.",
        "vm1.example.com.",
        "x.example.com.",
        "plain.",
        "a.corp.lan.",
        "www.example.org.",
        "10.122.168.192.in-addr.arpa.",
        "_ldap._tcp.example.com.",
        ".",
    ]);
    let types = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::PTR,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::ANY,
        RecordType::MX,
        RecordType::OPT,
    ]);
    (
        names,
        types,
        any::<u16>(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(n, t, id, flips, edns)| {
            let mut b = if edns {
                query_edns(id, n, t, 4096)
            } else {
                query(id, n, t)
            };
            for (i, v) in flips {
                let i = i % b.len();
                b[i] = v;
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn handle_query_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut e = fuzz_engine();
        let _ = e.handle_query(now0(), client(), &bytes);
        let _ = e.handle_query(now0(), Peer::tcp(sa("192.168.122.50:1")), &bytes);
    }

    #[test]
    fn mutated_queries_never_panic_and_answers_parse(bytes in mutated_query()) {
        let mut e = fuzz_engine();
        match e.handle_query(now0(), client(), &bytes) {
            Decision::Answer { bytes: out, .. } => {
                prop_assert!(out.len() <= 1232);
                prop_assert!(out.len() >= 12);
                prop_assert_eq!(&out[..2], &bytes[..2]);
            }
            Decision::Forward { bytes: out, .. } => prop_assert_eq!(&out[2..], &bytes[2..]),
            Decision::Drop => {}
        }
    }

    #[test]
    fn handle_upstream_reply_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        use_id in any::<bool>(),
    ) {
        let mut e = fuzz_engine();
        let t = now0();
        let d = e.handle_query(t, client(), &query(1, "www.example.org.", RecordType::A));
        let (up, fwd) = forward_of(d);
        let mut bytes = bytes;
        if use_id && bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&fwd[..2]);
        }
        let _ = e.handle_upstream_reply(t, up, &bytes);
        let _ = e.poll_timeouts(secs(t, 10));
    }

    /// The same over TCP, from an IPv6 client to an IPv6 upstream: other peer bookkeeping.
    #[test]
    fn tcp_and_ipv6_peers_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        use_id in any::<bool>(),
    ) {
        let mut e = fuzz_engine();
        e.set_upstreams(vec![sa("[2001:db8::53]:53")]);
        let t = now0();
        let c6 = Peer::tcp(sa("[2001:db8:ac10:fd01::9]:4000"));
        let _ = e.handle_query(t, c6, &bytes);
        let (up, fwd) = forward_of(e.handle_query(t, c6, &query(1, "www.example.org.", RecordType::A)));
        let mut bytes = bytes;
        if use_id && bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&fwd[..2]);
        }
        let _ = e.handle_upstream_reply(t, up, &bytes);
        let _ = e.poll_timeouts(secs(t, 10));
    }

    #[test]
    fn mutated_replies_never_panic(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>()) {
        let mut e = fuzz_engine();
        let t = now0();
        let (up, fwd) = forward_of(e.handle_query(t, client(), &query(1, "www.example.org.", RecordType::A)));
        let mut r = reply_to(&fwd, "203.0.113.1");
        for (i, v) in flips {
            let i = i % r.len();
            r[i] = v;
        }
        r.truncate(cut % (r.len() + 1));
        if let Decision::Answer { bytes, .. } = e.handle_upstream_reply(t, up, &r) {
            prop_assert_eq!(&bytes[..2], &[0u8, 1][..]);
        }
    }
}

#[test]
fn answers_round_trip_through_hickory() {
    let mut e = fuzz_engine();
    for (n, t) in [
        ("vm1.", RecordType::A),
        ("t.example.com.", RecordType::TXT),
        ("_ldap._tcp.example.com.", RecordType::SRV),
        ("10.122.168.192.in-addr.arpa.", RecordType::PTR),
        ("printer.example.com.", RecordType::ANY),
    ] {
        let m: Message = ask(&mut e, n, t);
        assert_eq!(rcode(&m), ResponseCode::NoError, "{n}");
        assert!(!m.answers.is_empty(), "{n}");
    }
}
