//! `address=`, `cname=`, `ptr-record=`, `domain-needed` and `bogus-priv` from libvirt's
//! `<dnsmasq:options>`, answered as dnsmasq 2.90 answers them (each case was checked
//! with dig against dnsmasq 2.90 with the same options).

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use kvnet_dns::{Decision, Engine, Peer};

const R1: &str = "192.0.2.1:53";

fn options(opts: &[&str]) -> String {
    let opts: String = opts
        .iter()
        .map(|o| format!("<dnsmasq:option value='{o}'/>"))
        .collect();
    format!(
        "<dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
         {opts}</dnsmasq:options>"
    )
}

/// A NAT network with `head` and `opts`, the host's resolver R1.
fn engine_with(head: &str, opts: &[&str]) -> Engine {
    let mut e = engine(&format!("{head}{}", options(opts)));
    e.set_upstreams(vec![sa(R1)]);
    e
}

/// What became of a query: its answer, or None when forwarded (to R1 unless `to`).
fn outcome(e: &mut Engine, name: &str, qtype: RecordType) -> Option<Message> {
    match e.handle_query(now0(), client(), &query(0x77, name, qtype)) {
        Decision::Answer { bytes, .. } => Some(Message::from_vec(&bytes).unwrap()),
        Decision::Forward { .. } => None,
        Decision::Drop => panic!("{name} dropped"),
    }
}

fn forwarded_to(e: &mut Engine, name: &str, qtype: RecordType) -> Peer {
    ask_forward(e, name, qtype).0
}

fn strs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect()
}

fn wildcard() -> Engine {
    engine_with(
        "<domain name='lab.test'/>\
         <dns><host ip='192.168.122.7'><hostname>fixed.apps.lab</hostname></host></dns>",
        &[
            "address=/apps.lab/192.168.122.50",
            "address=/apps.lab/fd00::50",
            "address=/v4only.lab/192.168.122.51",
            "address=/ads.lab/",
            "address=/null.lab/#",
            "address=/sub.ads.lab/192.168.122.52",
            "server=/fwd.apps.lab/10.9.0.1",
            "local=/lo.apps.lab/",
            "server=/both.lab/10.9.0.2",
            "address=/both.lab/192.168.122.53",
            "host-record=h6.v4only.lab,fd00::12",
            "host-record=h.ads.lab,192.168.122.13",
        ],
    )
}

#[test]
fn address_answers_the_domain_and_everything_below() {
    let mut e = wildcard();
    for name in ["apps.lab.", "x.apps.lab.", "a.b.c.apps.lab.", "X.Apps.LAB."] {
        let m = ask(&mut e, name, RecordType::A);
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name}");
        assert_eq!(addrs(&m), vec![ip("192.168.122.50")], "{name}");
        assert!(m.metadata.authoritative);
        let m = ask(&mut e, name, RecordType::AAAA);
        assert_eq!(addrs(&m), vec![ip("fd00::50")], "{name}");
    }
    let m = ask(&mut e, "x.apps.lab.", RecordType::ANY);
    assert_eq!(addrs(&m), vec![ip("192.168.122.50"), ip("fd00::50")]);
    // Whole labels only: xapps.lab is not below apps.lab.
    assert_eq!(
        forwarded_to(&mut e, "xapps.lab.", RecordType::A).addr,
        sa(R1)
    );
    assert_eq!(
        forwarded_to(&mut e, "apps.lab.x.", RecordType::A).addr,
        sa(R1)
    );
    assert_eq!(e.pending_len(), 2);
}

#[test]
fn other_types_and_the_other_family_are_forwarded_as_since_dnsmasq_2_86() {
    let mut e = wildcard();
    assert!(outcome(&mut e, "x.v4only.lab.", RecordType::AAAA).is_none());
    assert!(outcome(&mut e, "x.v4only.lab.", RecordType::TXT).is_none());
    assert!(outcome(&mut e, "x.apps.lab.", RecordType::MX).is_none());
    let m = outcome(&mut e, "x.v4only.lab.", RecordType::ANY).unwrap();
    assert_eq!(addrs(&m), vec![ip("192.168.122.51")]);
}

#[test]
fn address_without_ip_is_nxdomain_and_hash_is_the_null_address() {
    let mut e = wildcard();
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
    ] {
        let m = ask(&mut e, "x.ads.lab.", t);
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{t}");
        assert_eq!(rcode(&ask(&mut e, "ads.lab.", t)), ResponseCode::NXDomain);
    }
    let m = ask(&mut e, "x.null.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("0.0.0.0")]);
    let m = ask(&mut e, "null.lab.", RecordType::AAAA);
    assert_eq!(addrs(&m), vec![ip("::")]);
    assert_eq!(e.pending_len(), 0);
}

