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
    let err = quick(100)
        .call(std::path::Path::new("/nonexistent/kvnetd.sock"), Ping {})
        .unwrap_err();
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
        ForwardAdd {
            network: String::new(),
            forward: kvnet_model::PortForward {
                proto: kvnet_model::FwdProto::Tcp,
                address: None,
                ports: "80".parse().unwrap(),
                to: kvnet_model::GuestRef::Name("vm1".into()),
                to_ports: "80".parse().unwrap(),
            },
        }
        .into(),
        ForwardRemove {
            network: String::new(),
            proto: kvnet_model::FwdProto::Tcp,
            address: None,
            ports: "80".parse().unwrap(),
        }
        .into(),
        ForwardList {
            network: String::new(),
        }
        .into(),
        Events::default().into(),
        Stats {
            network: String::new(),
        }
        .into(),
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

// The client.

use crate::{Client, Retry};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fresh directory for a test's socket, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sock_dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("kvnet-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn quick(total: u64) -> Client {
    Client {
        retry: Retry {
            total: ms(total),
            ..Retry::DEFAULT
        },
        send_timeout: ms(200),
        reply_timeout: ms(200),
    }
}

/// Answer one connection's request with a pong.
fn pong(l: &UnixListener) {
    let (s, _) = l.accept().unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert_eq!(line, "{\"op\":\"ping\"}\n");
    (&s).write_all(b"{\"ok\":true}\n").unwrap();
}

#[test]
fn retry_steps_double_up_to_a_cap_and_end_at_the_total() {
    let r = Retry::DEFAULT;
    let (mut t, mut steps) = (Duration::ZERO, Vec::new());
    let mut failures = 1;
    while let Some(d) = r.delay(failures, t) {
        steps.push(d.as_millis());
        t += d;
        failures += 1;
    }
    assert_eq!(steps[..7], [10, 20, 40, 80, 160, 250, 250]);
    assert_eq!(t, r.total, "the last try is at the total, not after");
    assert!(steps.len() < 30, "{steps:?}");
    // A clock that jumped past the total (a slow connect) ends the retries.
    assert_eq!(r.delay(3, ms(4990)), Some(ms(10)));
    assert_eq!(r.delay(3, ms(5000)), None);
    assert_eq!(r.delay(3, ms(9000)), None);
    assert_eq!(r.delay(u32::MAX, ms(0)), Some(ms(250)));
}

#[test]
fn only_a_daemon_not_yet_listening_is_waited_for() {
    use std::io::{Error, ErrorKind};
    for k in [
        ErrorKind::NotFound,
        ErrorKind::ConnectionRefused,
        ErrorKind::WouldBlock,
    ] {
        assert!(Retry::worth_retrying(&Error::from(k)), "{k:?}");
    }
    for k in [
        ErrorKind::PermissionDenied,
        ErrorKind::InvalidInput,
        ErrorKind::ConnectionReset,
    ] {
        assert!(!Retry::worth_retrying(&Error::from(k)), "{k:?}");
    }
}

#[test]
fn a_restarting_daemon_is_waited_for() {
    let dir = sock_dir("restart");
    let path = dir.0.join("kvnetd.sock");
    // A stale socket file (kvnetd killed): connections are refused until the next
    // kvnetd replaces it.
    drop(UnixListener::bind(&path).unwrap());
    let t0 = Instant::now();
    let server = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(ms(300));
            std::fs::remove_file(&path).unwrap();
            std::thread::sleep(ms(100));
            pong(&UnixListener::bind(&path).unwrap());
        })
    };
    let r = call_raw(&path, &Ping {}.into()).unwrap();
    assert!(r.ok);
    assert!(t0.elapsed() >= ms(400), "{:?}", t0.elapsed());
    server.join().unwrap();
}

#[test]
fn giving_up_names_the_socket_and_the_time_waited() {
    let dir = sock_dir("gone");
    let path = dir.0.join("kvnetd.sock");
    let t0 = Instant::now();
    let e = quick(300).call_raw(&path, &Ping {}.into()).unwrap_err();
    let waited = t0.elapsed();
    assert!(waited >= ms(300) && waited < ms(1000), "{waited:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("tried for 0.3 s")
            && msg.contains("No such file"),
        "{msg}"
    );
    // Not worth waiting for (a file where a directory should be): said at once.
    std::fs::write(&path, "").unwrap();
    let t0 = Instant::now();
    let msg = quick(300)
        .call_raw(&path.join("kvnetd.sock"), &Ping {}.into())
        .unwrap_err()
        .to_string();
    assert!(
        t0.elapsed() < ms(100) && !msg.contains("tried for"),
        "{msg}"
    );
}

#[test]
fn a_request_sent_is_never_sent_again() {
    let dir = sock_dir("once");
    let path = dir.0.join("kvnetd.sock");
    let l = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        // Read the request, then close without replying; count further connections.
        let (s, _) = l.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        drop(s);
        l.set_nonblocking(true).unwrap();
        std::thread::sleep(ms(300));
        l.accept().is_ok()
    });
    let e = call_raw(&path, &Ping {}.into()).unwrap_err();
    assert!(matches!(e, ClientError::Closed), "{e}");
    assert!(!server.join().unwrap(), "the client connected again");
}

#[test]
fn a_daemon_that_never_replies_times_out() {
    let dir = sock_dir("silent");
    let path = dir.0.join("kvnetd.sock");
    let l = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        std::thread::sleep(ms(600));
        drop(s);
    });
    let t0 = Instant::now();
    let e = quick(300).call_raw(&path, &Ping {}.into()).unwrap_err();
    assert!(t0.elapsed() < ms(500), "{:?}", t0.elapsed());
    assert_eq!(
        e.to_string(),
        format!("kvnetd at {} did not reply within 0.2 s", path.display())
    );
    server.join().unwrap();
}

#[test]
fn a_full_backlog_does_not_hang_the_client() {
    use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let dir = sock_dir("backlog");
    let path = dir.0.join("kvnetd.sock");
    // A listener that never accepts, with room for one pending connection.
    let l = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&l),
        &UnixAddr::new(&path).unwrap(),
    )
    .unwrap();
    socket::listen(&l, Backlog::new(0).unwrap()).unwrap();
    let _first = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let t0 = Instant::now();
    let e = quick(300).call_raw(&path, &Ping {}.into()).unwrap_err();
    assert!(t0.elapsed() < ms(1000), "{:?}", t0.elapsed());
    assert!(
        matches!(&e, ClientError::Connect { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock),
        "{e}"
    );
}
