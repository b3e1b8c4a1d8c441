use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const KV: &str = KVNET_NS;

/// A NAT network on 10.0.0.0/24 and fd00::/64 with `meta` as its `<metadata>` content.
fn nat_net(meta: &str) -> String {
    format!(
        "<network>\n  <name>fw</name>\n  <metadata>{meta}</metadata>\n  <forward mode='nat'/>\n  \
             <ip address='10.0.0.1' prefix='24'/>\n  <ip family='ipv6' address='fd00::1' prefix='64'/>\n</network>"
    )
}

/// `<kvnet:network>` holding `inner`.
fn kv(inner: &str) -> String {
    format!("<kvnet:network xmlns:kvnet='{KV}'>{inner}</kvnet:network>")
}

fn net(xml: &str) -> Network {
    Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

fn reject(xml: &str) -> ModelError {
    match Network::from_xml(xml) {
        Ok(n) => panic!("accepted:\n{}", n.to_xml()),
        Err(e) => e,
    }
}

fn pr(start: u16, end: u16) -> PortRange {
    PortRange { start, end }
}

fn fwd(proto: FwdProto, address: Option<&str>, ports: PortRange, to: &str) -> PortForward {
    PortForward {
        proto,
        address: address.map(|a| a.parse().unwrap()),
        ports,
        to: GuestRef::parse(to).unwrap(),
        to_ports: ports,
    }
}

fn ext(forwards: Vec<PortForward>) -> KvnetExt {
    KvnetExt {
        forwards,
        ..KvnetExt::default()
    }
}

#[test]
fn filterref_round_trips_and_is_checked() {
    let n = net(&nat_net(&kv("<kvnet:filterref filter='clean-traffic'/>")));
    let e = n.kvnet_ext().unwrap();
    assert_eq!(e.filter, TrafficFilter::CleanTraffic);
    assert!(e.forwards.is_empty() && !e.is_empty());
    let again = net(&n.to_xml());
    assert_eq!(again.kvnet_ext().unwrap(), e);
    assert!(
        n.to_xml()
            .contains(r#"<kvnet:filterref filter="clean-traffic"/>"#)
    );
    // Set to none, the element goes (and the empty metadata with it).
    let mut m = n.clone();
    m.set_kvnet_ext(&KvnetExt::default());
    assert!(!m.to_xml().contains("kvnet"), "{}", m.to_xml());

    let bad = [
        (
            "<kvnet:filterref filter='no-spoof'/>",
            "unknown traffic filter 'no-spoof'",
        ),
        ("<kvnet:filterref/>", "missing required attribute 'filter'"),
        (
            "<kvnet:filterref filter='clean-traffic' x='1'/>",
            "unknown attribute 'x'",
        ),
        (
            "<kvnet:filterref filter='clean-traffic'><kvnet:parameter/></kvnet:filterref>",
            "take no parameters",
        ),
        (
            "<kvnet:filterref filter='clean-traffic'/><kvnet:filterref filter='none'/>",
            "one <filterref>",
        ),
    ];
    for (inner, want) in bad {
        let e = reject(&nat_net(&kv(inner)));
        assert!(e.to_string().contains(want), "{inner}: {e}");
    }
    // A network without a bridge has no ports to filter.
    let direct = format!(
        "<network><name>d</name><metadata>{}</metadata><forward mode='bridge'>\
             <interface dev='eth9'/></forward></network>",
        kv("<kvnet:filterref filter='clean-traffic'/>")
    );
    let e = reject(&direct);
    assert!(
        e.to_string().contains("needs a network with a bridge"),
        "{e}"
    );
}

/// The message of the error `check_kvnet_ext` gives for these forwards on a NAT network.
fn check_msg(forwards: Vec<PortForward>) -> String {
    let n = net(&nat_net(""));
    n.check_kvnet_ext(&ext(forwards)).unwrap_err().message
}

const ROUND_TRIP_IN: &str = r#"<network>
  <name>fw</name>
  <metadata>
    <app:info xmlns:app="urn:app" v="1"/>
    <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
      <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
      <!-- DNS -->
      <kvnet:forward proto="udp" port="53" to="52:54:00:AA:BB:CC" toPort="53"/>
    </kvnet:network>
    <other:x xmlns:other="urn:other"/>
  </metadata>
  <forward mode='nat'/>
  <bridge name='virbr7'/>
  <ip address='10.0.0.1' prefix='24'/>
</network>
"#;

const ROUND_TRIP_OUT: &str = r#"<network>
  <name>fw</name>
  <metadata>
    <app:info xmlns:app="urn:app" v="1"/>
    <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
      <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
      <kvnet:forward proto="udp" port="53" to="52:54:00:aa:bb:cc"/>
      <kvnet:forward proto="tcp" port="2222" to="10.0.0.5" toPort="22"/>
    </kvnet:network>
    <other:x xmlns:other="urn:other"/>
  </metadata>
  <forward mode='nat'/>
  <bridge name='virbr7' stp='on' delay='0'/>
  <ip address='10.0.0.1' prefix='24'>
  </ip>
</network>
"#;

#[test]
fn round_trip_keeps_foreign_metadata_and_its_order() {
    let mut n = net(ROUND_TRIP_IN);
    let mut e = n.kvnet_ext().unwrap();
    assert_eq!(
        e.forwards,
        vec![
            PortForward {
                proto: FwdProto::Tcp,
                address: Some("192.0.2.7".parse().unwrap()),
                ports: pr(8080, 8081),
                to: GuestRef::Name("vm1".into()),
                to_ports: pr(80, 81),
            },
            PortForward {
                proto: FwdProto::Udp,
                address: None,
                ports: pr(53, 53),
                to: GuestRef::Mac("52:54:00:aa:bb:cc".into()),
                to_ports: pr(53, 53),
            },
        ]
    );
    e.forwards.push(PortForward {
        to_ports: pr(22, 22),
        ..fwd(FwdProto::Tcp, None, pr(2222, 2222), "10.0.0.5")
    });
    n.set_kvnet_ext(&e);
    assert_eq!(n.to_xml(), ROUND_TRIP_OUT);
    // What kvnet writes reads back the same, and defines again.
    let back = net(&n.to_xml());
    assert_eq!(back, n);
    assert_eq!(back.kvnet_ext().unwrap(), e);
}

#[test]
fn set_then_read_back_and_serde() {
    let mut n = net(&nat_net("").replace("  <metadata></metadata>\n", ""));
    assert_eq!(n.metadata, None);
    assert_eq!(n.kvnet_ext().unwrap(), KvnetExt::default());
    let e = ext(vec![
        PortForward {
            to_ports: pr(80, 81),
            ..fwd(FwdProto::Tcp, Some("192.0.2.7"), pr(8080, 8081), "vm1")
        },
        fwd(FwdProto::Udp, Some("2001:db8::7"), pr(53, 53), "fd00::53"),
    ]);
    n.set_kvnet_ext(&e);
    assert_eq!(n.metadata.as_ref().map(Vec::len), Some(1));
    assert_eq!(n.kvnet_ext().unwrap(), e);
    n.validate().unwrap();
    let x = n.to_xml();
    assert!(
            x.contains(
                "  <metadata>\n    <kvnet:network xmlns:kvnet=\"http://kvnet.org/xmlns/network/1.0\">\n      \
                 <kvnet:forward proto=\"tcp\" address=\"192.0.2.7\" port=\"8080-8081\" to=\"vm1\" toPort=\"80-81\"/>\n      \
                 <kvnet:forward proto=\"udp\" address=\"2001:db8::7\" port=\"53\" to=\"fd00::53\"/>\n    \
                 </kvnet:network>\n  </metadata>\n"
            ),
            "{x}"
        );
    assert_eq!(net(&x).kvnet_ext().unwrap(), e);
    // Setting it again changes nothing.
    let before = n.clone();
    n.set_kvnet_ext(&e);
    assert_eq!(n, before);

    let j = serde_json::to_string(&e).unwrap();
    assert_eq!(
        j,
        r#"{"forwards":[{"proto":"tcp","address":"192.0.2.7","ports":{"start":8080,"end":8081},"to":{"name":"vm1"},"to_ports":{"start":80,"end":81}},{"proto":"udp","address":"2001:db8::7","ports":{"start":53,"end":53},"to":{"addr":"fd00::53"},"to_ports":{"start":53,"end":53}}]}"#
    );
    assert_eq!(serde_json::from_str::<KvnetExt>(&j).unwrap(), e);
    assert_eq!(
        serde_json::from_str::<KvnetExt>("{}").unwrap(),
        KvnetExt::default()
    );
}

#[test]
fn empty_ext_removes_the_element() {
    // Foreign metadata stays, in order.
    let mut n = net(ROUND_TRIP_IN);
    n.set_kvnet_ext(&KvnetExt::default());
    let names: Vec<&str> = n
        .metadata
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["app:info", "other:x"]);
    assert_eq!(n.kvnet_ext().unwrap(), KvnetExt::default());

    // Only kvnet's element: <metadata> goes too.
    let mut n = net(&nat_net(&kv(
        "<kvnet:forward proto='tcp' port='80' to='vm1'/>",
    )));
    n.set_kvnet_ext(&KvnetExt::default());
    assert_eq!(n.metadata, None);
    assert!(!n.to_xml().contains("metadata"), "{}", n.to_xml());

    // Nothing to remove: <metadata/> (or its absence) is left as it was.
    let mut n = net(&nat_net(""));
    assert_eq!(n.metadata, Some(vec![]));
    n.set_kvnet_ext(&KvnetExt::default());
    assert_eq!(n.metadata, Some(vec![]));
    n.metadata = None;
    n.set_kvnet_ext(&KvnetExt::default());
    assert_eq!(n.metadata, None);
}

#[test]
fn a_hand_built_duplicate_kvnet_element_is_dropped() {
    let mut n = net(&nat_net(""));
    let one = ext(vec![fwd(FwdProto::Tcp, None, pr(80, 80), "vm1")]);
    n.set_kvnet_ext(&one);
    let kv_elem = n.metadata.as_ref().unwrap()[0].clone();
    let foreign = XmlElement {
        name: "a:b".into(),
        namespaces: vec![("a".into(), "urn:a".into())],
        ..XmlElement::default()
    };
    n.metadata = Some(vec![
        foreign.clone(),
        kv_elem.clone(),
        kv_elem,
        foreign.clone(),
    ]);
    let two = ext(vec![fwd(FwdProto::Udp, None, pr(53, 53), "vm2")]);
    n.set_kvnet_ext(&two);
    let m = n.metadata.as_ref().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0], foreign);
    assert_eq!(m[2], foreign);
    assert_eq!(n.kvnet_ext().unwrap(), two);
}

