//! kvnet's networks next to other firewalls that drop their traffic: Docker's exact
//! filter/nat skeleton (iptables-nft, `FORWARD` policy drop) with br_netfilter's
//! `bridge-nf-call-iptables=1`, and ufw's default deny. kvnetd lets exactly its
//! bridges' traffic through (the test without those rules shows it failing), keeps
//! its rules when others flush them, and takes them out at destroy.
//! Root only: kvnetd in the lab's namespaces, real packets.

mod lab;

use kvnet_api::request as req;
use lab::*;
use std::time::{Duration, Instant};

const BR: &str = "kvfw0";

fn nat_xml() -> String {
    format!(
        "<network><name>nat</name><forward mode='nat'/><bridge name='{BR}'/>\
         <dns><host ip='192.168.150.9'><hostname>h.test</hostname></host></dns>\
         <ip address='192.168.150.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.150.100' end='192.168.150.150'/></dhcp></ip></network>"
    )
}

fn docker_skeleton(lab: &Lab) {
    docker_skeleton_with(lab, "iptables-nft");
}

fn docker_skeleton_with(lab: &Lab, iptables: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/docker-skeleton.sh");
    let (ok, out) = sh(&lab.host, &format!("sh {script} {iptables}"));
    assert!(ok, "docker skeleton: {out}");
}

fn bridge_nf_call_iptables(lab: &Lab, on: bool) {
    let (ok, out) = sh(
        &lab.host,
        &format!(
            "echo {} > /proc/sys/net/bridge/bridge-nf-call-iptables",
            u8::from(on)
        ),
    );
    assert!(ok, "br_netfilter's sysctl (built into this kernel?): {out}");
}

/// Two guests, .10 and .11, routing through the bridge.
fn two_guests(lab: &mut Lab) -> (usize, usize) {
    let a = lab.guest(BR, "192.168.150.10", "192.168.150.1");
    let b = lab.guest(BR, "192.168.150.11", "192.168.150.1");
    (a, b)
}

fn nat_works(lab: &Lab, g: usize) -> bool {
    ping(&lab.guests[g], LAN_PEER)
}

fn cross_works(lab: &Lab, from: usize) -> bool {
    ping(&lab.guests[from], "192.168.150.11")
}

fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn iptables_s(lab: &Lab, chain: &str) -> String {
    sh(&lab.host, &format!("iptables-nft -w -S {chain}")).1
}

/// `kvnet doctor ARGS`: exit code and output.
fn doctor(lab: &Lab, args: &[&str]) -> (Option<i32>, String) {
    lab.cli_code(&[&["doctor"], args].concat())
}

#[test]
#[ignore = "needs root"]
fn without_kvnets_rules_dockers_drop_cuts_nat_and_guest_to_guest() {
    have("iptables-nft", "iptables");
    let mut lab = Lab::with_env(&[("KVNET_FOREIGN_FIREWALLS", "report")]);
    bridge_nf_call_iptables(&lab, true);
    docker_skeleton(&lab);
    lab.ok(req::Define { xml: nat_xml() });
    let r = lab.ok(req::Start {
        network: "nat".into(),
    });
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("ip filter FORWARD policy drop (docker)")),
        "{:?}",
        r.warnings
    );
    let (g, _) = two_guests(&mut lab);
    assert!(!nat_works(&lab, g), "Docker's FORWARD policy drops NAT");
    assert!(
        !cross_works(&lab, g),
        "and, with br_netfilter, guest to guest"
    );
    let (code, out) = doctor(&lab, &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("PROBLEM foreign-drop [nat]: docker: ip filter FORWARD policy drop"),
        "{out}"
    );
    assert!(out.contains("guest<->guest"), "{out}");
    assert!(out.contains("note br-netfilter"), "{out}");
    assert_eq!(
        iptables_s(&lab, "DOCKER-USER").trim(),
        "-N DOCKER-USER",
        "report changes nothing"
    );
    // The reference's table: without br_netfilter only forwarded traffic is cut.
    bridge_nf_call_iptables(&lab, false);
    assert!(cross_works(&lab, g));
    assert!(!nat_works(&lab, g));
}

