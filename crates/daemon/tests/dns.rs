//! kvnetd's DNS server against a real client (dig) in a guest namespace, with a tiny
//! upstream resolver in the LAN namespace. Root only.

mod lab;

use kvnet_api::request as req;
use kvnet_host::testns::TestNs;
use lab::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NET: &str = "<network><name>dnsnet</name><forward mode='nat'/><bridge name='kvdns0'/>\
    <domain name='lab.test' localOnly='yes'/>\
    <dns><host ip='192.168.100.50'><hostname>db</hostname></host>\
    <txt name='info' value='hello'/></dns>\
    <ip address='192.168.100.1' prefix='24'><dhcp>\
    <range start='192.168.100.100' end='192.168.100.120'/>\
    <host mac='52:54:00:aa:bb:01' name='web' ip='192.168.100.20'/></dhcp></ip></network>";

/// A UDP-only upstream on `addr` answering A queries with `answer`, until `stop` is set.
fn udp_upstream(addr: SocketAddr, answer: [u8; 4], stop: &AtomicBool) {
    let udp = UdpSocket::bind(addr).expect("bind upstream");
    udp.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = udp.recv_from(&mut buf)
            && let Some(mut r) = upstream_reply(&buf[..n])
        {
            if r[7] == 1 {
                let at = r.len() - 4;
                r[at..].copy_from_slice(&answer);
            }
            let _ = udp.send_to(&r, from);
        }
    }
}

fn dig(g: &TestNs, args: &str) -> String {
    dig_at(g, "192.168.100.1", args)
}

fn dig_at(g: &TestNs, server: &str, args: &str) -> String {
    let (ok, out) = sh(g, &format!("dig +time=2 +tries=2 @{server} {args}"));
    assert!(ok, "dig @{server} {args} failed:\n{out}");
    out
}

#[test]
#[ignore = "needs root"]
fn guests_resolve_local_names_and_forwarded_ones() {
    have("dig", "dnsutils");
    let resolv = std::env::temp_dir().join(format!("kvnet-dns-resolv-{}", std::process::id()));
    std::fs::write(&resolv, format!("nameserver {LAN_PEER}\n")).expect("resolv.conf");
    let mut lab = Lab::with_env(&[("KVNET_RESOLV_CONF", resolv.to_str().expect("utf-8"))]);
    let r = lab.ok(req::Define { xml: NET.into() });
    assert!(r.ok);
    let r = lab.ok(req::Start {
        network: "dnsnet".into(),
    });
    assert!(
        !r.warnings.iter().any(|w| w.contains("DNS")),
        "{:?}",
        r.warnings
    );
    let g = lab.guest("kvdns0", "192.168.100.10", "192.168.100.1");
    let g = &lab.guests[g];
    let log = || lab.daemon.log();

    let out = dig(g, "+short db A");
    assert_eq!(out.trim(), "192.168.100.50", "{}", log());
    let out = dig(g, "+short db.lab.test A");
    assert_eq!(out.trim(), "192.168.100.50", "{}", log());
    // A static DHCP host is a guest name too.
    let out = dig(g, "+short web.lab.test A");
    assert_eq!(out.trim(), "192.168.100.20", "{}", log());
    let out = dig(g, "+short info TXT");
    assert_eq!(out.trim(), "\"hello\"", "{}", log());
    let out = dig(g, "+short -x 192.168.100.50");
    assert!(out.trim().starts_with("db."), "{out}\n{}", log());
    let out = dig(g, "nosuch.lab.test A");
    assert!(out.contains("status: NXDOMAIN"), "{out}\n{}", log());
    let out = dig(g, "+tcp +short db.lab.test A");
    assert_eq!(out.trim(), "192.168.100.50", "{}", log());

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let up = s.spawn(|| lab.lan.run(|| upstream(&stop)));
        // Let the upstream bind before the first query.
        std::thread::sleep(Duration::from_millis(200));
        let udp = dig(g, "+short ext.example A");
        let tcp = dig(g, "+tcp +short ext.example A");
        stop.store(true, Ordering::SeqCst);
        up.join().expect("upstream");
        assert_eq!(udp.trim(), "198.51.100.7", "{udp}\n{}", log());
        assert_eq!(tcp.trim(), "198.51.100.7", "{tcp}\n{}", log());
    });

    // A DNS host added live is served at once.
    let (ok, out) = lab.cli(&[
        "net-update",
        "dnsnet",
        "add",
        "dns-host",
        "<host ip='192.168.100.60'><hostname>cache</hostname></host>",
        "--live",
    ]);
    assert!(ok, "{out}");
    let out = dig(g, "+short cache.lab.test A");
    assert_eq!(out.trim(), "192.168.100.60", "{}", log());

    // Stopped with the network; it starts again on the same address at once.
    lab.ok(req::Destroy {
        network: "dnsnet".into(),
        wait: true,
    });
    lab.ok(req::Start {
        network: "dnsnet".into(),
    });
    let g = lab.guest("kvdns0", "192.168.100.11", "192.168.100.1");
    let out = dig(&lab.guests[g], "+short db A");
    assert_eq!(out.trim(), "192.168.100.50", "{}", lab.daemon.log());
    let _ = std::fs::remove_file(&resolv);
}