#[test]
fn any_prefix_bound_to_the_namespace() {
    let want = ext(vec![fwd(FwdProto::Tcp, None, pr(80, 80), "vm1")]);
    for meta in [
        // Another prefix, the child inheriting it from the root element.
        format!(
            "<k:network xmlns:k='{KV}'>\n <k:forward proto='tcp' port='80' to='vm1'/>\n</k:network>"
        ),
        // The default namespace.
        format!("<network xmlns='{KV}'><forward proto='tcp' port='80' to='vm1'/></network>"),
        // A child declaring a prefix of its own for the same namespace.
        format!(
            "<k:network xmlns:k='{KV}'><j:forward xmlns:j='{KV}' proto='tcp' port='80' to='vm1'/></k:network>"
        ),
    ] {
        let mut n = net(&nat_net(&meta));
        assert_eq!(n.kvnet_ext().unwrap(), want, "{meta}");
        // Written back with kvnet's own prefix.
        n.set_kvnet_ext(&want);
        let x = n.to_xml();
        assert!(
            x.contains("<kvnet:forward proto=\"tcp\" port=\"80\" to=\"vm1\"/>"),
            "{x}"
        );
        assert_eq!(net(&x).kvnet_ext().unwrap(), want);
    }
    // The prefix declared on <network> itself, above <metadata>.
    let xml = nat_net("<k:network><k:forward proto='tcp' port='80' to='vm1'/></k:network>")
        .replacen("<network>", &format!("<network xmlns:k='{KV}'>"), 1);
    let n = net(&xml);
    assert_eq!(n.kvnet_ext().unwrap(), want);
    assert_eq!(net(&n.to_xml()).kvnet_ext().unwrap(), want);
    // The child's prefix declared on <metadata>, the root's on the root itself.
    let xml = nat_net(&format!(
        "<k:network xmlns:k='{KV}'><j:forward proto='tcp' port='80' to='vm1'/></k:network>"
    ))
    .replacen("<metadata>", &format!("<metadata xmlns:j='{KV}'>"), 1);
    let n = net(&xml);
    assert_eq!(n.kvnet_ext().unwrap(), want);
    assert_eq!(net(&n.to_xml()), n);
}