#[test]
#[ignore = "needs root"]
fn dockers_drop_is_lifted_for_kvnets_bridge_and_the_rules_come_back_after_a_flush() {
    have("iptables-nft", "iptables");
    let mut lab = Lab::new();
    bridge_nf_call_iptables(&lab, true);
    lab.define_and_start(&nat_xml());
    let (g, _) = two_guests(&mut lab);
    assert!(nat_works(&lab, g) && cross_works(&lab, g));
    // Docker starts after the network: kvnetd sees its commits and answers them.
    docker_skeleton(&lab);
    until(
        "kvnet's rules in DOCKER-USER",
        Duration::from_secs(5),
        || {
            iptables_s(&lab, "DOCKER-USER")
                .matches("kvnet: nat")
                .count()
                == 3
        },
    );
    let rules = iptables_s(&lab, "DOCKER-USER");
    for want in [
        format!(
            "-A DOCKER-USER -i {BR} -o {BR} -m comment --comment \"kvnet: nat cross\" -j ACCEPT"
        ),
        format!(
            "-A DOCKER-USER -d 192.168.150.0/24 -o {BR} -m comment --comment \"kvnet: nat in\" -j ACCEPT"
        ),
        format!(
            "-A DOCKER-USER -s 192.168.150.0/24 -i {BR} -m comment --comment \"kvnet: nat out\" -j ACCEPT"
        ),
    ] {
        assert!(rules.contains(&want), "{want} in\n{rules}");
    }
    assert!(
        !iptables_s(&lab, "FORWARD").contains("kvnet"),
        "FORWARD itself untouched"
    );
    assert!(nat_works(&lab, g), "NAT through Docker's drop");
    assert!(cross_works(&lab, g), "guest to guest through Docker's drop");
    // A port forward from the LAN gets through Docker's drop too (kvnet's "in" accept
    // covers the forwarded destination).
    let l = lab.guests[g].run(|| std::net::TcpListener::bind(("0.0.0.0", 22)).expect("listen"));
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut c, b"ssh");
        }
    });
    let (ok, out) = lab.cli(&[
        "net-forward-add",
        "nat",
        "--proto",
        "tcp",
        "--port",
        "2222",
        "--to",
        "192.168.150.10:22",
    ]);
    assert!(ok, "{out}");
    let got = lab.lan.run(|| {
        let to = format!("{LAN_HOST}:2222").parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let mut b = String::new();
        std::io::Read::read_to_string(&mut c, &mut b).map_err(|e| e.to_string())?;
        Ok::<_, String>(b)
    });
    assert_eq!(
        got,
        Ok("ssh".to_string()),
        "a forward through Docker's drop"
    );
    let (code, out) = doctor(&lab, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("kvnet keeps in other firewalls:"), "{out}");
    assert!(
        out.contains("ip filter DOCKER-USER: -i kvfw0 -s 192.168.150.0/24"),
        "{out}"
    );
    // Docker restarting empties its chains; kvnetd puts its rules back.
    sh(&lab.host, "iptables-nft -w -F DOCKER-USER");
    until("kvnet's rules back", Duration::from_secs(5), || {
        iptables_s(&lab, "DOCKER-USER")
            .matches("kvnet: nat")
            .count()
            == 3
    });
    assert!(nat_works(&lab, g) && cross_works(&lab, g));
    // They go with the network.
    lab.ok(req::Destroy {
        network: "nat".into(),
        wait: true,
    });
    // (The lab's autostarted network 'default' keeps its own.)
    assert!(!iptables_s(&lab, "DOCKER-USER").contains("kvnet: nat"));
    assert!(
        lab.daemon.log().contains("added ip filter DOCKER-USER"),
        "logged"
    );
}

/// The ufw tests run one at a time: ufw and iptables share state across namespaces
/// (the xtables lock in /run), and one's `ufw enable` during the other's `ufw reload`
/// is a coincidence nobody needs to test.
static UFW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// ufw enabled in the lab's host namespace, its configuration a private copy (the
/// directory returned).
fn enable_ufw(lab: &Lab) -> TempDir {
    let etc = temp_dir("ufw", &lab.host);
    let (ok, out) = sh(
        &lab.host,
        &format!(
            "cp -a /etc/ufw/. {d}/ && unshare --mount sh -c 'mount --bind {d} /etc/ufw && ufw --force enable'",
            d = etc.display()
        ),
    );
    assert!(ok, "ufw enable: {out}");
    assert!(iptables_s(lab, "INPUT").contains("-P INPUT DROP"));
    etc
}

