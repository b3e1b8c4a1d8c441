//! What reaches a network's DNS server: guests' queries (UDP and TCP), upstream replies
//! (spoofed or not), guest names from DHCP (a guest picks its hostname), and time.
//! Control byte: low two bits pick the step, bit 2 a variant, the top five bits move the
//! clock ([`crate::advance`], in 250 ms units):
//!
//! * 0: the payload is a query from a guest, over UDP (variant: TCP);
//! * 1: a reply to the last forwarded query from the upstream it went to: the payload
//!   with that query's ID (variant: the query itself with the QR bit, the payload's first
//!   byte as flags and the rest appended, so that the question matches);
//! * 2: the payload, split at commas, becomes the guest names (DHCP hostnames);
//! * 3: the timeouts due are polled.
//!
//! Answers go to the client that asked; answers to queries decode as responses with the
//! query's ID; nothing over UDP exceeds the largest size the engine may send.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType};
use kvnet_dns::{Config, Decision, Engine, Limits, Peer, Transport};
use kvnet_model::Network;

/// Local names of every kind, a domain-routed forwarder, and a local-only domain.
pub const NETWORK: &str = "<network><name>fd</name><forward mode='nat'/>
  <bridge name='virbr9'/><domain name='example.org'/>
  <dns>
    <forwarder domain='corp.lan' addr='10.9.0.1'/>
    <forwarder domain='local.lan'/>
    <host ip='192.168.122.9'><hostname>static</hostname><hostname>static.example.org</hostname></host>
    <host ip='2001:db8:ac10:fd01::9'><hostname>static</hostname></host>
    <txt name='t' value='some text'/>
    <srv service='ldap' protocol='tcp' target='static' port='389' priority='1' weight='2'/>
  </dns>
  <ip address='192.168.122.1' prefix='24'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>
  <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'/></network>";

/// The host's resolvers (as from /etc/resolv.conf).
const UPSTREAMS: [&str; 2] = ["192.0.2.53:53", "[2001:db8::53]:53"];

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let net = Network::from_xml(NETWORK).expect("the fuzz network parses");
        Config::from_network(&net, net.profile().guests).expect("its DNS config builds")
    })
}

pub fn run(data: &[u8]) {
    let mut e = Engine::new(config().clone(), [42; 32]);
    e.set_upstreams(UPSTREAMS.iter().map(|s| s.parse().unwrap()).collect());
    let max_udp = usize::from(Limits::default().max_udp_payload);
    let mut now = Instant::now();
    let mut last: Option<(Peer, Vec<u8>)> = None;
    let mut decisions = Vec::new();
    for (ctrl, payload) in crate::Steps(data) {
        now += Duration::from_millis(crate::advance(ctrl) * 250);
        let variant = ctrl & 4 != 0;
        match ctrl & 3 {
            0 => {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 122, 50)), 40000);
                let client = if variant {
                    Peer::tcp(addr)
                } else {
                    Peer::udp(addr)
                };
                let d = e.handle_query(now, client, payload);
                if let Decision::Answer { to, bytes } = &d {
                    assert_eq!(*to, client, "an answer to another client");
                    let m = Message::from_vec(bytes).expect("an answer decodes");
                    assert_eq!(m.metadata.message_type, MessageType::Response);
                    assert_eq!(&bytes[..2], &payload[..2], "an answer with another ID");
                }
                decisions.push(d);
            }
            1 => {
                let Some((from, query)) = &last else { continue };
                let reply = if variant {
                    let mut r = query.clone();
                    r[2] |= 0x80;
                    if let Some((flags, rest)) = payload.split_first() {
                        r[3] = *flags;
                        r.extend_from_slice(rest);
                    }
                    r
                } else {
                    let mut r = payload.to_vec();
                    if r.len() >= 2 {
                        r[..2].copy_from_slice(&query[..2]);
                    }
                    r
                };
                decisions.push(e.handle_upstream_reply(now, *from, &reply));
            }
            2 => {
                let text = String::from_utf8_lossy(payload);
                let names = text
                    .split(',')
                    // At most 254 names, one address each, as the /24's guests.
                    .zip(1u8..=254)
                    .map(|(n, i)| (n.to_string(), IpAddr::V4(Ipv4Addr::new(192, 168, 122, i))))
                    .collect();
                let _ = e.set_guest_names(names);
            }
            _ => decisions.extend(e.poll_timeouts(now)),
        }
        for d in decisions.drain(..) {
            match d {
                Decision::Answer { to, bytes } => {
                    assert!(bytes.len() >= 12, "an answer of {} bytes", bytes.len());
                    if to.transport == Transport::Udp {
                        assert!(
                            bytes.len() <= max_udp,
                            "a UDP answer of {} bytes",
                            bytes.len()
                        );
                    }
                }
                Decision::Forward { to, bytes } => {
                    assert!(bytes.len() >= 12, "a forward of {} bytes", bytes.len());
                    last = Some((to, bytes));
                }
                Decision::Drop => {}
            }
        }
        assert!(e.pending_len() <= Limits::default().max_pending);
    }
}
