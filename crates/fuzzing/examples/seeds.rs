//! Writes the seed corpora under `fuzz/seeds/TARGET/` (checked in): valid inputs that
//! reach deep into each target, for libFuzzer to start from and for `tests/replay.rs`
//! to replay and mutate. `cargo run -p kvnet-fuzzing --example seeds` after changing a
//! target's input format.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use dhcproto::Encodable;
use dhcproto::v4::{self, DhcpOption, Flags, MessageType, Opcode};
use dhcproto::v6;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use kvnet_fuzzing::frame;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    xml();
    acl();
    api();
    dhcp4();
    dhcp6();
    dns();
    ra();
    nss();
}

fn xml() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    for f in [
        "everything.xml",
        "nat-basic.in.xml",
        "direct.in.xml",
        "hostdev.in.xml",
    ] {
        write("xml", f, &std::fs::read(fixtures.join(f)).unwrap());
    }
    for (name, net) in [
        ("dhcp4.xml", kvnet_fuzzing::dhcp4::NETWORK),
        ("dhcp6.xml", kvnet_fuzzing::dhcp6::NETWORK),
        ("dns.xml", kvnet_fuzzing::dns::NETWORK),
        ("ra.xml", kvnet_fuzzing::ra::NETWORK),
    ] {
        write("xml", name, net.as_bytes());
    }
}

fn acl() {
    write(
        "acl",
        "plain",
        b"# comment\nallow virbr0\nallow br-lan\ndeny br-dmz\n",
    );
    write("acl", "all", b"allow all\ndeny virbr1\n");
    write("acl", "include", b"include a.conf\ninclude /etc/kvnet/b.conf\nallow virbr0\0deny virbr0\ninclude c.conf\0allow all\0allow virbr9\n");
    write(
        "acl",
        "cycle",
        b"include a.conf\0include b.conf\0include /etc/kvnet/bridge.conf\0",
    );
}