#[test]
fn the_most_specific_zone_wins() {
    let mut e = wildcard();
    // A server for a zone below the address= one forwards there; local= below it is local.
    assert_eq!(
        forwarded_to(&mut e, "a.fwd.apps.lab.", RecordType::A).addr,
        sa("10.9.0.1:53")
    );
    let m = ask(&mut e, "x.lo.apps.lab.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // An address= below an NXDOMAIN one answers its family; the other family falls to
    // the parent zone: NXDOMAIN.
    let m = ask(&mut e, "a.sub.ads.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.52")]);
    let m = ask(&mut e, "a.sub.ads.lab.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // One zone with an address and a server: the address for A, the server for the rest.
    let m = ask(&mut e, "x.both.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.53")]);
    assert_eq!(
        forwarded_to(&mut e, "x.both.lab.", RecordType::TXT).addr,
        sa("10.9.0.2:53")
    );
}

/// dnsmasq(8): "/etc/hosts and DHCP leases override this for individual names" — per
/// name and type: a local name with only the other family still gets the zone's address.
#[test]
fn local_names_override_address_per_name_and_type() {
    let mut e = wildcard();
    e.set_guest_names(vec![("vm1".into(), ip("192.168.122.60"))]);
    let m = ask(&mut e, "fixed.apps.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.7")]);
    let m = ask(&mut e, "fixed.apps.lab.", RecordType::AAAA);
    assert_eq!(addrs(&m), vec![ip("fd00::50")]);
    let m = ask(&mut e, "h6.v4only.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.51")]);
    // A local name under an NXDOMAIN zone exists: its other types are NODATA.
    let m = ask(&mut e, "h.ads.lab.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());

    // A lease name under a wildcard domain keeps its own address.
    let mut e = engine_with(
        "<domain name='apps.lab'/>",
        &["address=/apps.lab/192.168.122.50"],
    );
    e.set_guest_names(vec![("vm1".into(), ip("192.168.122.60"))]);
    let m = ask(&mut e, "vm1.apps.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.60")]);
    let m = ask(&mut e, "vm2.apps.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.50")]);
}

