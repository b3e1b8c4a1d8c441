//! Convergence: what kvnetd reports (`list`, `dump-xml`, `port-list`, `dhcp-leases`)
//! against what the lab's host namespace holds (links, addresses, routes, nftables,
//! sysctls, kvnetd's runtime and state files). [`differences`] lists every mismatch; an
//! empty list means the host is exactly what kvnetd says it runs.

#![allow(dead_code)]

use crate::lab::{Lab, ip, sh};
use kvnet_api::request as req;
use kvnet_api::{NetSummary, Port, PortKind, Request};
use kvnet_model::Network;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub const TABLE: &str = "kvnet";
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
pub const IP6_FORWARD: &str = "net/ipv6/conf/all/forwarding";
/// How long a restarted kvnetd may take to converge (its background work).
pub const SETTLE: Duration = Duration::from_secs(5);

/// One network as kvnetd reports it.
#[derive(Debug, Clone)]
pub struct NetView {
    pub sum: NetSummary,
    /// The running definition, while active.
    pub live: Option<Network>,
    /// `dump-xml --inactive`.
    pub inactive_xml: String,
    pub ports: Vec<Port>,
}

/// Everything kvnetd reports, by network name.
pub type Report = BTreeMap<String, NetView>;

/// One request; its data, or why it failed (kvnetd down, or a refusal).
pub fn api(lab: &Lab, r: impl Into<Request>) -> Result<Value, String> {
    let r = r.into();
    match kvnet_api::call_raw(&lab.daemon.socket, &r) {
        Ok(rep) if rep.ok => Ok(rep.data),
        Ok(rep) => Err(format!("{}: {}", r.op(), rep.error.unwrap_or_default())),
        Err(e) => Err(format!("{}: {e}", r.op())),
    }
}

fn xml(lab: &Lab, network: &str, inactive: bool) -> Result<String, String> {
    let v = api(
        lab,
        req::DumpXml {
            network: network.into(),
            inactive,
        },
    )?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("dump-xml {network}: not a string"))
}

pub fn report(lab: &Lab) -> Result<Report, String> {
    let list: Vec<NetSummary> =
        serde_json::from_value(api(lab, req::List {})?).map_err(|e| e.to_string())?;
    let mut out = Report::new();
    for sum in list {
        let name = sum.name.clone();
        let live = match sum.active {
            true => Some(
                Network::from_xml(&xml(lab, &name, false)?)
                    .map_err(|e| format!("live XML of {name}: {e}"))?,
            ),
            false => None,
        };
        let ports = serde_json::from_value(api(
            lab,
            req::PortList {
                network: name.clone(),
            },
        )?)
        .map_err(|e| e.to_string())?;
        let inactive_xml = xml(lab, &name, true)?;
        out.insert(
            name,
            NetView {
                sum,
                live,
                inactive_xml,
                ports,
            },
        );
    }
    Ok(out)
}

/// The host-wide forwarding sysctls a network needs (kvnetd's rule, restated).
pub fn forwarding(net: &Network) -> Vec<&'static str> {
    if !net.profile().forwarding {
        return Vec::new();
    }
    let mut v = vec![IP_FORWARD];
    if net.ips.iter().any(|i| i.is_ipv6()) {
        v.push(IP6_FORWARD);
    }
    v
}

/// What a check needs to know about the lab beyond kvnetd's report.
pub struct Expect<'a> {
    /// Bridges the test made (host bridges): never kvnet's to delete.
    pub host_bridges: &'a [&'a str],
    /// The forwarding sysctls before kvnet touched them.
    pub sysctls: &'a BTreeMap<&'static str, String>,
    /// Leases acked before the kill: network, MAC, address.
    pub leases: &'a [(String, String, String)],
}

fn ip_json(lab: &Lab, args: &str) -> Vec<Value> {
    serde_json::from_str(&ip(&lab.host, &format!("-j {args}"))).unwrap_or_default()
}

