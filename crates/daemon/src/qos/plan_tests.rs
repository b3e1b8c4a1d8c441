use super::*;

fn net(extra: &str) -> Network {
    Network::from_xml(&format!(
        "<network><name>n</name><forward mode='nat'/><bridge name='br0'/>{extra}\
         <ip address='10.0.0.1' prefix='24'/></network>"
    ))
    .unwrap()
}

fn rate(avg: u64, peak: Option<u64>, burst: Option<u64>, floor: Option<u64>) -> BandwidthRate {
    BandwidthRate {
        average: Some(avg).filter(|a| *a > 0),
        peak,
        burst,
        floor,
    }
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, last])
}

const GROUPS: &str = "<portgroup name='gold' default='yes'><bandwidth>\
    <inbound average='1000' peak='2000'/><outbound average='500'/></bandwidth></portgroup>\
    <portgroup name='bronze'><bandwidth><inbound average='100'/></bandwidth></portgroup>\
    <portgroup name='plain'/>";

#[test]
fn inbound_only_shapes_the_tap_egress() {
    let n = net("");
    let q = admit(
        &n,
        None,
        Some(rate(1000, Some(2000), Some(64), None)),
        None,
        &[],
    )
    .unwrap();
    let plan = network_plan(&n, "br0", &[("vnet0".into(), Some(mac(1)), q)]);
    assert_eq!(plan[0].egress, TcShape::default(), "the bridge has nothing");
    let p = &plan[1];
    assert_eq!(p.dev, "vnet0");
    assert_eq!(p.ifb, None);
    assert_eq!(p.egress.htb_default, Some(1));
    let c = &p.egress.classes[0];
    assert_eq!(
        (c.minor, c.parent, c.rate, c.ceil),
        (1, 0, 1_000_000, 2_000_000)
    );
    // 64 KiB at 1 MB/s is 65.536 ms: 1_024_000 ticks of 64 ns; at the ceiling half.
    assert_eq!((c.buffer, c.cbuffer), (1_024_000, 512_000));
    assert_eq!(c.quantum, 100_000);
}

#[test]
fn outbound_only_goes_through_an_ifb() {
    let n = net("");
    let q = admit(&n, None, None, Some(rate(500, None, None, None)), &[]).unwrap();
    let plan = network_plan(&n, "br0", &[("vnet0".into(), Some(mac(1)), q)]);
    let p = &plan[1];
    assert_eq!(p.egress, TcShape::default());
    let (name, shape) = p.ifb.as_ref().unwrap();
    assert_eq!(name, "ifb-vnet0");
    let c = &shape.classes[0];
    assert_eq!((c.rate, c.ceil), (500_000, 500_000));
    // tc's default burst: an MTU (1600 bytes) at the rate, 3.2 ms.
    assert_eq!(c.buffer, 50_000);
    assert_eq!(c.quantum, 50_000);
}

#[test]
fn both_directions() {
    let n = net("");
    let q = admit(
        &n,
        None,
        Some(rate(100, None, None, None)),
        Some(rate(200, None, None, None)),
        &[],
    )
    .unwrap();
    let plan = network_plan(&n, "br0", &[("vnet0".into(), None, q)]);
    assert_eq!(plan[1].egress.classes[0].rate, 100_000);
    assert_eq!(plan[1].ifb.as_ref().unwrap().1.classes[0].rate, 200_000);
    // A slow class still gets a quantum of an MTU.
    assert_eq!(plan[1].egress.classes[0].quantum, 10_000);
    assert_eq!(
        leaf_shape(Some(&rate(1, None, None, None))).classes[0].quantum,
        1600
    );
}

