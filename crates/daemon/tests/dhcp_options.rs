//! `dhcp-option`, `dhcp-option-force`, `dhcp-boot` and `log-dhcp` from libvirt's
//! `<dnsmasq:options>`, seen by a real client (busybox udhcpc) in a guest namespace: what
//! dnsmasq would send it. Root only.

mod lab;

use lab::*;

const NET: &str = "<network><name>dho</name><forward mode='nat'/><bridge name='kvdo0'/>\
    <ip address='192.168.102.1' prefix='24'><dhcp>\
    <range start='192.168.102.100' end='192.168.102.150'/>\
    <host mac='52:54:00:dd:00:01' ip='192.168.102.10'/></dhcp></ip>\
    <dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
    <dnsmasq:option value='dhcp-option-force=option:ntp-server,0.0.0.0,192.168.102.7'/>\
    <dnsmasq:option value='dhcp-option=44,192.168.102.8'/>\
    <dnsmasq:option value='dhcp-option=option:router,192.168.102.254'/>\
    <dnsmasq:option value='dhcp-option=tag:known,option:domain-name,known.lab'/>\
    <dnsmasq:option value='dhcp-boot=pxelinux.0,bootsrv,192.168.102.9'/>\
    <dnsmasq:option value='log-dhcp'/>\
    </dnsmasq:options></network>";

/// One udhcpc exchange from a guest with `mac`: the variables its script saw.
fn lease_env(lab: &mut Lab, mac: &str) -> String {
    let g = lab.guest_with_mac("kvdo0", "", "", Some(mac));
    let script = std::env::temp_dir().join(format!("kvnet-dho-{}.sh", lab.guests[g].name()));
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE ip=$ip router=$router ntpsrv=$ntpsrv \
         wins=$wins domain=$domain boot_file=$boot_file sname=$sname siaddr=$siaddr\"\nexit 0\n",
    )
    .expect("script");
    sh(&lab.guests[g], &format!("chmod +x {}", script.display()));
    let (ok, out) = sh(
        &lab.guests[g],
        &format!(
            "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s {} 2>&1",
            script.display()
        ),
    );
    let _ = std::fs::remove_file(&script);
    assert!(ok, "{out}\n{}", lab.daemon.log());
    out.lines()
        .find_map(|l| l.strip_prefix("LEASE "))
        .unwrap_or_else(|| panic!("no lease: {out}"))
        .to_string()
}

#[test]
#[ignore = "needs root"]
fn a_client_gets_the_dnsmasq_dhcp_options() {
    have("busybox", "busybox-static");
    let mut lab = Lab::new();
    lab.ok(kvnet_api::request::Define { xml: NET.into() });
    let (ok, out) = lab.cli(&["net-start", "dho"]);
    assert!(
        ok && !out.contains("dnsmasq"),
        "every option is applied: {out}"
    );

    let env = lease_env(&mut lab, "52:54:00:dd:00:02");
    // udhcpc's request list has no NTP (42) nor NetBIOS (44): the forced option comes
    // anyway (0.0.0.0 is the server), the plain one does not. The router is replaced.
    assert!(env.contains("router=192.168.102.254 "), "{env}");
    assert!(env.contains("ntpsrv=192.168.102.1 192.168.102.7 "), "{env}");
    assert!(env.contains("wins= "), "{env}");
    // tag:known: not for a client without a <host>.
    assert!(env.contains("domain= "), "{env}");
    // dhcp-boot: file, server name, next server.
    assert!(
        env.contains("boot_file=pxelinux.0 sname=bootsrv siaddr=192.168.102.9"),
        "{env}"
    );

    let env = lease_env(&mut lab, "52:54:00:dd:00:01");
    assert!(env.starts_with("ip=192.168.102.10 "), "{env}");
    assert!(env.contains("domain=known.lab "), "{env}");

    // log-dhcp: each exchange, with what was asked and sent.
    let log = lab.daemon.log();
    assert!(
        log.contains("DHCPDISCOVER from 52:54:00:dd:00:02 (unknown), requested options"),
        "{log}"
    );
}