fn read_sysctl(lab: &Lab, key: &str) -> String {
    let path = format!("/proc/sys/{key}");
    lab.host
        .run(|| std::fs::read_to_string(&path))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

fn dir_entries(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every way the host differs from `rep`; empty when they agree.
pub fn differences(lab: &Lab, rep: &Report, exp: &Expect) -> Vec<String> {
    let mut d = Vec::new();
    let links = ip_json(lab, "-d link show");
    let by_name: BTreeMap<&str, &Value> = links
        .iter()
        .filter_map(|l| Some((l["ifname"].as_str()?, l)))
        .collect();
    let kind = |l: &Value| {
        l["linkinfo"]["info_kind"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let up = |l: &Value| {
        l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "UP"))
    };
    let active: Vec<&Network> = rep.values().filter_map(|v| v.live.as_ref()).collect();

    // Bridges: an active network's managed bridge exists with its settings; no other.
    let mut wanted_bridges: BTreeSet<String> =
        exp.host_bridges.iter().map(|b| b.to_string()).collect();
    for net in &active {
        let Some(br) = net.bridge_name() else {
            continue;
        };
        if !net.profile().owns_bridge() {
            if !by_name.contains_key(br) {
                d.push(format!("{}: host bridge {br} missing", net.name));
            }
            continue;
        }
        wanted_bridges.insert(br.to_string());
        let Some(l) = by_name.get(br) else {
            d.push(format!(
                "{}: active, but its bridge {br} is missing",
                net.name
            ));
            continue;
        };
        if kind(l) != "bridge" {
            d.push(format!(
                "{}: {br} is a {:?}, not a bridge",
                net.name,
                kind(l)
            ));
        }
        if !up(l) {
            d.push(format!("{}: bridge {br} is down", net.name));
        }
        if let Some(mac) = net.mac
            && l["address"].as_str() != Some(mac.to_string().as_str())
        {
            d.push(format!(
                "{}: {br} has MAC {}, not {mac}",
                net.name, l["address"]
            ));
        }
        let have: BTreeSet<String> = ip_json(lab, &format!("addr show dev {br}"))
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect();
        for i in &net.ips {
            let a = format!("{}/{}", i.address, i.prefix_len());
            if !have.contains(&a) {
                d.push(format!(
                    "{}: address {a} missing on {br} (has {have:?})",
                    net.name
                ));
            }
        }
        for r in &net.routes {
            let fam = if r.gateway.is_ipv6() { "-6" } else { "-4" };
            let dst = r.destination().to_string();
            let found = ip_json(lab, &format!("{fam} route show table main"))
                .iter()
                .any(|h| {
                    h["dst"].as_str() == Some(dst.as_str())
                        && h["gateway"].as_str() == Some(r.gateway.to_string().as_str())
                        && h["dev"].as_str() == Some(br)
                });
            if !found {
                d.push(format!(
                    "{}: route {dst} via {} dev {br} missing",
                    net.name, r.gateway
                ));
            }
        }
        let v6 = net.ips.iter().any(|i| i.is_ipv6());
        for (k, want) in [
            ("disable_ipv6", if v6 { "0" } else { "1" }),
            ("accept_ra", "0"),
            ("autoconf", "0"),
        ] {
            let got = read_sysctl(lab, &format!("net/ipv6/conf/{br}/{k}"));
            if got != want {
                d.push(format!("{}: {br} {k}={got}, not {want}", net.name));
            }
        }
    }
    for v in rep.values().filter(|v| v.live.is_none()) {
        if let Some(br) = &v.sum.bridge
            && !exp.host_bridges.contains(&br.as_str())
            && by_name.contains_key(br.as_str())
        {
            d.push(format!("{}: inactive, but link {br} exists", v.sum.name));
        }
    }
    for (name, l) in &by_name {
        if kind(l) == "bridge" && !wanted_bridges.contains(*name) {
            d.push(format!("orphan bridge {name}"));
        }
    }

    // TAPs: every one is a registered persistent port, on its active network's bridge;
    // an inactive network's may be missing (as after a reboot: its start makes them).
    let mut registered: BTreeMap<&str, (&NetView, &Port)> = BTreeMap::new();
    for v in rep.values() {
        for p in &v.ports {
            registered.insert(p.ifname.as_str(), (v, p));
        }
    }
    for (name, l) in &by_name {
        if kind(l) == "tun" && !registered.contains_key(name) {
            d.push(format!("orphan TAP {name} (master {})", l["master"]));
        }
    }
    for (ifname, (v, p)) in &registered {
        if p.kind != PortKind::Persistent {
            continue;
        }
        let Some(l) = by_name.get(ifname) else {
            if v.live.is_some() {
                d.push(format!(
                    "{}: port {ifname} registered, its TAP missing",
                    v.sum.name
                ));
            }
            continue;
        };
        let want = v.live.as_ref().and_then(|n| n.bridge_name());
        if l["master"].as_str() != want {
            d.push(format!(
                "{}: port {ifname} is on {}, not {want:?}",
                v.sum.name, l["master"]
            ));
        }
        if want.is_some() && !up(l) {
            d.push(format!("{}: port {ifname} is down", v.sum.name));
        }
        if let Some(mac) = &p.mac
            && l["address"].as_str() != Some(format!("fe{}", &mac[2..]).as_str())
        {
            d.push(format!(
                "{}: port {ifname} has MAC {}",
                v.sum.name, l["address"]
            ));
        }
    }

    // nftables: kvnet's table is exactly the active networks' rules.
    let fws: Vec<_> = active
        .iter()
        .filter_map(|n| kvnet_firewall::FwNetwork::from_network(n))
        .collect();
    let (listed, text) = sh(&lab.host, &format!("nft list table inet {TABLE}"));
    match (listed, fws.is_empty()) {
        (false, true) => {}
        (false, false) => d.push(format!("nft table missing ({})", text.trim())),
        (true, _) => {
            let live = kvnet_firewall::normalize_listing(&text);
            let want = match fws.is_empty() {
                // The last network's teardown leaves the bare skeleton; a restart or the
                // next rebuild drops it.
                true => skeleton(),
                false => kvnet_firewall::expected_listing(TABLE, &fws),
            };
            if live != want && !(fws.is_empty() && live.is_empty()) {
                d.push(format!("nft table differs:\n{}", line_diff(&want, &live)));
            }
        }
    }

    // Forwarding sysctls: on iff an active network needs them, else as they were.
    let needed: BTreeSet<&str> = active.iter().flat_map(|n| forwarding(n)).collect();
    for (key, orig) in exp.sysctls {
        let got = read_sysctl(lab, key);
        let want = if needed.contains(key) { "1" } else { orig };
        if got != want {
            d.push(format!(
                "sysctl {key}={got}, want {want} (needed: {needed:?})"
            ));
        }
    }
    let ledger = lab.daemon.dir.join("run/sysctl-orig.json");
    let recorded: BTreeMap<String, String> = std::fs::read(&ledger)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let want_ledger: BTreeMap<String, String> = exp
        .sysctls
        .iter()
        .filter(|(k, v)| needed.contains(*k) && v.as_str() != "1")
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if recorded != want_ledger {
        d.push(format!("sysctl ledger {recorded:?}, want {want_ledger:?}"));
    }

    // Files: one status record per active network, one ports file per network with
    // ports, nothing else (no stale record, no temp file).
    let want: BTreeSet<String> = active.iter().map(|n| format!("{}.json", n.name)).collect();
    let have = dir_entries(&lab.daemon.dir.join("run/networks"));
    if have != want {
        d.push(format!("status records {have:?}, want {want:?}"));
    }
    let want: BTreeSet<String> = rep
        .values()
        .filter(|v| !v.ports.is_empty())
        .map(|v| format!("{}.json", v.sum.name))
        .collect();
    let have = dir_entries(&lab.daemon.dir.join("lib/ports"));
    if have != want {
        d.push(format!("ports files {have:?}, want {want:?}"));
    }

    // Leases acked before the kill are still listed.
    for (net, mac, addr) in exp.leases {
        let listed: Vec<kvnet_api::Lease> = api(
            lab,
            req::DhcpLeases {
                network: net.clone(),
                mac: Some(mac.clone()),
            },
        )
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .unwrap_or_default();
        if !listed.iter().any(|l| l.ip_address.to_string() == *addr) {
            d.push(format!("{net}: lease {mac} {addr} not listed ({listed:?})"));
        }
    }
    d
}

/// kvnet's table without networks: sets and base chains, no elements.
fn skeleton() -> String {
    let any = Network::from_xml(
        "<network><name>x</name><forward mode='nat'/><bridge name='x0'/>\
         <ip address='10.0.0.1' prefix='24'/></network>",
    )
    .expect("network");
    let fw = kvnet_firewall::FwNetwork::from_network(&any).expect("firewall input");
    kvnet_firewall::expected_listing(TABLE, &[fw])
        .lines()
        .filter(|l| !l.contains(": element "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines only in `want` (-) and only in `got` (+).
pub fn line_diff(want: &str, got: &str) -> String {
    let w: BTreeSet<&str> = want.lines().collect();
    let g: BTreeSet<&str> = got.lines().collect();
    let mut out: Vec<String> = w.difference(&g).map(|l| format!("  - {l}")).collect();
    out.extend(g.difference(&w).map(|l| format!("  + {l}")));
    out.join("\n")
}

/// The forwarding sysctls of a fresh namespace: what kvnet must put back.
pub fn fresh_sysctls() -> BTreeMap<&'static str, String> {
    let ns = kvnet_host::testns::TestNs::with_prefix("kvt-c").expect("ns");
    [IP_FORWARD, IP6_FORWARD]
        .into_iter()
        .map(|k| {
            let v = ns
                .run(|| std::fs::read_to_string(format!("/proc/sys/{k}")))
                .expect("sysctl");
            (k, v.trim().to_string())
        })
        .collect()
}

/// The differences (with `extra`'s) once they are gone or [`SETTLE`] has passed; the
/// last report and how long it took.
pub fn settle(
    lab: &Lab,
    exp: &Expect,
    extra: impl Fn(&Report) -> Vec<String>,
) -> (Result<Report, String>, Vec<String>, Duration) {
    let t0 = Instant::now();
    loop {
        let (rep, diffs) = match report(lab) {
            Ok(rep) => {
                let mut d = differences(lab, &rep, exp);
                d.extend(extra(&rep));
                (Ok(rep), d)
            }
            Err(e) => (Err(e.clone()), vec![format!("no report: {e}")]),
        };
        if diffs.is_empty() || t0.elapsed() > SETTLE {
            return (rep, diffs, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Panics, with kvnetd's log, unless the host converges to kvnetd's report; the report.
#[track_caller]
pub fn assert_converged(lab: &Lab, exp: &Expect) -> Report {
    let (rep, diffs, _) = settle(lab, exp, |_| Vec::new());
    assert!(
        diffs.is_empty(),
        "the host differs from kvnetd's report:\n  {}\nkvnetd's log:\n{}",
        diffs.join("\n  "),
        lab.daemon.log()
    );
    rep.expect("report")
}
