//! kvnetd's DNS server against a real client (dig) in a guest namespace, with a tiny
//! upstream resolver in the LAN namespace. Root only.

mod lab;

use kvnet_api::Request;
use kvnet_host::testns::TestNs;
use lab::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NET: &str = "<network><name>dnsnet</name><forward mode='nat'/><bridge name='kvdns0'/>\
    <domain name='lab.test' localOnly='yes'/>\
    <dns><host ip='192.168.100.50'><hostname>db</hostname></host>\
    <txt name='info' value='hello'/></dns>\
    <ip address='192.168.100.1' prefix='24'><dhcp>\
    <range start='192.168.100.100' end='192.168.100.120'/>\
    <host mac='52:54:00:aa:bb:01' name='web' ip='192.168.100.20'/></dhcp></ip></network>";

fn dig(g: &TestNs, args: &str) -> String {
    let (ok, out) = sh(g, &format!("dig +time=2 +tries=2 @192.168.100.1 {args}"));
    assert!(ok, "dig {args} failed:\n{out}");
    out
}

fn have_dig(name: &str) -> bool {
    if !require_root(name) {
        return false;
    }
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("{name} needs dig (scripts/deps.sh test installs dnsutils)");
    }
    true
}

#[test]
fn guests_resolve_local_names_and_forwarded_ones() {
    if !have_dig("guests_resolve_local_names_and_forwarded_ones") {
        return;
    }
    let resolv = std::env::temp_dir().join(format!("kvnet-dns-resolv-{}", std::process::id()));
    std::fs::write(&resolv, format!("nameserver {LAN_PEER}\n")).expect("resolv.conf");
    let mut lab = Lab::with_env(&[("KVNET_RESOLV_CONF", resolv.to_str().expect("utf-8"))]);
    let r = lab.ok(Request::Define { xml: NET.into() });
    assert!(r.ok);
    let r = lab.ok(Request::Start {
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
    lab.ok(Request::Destroy {
        network: "dnsnet".into(),
        wait: true,
    });
    lab.ok(Request::Start {
        network: "dnsnet".into(),
    });
    let g = lab.guest("kvdns0", "192.168.100.11", "192.168.100.1");
    let out = dig(&lab.guests[g], "+short db A");
    assert_eq!(out.trim(), "192.168.100.50", "{}", lab.daemon.log());
    let _ = std::fs::remove_file(&resolv);
}

#[test]
fn dhcp_lease_hostnames_resolve() {
    if !have_dig("dhcp_lease_hostnames_resolve") {
        return;
    }
    let mut lab = Lab::new();
    lab.ok(Request::Define { xml: NET.into() });
    lab.ok(Request::Start {
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
