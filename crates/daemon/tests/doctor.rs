//! `kvnet doctor` against real problems: each check's problem is made in the lab's
//! host namespace, the doctor names it (exit code 2) and is clean again once it is
//! undone; a clean namespace gives exit code 0. Root only.

mod lab;

use kvnet_api::Report;
use lab::*;
use std::process::{Command, Stdio};

const BR: &str = "kvdr0";

fn nat_xml() -> String {
    format!(
        "<network><name>doc</name><forward mode='nat'/><bridge name='{BR}'/>\
         <ip address='192.168.152.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.152.100' end='192.168.152.150'/></dhcp></ip></network>"
    )
}

/// `kvnet doctor ARGS`: exit code and output.
fn doctor(lab: &Lab, args: &[&str]) -> (Option<i32>, String) {
    lab.cli_code(&[&["doctor"], args].concat())
}

/// The doctor of network `doc`, as JSON.
fn report(lab: &Lab) -> (Option<i32>, Report) {
    let (code, out) = doctor(lab, &["doc", "--json"]);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

fn clean(lab: &Lab) {
    let (code, out) = doctor(lab, &["doc"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.ends_with("no problem found\n"), "{out}");
}

/// Makes a problem with `make`, checks the doctor names it (`check`, `culprit`), then
/// undoes it with `undo` and checks the doctor is clean again.
fn named(lab: &Lab, make: &str, check: &str, culprit: &str, undo: &str) {
    let (ok, out) = sh(&lab.host, make);
    assert!(ok, "{make}: {out}");
    let (code, r) = report(lab);
    let found: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.problem)
        .map(|f| format!("{} {}", f.check.as_str(), f.culprit))
        .collect();
    assert_eq!(code, Some(2), "{make}: {found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(check) && f.contains(culprit)),
        "{check} {culprit} not in {found:?}"
    );
    let (ok, out) = sh(&lab.host, undo);
    assert!(ok, "{undo}: {out}");
    clean(lab);
}

#[test]
#[ignore = "needs root"]
fn every_check_names_its_culprit_and_a_clean_host_passes() {
    let mut lab = Lab::new();
    lab.define_and_start(&nat_xml());
    lab.guest(BR, "192.168.152.10", "192.168.152.1");
    lab.guest(BR, "192.168.152.11", "192.168.152.1");
    clean(&lab);
    // br_netfilter (1 in every namespace of this kernel) is a note, not a problem.
    sh(
        &lab.host,
        "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
    );
    let (code, r) = report(&lab);
    assert_eq!(code, Some(0));
    assert!(
        r.findings.iter().any(|f| !f.problem
            && f.culprit
                .starts_with("br_netfilter: net.bridge.bridge-nf-call-iptables=1")),
        "{r:?}"
    );
    // A drop in a table of nobody kvnet knows: by table, chain and handle.
    named(
        &lab,
        &format!(
            "nft add table inet mine && nft add chain inet mine kvtest_fwd '{{ type filter hook forward priority 5; }}' \
             && nft add rule inet mine kvtest_fwd oifname {BR} ct state new drop"
        ),
        "foreign-drop",
        "unknown: inet mine kvtest_fwd handle 2 (drop)",
        "nft delete table inet mine",
    );
    named(
        &lab,
        "nft add table ip mine && nft add chain ip mine kvtest_in '{ type filter hook input priority 0; policy drop; }'",
        "foreign-drop",
        "unknown: ip mine kvtest_in policy drop",
        "nft delete table ip mine",
    );
    named(
        &lab,
        "sysctl -qw net.ipv4.ip_forward=0",
        "ip-forward",
        "net.ipv4.ip_forward=0",
        "sysctl -qw net.ipv4.ip_forward=1",
    );
    named(
        &lab,
        "ip link add kvrp0 type veth peer name kvrp1 && ip link set kvrp0 up && ip link set kvrp1 up \
         && ip route add 192.168.152.128/25 dev kvrp0 && sysctl -qw net.ipv4.conf.all.rp_filter=1",
        "rp-filter",
        "rp_filter=1 (strict)",
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 && ip link del kvrp0",
    );
    // The bridge follows its smallest port (no MTU of its own was set): vg1's
    // 1500-byte frames no longer fit vg0.
    named(
        &lab,
        "ip link set vg0 mtu 1400",
        "mtu",
        &format!("vg1 mtu 1500 on {BR} mtu 1400"),
        "ip link set vg0 mtu 1500",
    );
    // Another DHCP server, bound to the wildcard address: it hears the guests'
    // broadcasts. The python3 process runs in the host namespace until killed.
    let mut other = Command::new("ip")
        .args(["netns", "exec", lab.host.name(), "python3", "-c"])
        .arg(
            "import socket,sys,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',67))\nprint('bound',flush=True)\ntime.sleep(60)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(other.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("bound");
    let (code, out) = doctor(&lab, &["doc"]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "PROBLEM listener [doc]: python3 (pid {}) on udp 0.0.0.0:67",
            other.id()
        )),
        "{out}"
    );
    clean(&lab);
    // Only active networks are examined.
    let (code, out) = doctor(&lab, &["nope"]);
    assert_eq!(code, Some(1), "{out}");
}