/// The error `from_xml` gives for `meta` in a NAT network: (line, element, message).
fn meta_err(meta: &str) -> (Option<u32>, String, String) {
    let e = reject(&nat_net(meta));
    (e.line, e.element, e.message)
}

#[test]
fn unknown_elements_and_attributes_are_errors() {
    let f1 = "network/metadata/kvnet:network/kvnet:forward[1]";
    let f2 = "network/metadata/kvnet:network/kvnet:forward[2]";
    let root = "network/metadata/kvnet:network";
    let cases: Vec<(String, &str, String)> = vec![
        (
            kv("<kvnet:forward proto='tcp' port='80' to='vm1' bogus='1'/>"),
            f1,
            "unknown attribute 'bogus'".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80' to='vm1' kvnet:to='vm2'/>"),
            f1,
            "unknown attribute 'kvnet:to'".into(),
        ),
        (
            format!("<kvnet:network xmlns:kvnet='{KV}' version='2'/>"),
            root,
            "unknown attribute 'version'".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80' to='vm1'/><kvnet:bogus/>"),
            root,
            "unknown element <kvnet:bogus>".into(),
        ),
        (
            kv("<x:forward xmlns:x='urn:x' proto='tcp' port='80' to='vm1'/>"),
            root,
            "unknown element <x:forward>".into(),
        ),
        (
            kv("<forward proto='tcp' port='80' to='vm1'/>"),
            root,
            "unknown element <forward>".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80' to='vm1'><kvnet:x/></kvnet:forward>"),
            f1,
            "unknown element <kvnet:x>".into(),
        ),
        (kv("stray"), root, "unexpected text content".into()),
        (
            kv("<kvnet:forward proto='tcp' port='80' to='vm1'>text</kvnet:forward>"),
            f1,
            "unexpected text content".into(),
        ),
        (
            format!("<kvnet:net xmlns:kvnet='{KV}'/>"),
            "network/metadata",
            format!("unknown element <kvnet:net> in kvnet's namespace {KV} (expected <network>)"),
        ),
        (
            kv(
                "<kvnet:forward proto='tcp' port='80' to='vm1'/><kvnet:forward port='81' to='vm1'/>",
            ),
            f2,
            "missing required attribute 'proto'".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' to='vm1'/>"),
            f1,
            "missing required attribute 'port'".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80'/>"),
            f1,
            "missing required attribute 'to'".into(),
        ),
        (
            kv("<kvnet:forward proto='TCP' port='80' to='vm1'/>"),
            f1,
            "attribute 'proto': unknown protocol 'TCP' (expected 'tcp' or 'udp')".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='0' to='vm1'/>"),
            f1,
            "attribute 'port': '0': port 0 is not valid (ports are 1-65535)".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80' toPort='90-81' to='vm1'/>"),
            f1,
            "attribute 'toPort': '90-81': the range starts at 90 after it ends at 81".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' address='host' port='80' to='vm1'/>"),
            f1,
            "attribute 'address': 'host' is not an IP address".into(),
        ),
        (
            kv("<kvnet:forward proto='tcp' port='80' to='-vm'/>"),
            f1,
            "attribute 'to': guest name '-vm' must not start with '-' or '.'".into(),
        ),
    ];
    for (meta, path, msg) in cases {
        let (line, element, message) = meta_err(&meta);
        assert_eq!(
            (element.as_str(), message.as_str()),
            (path, msg.as_str()),
            "{meta}"
        );
        // Each points at the line of the element (all on <metadata>'s line here).
        assert_eq!(line, Some(3), "{meta}");
    }
    // Without the element, a network with the same XML is fine.
    net(&nat_net(""));
}

