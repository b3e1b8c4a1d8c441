//! Helpers shared by the engine tests: networks from XML, queries and replies built with
//! hickory, and a settable clock.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kvnet_dns::{Config, Decision, Engine, Limits, Peer};
use kvnet_model::Network;

pub const SEED: [u8; 32] = [7; 32];

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn client() -> Peer {
    Peer::udp(sa("192.168.122.50:40000"))
}

/// A NAT network 192.168.122.0/24 + 2001:db8:ac10:fd01::/64 with `head` (e.g. `<domain>`,
/// `<dns>`) before the addresses and `ip4_attrs` on the IPv4 `<ip>`.
pub fn network(forward: &str, head: &str, ip4_attrs: &str) -> Network {
    let xml = format!(
        "<network><name>t</name>{forward}<bridge name='virbr9'/>{head}\
         <ip address='192.168.122.1' prefix='24' {ip4_attrs}>\
         <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>\
         <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'/></network>"
    );
    Network::from_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

pub fn nat(head: &str) -> Network {
    network("<forward mode='nat'/>", head, "")
}

/// The config kvnetd builds for `net`: its guest role from the mode profile.
pub fn config(net: &Network) -> Config {
    Config::from_network(net, net.profile().guests).unwrap()
}

pub fn engine_for(net: &Network) -> Engine {
    Engine::new(config(net), SEED)
}

pub fn engine(head: &str) -> Engine {
    engine_for(&nat(head))
}

pub fn engine_limits(head: &str, limits: Limits) -> Engine {
    Engine::with_limits(config(&nat(head)), limits, SEED)
}

pub fn query_msg(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

pub fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    query_msg(id, name, qtype).to_vec().unwrap()
}

pub fn query_edns(id: u16, name: &str, qtype: RecordType, size: u16) -> Vec<u8> {
    let mut m = query_msg(id, name, qtype);
    let mut e = Edns::new();
    e.set_max_payload(size);
    m.edns = Some(e);
    m.to_vec().unwrap()
}

pub fn now0() -> Instant {
    Instant::now()
}

pub fn secs(t: Instant, s: u64) -> Instant {
    t + Duration::from_secs(s)
}

/// Ask and expect a local answer to the default client.
pub fn ask(e: &mut Engine, name: &str, qtype: RecordType) -> Message {
    let d = e.handle_query(now0(), client(), &query(0x1234, name, qtype));
    answer_of(d)
}

pub fn answer_of(d: Decision) -> Message {
    match d {
        Decision::Answer { bytes, .. } => Message::from_vec(&bytes).unwrap(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Ask and expect a forward; returns (upstream, bytes).
pub fn ask_forward(e: &mut Engine, name: &str, qtype: RecordType) -> (Peer, Vec<u8>) {
    let d = e.handle_query(now0(), client(), &query(0x1234, name, qtype));
    forward_of(d)
}

pub fn forward_of(d: Decision) -> (Peer, Vec<u8>) {
    match d {
        Decision::Forward { to, bytes } => (to, bytes),
        other => panic!("expected a forward, got {other:?}"),
    }
}

pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

pub fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// An upstream's reply to the forwarded `query` bytes: same ID and question, one A record.
pub fn reply_to(query: &[u8], addr: &str) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.recursion_desired = true;
    r.metadata.recursion_available = true;
    r.queries = q.queries.clone();
    let name = q.queries[0].name().clone();
    r.add_answer(Record::from_rdata(
        name,
        300,
        RData::A(A(addr.parse().unwrap())),
    ));
    r.to_vec().unwrap()
}

pub fn reply_rcode(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.response_code = code;
    r.queries = q.queries.clone();
    r.to_vec().unwrap()
}
