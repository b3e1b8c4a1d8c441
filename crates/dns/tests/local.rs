//! Local answers: guest names, `<dns>` hosts, TXT, SRV, PTR, NODATA vs NXDOMAIN, flags, TC.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use kvnet_dns::{Decision, Engine, Peer};

const DOMAIN: &str = "<domain name='example.com'/>";

fn with_guests(head: &str) -> Engine {
    let mut e = engine(head);
    let rejected = e.set_guest_names(vec![
        ("vm1".to_string(), ip("192.168.122.10")),
        ("vm1".to_string(), ip("2001:db8:ac10:fd01::10")),
        ("vm2.example.com".to_string(), ip("192.168.122.11")),
        ("v4only".to_string(), ip("192.168.122.12")),
    ]);
    assert!(rejected.is_empty());
    e
}

#[test]
fn guest_a_and_aaaa_with_and_without_domain() {
    let mut e = with_guests(DOMAIN);
    for name in ["vm1.", "vm1.example.com."] {
        let m = ask(&mut e, name, RecordType::A);
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert_eq!(addrs(&m), vec![ip("192.168.122.10")], "{name}");
        let m = ask(&mut e, name, RecordType::AAAA);
        assert_eq!(addrs(&m), vec![ip("2001:db8:ac10:fd01::10")], "{name}");
    }
    // A static host given with our domain is reachable both ways too.
    assert_eq!(
        addrs(&ask(&mut e, "vm2.", RecordType::A)),
        vec![ip("192.168.122.11")]
    );
    assert_eq!(
        addrs(&ask(&mut e, "vm2.example.com.", RecordType::A)),
        vec![ip("192.168.122.11")]
    );
}

