//! kvnetd's DHCPv6 server against real clients in guest namespaces: ISC dhclient -6
//! (package isc-dhcp-client) and dhcpcd -6 (dhcpcd-base). Root only.

mod lab;

use lab::dhcp6::{bound, dhclient6};
use lab::*;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

const NET: &str = "<network><name>v6</name><forward mode='nat'/><bridge name='kvd6'/>\
    <ip address='192.168.79.1' prefix='24'/>\
    <ip family='ipv6' address='fd00:79::1' prefix='64'><dhcp>\
    <range start='fd00:79::100' end='fd00:79::1ff'/></dhcp></ip></network>";

const MAC1: &str = "52:54:00:00:06:01";
const MAC2: &str = "52:54:00:00:06:02";

fn in_range(a: Ipv6Addr) -> bool {
    let lo: Ipv6Addr = "fd00:79::100".parse().unwrap();
    let hi: Ipv6Addr = "fd00:79::1ff".parse().unwrap();
    lo <= a && a <= hi
}

fn duid_ll(mac: &str) -> String {
    format!("00:03:00:01:{mac}")
}

/// One dhcpcd -6 run (DUID-LL, IA_NA, no RS, `extra` configuration lines) until it
/// reports its address; our script instead of dhcpcd-run-hooks.
fn dhcpcd6(lab: &Lab, g: usize, extra: &str) -> Ipv6Addr {
    let ns = &lab.guests[g];
    let dir = temp_dir("dhcpcd6", ns);
    let d = dir.display().to_string();
    std::fs::write(
        dir.join("conf"),
        format!("duid ll\nia_na 1\nnoipv6rs\nnohook resolv.conf\n{extra}"),
    )
    .expect("conf");
    std::fs::write(
        dir.join("script"),
        format!("#!/bin/sh\necho \"$reason $new_dhcp6_ia_na1_ia_addr1\" >> {d}/out\nexit 0\n"),
    )
    .expect("script");
    let (_, out) = isolated_client(
        ns,
        &dir,
        &format!(
            "chmod +x {d}/script; timeout 30 dhcpcd -f {d}/conf -c {d}/script -6 -1 -B -t 20 -d eth0 2>&1"
        ),
    );
    let report = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    bound(&report, &["BOUND6", "REBOOT6"])
        .unwrap_or_else(|| panic!("no address:\n{report}\n{out}\n{}", lab.daemon.log()))
}

/// The `net-dhcp-leases` row of `addr`.
fn listed(lab: &Lab, addr: Ipv6Addr) -> Option<String> {
    let (ok, out) = lab.cli(&["net-dhcp-leases", "v6"]);
    assert!(ok, "{out}");
    out.lines()
        .find(|l| l.contains(&format!("{addr}/64")))
        .map(str::to_string)
}

#[test]
#[ignore = "needs root"]
fn dhclient_gets_a_listed_address_that_survives_a_crash_and_a_static_host_wins() {
    have("dhclient", "isc-dhcp-client");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let g = lab.guest6("kvd6", MAC1);
    let log = |lab: &Lab| lab.daemon.log();

    let first = dhclient6(&lab, g).unwrap_or_else(|| panic!("no address\n{}", log(&lab)));
    assert!(in_range(first), "{first}");
    let row = listed(&lab, first).unwrap_or_else(|| panic!("{first} not listed\n{}", log(&lab)));
    assert!(row.contains("ipv6"), "{row}");
    assert!(row.contains(&duid_ll(MAC1)), "the DUID is listed: {row}");
    assert!(row.contains(MAC1), "the MAC of a DUID-LL is listed: {row}");
    let (ok, out) = lab.cli(&["net-dhcp-leases", "v6", "--mac", MAC1]);
    assert!(ok && out.contains(&first.to_string()), "{out}");
    let (ok, out) = lab.cli(&["net-dhcp-leases", "v6", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["ip-address"], first.to_string(), "{v}");
    assert_eq!(v[0]["client-id"], duid_ll(MAC1), "{v}");
    assert_eq!(v[0]["prefix"], 64, "{v}");
    assert!(log(&lab).contains("DHCPREPLY(v6)"), "{}", log(&lab));

    // A crash loses nothing: the lease was on disk before the Reply went out.
    lab.crash_daemon();
    assert!(
        listed(&lab, first).is_some(),
        "lease lost in the crash\n{}",
        log(&lab)
    );
    let other = lab.guest6("kvd6", MAC2);
    let second = dhclient6(&lab, other).unwrap_or_else(|| panic!("no address\n{}", log(&lab)));
    assert!(
        in_range(second) && second != first,
        "{second} {first}\n{}",
        log(&lab)
    );
    assert_eq!(dhclient6(&lab, g), Some(first), "{}", log(&lab));

    // A static host by DUID, added live, gets its fixed address.
    let fixed: Ipv6Addr = "fd00:79::42".parse().unwrap();
    let (ok, out) = lab.cli(&[
        "net-update",
        "v6",
        "add",
        "ip-dhcp-host",
        &format!("<host id='{}' name='peter' ip='{fixed}'/>", duid_ll(MAC1)),
        "--parent-index",
        "1",
        "--live",
    ]);
    assert!(ok, "{out}\n{}", log(&lab));
    assert_eq!(dhclient6(&lab, g), Some(fixed), "{}", log(&lab));
    let row = listed(&lab, fixed).unwrap_or_else(|| panic!("{fixed} not listed"));
    assert!(
        row.contains("peter") && row.contains(&duid_ll(MAC1)),
        "{row}"
    );
    assert!(
        listed(&lab, first).is_none(),
        "the old address was released"
    );
    let (_, table) = lab.cli(&["net-dhcp-leases", "v6"]);
    println!("{table}");

    // The journal is the v4 one's design in its own file, and serves the list while
    // the network is down.
    let journal = lab.daemon.dir.join("lib/leases/v6.v6.jsonl");
    let text = std::fs::read_to_string(&journal).expect("DHCPv6 lease journal");
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("\"ip-address\":\"{fixed}\""))
                && l.contains(&duid_ll(MAC1))
                && l.contains("\"state\":\"bound\"")),
        "{text}"
    );
    let (ok, out) = lab.cli(&["net-destroy", "v6"]);
    assert!(ok, "{out}");
    assert!(listed(&lab, fixed).is_some(), "{}", log(&lab));
}