fn api() {
    let lines: &[(&str, &str)] = &[
        ("ping", r#"{"op":"ping"}"#),
        ("list", r#"{"op":"list"}"#),
        ("start", r#"{"op":"start","network":"default"}"#),
        (
            "destroy",
            r#"{"op":"destroy","network":"default","wait":true}"#,
        ),
        (
            "autostart",
            r#"{"op":"autostart","network":"default","enable":false}"#,
        ),
        (
            "dump-xml",
            r#"{"op":"dump-xml","network":"default","inactive":true}"#,
        ),
        (
            "dhcp-leases",
            r#"{"op":"dhcp-leases","network":"default","mac":"52:54:00:00:00:01"}"#,
        ),
        (
            "port-create",
            r#"{"op":"port-create","network":"default","ifname":"vnet0","mac":"52:54:00:00:00:05","owner":"1000","group":"1000","queues":2}"#,
        ),
        (
            "iface-bridge",
            r#"{"op":"iface-bridge","iface":"eth0","bridge":"br0","stp":true,"delay":0}"#,
        ),
        ("doctor", r#"{"op":"doctor","network":null}"#),
        (
            "update-host",
            r#"{"op":"update","network":"default","command":"add-last","section":"ip-dhcp-host","xml":"<host mac='52:54:00:00:00:02' name='b' ip='192.168.122.11'/>","parent_index":null,"live":false,"config":true}"#,
        ),
        (
            "update-dns",
            r#"{"op":"update","network":"default","command":"delete","section":"dns-txt","xml":"<txt name='t' value='v'/>","parent_index":null,"live":true,"config":false}"#,
        ),
        (
            "update-range",
            r#"{"op":"update","network":"default","command":"modify","section":"ip-dhcp-range","xml":"<range start='fd00::10' end='fd00::1ff'/>","parent_index":1,"live":false,"config":false}"#,
        ),
    ];
    for (name, line) in lines {
        assert!(
            serde_json::from_str::<kvnet_api::Request>(line).is_ok(),
            "{line}"
        );
        write("api", name, line.as_bytes());
    }
    let define = serde_json::json!({"op": "define", "xml": kvnet_fuzzing::dns::NETWORK});
    write("api", "define", define.to_string().as_bytes());
    let create = serde_json::json!({"op": "create", "xml": kvnet_fuzzing::ra::NETWORK});
    write("api", "create", create.to_string().as_bytes());
}

fn v4msg(kind: MessageType, mac: u8, f: impl FnOnce(&mut v4::Message)) -> Vec<u8> {
    let chaddr = [0x52, 0x54, 0, 0, 0, mac];
    let u = Ipv4Addr::UNSPECIFIED;
    let mut m = v4::Message::new_with_id(0x1234_0000 | u32::from(mac), u, u, u, u, &chaddr);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    f(&mut m);
    m.to_vec().unwrap()
}

fn dhcp4() {
    let server = Ipv4Addr::new(192, 168, 122, 1);
    let ip = |n| Ipv4Addr::new(192, 168, 122, n);
    let dora = |mac: u8, addr: Ipv4Addr| {
        let mut v = frame(
            0,
            &v4msg(MessageType::Discover, mac, |m| {
                m.opts_mut()
                    .insert(DhcpOption::Hostname(format!("guest{mac}")));
            }),
        );
        v.extend(frame(
            1 << 3,
            &v4msg(MessageType::Request, mac, |m| {
                m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
                m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
            }),
        ));
        v
    };
    write("dhcp4", "dora", &dora(3, ip(10)));
    let mut renew = dora(1, ip(20));
    // 31² × 16 s later: past a quarter of the hour-long lease.
    renew.extend(frame(
        0xf8,
        &v4msg(MessageType::Request, 1, |m| {
            m.set_ciaddr(ip(20));
        }),
    ));
    renew.extend(frame(5 | 0xf8, &[]));
    write("dhcp4", "renew-expire", &renew);
    let mut release = dora(4, ip(10));
    release.extend(frame(
        2 << 3,
        &v4msg(MessageType::Release, 4, |m| {
            m.set_ciaddr(ip(10));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        }),
    ));
    release.extend(frame(
        2 << 3,
        &v4msg(MessageType::Decline, 5, |m| {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip(11)));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        }),
    ));
    write("dhcp4", "release-decline", &release);
    let mut exhaust = Vec::new();
    for mac in 10..16 {
        exhaust.extend(dora(mac, ip(mac)));
    }
    write("dhcp4", "exhaust", &exhaust);
    let mut conflict = frame(
        0,
        &v4msg(MessageType::Discover, 6, |m| {
            m.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
                1, 0x52, 0x54, 0, 0, 0, 2,
            ]));
            m.set_flags(Flags::default().set_broadcast());
        }),
    );
    conflict.extend(frame(6, &[192, 168, 122, 21, 2, 0, 0, 0, 0, 9]));
    conflict.extend(frame(
        7,
        &v4msg(MessageType::Request, 6, |m| {
            m.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
                1, 0x52, 0x54, 0, 0, 0, 2,
            ]));
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip(21)));
        }),
    ));
    write("dhcp4", "client-id-conflict-failed-write", &conflict);
    let relayed = frame(
        0,
        &v4msg(MessageType::Inform, 7, |m| {
            m.set_ciaddr(ip(50));
            m.set_giaddr(ip(254));
            m.opts_mut().insert(DhcpOption::Hostname("named".into()));
        }),
    );
    write("dhcp4", "inform-relay", &relayed);
}

fn v6msg(t: v6::MessageType, client: u8, server: bool, addrs: &[Ipv6Addr]) -> Vec<u8> {
    let mut m = v6::Message::new_with_id(t, [1, 2, client]);
    let o = m.opts_mut();
    o.insert(v6::DhcpOption::ClientId(kvnet_dhcp::v6::duid_ll(
        kvnet_model::MacAddr([0x52, 0x54, 0, 0, 0, client]),
    )));
    if server {
        o.insert(v6::DhcpOption::ServerId(kvnet_dhcp::v6::duid_uuid(
            kvnet_fuzzing::dhcp6::SERVER_DUID,
        )));
    }
    let mut ia = v6::DhcpOptions::new();
    for &addr in addrs {
        ia.insert(v6::DhcpOption::IAAddr(v6::IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: v6::DhcpOptions::new(),
        }));
    }
    o.insert(v6::DhcpOption::IANA(v6::IANA {
        id: 7,
        t1: 0,
        t2: 0,
        opts: ia,
    }));
    o.insert(v6::DhcpOption::ORO(v6::ORO {
        opts: vec![
            v6::OptionCode::DomainNameServers,
            v6::OptionCode::DomainSearchList,
        ],
    }));
    m.to_vec().unwrap()
}