#[test]
fn guest_names_without_domain_are_plain_only() {
    let mut e = with_guests("");
    assert_eq!(
        addrs(&ask(&mut e, "vm1.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
    // Not local, so forwarded (no resolvers set: REFUSED).
    let m = ask(&mut e, "vm1.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

#[test]
fn foreign_domain_in_guest_name_is_ignored() {
    let mut e = engine(DOMAIN);
    e.set_guest_names(vec![("sneaky.bank.com".to_string(), ip("192.168.122.66"))]);
    assert_eq!(
        addrs(&ask(&mut e, "sneaky.example.com.", RecordType::A)),
        vec![ip("192.168.122.66")]
    );
    let m = ask(&mut e, "sneaky.bank.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

#[test]
fn case_insensitive_and_case_preserving() {
    let mut e = with_guests(DOMAIN);
    let m = ask(&mut e, "VM1.ExAmPlE.CoM.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("192.168.122.10")]);
    assert_eq!(m.answers[0].name.to_ascii(), "VM1.ExAmPlE.CoM.");
    assert_eq!(m.queries[0].name().to_ascii(), "VM1.ExAmPlE.CoM.");
    e.set_guest_names(vec![("UPPER".to_string(), ip("192.168.122.20"))]);
    assert_eq!(
        addrs(&ask(&mut e, "upper.", RecordType::A)),
        vec![ip("192.168.122.20")]
    );
}

#[test]
fn flags_id_and_ttl() {
    let mut e = with_guests(DOMAIN);
    let m = ask(&mut e, "vm1.", RecordType::A);
    assert_eq!(m.metadata.id, 0x1234);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers[0].ttl, 0);

    // RA is set whatever RD was: the server does recurse for its clients.
    let mut q = query_msg(9, "vm1.", RecordType::A);
    q.metadata.recursion_desired = false;
    let m = answer_of(e.handle_query(now0(), client(), &q.to_vec().unwrap()));
    assert!(m.metadata.recursion_available);
    assert!(m.metadata.authoritative);
}

#[test]
fn the_do_bit_is_echoed() {
    let mut e = with_guests(DOMAIN);
    for dnssec_ok in [false, true] {
        let mut q = query_msg(9, "vm1.", RecordType::A);
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_dnssec_ok(dnssec_ok);
        q.edns = Some(edns);
        let m = answer_of(e.handle_query(now0(), client(), &q.to_vec().unwrap()));
        assert_eq!(m.edns.expect("EDNS answered").flags().dnssec_ok, dnssec_ok);
    }
}

#[test]
fn the_apex_and_empty_non_terminals_exist_with_no_data() {
    let mut e = with_guests(
        "<domain name='example.lan' localOnly='yes'/>\
         <dns><srv service='http' protocol='tcp' domain='example.lan' target='web' port='80'/></dns>",
    );
    // RFC 8020: names with names below them are NOERROR/NODATA, with the SOA.
    for name in ["example.lan.", "_tcp.example.lan."] {
        let m = ask(&mut e, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{name}");
    }
    let m = ask(&mut e, "_http._tcp.example.lan.", RecordType::SRV);
    assert_eq!(m.answers.len(), 1);
    // Below a name that does not exist: NXDOMAIN, with the SOA.
    let m = ask(&mut e, "x._udp.example.lan.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // The SOA of the local domain, when asked.
    let m = ask(&mut e, "example.lan.", RecordType::SOA);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn nodata_vs_nxdomain() {
    let mut e = with_guests("<domain name='example.com' localOnly='yes'/>");
    let m = ask(&mut e, "v4only.example.com.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(m.metadata.authoritative);
    let m = ask(&mut e, "v4only.example.com.", RecordType::MX);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let m = ask(&mut e, "nobody.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
}

#[test]
fn any_returns_everything_for_the_name() {
    let mut e = with_guests(DOMAIN);
    let m = ask(&mut e, "vm1.", RecordType::ANY);
    let mut got = addrs(&m);
    got.sort();
    assert_eq!(
        got,
        vec![ip("192.168.122.10"), ip("2001:db8:ac10:fd01::10")]
    );
}

const HOSTS: &str = "<domain name='example.com'/><dns>\
    <host ip='192.168.122.5'><hostname>printer</hostname><hostname>lp.office.lan</hostname></host>\
    <host ip='2001:db8:ac10:fd01::5'><hostname>printer</hostname></host>\
    </dns>";

#[test]
fn dns_host_records_expand_plain_names_only() {
    let mut e = engine(HOSTS);
    assert_eq!(
        addrs(&ask(&mut e, "printer.", RecordType::A)),
        vec![ip("192.168.122.5")]
    );
    assert_eq!(
        addrs(&ask(&mut e, "printer.example.com.", RecordType::A)),
        vec![ip("192.168.122.5")]
    );
    assert_eq!(
        addrs(&ask(&mut e, "printer.example.com.", RecordType::AAAA)),
        vec![ip("2001:db8:ac10:fd01::5")]
    );
    assert_eq!(
        addrs(&ask(&mut e, "lp.office.lan.", RecordType::A)),
        vec![ip("192.168.122.5")]
    );
    // Dotted names are not expanded (dnsmasq expand-hosts).
    let m = ask(&mut e, "lp.office.lan.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

#[test]
fn txt_records() {
    let long = "v".repeat(300);
    let mut e = engine(&format!(
        "<dns><txt name='example' value='example value'/><txt name='big.test' value='{long}'/></dns>"
    ));
    let m = ask(&mut e, "example.", RecordType::TXT);
    assert!(m.metadata.authoritative);
    let RData::TXT(t) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(t.txt_data.len(), 1);
    assert_eq!(&*t.txt_data[0], b"example value");
    let m = ask(&mut e, "BIG.test.", RecordType::TXT);
    let RData::TXT(t) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    let joined: Vec<u8> = t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(joined, long.as_bytes());
    assert_eq!(t.txt_data[0].len(), 255);
    // The TXT owner exists: an A query is NODATA.
    let m = ask(&mut e, "example.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn srv_records() {
    let mut e = engine(
        "<domain name='example.com'/><dns>\
         <srv service='ldap' protocol='tcp' domain='corp.lan' target='dc1.corp.lan' port='389' priority='10' weight='20'/>\
         <srv service='kerberos' protocol='udp' target='kdc' port='88'/>\
         <srv service='www' protocol='tcp'/>\
         </dns>",
    );
    let m = ask(&mut e, "_ldap._tcp.corp.lan.", RecordType::SRV);
    let RData::SRV(s) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!((s.priority, s.weight, s.port), (10, 20, 389));
    assert_eq!(s.target.to_ascii(), "dc1.corp.lan.");

    // No domain: the network's domain.
    let m = ask(&mut e, "_kerberos._udp.example.com.", RecordType::SRV);
    let RData::SRV(s) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!((s.priority, s.weight, s.port), (0, 0, 88));
    assert_eq!(s.target.to_ascii(), "kdc.");

    // No target: "service not available".
    let m = ask(&mut e, "_www._tcp.example.com.", RecordType::SRV);
    let RData::SRV(s) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert!(s.target.is_root());
    assert_eq!(s.port, 1);
}

#[test]
fn srv_without_any_domain() {
    let mut e = engine("<dns><srv service='ldap' protocol='tcp' target='dc' port='389'/></dns>");
    let m = ask(&mut e, "_ldap._tcp.", RecordType::SRV);
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn ptr_v4_for_guests_and_hosts() {
    let mut e = engine(HOSTS);
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    let m = ask(&mut e, "10.122.168.192.in-addr.arpa.", RecordType::PTR);
    assert!(m.metadata.authoritative);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "vm1.example.com.");
    let m = ask(&mut e, "5.122.168.192.IN-ADDR.ARPA.", RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "printer.example.com.");
    // A known address asked for another type: NODATA.
    let m = ask(&mut e, "5.122.168.192.in-addr.arpa.", RecordType::TXT);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn ptr_v6() {
    let mut e = engine(HOSTS);
    e.set_guest_names(vec![("vm6".to_string(), ip("2001:db8:ac10:fd01::10"))]);
    let name = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.d.f.0.1.c.a.8.b.d.0.1.0.0.2.ip6.arpa.";
    let m = ask(&mut e, name, RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "vm6.example.com.");
    let name = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.D.F.0.1.C.A.8.B.D.0.1.0.0.2.ip6.arpa.";
    let m = ask(&mut e, name, RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "printer.example.com.");
}

#[test]
fn ptr_without_domain_names_the_plain_host() {
    let mut e = engine("");
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    let m = ask(&mut e, "10.122.168.192.in-addr.arpa.", RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "vm1.");
}

#[test]
fn guest_names_are_replaced_not_merged() {
    let mut e = with_guests(DOMAIN);
    e.set_guest_names(vec![("vm9".to_string(), ip("192.168.122.99"))]);
    assert_eq!(
        rcode(&ask(&mut e, "vm1.", RecordType::A)),
        ResponseCode::Refused
    );
    assert_eq!(
        addrs(&ask(&mut e, "vm9.", RecordType::A)),
        vec![ip("192.168.122.99")]
    );
}

#[test]
fn guest_names_with_control_characters_are_rejected() {
    let mut e = engine(DOMAIN);
    let rejected = e.set_guest_names(vec![
        ("evil\r\nname".to_string(), ip("192.168.122.10")),
        ("nul\0".to_string(), ip("192.168.122.11")),
        ("sp ace".to_string(), ip("192.168.122.12")),
        ("".to_string(), ip("192.168.122.13")),
        ("good".to_string(), ip("192.168.122.14")),
    ]);
    assert_eq!(rejected, vec!["evil\\r\\nname", "nul\\0", "sp ace", ""]);
    assert_eq!(
        addrs(&ask(&mut e, "good.", RecordType::A)),
        vec![ip("192.168.122.14")]
    );
}

#[test]
fn hostile_wire_labels_never_match() {
    let mut e = with_guests(DOMAIN);
    // A single label "vm1.example" must not match the two labels vm1 + example.
    let mut q = query_msg(1, "x.", RecordType::A);
    let name = hickory_proto::rr::Name::from_labels(vec![b"vm1.example".to_vec(), b"com".to_vec()])
        .unwrap();
    q.queries[0].set_name(name);
    let d = e.handle_query(now0(), client(), &q.to_vec().unwrap());
    let m = answer_of(d);
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

fn many_addresses(e: &mut Engine, n: u8) {
    let names = (1..=n)
        .map(|i| ("big".to_string(), ip(&format!("192.168.122.{i}"))))
        .collect();
    e.set_guest_names(names);
}

#[test]
fn udp_truncation_without_edns() {
    let mut e = engine(DOMAIN);
    many_addresses(&mut e, 60);
    let m = ask(&mut e, "big.", RecordType::A);
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    let bytes = query(5, "big.", RecordType::A);
    let Decision::Answer { bytes: out, .. } = e.handle_query(now0(), client(), &bytes) else {
        panic!()
    };
    assert!(out.len() <= 512);
    // Small answers are not truncated.
    many_addresses(&mut e, 10);
    assert!(!ask(&mut e, "big.", RecordType::A).metadata.truncation);
}

#[test]
fn udp_edns_size_and_tcp() {
    let mut e = engine(DOMAIN);
    many_addresses(&mut e, 60);
    // 60 × 16 bytes fit in 1232.
    let d = e.handle_query(
        now0(),
        client(),
        &query_edns(1, "big.", RecordType::A, 4096),
    );
    let m = answer_of(d);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));

    many_addresses(&mut e, 200);
    let d = e.handle_query(
        now0(),
        client(),
        &query_edns(1, "big.", RecordType::A, 4096),
    );
    let Decision::Answer { bytes, .. } = d else {
        panic!()
    };
    assert!(bytes.len() <= 1232);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.edns.is_some());

    // EDNS sizes under 512 count as 512.
    many_addresses(&mut e, 20);
    let m = answer_of(e.handle_query(now0(), client(), &query_edns(1, "big.", RecordType::A, 100)));
    assert!(!m.metadata.truncation);

    many_addresses(&mut e, 200);
    let tcp = Peer::tcp(sa("192.168.122.50:40001"));
    let m = answer_of(e.handle_query(now0(), tcp, &query(1, "big.", RecordType::A)));
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 200);
}

const ETC_HOSTS: &str = "127.0.0.1 localhost\n127.0.1.1 hyper.lan hyper\n::1 localhost ip6-localhost\n\
                         192.168.122.5 nas\n";

fn with_hosts_file(head: &str) -> Engine {
    let mut e = with_guests(head);
    e.set_hosts_file(std::sync::Arc::new(kvnet_dns::HostsFile::parse(ETC_HOSTS)));
    e
}

#[test]
fn the_hosts_file_is_served_plain_fqdn_and_expanded() {
    let mut e = with_hosts_file(DOMAIN);
    let m = ask(&mut e, "localhost.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(addrs(&m), vec![ip("127.0.0.1")]);
    assert_eq!(
        addrs(&ask(&mut e, "localhost.", RecordType::AAAA)),
        vec![ip("::1")]
    );
    assert_eq!(
        addrs(&ask(&mut e, "hyper.lan.", RecordType::A)),
        vec![ip("127.0.1.1")]
    );
    // expand-hosts covers the file's plain names too, not names with a dot.
    assert_eq!(
        addrs(&ask(&mut e, "nas.example.com.", RecordType::A)),
        vec![ip("192.168.122.5")]
    );
    // Not local, so forwarded (no resolvers set: REFUSED).
    let m = ask(&mut e, "hyper.lan.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    // A name with only an IPv4 address: NODATA for AAAA.
    let m = ask(&mut e, "nas.", RecordType::AAAA);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // Reverse: the first name of the address, expanded when plain.
    let m = ask(&mut e, "1.1.0.127.in-addr.arpa.", RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "hyper.lan.");
    let m = ask(&mut e, "5.122.168.192.in-addr.arpa.", RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "nas.example.com.");
}

#[test]
fn the_network_wins_over_the_hosts_file_and_the_file_over_leases() {
    let mut e = engine(HOSTS);
    e.set_hosts_file(std::sync::Arc::new(kvnet_dns::HostsFile::parse(
        "10.0.0.9 printer\n10.0.0.8 vm1\n",
    )));
    // <dns><host> printer is the network's: it wins.
    assert_eq!(
        addrs(&ask(&mut e, "printer.", RecordType::A)),
        vec![ip("192.168.122.5")]
    );
    // A guest calling itself what the host file names is not served under it.
    e.set_guest_names(vec![("vm1".to_string(), ip("192.168.122.10"))]);
    assert_eq!(
        addrs(&ask(&mut e, "vm1.", RecordType::A)),
        vec![ip("10.0.0.8")]
    );
    let m = ask(&mut e, "10.122.168.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    // The file changes: the guest gets its name back.
    e.set_hosts_file(std::sync::Arc::new(kvnet_dns::HostsFile::parse("")));
    assert_eq!(
        addrs(&ask(&mut e, "vm1.", RecordType::A)),
        vec![ip("192.168.122.10")]
    );
}

/// libvirt's `<dnsmasq:options>` that kvnet serves itself, answered as dnsmasq answers.
fn dnsmasq(options: &[&str]) -> String {
    let opts: String = options
        .iter()
        .map(|o| format!("<dnsmasq:option value='{o}'/>"))
        .collect();
    format!(
        "<dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>{opts}</dnsmasq:options>"
    )
}

#[test]
fn dnsmasq_records_are_served() {
    let mut e = engine(&dnsmasq(&[
        "host-record=nas,nas.lab,192.168.122.9,fd00::9",
        "txt-record=info.lab,\"owner=ops\"",
        "srv-host=_ldap._tcp.lab,dc.lab,389,5,7",
        "cname=alias.lab,nas.lab",
    ]));
    let m = ask(&mut e, "nas.lab.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(addrs(&m), [ip("192.168.122.9")]);
    let m = ask(&mut e, "nas.", RecordType::AAAA);
    assert_eq!(addrs(&m), [ip("fd00::9")]);
    // The first name owns the PTR, as with dnsmasq.
    let m = ask(&mut e, "9.122.168.192.in-addr.arpa.", RecordType::PTR);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(p.0.to_ascii(), "nas.");
    let m = ask(&mut e, "info.lab.", RecordType::TXT);
    let RData::TXT(t) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(&*t.txt_data[0], b"owner=ops");
    let m = ask(&mut e, "_ldap._tcp.lab.", RecordType::SRV);
    let RData::SRV(s) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!((s.priority, s.weight, s.port), (5, 7, 389));
    assert_eq!(s.target.to_ascii(), "dc.lab.");
}

#[test]
fn dnsmasq_servers_and_local_domains_route_queries() {
    let mut e = engine(&dnsmasq(&[
        "server=/corp.example/192.0.2.53#5353",
        "local=/lab.test/",
    ]));
    e.set_upstreams(vec![sa("192.0.2.1:53")]);
    let (to, _) = ask_forward(&mut e, "www.corp.example.", RecordType::A);
    assert_eq!(to.addr, sa("192.0.2.53:5353"));
    let (to, _) = ask_forward(&mut e, "www.other.example.", RecordType::A);
    assert_eq!(to.addr, sa("192.0.2.1:53"));
    // A local domain is never forwarded: what the network does not know does not exist.
    let m = ask(&mut e, "anything.lab.test.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}