#[test]
fn the_default_portgroup_applies_and_explicit_rates_override_it() {
    let n = net(GROUPS);
    let q = admit(&n, None, None, None, &[]).unwrap();
    assert_eq!(q.portgroup.as_deref(), Some("gold"));
    let bw = q.effective(&n);
    assert_eq!(bw.inbound, Some(rate(1000, Some(2000), None, None)));
    assert_eq!(bw.outbound, Some(rate(500, None, None, None)));
    // --inbound replaces the group's inbound only.
    let q = admit(&n, None, Some(rate(10, None, None, None)), None, &[]).unwrap();
    let bw = q.effective(&n);
    assert_eq!(bw.inbound, Some(rate(10, None, None, None)));
    assert_eq!(bw.outbound, Some(rate(500, None, None, None)));
    // A named group; one without bandwidth shapes nothing.
    let q = admit(&n, Some("bronze"), None, None, &[]).unwrap();
    assert_eq!(q.effective(&n).outbound, None);
    let q = admit(&n, Some("plain"), None, None, &[]).unwrap();
    assert_eq!(q.effective(&n), Bandwidth::default());
    let e = admit(&n, Some("silver"), None, None, &[]).unwrap_err();
    assert_eq!(
        e,
        "network 'n' has no portgroup 'silver' (its portgroups: gold, bronze, plain)"
    );
    assert!(
        admit(&net(""), Some("x"), None, None, &[])
            .unwrap_err()
            .ends_with("(its portgroups: none)")
    );
    // Without a default group and without rates: nothing at all.
    assert!(admit(&net(""), None, None, None, &[]).unwrap().is_empty());
}

#[test]
fn floors_need_the_networks_inbound_and_fit_under_its_average() {
    let plain = net("");
    let e = admit(&plain, None, Some(rate(0, None, None, Some(10))), None, &[]).unwrap_err();
    assert!(
        e.contains("a floor needs an inbound average on network 'n'"),
        "{e}"
    );
    let n = net("<bandwidth><inbound average='1000' peak='1500'/></bandwidth>");
    let a = admit(&n, None, Some(rate(0, None, None, Some(600))), None, &[]).unwrap();
    assert_eq!(a.class, Some(3));
    let e = admit(
        &n,
        None,
        Some(rate(0, None, None, Some(500))),
        None,
        std::slice::from_ref(&a),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "floor 500 kB/s with the other ports' floors (600 kB/s) would exceed network 'n''s inbound average of 1000 kB/s"
    );
    let b = admit(
        &n,
        None,
        Some(rate(0, None, None, Some(400))),
        None,
        std::slice::from_ref(&a),
    )
    .unwrap();
    assert_eq!(b.class, Some(4));
    // The bridge: the network's class, the default class with what the floors leave,
    // a class per floor under the network's ceiling, and a filter per guest MAC.
    let plan = network_plan(
        &n,
        "br0",
        &[
            ("vnet0".into(), Some(mac(1)), a.clone()),
            ("vnet1".into(), Some(mac(2)), b.clone()),
        ],
    );
    let br = &plan[0].egress;
    assert_eq!(br.htb_default, Some(2));
    let rates: Vec<(u16, u16, u64, u64)> = br
        .classes
        .iter()
        .map(|c| (c.minor, c.parent, c.rate, c.ceil))
        .collect();
    assert_eq!(
        rates,
        [
            (1, 0, 1_000_000, 1_500_000),
            (2, 1, 1_000, 1_500_000),
            (3, 1, 600_000, 1_500_000),
            (4, 1, 400_000, 1_500_000)
        ]
    );
    assert_eq!(
        br.filters,
        [
            MacFilter {
                prio: 3,
                mac: mac(1).0,
                class: 3
            },
            MacFilter {
                prio: 4,
                mac: mac(2).0,
                class: 4
            }
        ]
    );
    // A floor alone does not shape the TAP.
    assert_eq!(plan[1].egress, TcShape::default());
    // A freed class is taken again.
    let c = admit(&n, None, Some(rate(0, None, None, Some(100))), None, &[b]).unwrap();
    assert_eq!(c.class, Some(3));
}

#[test]
fn the_networks_own_bandwidth_is_on_the_bridge() {
    let n = net(
        "<bandwidth><inbound average='2000'/><outbound average='1000' burst='128'/></bandwidth>",
    );
    let plan = network_plan(&n, "virbr9", &[]);
    assert_eq!(plan.len(), 1);
    let br = &plan[0];
    assert_eq!(br.egress.htb_default, Some(2));
    assert_eq!(br.egress.classes.len(), 2);
    assert_eq!(br.egress.classes[1].rate, 2_000_000);
    let (name, shape) = br.ifb.as_ref().unwrap();
    assert_eq!(name, "ifb-virbr9");
    assert_eq!(shape.classes[0].rate, 1_000_000);
}

