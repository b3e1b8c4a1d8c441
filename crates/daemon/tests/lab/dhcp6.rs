//! DHCPv6 from real clients in guest namespaces: a guest past DAD, one ISC dhclient -6
//! run, and reading what the client's script reported.

use super::*;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// A guest on `bridge` with `mac`, once its link-local address is past DAD (a DHCPv6
/// client binds to it).
impl Lab {
    pub fn guest6(&mut self, bridge: &str, mac: &str) -> usize {
        let g = self.guest(bridge, "", "");
        let ns = &self.guests[g];
        ip(ns, "link set eth0 down");
        ip(ns, &format!("link set eth0 address {mac}"));
        ip(ns, "link set eth0 up");
        let t0 = Instant::now();
        loop {
            let lladdr = ip(ns, "-6 addr show dev eth0 scope link");
            let tentative = ip(ns, "-6 addr show dev eth0 tentative");
            if lladdr.contains("fe80::") && tentative.trim().is_empty() {
                return g;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "DAD did not finish: {lladdr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One dhclient -6 run until it reports a binding; its DUID is DUID-LL of the MAC (-D LL).
/// The script only reports, the guest's address stays as it is. A fresh lease file each
/// time, so every run starts with a Solicit.
pub fn dhclient6(lab: &Lab, g: usize) -> Option<Ipv6Addr> {
    let ns = &lab.guests[g];
    let dir = temp_dir("dhclient6", ns);
    let d = dir.display().to_string();
    std::fs::write(dir.join("conf"), "timeout 20;\nretry 1;\n").expect("conf");
    std::fs::write(
        dir.join("script"),
        format!("#!/bin/sh\necho \"$reason $new_ip6_address\" >> {d}/out\nexit 0\n"),
    )
    .expect("script");
    let (_, out) = isolated_client(
        ns,
        &dir,
        &format!(
            "chmod +x {d}/script; \
             dhclient -6 -D LL -d -1 -v -cf {d}/conf -sf {d}/script -lf {d}/leases \
             -pf {d}/pid eth0 > {d}/log 2>&1 & p=$!; \
             for _ in $(seq 200); do grep -qs BOUND6 {d}/out && break; sleep 0.1; done; \
             kill $p; wait $p || true; cat {d}/log"
        ),
    );
    let report = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let addr = bound(&report, &["BOUND6"]);
    if addr.is_none() {
        eprintln!("dhclient -6 got no address:\n{report}\n{out}");
    }
    addr
}

pub fn bound(report: &str, reasons: &[&str]) -> Option<Ipv6Addr> {
    report.lines().find_map(|l| {
        let (reason, addr) = l.split_once(' ')?;
        reasons
            .contains(&reason)
            .then(|| addr.trim().parse().ok())?
    })
}