#[test]
#[ignore = "needs root"]
fn dhcp_lease_hostnames_resolve() {
    have("dig", "dnsutils");
    let mut lab = Lab::new();
    lab.ok(req::Define { xml: NET.into() });
    lab.ok(req::Start {
        network: "dnsnet".into(),
    });
    let c = lab.guest("kvdns0", "", "");
    let (ok, out) = sh(
        &lab.guests[c],
        "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -x hostname:leasy -s /bin/true",
    );
    assert!(ok, "udhcpc got no lease:\n{out}");
    let q = lab.guest("kvdns0", "192.168.100.10", "192.168.100.1");
    let out = dig(&lab.guests[q], "+short leasy.lab.test A");
    let addr = out.trim();
    assert!(
        addr.starts_with("192.168.100.1") && addr.len() == "192.168.100.100".len(),
        "{out}\n{}",
        lab.daemon.log()
    );
}

const NET6: &str = "<network><name>dns6</name><forward mode='nat'/><bridge name='kvdns1'/>\
    <domain name='lab.test' localOnly='yes'/>\
    <dns forwardPlainNames='no'>\
    <forwarder domain='x.test' addr='203.0.113.2'/>\
    <forwarder domain='p.test' addr='203.0.113.2' port='5353'/>\
    <forwarder domain='y.test'/>\
    <host ip='192.168.110.50'><hostname>db</hostname></host>\
    <host ip='2001:db8:ca::50'><hostname>db6</hostname></host>\
    <txt name='info.lab.test' value='hello world'/>\
    <srv service='ldap' protocol='tcp' target='db.lab.test' port='389' priority='10' weight='5'/></dns>\
    <ip address='192.168.110.1' prefix='24'><dhcp>\
    <range start='192.168.110.100' end='192.168.110.120'/>\
    <host mac='52:54:00:aa:bb:02' name='web' ip='192.168.110.20'/></dhcp></ip>\
    <ip address='192.168.112.1' prefix='24'/>\
    <ip family='ipv6' address='2001:db8:ca::1' prefix='64'/></network>";

const NODNS: &str = "<network><name>nodns</name><forward mode='nat'/><bridge name='kvdns2'/>\
    <dns enable='no'/><ip address='192.168.111.1' prefix='24'/></network>";

/// The LAN's IPv6 upstream, added by the test next to the lab's IPv4 uplink.
const LAN6_HOST: &str = "2001:db8:113::1";
const LAN6_PEER: &str = "2001:db8:113::2";