#[test]
fn address_for_every_name_comes_after_specific_servers() {
    let mut e = engine_with("", &["address=/#/10.0.0.1", "server=/corp.test/10.9.0.1"]);
    let m = ask(&mut e, "anything.example.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("10.0.0.1")]);
    assert_eq!(
        forwarded_to(&mut e, "a.corp.test.", RecordType::A).addr,
        sa("10.9.0.1:53")
    );
    // AAAA: no IPv6 answer anywhere, so the default upstream.
    assert_eq!(
        forwarded_to(&mut e, "anything.example.", RecordType::AAAA).addr,
        sa(R1)
    );
}

#[test]
fn isolated_networks_answer_address_and_refuse_the_rest() {
    let net = network("", &options(&["address=/apps.lab/192.168.122.50"]), "");
    let mut e = engine_for(&net);
    e.set_upstreams(vec![sa(R1)]);
    let m = ask(&mut e, "x.apps.lab.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.50")]);
    let m = ask(&mut e, "x.apps.lab.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

fn cnames() -> Engine {
    engine_with(
        "",
        &[
            "host-record=nas.lab,192.168.122.9,fd00::9",
            "cname=alias.lab,other.lab,nas.lab,600",
            "cname=chain.lab,alias.lab",
            "cname=dangling.lab,nowhere.example",
            "cname=loop1.lab,loop2.lab",
            "cname=loop2.lab,loop1.lab",
            "txt-record=nas.lab,hello",
        ],
    )
}

#[test]
fn cname_answers_the_alias_and_the_targets_records() {
    let mut e = cnames();
    let m = ask(&mut e, "alias.lab.", RecordType::A);
    assert_eq!(strs(&m), ["alias.lab. nas.lab.", "nas.lab. 192.168.122.9"]);
    assert_eq!(m.answers[0].ttl, 600);
    assert_eq!(m.answers[1].ttl, 0);
    let m = ask(&mut e, "other.lab.", RecordType::AAAA);
    assert_eq!(strs(&m), ["other.lab. nas.lab.", "nas.lab. fd00::9"]);
    let m = ask(&mut e, "alias.lab.", RecordType::TXT);
    assert_eq!(strs(&m), ["alias.lab. nas.lab.", "nas.lab. hello"]);
    let m = ask(&mut e, "alias.lab.", RecordType::ANY);
    assert_eq!(m.answers.len(), 4, "{:?}", strs(&m));
    // Only the CNAME when that is what was asked, or the target has no such record.
    let m = ask(&mut e, "alias.lab.", RecordType::CNAME);
    assert_eq!(strs(&m), ["alias.lab. nas.lab."]);
    let m = ask(&mut e, "alias.lab.", RecordType::MX);
    assert_eq!(strs(&m), ["alias.lab. nas.lab."]);
    assert_eq!(rcode(&m), ResponseCode::NoError);
}

#[test]
fn cname_chains_dangling_targets_and_loops() {
    let mut e = cnames();
    let m = ask(&mut e, "chain.lab.", RecordType::A);
    assert_eq!(
        strs(&m),
        [
            "chain.lab. alias.lab.",
            "alias.lab. nas.lab.",
            "nas.lab. 192.168.122.9"
        ]
    );
    // dnsmasq 2.90 answers the CNAME alone when the target is not its own.
    let m = ask(&mut e, "dangling.lab.", RecordType::A);
    assert_eq!(strs(&m), ["dangling.lab. nowhere.example."]);
    let m = ask(&mut e, "loop1.lab.", RecordType::A);
    assert_eq!(strs(&m), ["loop1.lab. loop2.lab.", "loop2.lab. loop1.lab."]);
    assert_eq!(e.pending_len(), 0);
}

#[test]
fn ptr_record_replaces_the_hosts_ptrs_and_is_ptr_only() {
    let mut e = engine_with(
        "<dns><host ip='192.168.122.9'><hostname>nas</hostname></host></dns>",
        &[
            "ptr-record=9.122.168.192.in-addr.arpa,override.lab",
            "ptr-record=9.122.168.192.in-addr.arpa,second.lab",
            "ptr-record=9.9.0.10.in-addr.arpa,custom.lab",
            "ptr-record=_http._tcp.dns-sd-services",
        ],
    );
    let m = ask(&mut e, "9.122.168.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        strs(&m),
        [
            "9.122.168.192.in-addr.arpa. override.lab.",
            "9.122.168.192.in-addr.arpa. second.lab."
        ]
    );
    let m = ask(&mut e, "9.9.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(strs(&m), ["9.9.0.10.in-addr.arpa. custom.lab."]);
    // No target: a PTR to the root, as dnsmasq answers.
    let m = ask(&mut e, "_http._tcp.dns-sd-services.", RecordType::PTR);
    assert!(matches!(&m.answers[0].data, RData::PTR(p) if p.0.is_root()));
    // Other types of the name are not its own: forwarded.
    assert!(outcome(&mut e, "9.9.0.10.in-addr.arpa.", RecordType::TXT).is_none());
}

#[test]
fn domain_needed_keeps_plain_names_local() {
    let mut e = engine_with("", &["domain-needed"]);
    e.set_guest_names(vec![("vm1".into(), ip("192.168.122.10"))]);
    let m = ask(&mut e, "intranet.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(&mut e, "intranet.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    assert_eq!(
        forwarded_to(&mut e, "www.example.org.", RecordType::A).addr,
        sa(R1)
    );
    // Without it plain names are forwarded.
    let mut e = engine_with("", &[]);
    assert_eq!(
        forwarded_to(&mut e, "intranet.", RecordType::A).addr,
        sa(R1)
    );
}

#[test]
fn bogus_priv_answers_private_reverse_lookups_locally() {
    let mut e = engine_with(
        "<dns><host ip='10.1.2.3'><hostname>known</hostname></host></dns>",
        &["bogus-priv", "server=/20.10.in-addr.arpa/10.9.0.1"],
    );
    for name in [
        "4.3.2.10.in-addr.arpa.",
        "1.0.168.192.in-addr.arpa.",
        "1.0.16.172.in-addr.arpa.",
        "5.0.0.127.in-addr.arpa.",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    ] {
        let m = ask(&mut e, name, RecordType::PTR);
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{name}");
    }
    // Known locally: answered; public: forwarded; a zone's own server: forwarded there.
    let m = ask(&mut e, "3.2.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(strs(&m), ["3.2.1.10.in-addr.arpa. known."]);
    assert_eq!(
        forwarded_to(&mut e, "8.8.8.8.in-addr.arpa.", RecordType::PTR).addr,
        sa(R1)
    );
    assert_eq!(
        forwarded_to(&mut e, "1.0.20.10.in-addr.arpa.", RecordType::PTR).addr,
        sa("10.9.0.1:53")
    );
    // Only PTR queries: dnsmasq forwards a TXT for the same name.
    assert_eq!(
        forwarded_to(&mut e, "4.3.2.10.in-addr.arpa.", RecordType::TXT).addr,
        sa(R1)
    );
    // Without bogus-priv, private reverse lookups are forwarded.
    let mut e = engine_with("", &[]);
    assert_eq!(
        forwarded_to(&mut e, "4.3.2.10.in-addr.arpa.", RecordType::PTR).addr,
        sa(R1)
    );
}

#[test]
fn log_queries_is_a_config_flag() {
    assert!(config(&nat(&options(&["log-queries"]))).log_queries());
    assert!(!config(&nat("")).log_queries());
}

#[test]
fn query_log_lines_name_the_question_and_its_fate() {
    let mut e = wildcard();
    let q = query(0x77, "x.apps.lab.", RecordType::A);
    let d = e.handle_query(now0(), client(), &q);
    let line = kvnet_dns::query_log_line(client(), &q, &d);
    assert_eq!(
        line,
        "query[A] x.apps.lab. from 192.168.122.50:40000: No Error x.apps.lab. A 192.168.122.50"
    );
    let q = query(0x78, "www.example.org.", RecordType::AAAA);
    let d = e.handle_query(now0(), client(), &q);
    let line = kvnet_dns::query_log_line(client(), &q, &d);
    assert_eq!(
        line,
        "query[AAAA] www.example.org. from 192.168.122.50:40000: forwarded to 192.0.2.1:53"
    );
}
