//! Real QEMU guests (TCG, Debian cloud kernel, busybox initramfs) on kvnet networks:
//! DHCP, DNS and NAT as a VM sees them. Root only; `scripts/deps.sh test` installs
//! QEMU and fetches the guest kernel. See tests/guest/mod.rs for the harness.
//!
//! The guest is attached each way kvnet knows: a TAP the test makes itself, a port
//! `kvnet port-create` made, qemu's `script=`/`downscript=` (kvnet-ifup/kvnet-ifdown)
//! and qemu's bridge helper (kvnet-bridge-helper, also when its ACL says no, and as
//! the README's unprivileged user runs it: installed with its file capability, QEMU as
//! nobody, every path kvnet's default).

mod guest;
mod lab;

use guest::{Guest, Image};
use kvnet_api::{CreatedPort, PortKind};
use lab::*;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// TCG on two busy cores: generous, the waits return as soon as the line is there.
const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(90);
/// QEMU's clean exit after SIGTERM (it runs its downscript first).
const EXIT: Duration = Duration::from_secs(30);

#[test]
#[ignore = "needs root"]
fn qemu_guest_on_tap_in_default_network_gets_lease_dns_and_nat() {
    let test = "qemu_guest_on_tap_in_default_network_gets_lease_dns_and_nat";
    let img = Image::find(test);
    let (lab, _resolv) = nat_lab();
    // A TAP the test makes itself, a port of virbr0.
    let netdev = guest::tap(&lab.host, "kvtap0", "virbr0");
    let net = guest::nic(&netdev, &guest::mac());
    default_network_guest_works(&lab, &img, "vm-one", &net, &[]);
}

/// `kvnet port-create default`: the guest runs with exactly the qemu arguments it
/// prints (its TAP and the MAC kvnet chose); port-delete removes the TAP afterwards.
#[test]
#[ignore = "needs root"]
fn qemu_guest_on_port_create_tap_gets_lease_dns_and_nat() {
    let test = "qemu_guest_on_port_create_tap_gets_lease_dns_and_nat";
    let img = Image::find(test);
    let (lab, _resolv) = nat_lab();
    let (ok, out) = lab.cli(&["port-create", "default", "--json"]);
    assert!(ok, "{out}");
    let created: CreatedPort = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let (ifname, mac) = (
        created.port.ifname.clone(),
        created.port.mac.clone().expect("port-create chose a MAC"),
    );
    let args = created.qemu_args.join(" ");
    assert!(
        args.contains(&format!(
            "ifname={ifname},script=no,downscript=no,vhost=off"
        )) && args.contains(&format!("mac={mac}")),
        "{args}"
    );

    let mut g = default_network_guest_works(&lab, &img, "vm-port", &created.qemu_args, &[]);
    assert_eq!(g.mac, mac, "the guest has the port's MAC");
    let port = port_row(&lab, &ifname).unwrap_or_else(|| panic!("{ifname} not listed"));
    assert!(port.contains(&mac) && port.contains("persistent"), "{port}");
    g.shutdown(EXIT);

    // The persistent TAP outlives the guest until port-delete.
    assert!(
        link(&lab, &ifname).is_some(),
        "{ifname} kept after QEMU exited"
    );
    let (ok, out) = lab.cli(&["port-delete", &ifname]);
    assert!(
        ok && out.contains(&format!("Port {ifname} deleted")),
        "{out}"
    );
    assert!(link(&lab, &ifname).is_none(), "{ifname} deleted");
    assert!(port_row(&lab, &ifname).is_none(), "{ifname} unlisted");
}