#[test]
fn updates_change_only_what_differs() {
    let n = net("<bandwidth><inbound average='1000'/></bandwidth>");
    let q = |f: u64, c: u16| PortQos {
        inbound: Some(rate(0, None, None, Some(f))),
        class: Some(c),
        ..PortQos::default()
    };
    let one = network_plan(&n, "br0", &[("v0".into(), Some(mac(1)), q(100, 3))]);
    let two = network_plan(
        &n,
        "br0",
        &[
            ("v0".into(), Some(mac(1)), q(100, 3)),
            ("v1".into(), Some(mac(2)), q(200, 4)),
        ],
    );
    // From nothing: root, classes parents first, filters.
    let fresh = changes(&TcShape::default(), &one[0].egress);
    assert!(matches!(fresh[0], TcChange::AddRoot(2)));
    assert!(matches!(&fresh[1], TcChange::PutClass(c) if c.minor == 1));
    assert!(matches!(fresh.last(), Some(TcChange::AddFilter(f)) if f.prio == 3));
    // The same again: nothing.
    assert_eq!(changes(&one[0].egress, &one[0].egress), []);
    // A second floor: the default class shrinks, the new class and its filter come.
    let add = changes(&one[0].egress, &two[0].egress);
    let kinds: Vec<String> = add
        .iter()
        .map(|c| match c {
            TcChange::PutClass(c) => format!("class {}", c.minor),
            TcChange::AddFilter(f) => format!("filter {}", f.prio),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["class 2", "class 4", "filter 4"]);
    // And back: the filter goes before its class.
    let del = changes(&two[0].egress, &one[0].egress);
    assert_eq!(
        del.iter()
            .filter(|c| !matches!(c, TcChange::PutClass(_)))
            .cloned()
            .collect::<Vec<_>>(),
        [TcChange::DelFilter(4), TcChange::DelClass(4)]
    );
    // Shaping removed: the root goes; the IFB's redirect comes and goes alone.
    assert_eq!(
        changes(&one[0].egress, &TcShape::default()),
        [TcChange::DelRoot]
    );
    let to = TcShape {
        redirect: Some(7),
        ..TcShape::default()
    };
    assert_eq!(
        changes(&TcShape::default(), &to),
        [TcChange::AddRedirect(7)]
    );
    let moved = TcShape {
        redirect: Some(8),
        ..TcShape::default()
    };
    assert_eq!(
        changes(&to, &moved),
        [TcChange::DelIngress, TcChange::AddRedirect(8)]
    );
    assert_eq!(changes(&to, &TcShape::default()), [TcChange::DelIngress]);
}

#[test]
fn a_portgroup_update_reaches_its_ports() {
    let before = net(GROUPS);
    let after = net(&GROUPS.replace("average='1000' peak='2000'", "average='3000'"));
    let q = admit(&before, None, None, None, &[]).unwrap();
    let p = |n: &Network| network_plan(n, "br0", &[("v0".into(), None, q.clone())]);
    let ch = changes(&p(&before)[1].egress, &p(&after)[1].egress);
    assert!(
        matches!(&ch[..], [TcChange::PutClass(c)] if c.rate == 3_000_000),
        "{ch:?}"
    );
}

#[test]
fn a_portgroup_update_must_leave_the_floors_under_the_average() {
    let g = |floor: u64| {
        net(&format!(
            "<bandwidth><inbound average='1000'/></bandwidth><portgroup name='g' default='yes'>\
             <bandwidth><inbound floor='{floor}'/></bandwidth></portgroup>"
        ))
    };
    let q = admit(&g(400), None, None, None, &[]).unwrap();
    let two = [
        q.clone(),
        PortQos {
            class: Some(4),
            ..q
        },
    ];
    assert_eq!(floors_fit(&g(500), &two), Ok(()));
    assert_eq!(
        floors_fit(&g(600), &two).unwrap_err(),
        "its ports' floors (1200 kB/s) would exceed its inbound average of 1000 kB/s"
    );
    assert_eq!(floors_fit(&net(""), &[]), Ok(()));
}

/// A direct (macvtap) network in `mode` on eth1.
fn direct_net(mode: &str, extra: &str) -> Network {
    Network::from_xml(&format!(
        "<network><name>d</name><forward mode='{mode}'><interface dev='eth1'/></forward>\
         {extra}</network>"
    ))
    .unwrap()
}

/// The rates (bytes/s) of a macvtap's egress and of the IFB behind its ingress.
fn rates(p: &DevPlan) -> (Option<u64>, Option<u64>) {
    (
        p.egress.classes.first().map(|c| c.rate),
        p.ifb.as_ref().map(|(_, s)| s.classes[0].rate),
    )
}

#[test]
fn a_macvtap_is_shaped_the_other_way_round_from_a_tap() {
    for mode in ["bridge", "private", "vepa", "passthrough"] {
        let n = direct_net(mode, "");
        let q = admit(
            &n,
            None,
            Some(rate(1000, Some(2000), None, None)),
            Some(rate(500, None, None, None)),
            &[],
        )
        .unwrap();
        let plan = direct_plan(&n, &[("macvtap0".into(), q)]);
        // No bridge: the macvtap only.
        assert_eq!(plan.len(), 1, "{mode}");
        let p = &plan[0];
        assert_eq!(p.dev, "macvtap0");
        // From the guest (outbound) leaves through the egress ...
        assert_eq!(p.egress.htb_default, Some(1));
        assert_eq!(p.egress.classes.len(), 1);
        assert_eq!(rates(p), (Some(500_000), Some(1_000_000)), "{mode}");
        // ... to the guest (inbound, with its peak) through the IFB.
        let (name, shape) = p.ifb.as_ref().unwrap();
        assert_eq!(name, "ifb-macvtap0");
        assert_eq!(shape.classes[0].ceil, 2_000_000);
        assert_eq!(p.egress.redirect, None, "sync sets the redirect");
    }
}

#[test]
fn one_direction_shapes_one_side_of_a_macvtap() {
    let n = direct_net("bridge", "");
    let q = admit(&n, None, Some(rate(100, None, None, None)), None, &[]).unwrap();
    let p = &direct_plan(&n, &[("m0".into(), q)])[0];
    assert_eq!(p.egress, TcShape::default());
    assert_eq!(rates(p), (None, Some(100_000)));
    let q = admit(&n, None, None, Some(rate(200, None, None, None)), &[]).unwrap();
    let p = &direct_plan(&n, &[("m0".into(), q)])[0];
    assert_eq!(rates(p), (Some(200_000), None));
    // A port that wants nothing is listed, so that what it had goes.
    let p = &direct_plan(&n, &[("m0".into(), PortQos::default())])[0];
    assert_eq!(
        (p.egress.clone(), p.ifb.clone()),
        (TcShape::default(), None)
    );
}

#[test]
fn a_macvtaps_rates_come_from_the_port_then_its_portgroup_then_the_default_one() {
    let n = direct_net("vepa", GROUPS);
    let plan = |pg: Option<&str>, i: Option<u64>, o: Option<u64>| {
        let r = |v: Option<u64>| v.map(|v| rate(v, None, None, None));
        let q = admit(&n, pg, r(i), r(o), &[]).unwrap();
        rates(&direct_plan(&n, &[("m0".into(), q)])[0])
    };
    // The default portgroup (gold: inbound 1000, outbound 500).
    assert_eq!(plan(None, None, None), (Some(500_000), Some(1_000_000)));
    // The port's own direction replaces the group's, the other stays the group's.
    assert_eq!(plan(None, Some(10), None), (Some(500_000), Some(10_000)));
    assert_eq!(plan(None, None, Some(20)), (Some(20_000), Some(1_000_000)));
    // A named portgroup instead of the default one: bronze has inbound 100 only.
    assert_eq!(plan(Some("bronze"), None, None), (None, Some(100_000)));
    assert_eq!(
        plan(Some("bronze"), None, Some(30)),
        (Some(30_000), Some(100_000))
    );
    // One without <bandwidth> shapes nothing, and the port's own rates still apply.
    assert_eq!(plan(Some("plain"), None, None), (None, None));
    assert_eq!(
        plan(Some("plain"), Some(40), Some(50)),
        (Some(50_000), Some(40_000))
    );
}

#[test]
fn a_direct_networks_own_bandwidth_shapes_no_macvtap() {
    // As libvirt: a port takes its own or its portgroup's, never the network's, and
    // without a bridge the network's is applied nowhere (model's not_applied).
    let n = direct_net(
        "bridge",
        "<bandwidth><inbound average='100'/><outbound average='100'/></bandwidth>",
    );
    let q = admit(&n, None, None, None, &[]).unwrap();
    assert!(q.is_empty());
    let plan = direct_plan(&n, &[("m0".into(), q)]);
    assert_eq!(rates(&plan[0]), (None, None));
}

#[test]
fn a_floor_is_refused_on_a_port_of_a_direct_network_and_ignored_from_its_portgroup() {
    let n = direct_net("bridge", "");
    let e = admit(&n, None, Some(rate(100, None, None, Some(50))), None, &[]).unwrap_err();
    assert_eq!(
        e,
        "a floor needs a bridge's traffic classes: it is supported on nat, route, open and isolated networks, not on a direct network"
    );
    // A portgroup's floor: its average applies, the floor takes no class.
    let n = direct_net(
        "bridge",
        "<portgroup name='f' default='yes'><bandwidth><inbound average='300' floor='100'/>\
         </bandwidth></portgroup>",
    );
    let q = admit(&n, None, None, None, &[]).unwrap();
    assert_eq!((q.portgroup.as_deref(), q.class), (Some("f"), None));
    let p = &direct_plan(&n, &[("m0".into(), q.clone())])[0];
    assert_eq!(rates(p), (None, Some(300_000)));
    assert_eq!(p.ifb.as_ref().unwrap().1.classes.len(), 1);
    // Floors the network cannot hold do not stop a portgroup update there.
    assert_eq!(floors_fit(&n, &[q.clone(), q]), Ok(()));
}

#[test]
fn a_hostdev_port_cannot_be_shaped() {
    let n = Network::from_xml(
        "<network><name>h</name><forward mode='hostdev' managed='yes'><pf dev='p'/></forward></network>",
    )
    .unwrap();
    for (i, o) in [
        (Some(rate(100, None, None, None)), None),
        (None, Some(rate(100, None, None, None))),
    ] {
        let e = admit(&n, None, i, o, &[]).unwrap_err();
        assert!(e.starts_with("a hostdev port is a virtual function"), "{e}");
    }
    assert_eq!(admit(&n, None, None, None, &[]), Ok(PortQos::default()));
}

#[test]
fn a_macvtaps_shaping_changes_only_what_differs() {
    let n = direct_net("bridge", GROUPS);
    let after = direct_net(
        "bridge",
        &GROUPS.replace("<outbound average='500'/>", "<outbound average='800'/>"),
    );
    let q = admit(&n, None, None, None, &[]).unwrap();
    let p = |n: &Network| direct_plan(n, &[("m0".into(), q.clone())]).remove(0);
    let (before, now) = (p(&n), p(&after));
    // From nothing: the root and its class; the same again: nothing.
    let fresh = changes(&TcShape::default(), &before.egress);
    assert!(
        matches!(&fresh[..], [TcChange::AddRoot(1), TcChange::PutClass(c)] if c.rate == 500_000)
    );
    assert_eq!(changes(&before.egress, &before.egress), []);
    let ifb = &before.ifb.as_ref().unwrap().1;
    assert_eq!(changes(ifb, ifb), []);
    // A portgroup update: the egress class only; the IFB (inbound) as it was.
    let ch = changes(&before.egress, &now.egress);
    assert!(
        matches!(&ch[..], [TcChange::PutClass(c)] if c.rate == 800_000),
        "{ch:?}"
    );
    assert_eq!(before.ifb, now.ifb);
}
