//! `<vlan>` on bridges, root only, through the kernel's bridge VLAN filtering. On a
//! kernel without it (CONFIG_BRIDGE_VLAN_FILTERING off, as on the machine these tests
//! were written on) the networks that need it are refused at start, naming the missing
//! feature, and nothing is left behind. On a kernel with it, the same test checks the
//! traffic instead: guests of two access networks on VLAN 10 talk, a guest on VLAN 20
//! (through a portgroup) hears neither, and a trunk guest gets both, tagged. Never a silent skip.

mod lab;

use kvnet_api::CreatedPort;
use lab::frames::*;
use lab::*;
use std::io::Write;
use std::time::Duration;

fn net(name: &str, vlan: &str) -> String {
    format!(
        "<network><name>{name}</name><forward mode='bridge'/><bridge name='kvhost0'/>{vlan}</network>"
    )
}

fn create(lab: &Lab, net: &str, mac: &str) -> CreatedPort {
    let (ok, out) = lab.cli(&["port-create", net, "--mac", mac, "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn kernel_filters_vlans(lab: &Lab) -> bool {
    let (ok, _) = sh(
        &lab.host,
        "ip link add kvprobe0 type bridge vlan_filtering 1",
    );
    let _ = sh(&lab.host, "ip link del kvprobe0");
    ok
}

/// The 802.1Q tag of a frame, if it has one.
fn tag(f: &[u8]) -> Option<u16> {
    (f.len() >= 18 && f[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff)
}

fn from(f: &[u8], mac: [u8; 6]) -> bool {
    f.len() >= 14 && f[6..12] == mac
}

#[test]
#[ignore = "needs root"]
fn vlans_isolate_guests_or_are_refused_naming_the_kernel_feature() {
    let lab = Lab::new();
    ip(&lab.host, "link add kvhost0 type bridge");
    ip(&lab.host, "link set kvhost0 up");
    // Any kernel: tags a bridge cannot carry.
    lab.ok(kvnet_api::request::Define {
        xml: net("v4095", "<vlan><tag id='4095'/></vlan>"),
    });
    let (ok, out) = lab.cli(&["net-start", "v4095"]);
    assert!(
        !ok && out.contains("vlan tag 4095 cannot be used on a Linux bridge (1 to 4094)"),
        "{out}"
    );

    if !kernel_filters_vlans(&lab) {
        eprintln!("this kernel has no bridge VLAN filtering: checking the refusals");
        let managed = "<network><name>vm</name><bridge name='kvvm0'/><vlan><tag id='10'/></vlan>\
                       <ip address='10.81.0.1' prefix='24'/></network>";
        lab.ok(kvnet_api::request::Define {
            xml: managed.into(),
        });
        let (ok, out) = lab.cli(&["net-start", "vm"]);
        assert!(
            !ok && out.contains("network 'vm' asks for VLANs (<vlan>), which need VLAN filtering on its bridge, and this kernel has none (CONFIG_BRIDGE_VLAN_FILTERING is off)"),
            "{out}"
        );
        assert!(
            !lab.links().contains("kvvm0"),
            "the bridge is rolled back:\n{}",
            lab.links()
        );
        lab.ok(kvnet_api::request::Define {
            xml: net("v10", "<vlan><tag id='10'/></vlan>"),
        });
        let (ok, out) = lab.cli(&["net-start", "v10"]);
        assert!(
            !ok && out.contains("CONFIG_BRIDGE_VLAN_FILTERING is off"),
            "{out}"
        );
        // A portgroup's <vlan> needs the same.
        lab.ok(kvnet_api::request::Define {
            xml: net(
                "pg",
                "<portgroup name='twenty'><vlan><tag id='20'/></vlan></portgroup>",
            ),
        });
        let (ok, out) = lab.cli(&["net-start", "pg"]);
        assert!(
            !ok && out.contains("CONFIG_BRIDGE_VLAN_FILTERING is off"),
            "{out}"
        );
        // Without <vlan> the same bridge works.
        lab.ok(kvnet_api::request::Define {
            xml: net("plain", ""),
        });
        let (ok, out) = lab.cli(&["net-start", "plain"]);
        assert!(ok, "{out}");
        return;
    }

    // A host bridge that does not filter VLANs is not changed by kvnet: refused.
    lab.ok(kvnet_api::request::Define {
        xml: net("v10", "<vlan><tag id='10'/></vlan>"),
    });
    let (ok, out) = lab.cli(&["net-start", "v10"]);
    assert!(!ok && out.contains("does not filter VLANs"), "{out}");
    ip(&lab.host, "link set kvhost0 type bridge vlan_filtering 1");
    lab.ok(kvnet_api::request::Start {
        network: "v10".into(),
    });
    // VLAN 20 through a portgroup: a port naming it is on 20, one naming none on the
    // network's 10.
    lab.define_and_start(&net(
        "pg",
        "<vlan><tag id='10'/></vlan><portgroup name='twenty'><vlan><tag id='20'/></vlan></portgroup>",
    ));
    lab.define_and_start(&net(
        "trunk",
        "<vlan trunk='yes'><tag id='10'/><tag id='20'/></vlan>",
    ));
    let (ma, mb, mc, mt) = (
        "52:54:00:81:00:0a",
        "52:54:00:81:00:0b",
        "52:54:00:81:00:0c",
        "52:54:00:81:00:0d",
    );
    let a = create(&lab, "v10", ma);
    let b = create(&lab, "pg", mb);
    let (ok, out) = lab.cli(&[
        "port-create",
        "pg",
        "--mac",
        mc,
        "--portgroup",
        "twenty",
        "--json",
    ]);
    assert!(ok, "{out}");
    let c: CreatedPort = serde_json::from_str(&out).unwrap();
    let t = create(&lab, "trunk", mt);
    let vlans = sh(&lab.host, "bridge vlan show").1;
    assert!(vlans.contains(&a.port.ifname), "{vlans}");
    let (mut ta, mut tb, mut tc, mut tt) = (
        open_tap(&lab, &a.port.ifname),
        open_tap(&lab, &b.port.ifname),
        open_tap(&lab, &c.port.ifname),
        open_tap(&lab, &t.port.ifname),
    );
    std::thread::sleep(Duration::from_millis(300));
    for f in [&mut ta, &mut tb, &mut tc, &mut tt] {
        frames_for(f, Duration::from_millis(100));
    }
    let (a_mac, c_mac) = (mac_bytes(ma), mac_bytes(mc));
    ta.write_all(&eth(
        [0xff; 6],
        a_mac,
        0x0806,
        &arp(1, a_mac, [10, 0, 0, 10], [10, 0, 0, 99]),
    ))
    .unwrap();
    tc.write_all(&eth(
        [0xff; 6],
        c_mac,
        0x0806,
        &arp(1, c_mac, [10, 0, 0, 12], [10, 0, 0, 99]),
    ))
    .unwrap();
    let d = Duration::from_millis(500);
    let (sb, sc, st, sa) = (
        frames_for(&mut tb, d),
        frames_for(&mut tc, d),
        frames_for(&mut tt, d),
        frames_for(&mut ta, d),
    );
    assert!(
        sb.iter().any(|f| from(f, a_mac) && tag(f).is_none()),
        "b hears a, untagged"
    );
    assert!(!sb.iter().any(|f| from(f, c_mac)), "b does not hear c");
    assert!(!sa.iter().any(|f| from(f, c_mac)), "a does not hear c");
    assert!(!sc.iter().any(|f| from(f, a_mac)), "c does not hear a");
    assert!(
        st.iter().any(|f| from(f, a_mac) && tag(f) == Some(10)),
        "the trunk gets a's, tagged 10"
    );
    assert!(
        st.iter().any(|f| from(f, c_mac) && tag(f) == Some(20)),
        "the trunk gets c's, tagged 20"
    );
}