#[test]
fn errors_point_at_the_forward_line() {
    let meta = format!(
        "\n    <k:network xmlns:k='{KV}'>\n      <k:forward proto='tcp' port='80' to='vm1'/>\n      \
             <k:forward proto='tcp' port='79-80' to='vm2'/>\n    </k:network>\n  "
    );
    let e = reject(&nat_net(&meta));
    assert_eq!(e.line, Some(6), "{e}");
    assert_eq!(
        e.to_string(),
        "line 6: <network/metadata/kvnet:network/kvnet:forward[2]>: forward tcp 79-80: its host ports \
             overlap those of forward tcp 80 (same protocol and host address)"
    );
    let e = reject(&nat_net(&meta.replace("port='80'", "port='80' x='1'")));
    assert_eq!(e.line, Some(5), "{e}");
    assert_eq!(e.message, "unknown attribute 'x'");
}

#[test]
fn port_forwards_need_nat() {
    let meta = kv("<kvnet:forward proto='tcp' port='8080' to='vm1'/>");
    for (mode, name) in [
        ("<forward mode='route'/>", "route"),
        ("<forward mode='open'/>", "open"),
        ("", "none"),
    ] {
        let xml = nat_net(&meta).replace("<forward mode='nat'/>", mode);
        let e = reject(&xml);
        assert_eq!(
            e.message,
            format!(
                "forward tcp 8080: port forwards need a NAT network (forward mode 'nat'), this one is '{name}'"
            )
        );
        assert_eq!(e.element, "network/metadata/kvnet:network/kvnet:forward[1]");
        // Without forwards, the element is no trouble.
        net(&xml.replace(&meta, &kv("")));
    }
}

#[test]
fn port_range_checks() {
    let t = FwdProto::Tcp;
    let bad = |ports: PortRange, to_ports: PortRange| {
        check_msg(vec![PortForward {
            to_ports,
            ..fwd(t, None, ports, "vm1")
        }])
    };
    assert_eq!(
        bad(pr(0, 10), pr(1, 11)),
        "forward tcp 0-10: host ports 0-10: port 0 is not valid (ports are 1-65535)"
    );
    assert_eq!(
        bad(pr(10, 10), pr(0, 0)),
        "forward tcp 10: guest ports 0: port 0 is not valid (ports are 1-65535)"
    );
    assert_eq!(
        bad(pr(90, 80), pr(90, 80)),
        "forward tcp 90-80: host ports 90-80: the range starts at 90 after it ends at 80"
    );
    assert_eq!(
        bad(pr(8080, 8081), pr(80, 80)),
        "forward tcp 8080-8081: host ports 8080-8081 (2) and guest ports 80 (1) differ in size"
    );
}