/// Wait until `dev`'s IPv6 addresses in `ns` have finished DAD.
fn wait_dad(ns: &TestNs, dev: &str) {
    for _ in 0..100 {
        if ip(ns, &format!("-6 addr show dev {dev} tentative"))
            .trim()
            .is_empty()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{dev}: IPv6 DAD did not finish:\n{}", ip(ns, "-6 addr"));
}

/// Records, per-domain forwarders, local-only policies, resolv.conf reloads, IPv6 service
/// and upstreams, and a network without DNS, all in one lab.
#[test]
#[ignore = "needs root"]
fn records_policies_and_ipv6_over_the_wire() {
    have("dig", "dnsutils");
    // No default upstream at first: only the per-domain forwarders are used.
    let resolv = std::env::temp_dir().join(format!("kvnet-dns6-resolv-{}", std::process::id()));
    std::fs::write(&resolv, "").expect("resolv.conf");
    let mut lab = Lab::with_env(&[("KVNET_RESOLV_CONF", resolv.to_str().expect("utf-8"))]);
    ip(
        &lab.host,
        &format!("addr add {LAN6_HOST}/64 dev wan0 nodad"),
    );
    ip(&lab.lan, &format!("addr add {LAN6_PEER}/64 dev lan0 nodad"));
    lab.define_and_start(NET6);
    lab.define_and_start(NODNS);
    let g = lab.guest("kvdns1", "192.168.110.10", "192.168.110.1");
    ip(
        &lab.guests[g],
        "-6 addr add 2001:db8:ca::10/64 dev eth0 nodad",
    );
    let off = lab.guest("kvdns2", "192.168.111.10", "192.168.111.1");
    wait_dad(&lab.host, "kvdns1");
    let g = &lab.guests[g];
    let log = || lab.daemon.log();
    let v4 = "192.168.110.1";
    let v6 = "2001:db8:ca::1";

    // Records, over UDP and TCP, asked on the IPv4 and the IPv6 address. The guest is not
    // on 192.168.112.0/24: its answers must still come from the address it asked.
    let servers = [
        (v4, ""),
        (v4, "+tcp"),
        (v6, ""),
        (v6, "+tcp"),
        ("192.168.112.1", ""),
    ];
    for (server, tcp) in servers {
        let q = |args: &str| dig_at(g, server, &format!("{tcp} +short {args}"));
        assert_eq!(
            q("db A").trim(),
            "192.168.110.50",
            "{server} {tcp}\n{}",
            log()
        );
        assert_eq!(
            q("db6.lab.test AAAA").trim(),
            "2001:db8:ca::50",
            "{}",
            log()
        );
        assert_eq!(
            q("info.lab.test TXT").trim(),
            "\"hello world\"",
            "{}",
            log()
        );
        assert_eq!(
            q("_ldap._tcp.lab.test SRV").trim(),
            "10 5 389 db.lab.test.",
            "{}",
            log()
        );
        assert_eq!(q("-x 192.168.110.20").trim(), "web.lab.test.", "{}", log());
        assert_eq!(q("-x 192.168.110.50").trim(), "db.lab.test.", "{}", log());
        assert_eq!(q("-x 2001:db8:ca::50").trim(), "db6.lab.test.", "{}", log());
    }

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let lan = &lab.lan;
        let stop = &stop;
        let ups = [
            s.spawn(move || lan.run(|| upstream(stop))),
            s.spawn(move || {
                let a = SocketAddr::new(LAN_PEER.parse().expect("addr"), 5353);
                lan.run(|| udp_upstream(a, [198, 51, 100, 8], stop))
            }),
            s.spawn(move || {
                let a = SocketAddr::new(LAN6_PEER.parse().expect("addr"), 53);
                lan.run(|| udp_upstream(a, [198, 51, 100, 9], stop))
            }),
        ];
        std::thread::sleep(Duration::from_millis(200));
        let checks = || {
            // Per-domain forwarders, with the default port and with their own.
            let out = dig_at(g, v4, "+short a.x.test A");
            assert_eq!(out.trim(), "198.51.100.7", "{out}\n{}", log());
            let out = dig_at(g, v6, "+tcp +short a.x.test A");
            assert_eq!(out.trim(), "198.51.100.7", "{out}\n{}", log());
            let out = dig_at(g, v4, "+short a.p.test A");
            assert_eq!(out.trim(), "198.51.100.8", "{out}\n{}", log());
            // Local only, though an upstream would answer: a domain-only forwarder, the
            // localOnly domain, a plain name with forwardPlainNames='no'.
            for name in ["a.y.test", "nosuch.lab.test", "plain"] {
                let out = dig_at(g, v4, &format!("{name} A"));
                assert!(out.contains("status: NXDOMAIN"), "{name}: {out}\n{}", log());
            }
            // No default upstream yet.
            let out = dig_at(g, v4, "ext.example A");
            assert!(out.contains("status: REFUSED"), "{out}\n{}", log());
            // resolv.conf is re-read without a restart; an IPv6 upstream works.
            std::fs::write(&resolv, format!("nameserver {LAN6_PEER}\n")).expect("resolv.conf");
            let mut out = String::new();
            for _ in 0..20 {
                out = dig_at(g, v4, "+short ext.example A");
                if out.trim() == "198.51.100.9" {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            assert_eq!(out.trim(), "198.51.100.9", "{out}\n{}", log());
        };
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
        stop.store(true, Ordering::SeqCst);
        for u in ups {
            u.join().expect("upstream");
        }
        if let Err(e) = res {
            std::panic::resume_unwind(e);
        }
    });

    // <dns enable='no'>: nothing listens on port 53 of that bridge.
    let (_, socks) = sh(&lab.host, "ss -Hlntu 'sport = :53'");
    assert!(!socks.contains("192.168.111.1"), "{socks}");
    assert!(
        socks.contains("192.168.110.1") && socks.contains("[2001:db8:ca::1]"),
        "{socks}"
    );
    let off = &lab.guests[off];
    for tcp in ["", "+tcp"] {
        let (ok, out) = sh(
            off,
            &format!("dig +time=1 +tries=1 @192.168.111.1 {tcp} db A"),
        );
        assert!(!ok && !out.contains("status:"), "{out}");
    }
    let _ = std::fs::remove_file(&resolv);
}

/// RFC 5452: each forwarded query leaves from a port of its own, picked at random, and
/// an answer that comes from any other port than the one asked is not taken, even with
/// the right ID and question.
#[test]
#[ignore = "needs root"]
fn forwarded_queries_leave_from_random_ports_and_take_answers_only_from_the_upstream() {
    have("dig", "dnsutils");
    let resolv = std::env::temp_dir().join(format!("kvnet-dnsport-resolv-{}", std::process::id()));
    std::fs::write(&resolv, format!("nameserver {LAN_PEER}\n")).expect("resolv.conf");
    let mut lab = Lab::with_env(&[("KVNET_RESOLV_CONF", resolv.to_str().expect("utf-8"))]);
    lab.define_and_start(NET);
    let g = lab.guest("kvdns0", "192.168.100.10", "192.168.100.1");
    let g = &lab.guests[g];
    let ports = std::sync::Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let up = s.spawn(|| {
            lab.lan.run(|| {
                let udp = UdpSocket::bind((LAN_PEER, 53)).expect("bind upstream");
                // Same address, another port: an off-path forger that guessed ID and
                // question but answers from the wrong port.
                let forger = UdpSocket::bind((LAN_PEER, 5300)).expect("bind forger");
                udp.set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf)
                        && let Some(r) = upstream_reply(&buf[..n])
                    {
                        ports.lock().expect("lock").push(from.port());
                        let spoofed = buf[..n].windows(6).any(|w| w == b"forged");
                        let sock = if spoofed { &forger } else { &udp };
                        let _ = sock.send_to(&r, from);
                    }
                }
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..20 {
            let out = dig(g, &format!("+short q{i}.example A"));
            assert_eq!(out.trim(), "198.51.100.7", "{}", lab.daemon.log());
        }
        let (_, out) = sh(g, "dig +time=5 +tries=1 @192.168.100.1 forged.example A");
        stop.store(true, Ordering::SeqCst);
        up.join().expect("upstream");
        assert!(
            !out.contains("198.51.100.7"),
            "an answer from another port was taken:\n{out}"
        );
    });
    let ports = ports.into_inner().expect("lock");
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // Twenty draws from ~28,000 ephemeral ports: a repeat is rare, all alike impossible.
    assert!(ports.len() >= 21, "{ports:?}");
    assert!(distinct.len() >= ports.len() - 2, "ports reused: {ports:?}");
    let _ = std::fs::remove_file(&resolv);
}

/// The host's hosts file is served as libvirt's dnsmasq serves /etc/hosts, and re-read
/// when it changes.
#[test]
#[ignore = "needs root"]
fn the_hosts_file_is_served_and_re_read_on_change() {
    have("dig", "dnsutils");
    let hosts = std::env::temp_dir().join(format!("kvnet-dns-hosts-{}", std::process::id()));
    std::fs::write(&hosts, "127.0.0.1 localhost\n10.9.8.7 hostbox\n").expect("hosts");
    let mut lab = Lab::with_env(&[("KVNET_HOSTS_FILE", hosts.to_str().expect("utf-8"))]);
    lab.define_and_start(NET);
    let g = lab.guest("kvdns0", "192.168.100.10", "192.168.100.1");
    let g = &lab.guests[g];
    let log = || lab.daemon.log();
    assert_eq!(
        dig(g, "+short localhost A").trim(),
        "127.0.0.1",
        "{}",
        log()
    );
    assert_eq!(dig(g, "+short hostbox A").trim(), "10.9.8.7", "{}", log());
    assert_eq!(
        dig(g, "+short hostbox.lab.test A").trim(),
        "10.9.8.7",
        "{}",
        log()
    );
    assert_eq!(
        dig(g, "+short -x 10.9.8.7").trim(),
        "hostbox.lab.test.",
        "{}",
        log()
    );

    // Replaced the way editors and tools write it: a new file renamed over the old.
    let tmp = hosts.with_extension("new");
    std::fs::write(&tmp, "127.0.0.1 localhost\n10.9.8.8 hostbox newbox\n").expect("hosts");
    std::fs::rename(&tmp, &hosts).expect("rename");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let out = dig(g, "+short hostbox A");
        if out.trim() == "10.9.8.8" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not re-read: {out}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dig(g, "+short newbox A").trim(), "10.9.8.8", "{}", log());
    let _ = std::fs::remove_file(&hosts);
}