#[test]
#[ignore = "needs root"]
fn dhcpcd_gets_a_listed_address() {
    have("dhcpcd", "dhcpcd-base");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let g = lab.guest6("kvd6", MAC2);
    // DUID-LL, no IA_PD or hostname.
    let addr = dhcpcd6(&lab, g, "");
    assert!(in_range(addr), "{addr}");
    let row = listed(&lab, addr).unwrap_or_else(|| panic!("{addr} not listed"));
    assert!(
        row.contains("ipv6") && row.contains(&duid_ll(MAC2)),
        "{row}"
    );
}

#[test]
#[ignore = "needs root"]
fn router_advertisements_leave_the_prefix_to_dhcpv6() {
    have("rdisc6", "ndisc6");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let g = lab.guest6("kvd6", MAC1);
    let (ok, out) = sh(&lab.guests[g], "rdisc6 -1 -r 3 -w 2000 eth0");
    assert!(ok, "no router advertisement:\n{out}");
    let field = |name: &str| {
        out.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    assert_eq!(
        field("Stateful address conf.").as_deref(),
        Some("Yes"),
        "{out}"
    );
    assert_eq!(field("Prefix").as_deref(), Some("fd00:79::/64"), "{out}");
    assert_eq!(field("On-link").as_deref(), Some("Yes"), "{out}");
    assert_eq!(
        field("Autonomous address conf.").as_deref(),
        Some("No"),
        "{out}"
    );
    // So the guest's kernel forms no SLAAC address from it.
    std::thread::sleep(Duration::from_secs(1));
    let addrs = ip(&lab.guests[g], "-6 addr show dev eth0 scope global");
    assert!(!addrs.contains("fd00:79:"), "{addrs}");
    // DHCPv6 and RAs are served, and the start says nothing else.
    let log = lab.daemon.log();
    assert!(!log.contains("not served"), "{log}");
    assert!(
        !log.contains("not applied"),
        "a false warning at start:\n{log}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_dhcpv6_guests_name_resolves_in_dns_and_on_the_host() {
    have("dhcpcd", "dhcpcd-base");
    have("dig", "dnsutils");
    let mut lab = Lab::new();
    lab.define_and_start(&NET.replace("<ip address=", "<domain name='v6.test'/><ip address="));
    let g = lab.guest6("kvd6", MAC1);
    // dhcpcd sends its hostname as the client FQDN (option 39).
    let addr = dhcpcd6(&lab, g, "hostname web6\nfqdn both\n");
    let ns = &lab.guests[g];
    let row = listed(&lab, addr).unwrap_or_else(|| panic!("{addr} not listed"));
    assert!(row.contains("web6"), "{row}");
    // The host's name index (the NSS module's), with and without the domain.
    let index = lab.daemon.dir.join("run/nss-hosts");
    let t0 = Instant::now();
    let has = |name: &str| {
        std::fs::read_to_string(&index)
            .unwrap_or_default()
            .lines()
            .any(|l| l == format!("{name} {addr}"))
    };
    while !(has("web6") && has("web6.v6.test")) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        has("web6") && has("web6.v6.test"),
        "{}",
        std::fs::read_to_string(&index).unwrap_or_default()
    );
    // DNS: AAAA from the network's server, asked by a guest over IPv4.
    ip(ns, "addr add 192.168.79.50/24 dev eth0");
    let (ok, aaaa) = sh(
        ns,
        "dig +short +time=2 +tries=2 @192.168.79.1 web6.v6.test AAAA",
    );
    assert!(
        ok && aaaa.trim() == addr.to_string(),
        "{aaaa}\n{}",
        lab.daemon.log()
    );
}