fn dhcp6() {
    use v6::MessageType as T;
    let a = |n| Ipv6Addr::new(0x2001, 0xdb8, 0xca2, 2, 0, 0, 0, n);
    let bind = |c: u8, addr| {
        let mut v = frame(0, &v6msg(T::Solicit, c, false, &[]));
        v.extend(frame(1 << 3, &v6msg(T::Request, c, true, &[addr])));
        v
    };
    write("dhcp6", "solicit-request", &bind(2, a(0x100)));
    let mut renew = bind(1, a(3));
    renew.extend(frame(0xf8, &v6msg(T::Renew, 1, true, &[a(3)])));
    renew.extend(frame(0xf8, &v6msg(T::Rebind, 1, false, &[a(3)])));
    renew.extend(frame(5 | 0xf8, &[]));
    write("dhcp6", "renew-rebind-expire", &renew);
    let mut release = bind(3, a(0x101));
    release.extend(frame(2 << 3, &v6msg(T::Release, 3, true, &[a(0x101)])));
    release.extend(frame(7, &v6msg(T::Decline, 4, true, &[a(0x102)])));
    release.extend(frame(0, &v6msg(T::Confirm, 5, false, &[a(0x103)])));
    release.extend(frame(0, &v6msg(T::InformationRequest, 6, false, &[])));
    write("dhcp6", "release-decline-confirm-inform", &release);
    let mut exhaust = Vec::new();
    for c in 10..16 {
        exhaust.extend(bind(c, a(0x100 + u16::from(c) - 10)));
    }
    write("dhcp6", "exhaust", &exhaust);
}

fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn dns() {
    let local = [
        ("static.", RecordType::A),
        ("static.example.org.", RecordType::AAAA),
        ("9.122.168.192.in-addr.arpa.", RecordType::PTR),
        ("t.example.org.", RecordType::TXT),
        ("_ldap._tcp.example.org.", RecordType::SRV),
        ("static.", RecordType::ANY),
        ("x.local.lan.", RecordType::A),
    ];
    let mut v = Vec::new();
    for (i, (n, t)) in local.iter().enumerate() {
        v.extend(frame(u8::from(i % 2 == 1) << 2, &query(n, *t, i % 3 == 0)));
    }
    write("dns", "local", &v);
    let mut fwd = frame(0, &query("www.example.com.", RecordType::A, true));
    fwd.extend(frame(1 | 4, &[0x80]));
    write("dns", "forward-answered", &fwd);
    let mut retry = frame(4, &query("host.corp.lan.", RecordType::AAAA, false));
    retry.extend(frame(1 | 4, &[0x82]));
    retry.extend(frame(3 | (5 << 3), &[]));
    retry.extend(frame(3 | (9 << 3), &[]));
    write("dns", "forward-servfail-timeout", &retry);
    let mut names = frame(2, b"alpha,beta.example.org,bad name,g\x01");
    names.extend(frame(0, &query("alpha.example.org.", RecordType::A, false)));
    names.extend(frame(
        0,
        &query("2.122.168.192.in-addr.arpa.", RecordType::PTR, false),
    ));
    write("dns", "guest-names", &names);
}

fn ra() {
    let rs = |opts: &[u8]| {
        let mut b = vec![133, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(opts);
        b
    };
    let mut v = frame(1, &rs(&[1, 1, 0x52, 0x54, 0, 0, 0, 1]));
    v.extend(frame(1 | (2 << 3), &rs(&[])));
    v.extend(frame(
        1 | 4 | (1 << 3),
        &rs(&[9, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ));
    v.extend(frame(3 << 3, &rs(&[1, 1, 0x52, 0x54, 0, 0, 0, 1, 64])));
    write("ra", "solicitations", &v);
    let mut w = frame(1 | 2, &rs(&[]));
    w.extend(frame(1 | 2, &rs(&[1, 1, 0x52, 0x54, 0, 0, 0, 1])));
    w.extend(frame(31 << 3, &[]));
    write("ra", "unspecified-and-schedule", &w);
}

/// Index files as kvnetd writes them (crates/daemon/src/nssindex.rs), and a torn one.
fn nss() {
    use nss_kvnet::index::Builder;
    let mut b = Builder::default();
    let d = Some("example.test");
    b.add("web", "192.168.122.20".parse().unwrap(), d);
    b.add("db", "192.168.122.30".parse().unwrap(), d);
    b.add("db", "2001:db8::30".parse().unwrap(), d);
    b.add("mail.other.org", "10.0.0.1".parse().unwrap(), d);
    b.add_lease("vm1", Ipv4Addr::new(192, 168, 122, 50).into(), d);
    let (small, _) = b.build();
    write("nss", "small", &small);
    write("nss", "torn", &small[..small.len() / 2]);
    write("nss", "empty", &Builder::default().build().0);
    let mut b = Builder::default();
    for i in 0..200u32 {
        b.add(
            &format!("g{i}"),
            Ipv4Addr::from(0x0a00_0000 + i).into(),
            None,
        );
        b.add(&format!("g{i}"), Ipv6Addr::from(u128::from(i)).into(), None);
    }
    write("nss", "many", &b.build().0);
}
