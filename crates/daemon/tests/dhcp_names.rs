//! How guests' names are taken and protected, against real clients in guest namespaces
//! (busybox udhcpc, ISC dhclient, dhcpcd): a reservation for a MAC belongs to that MAC
//! whatever name another guest sends; FQDN names (option 12 with dots, option 81) give
//! their first label; one name, one guest; the admin's names stay the admin's. The
//! lease listing and DNS must agree on every name. Root only.

mod lab;

use lab::*;

const NET: &str = "<network><name>res</name><forward mode='nat'/><bridge name='kvr0'/>\
    <domain name='example.lan'/>\
    <dns><host ip='192.168.50.201'><hostname>printer</hostname></host></dns>\
    <ip address='192.168.50.1' prefix='24'><dhcp><range start='192.168.50.100' end='192.168.50.150'/>\
    <host mac='52:54:00:aa:bb:cc' name='fixed' ip='192.168.50.10'/></dhcp></ip></network>";

/// One exchange from `mac`'s guest, sending `hostname` (option 12): the address bound.
fn lease(lab: &mut Lab, mac: &str, hostname: &str) -> (usize, String) {
    lab.udhcpc_guest("kvr0", mac, hostname)
}

#[test]
#[ignore = "needs root"]
fn a_guest_calling_itself_by_a_reserved_name_gets_another_address() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let (_, owner) = lease(&mut lab, "52:54:00:aa:bb:cc", "fixed");
    assert_eq!(owner, "192.168.50.10");
    let (_, other) = lease(&mut lab, "52:54:00:00:00:99", "fixed");
    assert_ne!(other, "192.168.50.10", "{}", lab.daemon.log());
    // The owner's lease stands: one row for .10, the owner's MAC.
    let (ok, out) = lab.cli(&["net-dhcp-leases", "res"]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("192.168.50.10/"))
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].contains("52:54:00:aa:bb:cc"), "{out}");
    assert!(
        !lab.daemon.log().contains("revoked"),
        "{}",
        lab.daemon.log()
    );
}

/// The lease listing's rows: (MAC, address, hostname).
fn listed(lab: &Lab) -> Vec<(String, String, String)> {
    let (ok, out) = lab.cli(&["net-dhcp-leases", "res", "--json"]);
    assert!(ok, "{out}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    v.iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("mac-address"), s("ip-address"), s("hostname"))
        })
        .collect()
}

/// What kvnet's DNS answers for `name` (A records), asked from guest `g`.
fn resolve(lab: &Lab, g: usize, name: &str) -> Vec<String> {
    let (_, out) = sh(
        &lab.guests[g],
        &format!("dig +short +tries=2 +time=2 @192.168.50.1 {name} A"),
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// A guest with its own address (for dig), on the network.
fn asker(lab: &mut Lab) -> usize {
    lab.guest("kvr0", "192.168.50.250", "192.168.50.1")
}

#[test]
#[ignore = "needs root"]
fn one_name_one_guest_and_the_admins_names_stay_the_admins() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let (_, first) = lease(&mut lab, "52:54:00:00:00:01", "vm1");
    // Re-created with a new MAC: the name moves to the new lease.
    let (_, second) = lease(&mut lab, "52:54:00:00:00:02", "vm1");
    assert_ne!(first, second);
    // A guest calling itself the admin's printer gets no name.
    let (_, sneaky) = lease(&mut lab, "52:54:00:00:00:03", "printer");
    let rows = listed(&lab);
    let named: Vec<_> = rows.iter().filter(|r| r.2 == "vm1").collect();
    assert_eq!(named.len(), 1, "{rows:?}");
    assert_eq!(named[0].1, second, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.1 == sneaky && r.2.is_empty()),
        "{rows:?}"
    );
    let q = asker(&mut lab);
    assert_eq!(
        resolve(&lab, q, "vm1.example.lan"),
        std::slice::from_ref(&second)
    );
    assert_eq!(resolve(&lab, q, "vm1"), [second]);
    assert_eq!(resolve(&lab, q, "printer.example.lan"), ["192.168.50.201"]);
    let log = lab.daemon.log();
    assert!(log.contains("moves from 52:54:00:00:00:01"), "{log}");
    assert!(log.contains("asked for the name printer"), "{log}");
}

#[test]
#[ignore = "needs root"]
fn fqdn_names_from_dhclient_and_dhcpcd_give_their_first_label() {
    have("dhclient", "isc-dhcp-client");
    have("dhcpcd", "dhcpcd-base");
    let mut lab = Lab::new();
    lab.define_and_start(NET);
    let clients = [
        // Option 12 with dots, from dhclient.conf. The script runs at PREINIT too:
        // wait for BOUND, or dhclient is killed before its lease (seen under load).
        (
            "52:54:00:00:00:11",
            "send host-name \"db.other.org\";\n",
            "dhclient -cf {d}/conf -sf {d}/script -lf {d}/leases -pf {d}/pid -1 -d eth0 & \
             p=$!; for _ in $(seq 100); do grep -qs BOUND {d}/out && break; sleep 0.1; done; kill $p",
            "db",
        ),
        // Option 81 (dhcpcd sends the FQDN, asking the server to update).
        (
            "52:54:00:00:00:12",
            "",
            "dhcpcd -f {d}/conf -c {d}/script -4 -1 -B -t 20 --noarp --noipv4ll \
             -h web1.example.lan -F both eth0",
            "web1",
        ),
    ];
    for (mac, conf, cmd, name) in clients {
        let g = lab.guest("kvr0", "", "");
        ip(&lab.guests[g], &format!("link set eth0 address {mac}"));
        let dir = temp_dir(name, &lab.guests[g]);
        let d = dir.display().to_string();
        std::fs::write(dir.join("conf"), conf).unwrap();
        std::fs::write(
            dir.join("script"),
            format!("#!/bin/sh\necho \"$reason $new_ip_address\" >> {d}/out\nexit 0\n"),
        )
        .unwrap();
        let (ok, out) = isolated_client(
            &lab.guests[g],
            &dir,
            &format!("chmod +x {d}/script; {}", cmd.replace("{d}", &d)),
        );
        drop(dir);
        assert!(ok, "{name}: {out}\n{}", lab.daemon.log());
        let rows = listed(&lab);
        let row = rows
            .iter()
            .find(|r| r.0 == mac)
            .unwrap_or_else(|| panic!("{mac} not listed: {rows:?}\n{out}"));
        assert_eq!(row.2, name, "{rows:?}");
        let q = asker(&mut lab);
        assert_eq!(
            resolve(&lab, q, &format!("{name}.example.lan")),
            std::slice::from_ref(&row.1)
        );
    }
}