/// qemu's `script=kvnet-ifup,downscript=kvnet-ifdown` with KVNET_SOCKET and
/// KVNET_NETWORK in its environment: a `script` port while the guest runs, gone (by
/// the downscript) when QEMU exits.
#[test]
#[ignore = "needs root"]
fn qemu_guest_via_ifup_script_gets_lease_dns_and_nat() {
    let test = "qemu_guest_via_ifup_script_gets_lease_dns_and_nat";
    let img = Image::find(test);
    let (lab, _resolv) = nat_lab();
    let tap = "kvscript0";
    let netdev = format!(
        "tap,id=n0,ifname={tap},script={},downscript={},vhost=off",
        bin("kvnet-ifup").display(),
        bin("kvnet-ifdown").display()
    );
    let net = guest::nic(&netdev, &guest::mac());
    let socket = lab.daemon.socket.to_str().expect("utf-8");
    let env = [("KVNET_SOCKET", socket), ("KVNET_NETWORK", "default")];

    let mut g = default_network_guest_works(&lab, &img, "vm-script", &net, &env);
    let listed = ports(&lab);
    assert!(
        listed
            .iter()
            .any(|p| p.ifname == tap && p.kind == PortKind::Script),
        "{listed:?}"
    );
    g.shutdown(EXIT);

    // kvnet-ifdown unregistered it (not just port-list forgetting a vanished TAP).
    assert!(
        lab.daemon.log().contains(&format!("port {tap} deleted")),
        "downscript did not run:\n{}",
        lab.daemon.log()
    );
    assert!(link(&lab, tap).is_none(), "{tap} gone with QEMU");
    assert!(port_row(&lab, tap).is_none(), "{tap} unlisted");
}

/// qemu's `-netdev bridge,helper=kvnet-bridge-helper` with an ACL allowing virbr0: a
/// `helper` port while the guest runs, gone with QEMU.
#[test]
#[ignore = "needs root"]
fn qemu_guest_via_bridge_helper_gets_lease_dns_and_nat() {
    let test = "qemu_guest_via_bridge_helper_gets_lease_dns_and_nat";
    let img = Image::find(test);
    let (lab, _resolv) = nat_lab();
    let acl = lab.daemon.dir.join("bridge.conf");
    std::fs::write(&acl, "allow virbr0\n").expect("ACL");
    let net = guest::nic(&helper_netdev(), &guest::mac());
    let env = helper_env(&lab, &acl);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut g = default_network_guest_works(&lab, &img, "vm-helper", &net, &env);
    let tap = helper_port_on_virbr0(&lab);
    g.shutdown(EXIT);

    assert!(link(&lab, &tap).is_none(), "{tap} gone with QEMU");
    assert!(ports(&lab).is_empty(), "{tap} unlisted");
}

/// The same with an ACL that denies virbr0: QEMU cannot set up the netdev and exits
/// naming the helper's failure; no TAP is left, no port registered, no lease given.
#[test]
#[ignore = "needs root"]
fn qemu_guest_via_denied_bridge_helper_gets_no_network() {
    let test = "qemu_guest_via_denied_bridge_helper_gets_no_network";
    let img = Image::find(test);
    let lab = Lab::new();
    let acl = lab.daemon.dir.join("bridge.conf");
    std::fs::write(&acl, "allow all\ndeny virbr0\n").expect("ACL");
    let net = guest::nic(&helper_netdev(), &guest::mac());
    let env = helper_env(&lab, &acl);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut g = Guest::boot(&img, &lab.host, "vm-denied", &net, &env, &[], &[]);
    let st = g
        .wait_exit(STEP)
        .unwrap_or_else(|| panic!("QEMU runs without its netdev:\n{}", g.console()));
    let console = g.console();
    eprintln!("QEMU with a denied bridge helper ({st}):\n{console}");
    assert!(!st.success(), "QEMU exit {st}:\n{console}");
    assert!(
        console.contains("access to bridge virbr0 denied")
            && console.contains("bridge helper failed"),
        "{console}"
    );
    assert!(!console.contains("KVNET lease"), "{console}");
    let taps: Vec<String> = ip(&lab.host, "-br link")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("tap"))
        .map(str::to_string)
        .collect();
    assert!(taps.is_empty(), "TAP left behind: {taps:?}");
    let (ok, out) = sh(&lab.host, "ip -br link show master virbr0");
    assert!(ok && out.trim().is_empty(), "ports on virbr0: {out}");
    assert!(ports(&lab).is_empty());
}

