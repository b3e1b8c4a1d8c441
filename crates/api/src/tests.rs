use super::request::*;
use super::*;
use kvnet_model::{UpdateCommand, UpdateSection};

fn round_trip(r: &Request, wire: &str) {
    assert_eq!(serde_json::to_string(r).unwrap(), wire);
    assert_eq!(&serde_json::from_str::<Request>(wire).unwrap(), r);
}

#[test]
fn requests_are_tagged_kebab_case() {
    round_trip(&Request::Ping(Ping {}), r#"{"op":"ping"}"#);
    round_trip(
        &DumpXml {
            network: "default".into(),
            inactive: true,
        }
        .into(),
        r#"{"op":"dump-xml","network":"default","inactive":true}"#,
    );
    round_trip(
        &DhcpLeases {
            network: "default".into(),
            mac: None,
        }
        .into(),
        r#"{"op":"dhcp-leases","network":"default"}"#,
    );
}

#[test]
fn update_takes_libvirts_words_and_refuses_others() {
    round_trip(
        &Update {
            network: "n".into(),
            command: UpdateCommand::AddLast,
            section: UpdateSection::IpDhcpHost,
            xml: "<host/>".into(),
            parent_index: None,
            live: true,
            config: false,
        }
        .into(),
        r#"{"op":"update","network":"n","command":"add-last","section":"ip-dhcp-host","xml":"<host/>","parent_index":null,"live":true,"config":false}"#,
    );
    // virsh's "add" is add-last.
    let r: Request = serde_json::from_str(
        r#"{"op":"update","network":"n","command":"add","section":"dns-host","xml":"<host/>","parent_index":null,"live":false,"config":true}"#,
    )
    .unwrap();
    assert!(matches!(
        r,
        Request::Update(Update {
            command: UpdateCommand::AddLast,
            ..
        })
    ));
    let e = serde_json::from_str::<Request>(
        r#"{"op":"update","network":"n","command":"append","section":"dns-host","xml":"","parent_index":null,"live":false,"config":true}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown update command 'append'"), "{e}");
}

#[test]
fn port_requests_omit_unset_options() {
    round_trip(
        &PortAttach {
            network: None,
            bridge: Some("virbr0".into()),
            ifname: "tap0".into(),
            mac: None,
        }
        .into(),
        r#"{"op":"port-attach","bridge":"virbr0","ifname":"tap0"}"#,
    );
    let r: Request = serde_json::from_str(r#"{"op":"port-create","network":"default"}"#).unwrap();
    assert!(matches!(
        r,
        Request::PortCreate(PortCreate { queues: None, .. })
    ));
    assert_eq!(
        serde_json::to_string(&PortKind::Persistent).unwrap(),
        r#""persistent""#
    );
}

#[test]
fn iface_bridge_defaults_like_virsh() {
    let r: Request =
        serde_json::from_str(r#"{"op":"iface-bridge","iface":"eth0","bridge":"br0"}"#).unwrap();
    assert_eq!(
        r,
        IfaceBridge {
            iface: "eth0".into(),
            bridge: "br0".into(),
            stp: true,
            delay: 0,
            start: true,
        }
        .into()
    );
}

#[test]
fn replies_omit_empty_fields() {
    assert_eq!(
        serde_json::to_string(&Reply::ok(&(), Vec::new())).unwrap(),
        r#"{"ok":true}"#
    );
    let e: Reply = serde_json::from_str(r#"{"ok":false,"error":"x"}"#).unwrap();
    assert_eq!(e.error.as_deref(), Some("x"));
    // An IPv4 lease has no IAID; the wire row is the one virsh-style clients expect.
    let l = Lease {
        expiry_time: 5,
        mac_address: Some("52:54:00:00:00:01".into()),
        ip_address: "192.168.122.2".parse().unwrap(),
        prefix: 24,
        hostname: None,
        client_id: None,
        iaid: None,
    };
    assert_eq!(
        serde_json::to_string(&l).unwrap(),
        r#"{"expiry-time":5,"mac-address":"52:54:00:00:00:01","ip-address":"192.168.122.2","prefix":24}"#
    );
}

#[test]
fn connect_error_says_how_to_start_the_daemon() {
    let err = call(Path::new("/nonexistent/kvnetd.sock"), Ping {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/kvnetd.sock") && msg.contains("kvnetd"),
        "{msg}"
    );
}

/// docs/api.md is the protocol's reference: its table lists exactly the requests that
/// exist, and every example request in it parses.
#[test]
fn the_reference_lists_every_request() {
    let doc = include_str!("../../../docs/api.md");
    let listed: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(op, _)| op))
        .filter(|op| *op != "op")
        .collect();
    let examples: Vec<Request> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("→ "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!examples.is_empty());
    let all = [
        Request::Ping(Ping {}),
        Define { xml: String::new() }.into(),
        Create { xml: String::new() }.into(),
        Undefine {
            network: String::new(),
        }
        .into(),
        Start {
            network: String::new(),
        }
        .into(),
        Destroy {
            network: String::new(),
            wait: false,
        }
        .into(),
        Autostart {
            network: String::new(),
            enable: true,
        }
        .into(),
        Request::List(List {}),
        Info {
            network: String::new(),
        }
        .into(),
        DumpXml {
            network: String::new(),
            inactive: false,
        }
        .into(),
        DhcpLeases {
            network: String::new(),
            mac: None,
        }
        .into(),
        Update {
            network: String::new(),
            command: UpdateCommand::Delete,
            section: UpdateSection::DnsHost,
            xml: String::new(),
            parent_index: None,
            live: false,
            config: false,
        }
        .into(),
        PortCreate::default().into(),
        PortAttach {
            network: None,
            bridge: None,
            ifname: String::new(),
            mac: None,
        }
        .into(),
        PortDelete {
            network: None,
            ifname: String::new(),
        }
        .into(),
        PortList {
            network: String::new(),
        }
        .into(),
        IfaceBridge {
            iface: String::new(),
            bridge: String::new(),
            stp: true,
            delay: 0,
            start: true,
        }
        .into(),
        IfaceUnbridge {
            bridge: String::new(),
        }
        .into(),
        Doctor::default().into(),
    ];
    let mut ops: Vec<&str> = all.iter().map(Request::op).collect();
    let mut listed = listed;
    ops.sort_unstable();
    listed.sort_unstable();
    assert_eq!(
        listed, ops,
        "docs/api.md's request table and the API differ"
    );
    for r in &all {
        // Each op word is the tag serde writes.
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["op"], r.op());
    }
}