#[test]
fn at_most_4096_ports_per_forward() {
    let t = FwdProto::Tcp;
    let n = net(&nat_net(""));
    let ok = ext(vec![fwd(t, None, pr(1001, 5096), "vm1")]);
    n.check_kvnet_ext(&ok).unwrap();
    let e = n
        .check_kvnet_ext(&ext(vec![fwd(t, None, pr(1000, 5096), "vm1")]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "forward tcp 1000-5096: host ports 1000-5096 are 4097 ports, more than the 4096 one forward may have"
    );
    // From XML too.
    let e = reject(&nat_net(&kv(
        "<kvnet:forward proto='udp' port='1-65535' to='vm1'/>",
    )));
    assert_eq!(
        e.message,
        "forward udp 1-65535: host ports 1-65535 are 65535 ports, more than the 4096 one forward may have"
    );
}

#[test]
fn overlapping_forwards_are_refused() {
    let (t, u) = (FwdProto::Tcp, FwdProto::Udp);
    let a = Some("192.0.2.7");
    let b = Some("192.0.2.8");
    let n = net(&nat_net(""));
    // Different protocol, address (None is not an address) or ports: fine.
    n.check_kvnet_ext(&ext(vec![
        fwd(t, None, pr(80, 90), "vm1"),
        fwd(u, None, pr(80, 90), "vm1"),
        fwd(t, a, pr(80, 90), "vm1"),
        fwd(t, b, pr(85, 85), "vm1"),
        fwd(t, None, pr(91, 91), "vm1"),
        fwd(t, None, pr(70, 79), "vm1"),
        fwd(t, a, pr(1, 79), "vm2"),
    ]))
    .unwrap();
    assert_eq!(
        check_msg(vec![
            fwd(t, None, pr(8080, 8090), "vm1"),
            fwd(u, None, pr(8085, 8085), "vm1"),
            fwd(t, None, pr(8085, 8085), "vm2"),
        ]),
        "forward tcp 8085: its host ports overlap those of forward tcp 8080-8090 (same protocol and host address)"
    );
    // Named in document order, whichever starts first.
    let e = net(&nat_net(""))
        .check_kvnet_ext(&ext(vec![
            fwd(u, a, pr(53, 60), "vm1"),
            fwd(u, a, pr(100, 200), "vm1"),
            fwd(u, a, pr(40, 53), "vm2"),
        ]))
        .unwrap_err();
    assert_eq!(e.element, "network/metadata/kvnet:network/kvnet:forward[3]");
    assert_eq!(
        e.message,
        "forward udp 192.0.2.7:40-53: its host ports overlap those of forward udp 192.0.2.7:53-60 \
             (same protocol and host address)"
    );
    // A forward hidden inside a long one that an earlier, shorter one follows.
    assert!(
        check_msg(vec![
            fwd(t, None, pr(1, 100), "vm1"),
            fwd(t, None, pr(2, 3), "vm1"),
            fwd(t, None, pr(50, 50), "vm1"),
        ])
        .starts_with("forward tcp 2-3: its host ports overlap those of forward tcp 1-100")
    );
    assert!(
        check_msg(vec![
            fwd(t, None, pr(80, 80), "vm1"),
            fwd(t, None, pr(80, 80), "vm1")
        ])
        .starts_with("forward tcp 80: its host ports overlap those of forward tcp 80 ")
    );
}

#[test]
fn guest_addresses_are_on_the_network() {
    let t = FwdProto::Tcp;
    let n = net(&nat_net(""));
    n.check_kvnet_ext(&ext(vec![
        fwd(t, None, pr(80, 80), "10.0.0.5"),
        fwd(t, None, pr(81, 81), "fd00::5"),
        fwd(t, Some("192.0.2.7"), pr(82, 82), "10.0.0.254"),
        fwd(t, Some("2001:db8::7"), pr(83, 83), "fd00::ffff"),
    ]))
    .unwrap();
    let one = |address: Option<&str>, to: &str| check_msg(vec![fwd(t, address, pr(80, 80), to)]);
    assert_eq!(
        one(None, "10.9.9.9"),
        "forward tcp 80: guest address 10.9.9.9 is not on this network (its subnets: 10.0.0.0/24, fd00::/64)"
    );
    assert_eq!(
        one(Some("192.0.2.7"), "fd00::5"),
        "forward tcp 192.0.2.7:80: host and guest addresses of different families (192.0.2.7 and fd00::5)"
    );
    assert_eq!(
        one(Some("2001:db8::7"), "10.0.0.5"),
        "forward tcp [2001:db8::7]:80: host and guest addresses of different families (2001:db8::7 and 10.0.0.5)"
    );
    assert_eq!(
        one(None, "10.0.0.1"),
        "forward tcp 80: guest address 10.0.0.1 is the host's own address on this network"
    );
    assert_eq!(
        one(None, "10.0.0.0"),
        "forward tcp 80: guest address 10.0.0.0 is the network address of 10.0.0.0/24"
    );
    assert_eq!(
        one(None, "10.0.0.255"),
        "forward tcp 80: guest address 10.0.0.255 is the broadcast address of 10.0.0.0/24"
    );
    assert_eq!(
        one(Some("0.0.0.0"), "10.0.0.5"),
        "forward tcp 0.0.0.0:80: host address 0.0.0.0 is not a unicast address (leave the address out \
             to listen on every address of the host)"
    );
    // A network without <ip>.
    let mut bare = n.clone();
    bare.ips.clear();
    let e = bare
        .check_kvnet_ext(&ext(vec![fwd(t, None, pr(80, 80), "10.0.0.5")]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "forward tcp 80: guest address 10.0.0.5 is not on this network (it has no <ip>)"
    );
    // Through define.
    let e = reject(&nat_net(&kv(
        "<kvnet:forward proto='tcp' port='80' to='10.9.9.9'/>",
    )));
    assert!(
        e.message
            .starts_with("forward tcp 80: guest address 10.9.9.9 is not on this network"),
        "{e}"
    );
}

#[test]
fn hand_built_guests_must_read_back_as_themselves() {
    let t = FwdProto::Tcp;
    let with = |to: GuestRef| {
        check_msg(vec![PortForward {
            to,
            ..fwd(t, None, pr(80, 80), "vm1")
        }])
    };
    assert_eq!(
        with(GuestRef::Mac("52:54:00:AA:BB:CC".into())),
        "forward tcp 80: guest MAC '52:54:00:AA:BB:CC' is not six lower-case hex pairs separated by ':'"
    );
    assert_eq!(
        with(GuestRef::Name("10.0.0.5".into())),
        "forward tcp 80: guest name '10.0.0.5' is an IP address, not a name"
    );
    assert_eq!(
        with(GuestRef::Name("a b".into())),
        "forward tcp 80: 'a b' is not a guest name, MAC address or IP address (' ' is not allowed in a name)"
    );
}

#[test]
fn at_most_10000_forwards() {
    let n = net(&nat_net(""));
    let many = |count: u16| {
        ext((1..=count)
            .map(|p| fwd(FwdProto::Udp, None, pr(p, p), "vm1"))
            .collect())
    };
    n.check_kvnet_ext(&many(10_000)).unwrap();
    let e = n.check_kvnet_ext(&many(10_001)).unwrap_err();
    assert_eq!(e.element, "network/metadata/kvnet:network");
    assert_eq!(
        e.message,
        "10001 port forwards, more than the 10000 a network may have"
    );
    // Refused before any is read from XML.
    let body = "<kvnet:forward/>".repeat(10_001);
    let e = reject(&nat_net(&kv(&body)));
    assert_eq!(
        e.message,
        "10001 port forwards, more than the 10000 a network may have"
    );
}

#[test]
fn display_for_listings() {
    let mut f = PortForward {
        to_ports: pr(80, 81),
        ..fwd(FwdProto::Tcp, None, pr(8080, 8081), "vm1")
    };
    assert_eq!(f.to_string(), "tcp *:8080-8081 -> vm1:80-81");
    f = fwd(
        FwdProto::Udp,
        Some("192.0.2.7"),
        pr(53, 53),
        "52:54:00:AA:bb:cc",
    );
    assert_eq!(f.to_string(), "udp 192.0.2.7:53 -> 52:54:00:aa:bb:cc:53");
    f = fwd(FwdProto::Tcp, Some("2001:db8::7"), pr(443, 443), "fd00::5");
    assert_eq!(f.to_string(), "tcp [2001:db8::7]:443 -> [fd00::5]:443");
}

#[test]
fn proto_and_port_range_text() {
    assert_eq!("tcp".parse::<FwdProto>(), Ok(FwdProto::Tcp));
    assert_eq!("udp".parse::<FwdProto>(), Ok(FwdProto::Udp));
    assert!("sctp".parse::<FwdProto>().is_err());
    assert_eq!(FwdProto::Udp.to_string(), "udp");

    let r: PortRange = "8080-8081".parse().unwrap();
    assert_eq!(
        (r, r.len(), r.to_string()),
        (pr(8080, 8081), 2, "8080-8081".into())
    );
    let r: PortRange = "22".parse().unwrap();
    assert_eq!((r, r.len(), r.to_string()), (pr(22, 22), 1, "22".into()));
    assert_eq!("80-80".parse::<PortRange>().unwrap().to_string(), "80");
    assert_eq!("1-65535".parse::<PortRange>().unwrap().len(), 65535);
    assert_eq!(pr(2, 1).len(), 0);
    assert!(pr(2, 1).is_empty());
    assert!(pr(80, 90).overlaps(&pr(90, 95)));
    assert!(!pr(80, 90).overlaps(&pr(91, 95)));
    assert_eq!(PortRange::single(7), pr(7, 7));
    for (bad, msg) in [
        ("", "'' is not a port or a range PORT-PORT"),
        ("0", "'0': port 0 is not valid (ports are 1-65535)"),
        ("0-5", "'0-5': port 0 is not valid (ports are 1-65535)"),
        ("65536", "port 65536 is out of range (ports are 1-65535)"),
        (
            "90-80",
            "'90-80': the range starts at 90 after it ends at 80",
        ),
        ("+80", "'+80' is not a port or a range PORT-PORT"),
        ("80-", "'80-' is not a port or a range PORT-PORT"),
        ("-80", "'-80' is not a port or a range PORT-PORT"),
        (
            "80-90-100",
            "'80-90-100' is not a port or a range PORT-PORT",
        ),
        (" 80", "' 80' is not a port or a range PORT-PORT"),
        ("http", "'http' is not a port or a range PORT-PORT"),
    ] {
        assert_eq!(bad.parse::<PortRange>(), Err(msg.to_string()), "{bad}");
    }
}

#[test]
fn guest_ref_parse() {
    let name = |s: &str| GuestRef::Name(s.into());
    let mac = |s: &str| GuestRef::Mac(s.into());
    for (s, want) in [
        ("vm1", name("vm1")),
        ("web.example_1-a", name("web.example_1-a")),
        ("52:54:00:AA:bb:cc", mac("52:54:00:aa:bb:cc")),
        (
            "10.0.0.5",
            GuestRef::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))),
        ),
        (
            "fd00::5",
            GuestRef::Addr(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5))),
        ),
    ] {
        assert_eq!(GuestRef::parse(s), Ok(want), "{s}");
    }
    assert_eq!(
        GuestRef::parse(&"a".repeat(253)),
        Ok(name(&"a".repeat(253)))
    );
    for (bad, msg) in [
        ("", "the guest must not be empty"),
        ("-vm", "guest name '-vm' must not start with '-' or '.'"),
        (".vm", "guest name '.vm' must not start with '-' or '.'"),
        (
            "vm 1",
            "'vm 1' is not a guest name, MAC address or IP address (' ' is not allowed in a name)",
        ),
        (
            "52:54:0:aa:bb:cc",
            "'52:54:0:aa:bb:cc' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
        ),
        (
            "vm\n",
            "'vm\\n' is not a guest name, MAC address or IP address ('\\n' is not allowed in a name)",
        ),
    ] {
        assert_eq!(GuestRef::parse(bad), Err(msg.to_string()), "{bad:?}");
    }
    assert_eq!(
        GuestRef::parse(&"a".repeat(254)),
        Err("guest name is 254 characters long, more than 253".into())
    );
    assert!(GuestRef::parse("vé").is_err());
}

