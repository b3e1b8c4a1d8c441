//! Real QEMU guests (TCG, Debian cloud kernel, busybox initramfs) on kvnet networks:
//! DHCP, DNS and NAT as a VM sees them. Root only; `scripts/deps.sh test` installs
//! QEMU and fetches the guest kernel. See tests/guest/mod.rs for the harness.

mod guest;
mod lab;

use guest::{Guest, Image};
use lab::*;
use std::time::Duration;

/// TCG on two busy cores: generous, the waits return as soon as the line is there.
const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(90);

#[test]
fn qemu_guest_on_tap_in_default_network_gets_lease_dns_and_nat() {
    let test = "qemu_guest_on_tap_in_default_network_gets_lease_dns_and_nat";
    let Some(img) = Image::find(test) else {
        return;
    };
    let (lab, _resolv) = nat_lab();
    // A TAP the test makes itself, a port of virbr0.
    let netdev = guest::tap(&lab.host, "kvtap0", "virbr0");
    default_network_guest_works(&lab, &img, "vm-one", &netdev);
}

/// A lab whose kvnetd forwards DNS to the LAN's upstream (see [`with_upstream`]); the
/// LAN knows the way to the default NAT network, so only kvnet's firewall keeps it out.
/// The file must live as long as the lab: kvnetd watches it.
fn nat_lab() -> (Lab, TempFile) {
    let resolv =
        TempFile(std::env::temp_dir().join(format!("kvnet-guests-resolv-{}", std::process::id())));
    std::fs::write(&resolv.0, format!("nameserver {LAN_PEER}\n")).expect("resolv.conf");
    let lab = Lab::with_env(&[("KVNET_RESOLV_CONF", resolv.0.to_str().expect("utf-8"))]);
    ip(
        &lab.lan,
        &format!("route add 192.168.122.0/24 via {LAN_HOST}"),
    );
    (lab, resolv)
}

/// Boot guest NAME attached by `netdev` (a `-netdev` with id n0, already plugged into
/// virbr0 of `lab`, see [`nat_lab`]) and check what it sees on the default network: a
/// lease in 192.168.122.0/24 with kvnet as router and DNS, a name resolved through
/// kvnet's DNS by the LAN's upstream, a ping to the LAN through NAT; the host reaches
/// it, the LAN does not; the lease list shows its hostname. Other ways to attach a guest
/// (kvnet's own ports) reuse this with their `-netdev`.
fn default_network_guest_works(lab: &Lab, img: &Image, name: &str, netdev: &str) {
    let mac = guest::mac();
    with_upstream(lab, || {
        let mut g = Guest::boot(
            img,
            &lab.host,
            name,
            netdev,
            &mac,
            &[
                ("lookup", "ext.example"),
                ("ping", LAN_PEER),
                ("hold", "300"),
            ],
        );
        let lease = g.lease(BOOT);
        eprintln!(
            "guest {name}: lease {}/{} after {:.1} s from QEMU start (guest uptime {} s)",
            lease.ip,
            lease.prefix,
            lease.boot_to_lease.as_secs_f64(),
            lease.guest_uptime
        );
        let log = || lab.daemon.log();
        assert_eq!(&lease.ip.octets()[..3], &[192, 168, 122], "{lease:?}");
        assert_eq!(lease.prefix, 24, "{lease:?}");
        assert_eq!(lease.router, "192.168.122.1", "{lease:?}");
        assert_eq!(lease.dns, "192.168.122.1", "{lease:?}");

        // kvnet's DNS on virbr0 forwards to the upstream in the LAN.
        let answer = g.wait_marker("dns ext.example", STEP);
        let upstream_a = UPSTREAM_A.map(|b| b.to_string()).join(".");
        assert_eq!(answer, format!("-> {upstream_a}"), "{}", log());
        // Out through NAT to the LAN.
        let nat = g.wait_marker(&format!("ping {LAN_PEER}"), STEP);
        assert_eq!(nat, "ok", "{}", log());
        g.wait_marker("done", STEP);

        // The guest answers on its address (from the host), but the LAN cannot reach it.
        let addr = lease.ip.to_string();
        assert!(ping_retry(lab, &addr), "host cannot ping the guest");
        assert!(
            !ping(&lab.lan, &addr),
            "the LAN reached the NATed guest\n{}",
            lab.nft_table()
        );

        let (ok, out) = lab.cli(&["net-dhcp-leases", "default"]);
        assert!(ok, "{out}");
        let row = out
            .lines()
            .find(|l| l.contains(&mac))
            .unwrap_or_else(|| panic!("{mac} not listed:\n{out}\n{}", log()));
        assert!(row.contains(&format!("{addr}/24")), "{row}");
        assert!(row.contains(name), "hostname missing: {row}");
        eprintln!("kvnet net-dhcp-leases default:\n{out}");
    });
}

/// The guest has just finished its own pings: a few tries cover its ARP entry settling.
fn ping_retry(lab: &Lab, addr: &str) -> bool {
    (0..5).any(|_| ping(&lab.host, addr))
}

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