/// libvirt's `<dnsmasq:options>` that kvnet serves itself, asked with dig: the same
/// answers dnsmasq 2.90 gives (A, AAAA, TXT, SRV; `local=` and `address=/d/` NXDOMAIN; an
/// `address=` wildcard; a cname chain; a ptr-record; domain-needed and bogus-priv); the
/// others are named in the start's warning, and log-queries logs each query.
#[test]
#[ignore = "needs root"]
fn dnsmasq_options_are_answered_over_the_wire() {
    have("dig", "dnsutils");
    let mut lab = Lab::new();
    let net = "<network><name>dm</name><forward mode='nat'/><bridge name='kvdm0'/>\
        <ip address='192.168.101.1' prefix='24'/>\
        <dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
        <dnsmasq:option value='host-record=nas.lab,192.168.101.9,fd01::9'/>\
        <dnsmasq:option value='txt-record=info.lab,&quot;owner=ops&quot;'/>\
        <dnsmasq:option value='srv-host=_ldap._tcp.lab,dc.lab,389,5,7'/>\
        <dnsmasq:option value='local=/corp.test/'/>\
        <dnsmasq:option value='cname=alias.lab,nas.lab'/>\
        <dnsmasq:option value='cname=chain.lab,alias.lab,300'/>\
        <dnsmasq:option value='address=/apps.lab/192.168.101.50'/>\
        <dnsmasq:option value='address=/apps.lab/fd01::50'/>\
        <dnsmasq:option value='address=/gone.lab/'/>\
        <dnsmasq:option value='address=/null.lab/#'/>\
        <dnsmasq:option value='ptr-record=77.101.168.192.in-addr.arpa,printer.lab'/>\
        <dnsmasq:option value='domain-needed'/>\
        <dnsmasq:option value='bogus-priv'/>\
        <dnsmasq:option value='log-queries'/>\
        <dnsmasq:option value='dhcp-script=/bin/true'/>\
        </dnsmasq:options></network>";
    lab.ok(req::Define { xml: net.into() });
    let (ok, out) = lab.cli(&["net-start", "dm"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("<dnsmasq:options> dhcp-script")
            && !out.contains("host-record")
            && !out.contains("cname")
            && !out.contains("address"),
        "only the untranslated option is reported: {out}"
    );
    let g = lab.guest("kvdm0", "192.168.101.10", "192.168.101.1");
    let g = &lab.guests[g];
    let at = |args: &str| dig_at(g, "192.168.101.1", &format!("+short {args}"));
    let full = |args: &str| dig_at(g, "192.168.101.1", args);
    assert_eq!(at("nas.lab A").trim(), "192.168.101.9");
    assert_eq!(at("nas.lab AAAA").trim(), "fd01::9");
    assert_eq!(at("info.lab TXT").trim(), "\"owner=ops\"");
    assert_eq!(at("_ldap._tcp.lab SRV").trim(), "5 7 389 dc.lab.");
    let nx = full("x.corp.test A");
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");

    // address=: the domain and every name below it, both families; whole labels only.
    assert_eq!(at("x.y.apps.lab A").trim(), "192.168.101.50");
    assert_eq!(at("apps.lab A").trim(), "192.168.101.50");
    assert_eq!(at("x.y.apps.lab AAAA").trim(), "fd01::50");
    let nx = full("deep.down.gone.lab AAAA");
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert_eq!(at("ad.null.lab A").trim(), "0.0.0.0");
    assert_eq!(at("ad.null.lab AAAA").trim(), "::");
    // cname: the alias chain, then the target's address.
    assert_eq!(
        at("chain.lab A").lines().collect::<Vec<_>>(),
        ["alias.lab.", "nas.lab.", "192.168.101.9"]
    );
    let chain = full("+noall +answer chain.lab A");
    assert!(chain.contains("300\tIN\tCNAME\talias.lab."), "{chain}");
    // ptr-record.
    assert_eq!(at("-x 192.168.101.77").trim(), "printer.lab.");
    // domain-needed: a dotless name is not forwarded; bogus-priv: nor a private PTR.
    let nx = full("intranet A");
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let nx = full("-x 10.1.2.3");
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    // log-queries.
    let log = lab.daemon.log();
    assert!(
        log.contains("query[A] x.y.apps.lab. from 192.168.101.10"),
        "{log}"
    );
}