#[test]
fn parse_target_forms() {
    let name = |s: &str| GuestRef::Name(s.into());
    let ip = |s: &str| GuestRef::Addr(s.parse().unwrap());
    for (s, g, p) in [
        ("vm1", name("vm1"), None),
        ("vm1:80", name("vm1"), Some(pr(80, 80))),
        ("vm1:80-90", name("vm1"), Some(pr(80, 90))),
        ("10.0.0.5", ip("10.0.0.5"), None),
        ("10.0.0.5:80", ip("10.0.0.5"), Some(pr(80, 80))),
        ("[fd00::5]:80", ip("fd00::5"), Some(pr(80, 80))),
        ("[fd00::5]:80-81", ip("fd00::5"), Some(pr(80, 81))),
        ("[fd00::5]", ip("fd00::5"), None),
        ("fd00::5", ip("fd00::5"), None),
        // A bare IPv6 address ending in what could be a port is the address.
        ("fd00::5:80", ip("fd00::5:80"), None),
        // Eight groups are an IPv6 address, not a MAC and a port.
        (
            "52:54:00:aa:bb:cc:dd:80",
            ip("52:54:0:aa:bb:cc:dd:80"),
            None,
        ),
        (
            "52:54:00:aa:bb:cc",
            GuestRef::Mac("52:54:00:aa:bb:cc".into()),
            None,
        ),
        (
            "52:54:00:AA:BB:CC:80",
            GuestRef::Mac("52:54:00:aa:bb:cc".into()),
            Some(pr(80, 80)),
        ),
        (
            "52:54:00:aa:bb:cc:80-82",
            GuestRef::Mac("52:54:00:aa:bb:cc".into()),
            Some(pr(80, 82)),
        ),
    ] {
        assert_eq!(parse_target(s), Ok((g, p)), "{s}");
    }
    for (bad, msg) in [
        ("", "the guest must not be empty"),
        (":80", "':80': the guest must not be empty"),
        ("vm1:", "'vm1:': '' is not a port or a range PORT-PORT"),
        (
            "vm1:0",
            "'vm1:0': '0': port 0 is not valid (ports are 1-65535)",
        ),
        (
            "vm1:http",
            "'vm1:http': 'http' is not a port or a range PORT-PORT",
        ),
        (
            "vm1:80:90",
            "'vm1:80:90': 'vm1:80' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
        ),
        (
            "vm1:90-80",
            "'vm1:90-80': '90-80': the range starts at 90 after it ends at 80",
        ),
        (
            "fd00::5:80-90",
            "'fd00::5:80-90': write an IPv6 address with ports in brackets: [fd00::5]:80-90",
        ),
        ("[fd00::5", "'[fd00::5': missing ']' after the IPv6 address"),
        (
            "[10.0.0.5]:80",
            "'[10.0.0.5]:80': '10.0.0.5' in brackets is not an IPv6 address",
        ),
        ("[fd00::5]80", "'[fd00::5]80': expected ':PORT' after ']'"),
        (
            "[fd00::5]:",
            "'[fd00::5]:': '' is not a port or a range PORT-PORT",
        ),
        (
            "52:54:00:aa:bb:8",
            "'52:54:00:aa:bb:8': '52:54:00:aa:bb' is not a guest name, MAC address or IP address (':' is not allowed in a name)",
        ),
        (
            "52:54:00:aa:bb:cc:zz",
            "'52:54:00:aa:bb:cc:zz': 'zz' is not a port or a range PORT-PORT",
        ),
        (
            "-vm:80",
            "'-vm:80': guest name '-vm' must not start with '-' or '.'",
        ),
        (
            "vm 1",
            "'vm 1' is not a guest name, MAC address or IP address (' ' is not allowed in a name)",
        ),
    ] {
        assert_eq!(parse_target(bad), Err(msg.to_string()), "{bad:?}");
    }
}