/// The README's unprivileged path as a user takes it: kvnetd at its default paths (the
/// lab's dirs, mounted at /etc/kvnet, /var/lib/kvnet and /run/kvnet in mount namespaces
/// of the test, see [`at_default_paths`]) with `allow virbr0` in /etc/kvnet/bridge.conf;
/// QEMU run as nobody with `-netdev bridge` and kvnet-bridge-helper installed as run.sh
/// installs it (file capability cap_net_admin only). The helper reads the ACL at its
/// default path, which kvnetd leaves readable, and registers its TAP through the
/// default socket (kvnetd's `--socket-group nogroup`); the guest gets its lease. (A
/// machine without udev has a /dev/net/tun only root may open: QEMU's mount namespace
/// gets one as Debian's udev makes it, see [`user_tun`].)
#[test]
#[ignore = "needs root"]
fn unprivileged_qemu_via_the_installed_bridge_helper_gets_lease_dns_and_nat() {
    let test = "unprivileged_qemu_via_the_installed_bridge_helper_gets_lease_dns_and_nat";
    let img = Image::find(test);
    let (lab, _resolv) = nat_lab_with(&Setup {
        default_paths: true,
        args: vec!["--socket-group".into(), "nogroup".into()],
        ..Setup::default()
    });
    let etc = lab.daemon.dir.join("etc");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&etc), 0o755, "kvnetd leaves /etc/kvnet readable");
    assert_eq!(
        mode(&etc.join("networks")),
        0o700,
        "definitions stay private"
    );
    // As an admin writes it (umask 022).
    std::fs::write(etc.join("bridge.conf"), "allow virbr0\n").expect("ACL");
    std::fs::set_permissions(etc.join("bridge.conf"), Permissions::from_mode(0o644))
        .expect("chmod");
    let helper = InstalledHelper::new();
    let netdev = format!(
        "bridge,id=n0,br=virbr0,helper={}",
        helper.0.join("helper").display()
    );
    let net = guest::nic(&netdev, &guest::mac());
    let dir = &lab.daemon.dir;
    let wrap = [at_default_paths(dir), user_tun(dir), as_nobody()].concat();

    let mut g = guest_works_wrapped(&lab, &img, "vm-user", &net, &[], &wrap);
    let tap = helper_port_on_virbr0(&lab);
    g.shutdown(EXIT);
    assert!(link(&lab, &tap).is_none(), "{tap} gone with QEMU");
}

/// kvnet-bridge-helper as run.sh installs it: a copy of its own in a directory everyone
/// may traverse, with the file capability cap_net_admin, never setuid.
struct InstalledHelper(std::path::PathBuf);

impl InstalledHelper {
    fn new() -> InstalledHelper {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kvnet-helper-{}-{n}", std::process::id()));
        let inst = InstalledHelper(dir.clone());
        std::fs::create_dir_all(&dir).expect("helper dir");
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).expect("chmod");
        std::fs::copy(bin("kvnet-bridge-helper"), dir.join("helper")).expect("copy the helper");
        let ok = std::process::Command::new("setcap")
            .arg("cap_net_admin+ep")
            .arg(dir.join("helper"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "setcap failed (scripts/deps.sh installs libcap2-bin)");
        inst
    }
}

impl Drop for InstalledHelper {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The one port, a TAP the bridge helper made and registered on virbr0: its name.
fn helper_port_on_virbr0(lab: &Lab) -> String {
    let listed = ports(lab);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].kind, PortKind::Helper, "{listed:?}");
    let tap = listed[0].ifname.clone();
    let l = link(lab, &tap).unwrap_or_else(|| panic!("{tap} missing"));
    assert!(l.contains("master virbr0"), "{l}");
    tap
}

