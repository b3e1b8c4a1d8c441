//! `<host>` reservations against real clients (busybox udhcpc in guest namespaces):
//! a reservation for a MAC belongs to that MAC, whatever name another guest sends.
//! Root only.

mod lab;

use lab::*;

const NET: &str = "<network><name>res</name><forward mode='nat'/><bridge name='kvr0'/>\
    <ip address='192.168.50.1' prefix='24'><dhcp><range start='192.168.50.100' end='192.168.50.150'/>\
    <host mac='52:54:00:aa:bb:cc' name='fixed' ip='192.168.50.10'/></dhcp></ip></network>";

/// One exchange from `mac`'s guest, sending `hostname` (option 12): the address bound.
fn lease(lab: &mut Lab, mac: &str, hostname: &str) -> (usize, String) {
    let g = lab.guest("kvr0", "", "");
    ip(&lab.guests[g], &format!("link set eth0 address {mac}"));
    let (ok, out) = sh(
        &lab.guests[g],
        &format!(
            "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -x hostname:{hostname} \
             -s /bin/true 2>&1"
        ),
    );
    assert!(ok, "{out}\n{}", lab.daemon.log());
    let addr = out
        .lines()
        .find_map(|l| l.split("lease of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease: {out}"))
        .to_string();
    (g, addr)
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