#[test]
fn an_overlay_round_trips_and_is_read() {
    let xml = nat_net(&kv(
        "<kvnet:overlay vni='100' dev='eth1'/><kvnet:filterref filter='clean-traffic'/>",
    ));
    let n = net(&xml);
    let o = n.kvnet_ext().unwrap().overlay.unwrap();
    assert_eq!(
        o,
        Overlay {
            vni: 100,
            local: None,
            dev: Some("eth1".into()),
            port: None
        }
    );
    assert_eq!((o.device(), o.port()), ("kvx100".to_string(), VXLAN_PORT));
    let again = net(&n.to_xml());
    assert_eq!(again.kvnet_ext().unwrap(), n.kvnet_ext().unwrap());
    assert!(
        n.to_xml()
            .contains(r#"<kvnet:overlay vni="100" dev="eth1"/>"#),
        "{}",
        n.to_xml()
    );
    let full = net(&nat_net(&kv(
        "<kvnet:overlay vni='16777215' local='10.255.0.1' dev='lo' port='8472'/>",
    )));
    let o = full.kvnet_ext().unwrap().overlay.unwrap();
    assert_eq!(o.local, Some("10.255.0.1".parse().unwrap()));
    assert_eq!(o.port(), 8472);
}

#[test]
fn bad_overlays_are_refused_naming_the_attribute() {
    for (inner, why) in [
        (
            "<kvnet:overlay dev='eth1'/>",
            "missing required attribute 'vni'",
        ),
        (
            "<kvnet:overlay vni='0' dev='eth1'/>",
            "'0' is not a VNI (1 to 16777215)",
        ),
        ("<kvnet:overlay vni='16777216' dev='eth1'/>", "is not a VNI"),
        ("<kvnet:overlay vni='x' dev='eth1'/>", "'x' is not a VNI"),
        (
            "<kvnet:overlay vni='5'/>",
            "needs 'local' (the VTEP address) or 'dev'",
        ),
        (
            "<kvnet:overlay vni='5' local='fd00::1'/>",
            "is not an IPv4 address",
        ),
        (
            "<kvnet:overlay vni='5' local='127.0.0.1'/>",
            "cannot be a VTEP address",
        ),
        (
            "<kvnet:overlay vni='5' local='239.1.1.1'/>",
            "cannot be a VTEP address",
        ),
        (
            "<kvnet:overlay vni='5' dev='a/b'/>",
            "is not an interface name",
        ),
        (
            "<kvnet:overlay vni='5' dev='sixteen-chars-xx'/>",
            "1 to 15 bytes",
        ),
        (
            "<kvnet:overlay vni='5' dev='e' port='0'/>",
            "is not a UDP port",
        ),
        (
            "<kvnet:overlay vni='5' dev='e' ttl='3'/>",
            "unknown attribute 'ttl'",
        ),
        (
            "<kvnet:overlay vni='5' dev='e'><kvnet:x/></kvnet:overlay>",
            "unknown element",
        ),
        (
            "<kvnet:overlay vni='5' dev='e'/><kvnet:overlay vni='6' dev='e'/>",
            "a network has one <overlay>",
        ),
    ] {
        let e = reject(&nat_net(&kv(inner)));
        assert!(e.to_string().contains(why), "{inner}: {e}");
    }
    // Only a bridge kvnet makes can carry the VXLAN port.
    let host_bridge = format!(
        "<network><name>hb</name><metadata>{}</metadata><forward mode='bridge'/><bridge name='br0'/></network>",
        kv("<kvnet:overlay vni='5' dev='eth1'/>")
    );
    let e = reject(&host_bridge);
    assert!(
        e.to_string()
            .contains("an overlay needs a bridge kvnet makes (forward mode nat, route, open or none); forward mode 'bridge' uses a host bridge as it is"),
        "{e}"
    );
}

#[test]
fn an_overlays_guest_mtu_fits_the_underlay() {
    let o = Overlay {
        vni: 1,
        local: None,
        dev: Some("eth1".into()),
        port: None,
    };
    assert_eq!(o.guest_mtu(None, 1500), Ok(1450));
    assert_eq!(o.guest_mtu(None, 9000), Ok(8950));
    assert_eq!(o.guest_mtu(Some(1400), 1500), Ok(1400));
    assert_eq!(o.guest_mtu(Some(1450), 1500), Ok(1450));
    let e = o.guest_mtu(Some(1500), 1500).unwrap_err();
    assert!(
        e.contains("<mtu size='1500'> does not fit the underlay: its MTU 1500 less VXLAN's 50 bytes leaves 1450"),
        "{e}"
    );
    assert!(o.guest_mtu(None, 600).unwrap_err().contains("too small"));
}

#[test]
fn an_overlay_defined_without_a_mac_gets_the_same_one_on_every_host() {
    let xml = nat_net(&kv("<kvnet:overlay vni='4242' dev='eth1'/>"));
    let mut macs = Vec::new();
    for seed in [1u64, 2] {
        let mut n = net(&xml);
        let mut e = move || seed;
        n.complete_for_define(&Default::default(), &Default::default(), &mut e);
        macs.push(n.mac.unwrap());
    }
    assert_eq!(
        macs[0], macs[1],
        "one anycast gateway MAC whatever the host"
    );
    assert_eq!(macs[0].to_string(), "02:6b:76:00:10:92");
    // Without an overlay, the MAC is random as libvirt's.
    let mut a = net(&nat_net(""));
    let mut e = || 7u64;
    a.complete_for_define(&Default::default(), &Default::default(), &mut e);
    assert!(a.mac.unwrap().to_string().starts_with("52:54:00:"));
}