/// TFTP through ufw's INPUT deny: kvnet's accept for port 69 on the bridge lets the
/// request in; the transfer's ACKs come back to kvnetd's own port as established
/// traffic, which ufw accepts.
#[test]
#[ignore = "needs root"]
fn ufws_default_deny_is_lifted_for_tftp() {
    let _one_at_a_time = UFW.lock().unwrap_or_else(|e| e.into_inner());
    have("ufw", "ufw");
    have("iptables-nft", "iptables");
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    let etc = enable_ufw(&lab);
    let root = temp_dir("tftp-ufw", &lab.host);
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("f"), &data).expect("file");
    std::fs::set_permissions(
        root.join("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    lab.define_and_start(&format!(
        "<network><name>pxe</name><forward mode='nat'/><bridge name='{BR}'/>\
         <ip address='192.168.150.1' netmask='255.255.255.0'><tftp root='{}'/></ip></network>",
        root.display()
    ));
    let input = iptables_s(&lab, "INPUT");
    assert!(
        input.contains("--dport 69") && input.contains("kvnet: pxe tftp"),
        "{input}"
    );
    let g = lab.guest(BR, "192.168.150.10", "192.168.150.1");
    let got = root.join("got");
    let (ok, out) = sh(
        &lab.guests[g],
        &format!(
            "timeout 30 busybox tftp -g -b 1400 -r f -l {} 192.168.150.1",
            got.display()
        ),
    );
    assert!(ok, "TFTP through ufw: {out}\n{input}");
    assert_eq!(std::fs::read(&got).expect("fetched"), data);
    let (code, out) = doctor(&lab, &["pxe"]);
    assert_eq!(code, Some(0), "{out}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&etc);
}

#[test]
#[ignore = "needs root"]
fn ufws_default_deny_is_lifted_for_dhcp_dns_and_forwarding() {
    let _one_at_a_time = UFW.lock().unwrap_or_else(|e| e.into_inner());
    have("ufw", "ufw");
    have("iptables-nft", "iptables");
    have("dig", "dnsutils");
    let mut lab = Lab::new();
    let etc = enable_ufw(&lab);
    lab.define_and_start(&nat_xml());
    let g = lab.guest(BR, "192.168.150.10", "192.168.150.1");
    let (ok, out) = sh(
        &lab.guests[g],
        "dig +time=1 +tries=2 +short @192.168.150.1 h.test",
    );
    assert!(
        ok && out.trim() == "192.168.150.9",
        "DNS through ufw: {out}"
    );
    assert!(nat_works(&lab, g), "NAT through ufw's FORWARD drop");
    let input = iptables_s(&lab, "INPUT");
    assert!(
        input.contains("kvnet: nat dhcp") && input.contains("kvnet: nat dns-tcp"),
        "{input}"
    );
    let (code, out) = doctor(&lab, &["nat"]);
    assert_eq!(code, Some(0), "{out}");
    // `ufw reload` rewrites its rules; kvnet's stay or come back.
    let (ok, out) = sh(
        &lab.host,
        &format!(
            "unshare --mount sh -c 'mount --bind {} /etc/ufw && ufw reload'",
            etc.display()
        ),
    );
    assert!(ok, "ufw reload: {out}");
    until("DNS after ufw reload", Duration::from_secs(5), || {
        sh(
            &lab.guests[g],
            "dig +time=1 +tries=1 +short @192.168.150.1 h.test",
        )
        .1
        .trim()
            == "192.168.150.9"
    });
    assert!(nat_works(&lab, g), "NAT after ufw reload");
    lab.ok(req::Destroy {
        network: "nat".into(),
        wait: true,
    });
    assert!(!iptables_s(&lab, "INPUT").contains("kvnet: nat"));
    assert!(!iptables_s(&lab, "FORWARD").contains("kvnet: nat"));
    let _ = std::fs::remove_dir_all(&etc);
}

#[test]
#[ignore = "needs root"]
fn iptables_legacy_drops_are_lifted_with_iptables_legacy() {
    have("iptables-legacy", "iptables");
    let mut lab = Lab::new();
    bridge_nf_call_iptables(&lab, true);
    // Docker's rules in x_tables, where nft does not see them.
    docker_skeleton_with(&lab, "iptables-legacy");
    lab.define_and_start(&nat_xml());
    let (g, _) = two_guests(&mut lab);
    assert!(nat_works(&lab, g), "NAT through legacy's FORWARD drop");
    assert!(cross_works(&lab, g), "guest to guest through it");
    let rules = sh(&lab.host, "iptables-legacy -w -S DOCKER-USER").1;
    assert_eq!(rules.matches("kvnet: nat").count(), 3, "{rules}");
    let (code, out) = doctor(&lab, &["nat"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ip filter (iptables-legacy) DOCKER-USER"),
        "{out}"
    );
    lab.ok(req::Destroy {
        network: "nat".into(),
        wait: true,
    });
    assert!(
        !sh(&lab.host, "iptables-legacy -w -S DOCKER-USER")
            .1
            .contains("kvnet: nat")
    );
}
