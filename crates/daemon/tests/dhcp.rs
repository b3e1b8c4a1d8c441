//! kvnetd's DHCPv4 server against a real client (busybox udhcpc) in a guest namespace.
//! Root only.

mod lab;

use kvnet_api::Request;
use kvnet_host::testns::TestNs;
use lab::*;
use std::net::Ipv4Addr;

const MAC: &str = "52:54:00:12:34:56";

/// What udhcpc's script saw when it got a lease.
#[derive(Debug)]
struct Lease {
    ip: Ipv4Addr,
    router: String,
}

/// Run one DHCP exchange on the guest's eth0 and return the lease. The script only
/// prints what it was given, so the guest's address stays unconfigured and every run
/// starts with a DISCOVER.
fn udhcpc(g: &TestNs) -> Lease {
    let script = std::env::temp_dir().join(format!("kvnet-udhcpc-{}.sh", g.name()));
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip router=$router\"\nexit 0\n",
    )
    .expect("script");
    sh(g, &format!("chmod +x {}", script.display()));
    let (ok, out) = sh(
        g,
        &format!(
            "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s {}",
            script.display()
        ),
    );
    let _ = std::fs::remove_file(&script);
    assert!(ok, "udhcpc got no lease:\n{out}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("LEASE "))
        .unwrap_or_else(|| panic!("no lease in udhcpc output:\n{out}"));
    let (ip, router) = line.split_once(' ').expect("lease line");
    Lease {
        ip: ip
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {line}")),
        router: router.trim_start_matches("router=").to_string(),
    }
}

fn dhcp_guest(lab: &mut Lab, bridge: &str, mac: &str) -> usize {
    let g = lab.guest(bridge, "", "");
    ip(&lab.guests[g], &format!("link set eth0 address {mac}"));
    g
}

fn have_busybox(name: &str) -> bool {
    if !require_root(name) {
        return false;
    }
    if std::process::Command::new("busybox")
        .arg("true")
        .output()
        .is_err()
    {
        panic!("{name} needs busybox (scripts/deps.sh test installs it)");
    }
    true
}

#[test]
fn guest_gets_a_lease_and_keeps_it_across_a_daemon_crash() {
    if !have_busybox("guest_gets_a_lease_and_keeps_it_across_a_daemon_crash") {
        return;
    }
    let mut lab = Lab::new();
    let g = dhcp_guest(&mut lab, "virbr0", MAC);
    let first = udhcpc(&lab.guests[g]);
    let octets = first.ip.octets();
    assert_eq!(&octets[..3], &[192, 168, 122], "{first:?}");
    assert!((2..=254).contains(&octets[3]), "{first:?}");
    assert_eq!(
        first.router, "192.168.122.1",
        "NAT networks announce a router"
    );

    let (ok, out) = lab.cli(&["net-dhcp-leases", "default"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Expiry Time") && out.contains("Client ID or DUID"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains(MAC))
        .unwrap_or_else(|| panic!("{MAC} not listed:\n{out}\n{}", lab.daemon.log()));
    assert!(row.contains(&format!("{}/24", first.ip)), "{row}");
    assert!(row.contains("ipv4"), "{row}");
    let (ok, out) = lab.cli(&["net-dhcp-leases", "default", "--mac", "52:54:00:00:00:99"]);
    assert!(ok && !out.contains(MAC), "{out}");
    let (ok, out) = lab.cli(&["net-dhcp-leases", "default", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["mac-address"], MAC, "{v}");
    assert_eq!(v[0]["ip-address"], first.ip.to_string(), "{v}");

    // A crash loses nothing: the lease was on disk before the ACK went out.
    let mut child = lab.daemon.child.take().expect("kvnetd running");
    child.kill().expect("SIGKILL kvnetd");
    let _ = child.wait();
    lab.restart_daemon();
    let (ok, out) = lab.cli(&["net-dhcp-leases", "default", "--mac", MAC]);
    assert!(ok && out.contains(&first.ip.to_string()), "{out}");
    // Another client asking first must not get the address: the lease was remembered.
    let other = dhcp_guest(&mut lab, "virbr0", "52:54:00:12:34:57");
    let other = udhcpc(&lab.guests[other]);
    assert_ne!(other.ip, first.ip, "{}", lab.daemon.log());
    let again = udhcpc(&lab.guests[g]);
    assert_eq!(again.ip, first.ip, "{}", lab.daemon.log());
    assert!(lab.daemon.log().contains("DHCPACK"), "{}", lab.daemon.log());
}

#[test]
fn isolated_network_offers_no_router_and_serves_live_updates() {
    if !have_busybox("isolated_network_offers_no_router_and_serves_live_updates") {
        return;
    }
    let mut lab = Lab::new();
    lab.define_and_start(
        "<network><name>iso</name><bridge name='kvd0'/>\
         <ip address='192.168.153.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.153.100' end='192.168.153.100'/></dhcp></ip></network>",
    );
    let g = dhcp_guest(&mut lab, "kvd0", MAC);
    let lease = udhcpc(&lab.guests[g]);
    assert_eq!(lease.ip, Ipv4Addr::new(192, 168, 153, 100));
    assert_eq!(lease.router, "", "isolated networks have no gateway");
    // A static host added live is served at once.
    let (ok, out) = lab.cli(&[
        "net-update",
        "iso",
        "add",
        "ip-dhcp-host",
        "<host mac='52:54:00:12:34:58' ip='192.168.153.50'/>",
        "--live",
    ]);
    assert!(ok, "{out}");
    let h = dhcp_guest(&mut lab, "kvd0", "52:54:00:12:34:58");
    assert_eq!(udhcpc(&lab.guests[h]).ip, Ipv4Addr::new(192, 168, 153, 50));
    // After a stop, the lease stays on record, as libvirt keeps it.
    lab.ok(Request::Destroy {
        network: "iso".into(),
        wait: true,
    });
    let (ok, out) = lab.cli(&["net-dhcp-leases", "iso"]);
    assert!(ok && out.contains("192.168.153.100/24"), "{out}");
}
