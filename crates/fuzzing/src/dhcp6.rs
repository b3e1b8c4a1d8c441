//! A guest's datagrams to the DHCPv6 server of a network (port 547), with the clock and
//! failed journal writes in between. Control byte: low three bits 5 run `expire`, 7 is
//! `handle` followed by a failed journal write, any other hands the payload to
//! `Server::handle`; the top five bits move the clock ([`crate::advance`], in 16 s
//! units). The properties are [`crate::dhcp4`]'s: replies decode, the table never holds
//! a record its journal lacks, compaction keeps the table.

use std::sync::OnceLock;

use dhcproto::{Decodable, Decoder, v6::Message};
use kvnet_dhcp::v6::{Config, Effect, LeaseTable, Server, compact, encode_record, replay};
use kvnet_model::Network;

/// A four-address pool, a host by DUID with an infinite lease and one by name.
pub const NETWORK: &str = "<network><name>f6</name><forward mode='nat'/>
  <domain name='example.org'/>
  <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'><dhcp>
    <range start='2001:db8:ca2:2::100' end='2001:db8:ca2:2::103'><lease expiry='10' unit='minutes'/></range>
    <host id='0:3:0:1:52:54:0:0:0:1' name='peter' ip='2001:db8:ca2:2::3'><lease expiry='0'/></host>
    <host name='paul' ip='2001:db8:ca2:2::4'/>
  </dhcp></ip></network>";

/// The server's DUID (DUID-UUID, as kvnetd makes it from the network's UUID).
pub const SERVER_DUID: [u8; 16] = [7; 16];

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let net = Network::from_xml(NETWORK).expect("the fuzz network parses");
        let duid = kvnet_dhcp::v6::duid_uuid(SERVER_DUID);
        Config::from_network(&net, 0, duid).expect("its DHCPv6 config builds")
    })
}

pub fn run(data: &[u8]) {
    let mut s = Server::new(config().clone(), LeaseTable::new());
    let mut now = crate::dhcp4::START;
    let mut journal = String::new();
    for (ctrl, payload) in crate::Steps(data) {
        now += crate::advance(ctrl) * 16;
        let effects = match ctrl & 7 {
            5 => s.expire(now),
            _ => s.handle(now, payload),
        };
        let durable = ctrl & 7 != 7;
        for e in &effects {
            match e {
                Effect::Send(bytes) => {
                    if let Err(err) = Message::decode(&mut Decoder::new(bytes)) {
                        panic!("a reply does not decode: {err}");
                    }
                }
                Effect::Persist(rec) if durable => journal.push_str(&encode_record(rec)),
                Effect::Persist(_) => {}
                Effect::Log(ev) => {
                    let _ = ev.to_string();
                }
            }
        }
        s.recorded(durable);
        crate::within(&compact(s.table()), &compact(&replay(&journal)));
        let _ = s.leases(now);
        let _ = s.next_deadline();
    }
    crate::compaction_keeps(&compact(s.table()), |t| compact(&replay(t)));
}