fn helper_netdev() -> String {
    format!(
        "bridge,id=n0,br=virbr0,helper={}",
        bin("kvnet-bridge-helper").display()
    )
}

/// The helper's ACL and kvnetd's socket: env overrides it honours for root only.
fn helper_env(lab: &Lab, acl: &std::path::Path) -> [(&'static str, String); 2] {
    [
        ("KVNET_BRIDGE_CONF", acl.display().to_string()),
        ("KVNET_SOCKET", lab.daemon.socket.display().to_string()),
    ]
}

fn ports(lab: &Lab) -> Vec<kvnet_api::Port> {
    let (ok, out) = lab.cli(&["port-list", "default", "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `kvnet port-list default`'s row for `ifname`.
fn port_row(lab: &Lab, ifname: &str) -> Option<String> {
    let (ok, out) = lab.cli(&["port-list", "default"]);
    assert!(ok, "{out}");
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(ifname))
        .map(str::to_string)
}

fn link(lab: &Lab, name: &str) -> Option<String> {
    let (ok, out) = sh(&lab.host, &format!("ip -d link show {name}"));
    ok.then_some(out)
}

/// A lab whose kvnetd forwards DNS to the LAN's upstream (see [`with_upstream`]); the
/// LAN knows the way to the default NAT network, so only kvnet's firewall keeps it out.
/// The file must live as long as the lab: kvnetd watches it.
fn nat_lab() -> (Lab, TempFile) {
    nat_lab_with(&Setup::default())
}

fn nat_lab_with(setup: &Setup) -> (Lab, TempFile) {
    // One per lab: the tests run in parallel and each removes its own.
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let resolv = TempFile(
        std::env::temp_dir().join(format!("kvnet-guests-resolv-{}-{n}", std::process::id())),
    );
    std::fs::write(&resolv.0, format!("nameserver {LAN_PEER}\n")).expect("resolv.conf");
    let lab = Lab::with_setup(
        &[("KVNET_RESOLV_CONF", resolv.0.to_str().expect("utf-8"))],
        setup,
    );
    ip(
        &lab.lan,
        &format!("route add 192.168.122.0/24 via {LAN_HOST}"),
    );
    (lab, resolv)
}

/// Boot guest NAME with the NIC `net` (`-netdev`/`-device` arguments that put it on
/// virbr0 of `lab`, see [`nat_lab`]; `env` for QEMU) and check what it sees on the
/// default network: a lease in 192.168.122.0/24 with kvnet as router and DNS, a name
/// resolved through kvnet's DNS by the LAN's upstream, a ping to the LAN through NAT;
/// the host reaches it, the LAN does not; the lease list shows its hostname. Returns
/// the guest, still running, for checks of its port.
fn default_network_guest_works(
    lab: &Lab,
    img: &Image,
    name: &str,
    net: &[String],
    env: &[(&str, &str)],
) -> Guest {
    guest_works_wrapped(lab, img, name, net, env, &[])
}

/// [`default_network_guest_works`] with QEMU run through `wrap` (see
/// [`Guest::boot`]).
fn guest_works_wrapped(
    lab: &Lab,
    img: &Image,
    name: &str,
    net: &[String],
    env: &[(&str, &str)],
    wrap: &[String],
) -> Guest {
    with_upstream(lab, || {
        let mut g = Guest::boot(
            img,
            &lab.host,
            name,
            net,
            env,
            &[
                ("lookup", "ext.example"),
                ("ping", LAN_PEER),
                ("hold", "300"),
            ],
            wrap,
        );
        let lease = g.lease(BOOT);
        eprintln!(
            "guest {name}: lease {}/{} after {:.1} s from QEMU start (guest uptime {} s)",
            lease.ip,
            lease.prefix,
            lease.boot_to_lease.as_secs_f64(),
            lease.guest_uptime
        );
        let mac = g.mac.clone();
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
        g
    })
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
