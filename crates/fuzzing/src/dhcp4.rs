//! A guest's datagrams to the DHCPv4 server of a network (port 67), with the clock, the
//! shell's conflict reports and failed journal writes in between. Control byte: low three
//! bits 0–4 hand the payload to `Server::handle`, 5 runs `expire`, 6 reports the address
//! in the payload's first four bytes in use by the MAC in the next six, 7 is `handle`
//! followed by a failed journal write; the top five bits move the clock ([`crate::advance`],
//! in 16 s units). Every reply decodes and fills BOOTP's 300 bytes; the engine's table
//! never holds a record its journal (the records it asked to persist, in writes that
//! did not fail) lacks; the final table survives a compaction unchanged.

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use dhcproto::{Decodable, Decoder, v4::Message};
use kvnet_dhcp::{Config, Effect, LeaseTable, Server, compact, encode_record, replay};
use kvnet_model::{MacAddr, Network};

/// A small pool, so exhaustion is a few messages away, and one host of each kind.
pub const NETWORK: &str = "<network><name>f</name><forward mode='nat'/>
  <domain name='example.org'/><mtu size='9000'/>
  <ip address='192.168.122.1' prefix='24'><dhcp>
    <range start='192.168.122.10' end='192.168.122.13'><lease expiry='10' unit='minutes'/></range>
    <host mac='52:54:00:00:00:01' ip='192.168.122.20'/>
    <host id='01:52:54:00:00:00:02' name='byid' ip='192.168.122.21'><lease expiry='0'/></host>
    <host name='named' ip='192.168.122.22'/>
    <bootp file='pxelinux.0'/>
  </dhcp></ip></network>";

/// The time the clock starts at, Unix seconds.
pub const START: u64 = 1_700_000_000;

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let net = Network::from_xml(NETWORK).expect("the fuzz network parses");
        Config::from_network(&net, 0, net.profile().guests).expect("its DHCP config builds")
    })
}

pub fn run(data: &[u8]) {
    let mut s = Server::new(config().clone(), LeaseTable::new());
    let mut now = START;
    let mut journal = String::new();
    for (ctrl, payload) in crate::Steps(data) {
        now += crate::advance(ctrl) * 16;
        let effects = match ctrl & 7 {
            5 => s.expire(now),
            6 => {
                let b = |i: usize| payload.get(i).copied().unwrap_or(0);
                let ip = Ipv4Addr::new(b(0), b(1), b(2), b(3));
                let mac = MacAddr([b(4), b(5), b(6), b(7), b(8), b(9)]);
                s.note_in_use(ip, mac, now)
            }
            _ => s.handle(now, payload),
        };
        let durable = ctrl & 7 != 7;
        for e in &effects {
            check(e);
            if let (Effect::Persist(rec), true) = (e, durable) {
                journal.push_str(&encode_record(rec));
            }
        }
        s.recorded(durable);
        crate::within(&compact(s.table()), &compact(&replay(&journal)));
        let _ = s.leases(now);
        let _ = s.next_deadline();
    }
    crate::compaction_keeps(&compact(s.table()), |t| compact(&replay(t)));
}

fn check(e: &Effect) {
    match e {
        Effect::Send { bytes, .. } => {
            assert!(bytes.len() >= 300, "a reply of {} bytes", bytes.len());
            if let Err(err) = Message::decode(&mut Decoder::new(bytes)) {
                panic!("a reply does not decode: {err}");
            }
        }
        Effect::Log(ev) => {
            let _ = ev.to_string();
        }
        Effect::Persist(_) | Effect::Probe(_) => {}
    }
}
