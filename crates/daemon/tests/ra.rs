//! kvnetd's router advertisements against the kernel's own SLAAC in guest namespaces
//! (accept_ra=1, autoconf=1 by default there) and against rdisc6 (package ndisc6),
//! which solicits and prints the RA's fields. Root only.

mod lab;

use kvnet_api::request as req;
use kvnet_host::testns::TestNs;
use lab::*;
use std::time::{Duration, Instant};

const NAT: &str = "<network><name>ranat</name><forward mode='nat'/><bridge name='kvra0'/>\
    <mtu size='1400'/><domain name='lab.test'/>\
    <ip address='192.168.77.1' prefix='24'/>\
    <ip family='ipv6' address='fd00:77::1' prefix='64'/></network>";

const ISOLATED: &str = "<network><name>raiso</name><bridge name='kvra1'/>\
    <ip family='ipv6' address='fd00:78::1' prefix='64'/></network>";

/// The guest's global addresses on eth0 in `net` (a prefix like "fd00:77:").
fn slaac_addrs(g: &TestNs, net: &str) -> Vec<String> {
    let out = ip(g, "-6 -j addr show dev eth0 scope global");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .filter(|a| a.starts_with(net))
        .collect()
}

fn default_route(g: &TestNs) -> String {
    ip(g, "-6 route show default").trim().to_string()
}

/// Poll `f` every 50 ms for up to `limit`; the time it took, or None.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Solicit and print the first RA received (rdisc6 retries 3 times, 2 s apart, which
/// also covers the 3 s the router may hold its answer after a previous RA).
fn rdisc6(g: &TestNs) -> String {
    let (ok, out) = sh(g, "rdisc6 -1 -r 3 -w 2000 eth0");
    assert!(ok, "rdisc6 got no router advertisement:\n{out}");
    out
}

/// The value of rdisc6's line "NAME : VALUE" (first occurrence).
fn field(out: &str, name: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

#[test]
#[ignore = "needs root"]
fn nat_guest_gets_slaac_address_default_route_and_options() {
    have("rdisc6", "ndisc6");
    let mut lab = Lab::new();
    let name = lab.define_and_start(NAT);
    let g = lab.guest("kvra0", "", "");
    let g = &lab.guests[g];
    let log = || lab.daemon.log();

    let took = wait_for(Duration::from_secs(10), || {
        !slaac_addrs(g, "fd00:77:").is_empty() && default_route(g).contains("via fe80::")
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "no SLAAC address and default route in 10 s: {:?} / {:?}\n{}",
            slaac_addrs(g, "fd00:77:"),
            default_route(g),
            log()
        )
    });
    eprintln!("guest had its SLAAC address and default route after {took:?}");
    assert!(
        default_route(g).contains("dev eth0"),
        "{}",
        default_route(g)
    );
    // The address works: the bridge answers on the network's address.
    assert!(sh(g, "ping -6 -n -q -c 1 -W 2 fd00:77::1").0, "{}", log());

    let out = rdisc6(g);
    let mac = {
        let j = ip(&lab.host, "-j link show kvra0");
        let v: serde_json::Value = serde_json::from_str(&j).expect("json");
        v[0]["address"].as_str().expect("mac").to_string()
    };
    assert_eq!(
        field(&out, "Hop limit")
            .as_deref()
            .map(|v| v.starts_with("64 ")),
        Some(true),
        "{out}"
    );
    assert_eq!(
        field(&out, "Stateful address conf.").as_deref(),
        Some("No"),
        "{out}"
    );
    assert!(
        field(&out, "Router lifetime").is_some_and(|v| v.starts_with("1800 ")),
        "{out}"
    );
    assert_eq!(
        field(&out, "Prefix").as_deref(),
        Some("fd00:77::/64"),
        "{out}"
    );
    assert!(
        field(&out, "MTU").is_some_and(|v| v.starts_with("1400 ")),
        "{out}"
    );
    assert_eq!(
        field(&out, "Recursive DNS server").as_deref(),
        Some("fd00:77::1"),
        "{out}"
    );
    assert!(
        field(&out, "DNS search list").is_some_and(|v| v.starts_with("lab.test")),
        "{out}"
    );
    assert_eq!(
        field(&out, "Source link-layer address").map(|m| m.to_lowercase()),
        Some(mac),
        "{out}"
    );
    assert!(out.contains("from fe80::"), "{out}");

    // An IPv6 DHCP range added live: the next RA carries the managed flag at once.
    let (ok, o) = lab.cli(&[
        "net-update",
        &name,
        "add",
        "ip-dhcp-range",
        "<range start='fd00:77::100' end='fd00:77::1ff'/>",
        "--parent-index",
        "1",
        "--live",
    ]);
    assert!(ok, "{o}\n{}", log());
    let managed = wait_for(Duration::from_secs(10), || {
        field(&rdisc6(g), "Stateful address conf.").as_deref() == Some("Yes")
    });
    assert!(managed.is_some(), "{}\n{}", rdisc6(g), log());

    // The final RA at net-destroy takes the default route away at once (it would
    // otherwise stay for the 30 min router lifetime).
    lab.ok(req::Destroy {
        network: name,
        wait: false,
    });
    let gone = wait_for(Duration::from_secs(5), || default_route(g).is_empty());
    assert!(
        gone.is_some(),
        "default route still there after net-destroy: {}\n{}",
        default_route(g),
        log()
    );
}

#[test]
#[ignore = "needs root"]
fn isolated_guest_gets_an_address_but_no_default_route() {
    have("rdisc6", "ndisc6");
    let mut lab = Lab::new();
    lab.define_and_start(ISOLATED);
    let g = lab.guest("kvra1", "", "");
    let g = &lab.guests[g];
    let log = || lab.daemon.log();

    let took = wait_for(Duration::from_secs(10), || {
        !slaac_addrs(g, "fd00:78:").is_empty()
    });
    assert!(took.is_some(), "no SLAAC address in 10 s\n{}", log());
    // The RA that gave the address had router lifetime 0: no default route.
    assert_eq!(default_route(g), "", "{}", log());
    let out = rdisc6(g);
    assert!(
        field(&out, "Router lifetime").is_some_and(|v| v.starts_with("0 ")),
        "{out}"
    );
    assert_eq!(
        field(&out, "Prefix").as_deref(),
        Some("fd00:78::/64"),
        "{out}"
    );
    assert_eq!(
        field(&out, "Recursive DNS server").as_deref(),
        Some("fd00:78::1"),
        "{out}"
    );
    assert_eq!(field(&out, "MTU"), None, "no <mtu>, no MTU option: {out}");
}
