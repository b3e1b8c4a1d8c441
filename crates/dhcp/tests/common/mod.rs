//! A scripted DHCP client and effect inspection for the engine tests.

#![allow(dead_code)]

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use kvnet_dhcp::{Config, Destination, Effect, Event, LeaseRecord, LeaseTable, Server};
use kvnet_model::{MacAddr, Network};

pub const NOW: u64 = 1_700_000_000;
pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 122, 1);

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 122, last)
}

pub fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

pub const NAT_NET: &str = "<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0'/>
  <domain name='example.org'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>";

pub fn net(xml: &str) -> Network {
    Network::from_xml(xml).expect("test network parses")
}

pub fn config(xml: &str) -> Config {
    let n = net(xml);
    Config::from_network(&n, 0, n.profile().guests).expect("config builds")
}

pub fn server(xml: &str) -> Server {
    Server::new(config(xml), LeaseTable::new())
}

/// A network with one range `start..=end` (last octets) and `extra` inside `<dhcp>`.
pub fn small_net(start: u8, end: u8, lease: &str, extra: &str) -> String {
    format!(
        "<network><name>t</name><forward mode='nat'/>
  <ip address='192.168.122.1' prefix='24'><dhcp>
    <range start='192.168.122.{start}' end='192.168.122.{end}'>{lease}</range>
    {extra}
  </dhcp></ip></network>"
    )
}

/// A client message under construction.
pub struct Pkt(pub Message);

impl Pkt {
    pub fn new(kind: MessageType, m: MacAddr) -> Pkt {
        let mut msg = Message::new_with_id(
            0x1234_0000 | u32::from(m.0[5]),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &m.0,
        );
        msg.set_opcode(Opcode::BootRequest);
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        Pkt(msg)
    }
    pub fn discover(m: MacAddr) -> Pkt {
        Pkt::new(MessageType::Discover, m)
    }
    /// SELECTING: server id and requested address.
    pub fn select(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Request, m)
            .server_id(SERVER)
            .requested(addr)
    }
    pub fn init_reboot(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Request, m).requested(addr)
    }
    /// RENEWING/REBINDING: ciaddr set, no server id.
    pub fn renew(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Request, m).ciaddr(addr)
    }
    pub fn release(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Release, m)
            .ciaddr(addr)
            .server_id(SERVER)
    }
    pub fn decline(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Decline, m)
            .requested(addr)
            .server_id(SERVER)
    }
    pub fn inform(m: MacAddr, addr: Ipv4Addr) -> Pkt {
        Pkt::new(MessageType::Inform, m).ciaddr(addr)
    }
    pub fn server_id(mut self, s: Ipv4Addr) -> Pkt {
        self.0.opts_mut().insert(DhcpOption::ServerIdentifier(s));
        self
    }
    pub fn requested(mut self, a: Ipv4Addr) -> Pkt {
        self.0.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        self
    }
    pub fn ciaddr(mut self, a: Ipv4Addr) -> Pkt {
        self.0.set_ciaddr(a);
        self
    }
    pub fn giaddr(mut self, a: Ipv4Addr) -> Pkt {
        self.0.set_giaddr(a);
        self
    }
    pub fn client_id(mut self, id: &[u8]) -> Pkt {
        self.0
            .opts_mut()
            .insert(DhcpOption::ClientIdentifier(id.to_vec()));
        self
    }
    pub fn hostname(mut self, h: &str) -> Pkt {
        self.0
            .opts_mut()
            .insert(DhcpOption::Hostname(h.to_string()));
        self
    }
    /// Option 51: the lease time asked for.
    pub fn lease(mut self, secs: u32) -> Pkt {
        self.0.opts_mut().insert(DhcpOption::AddressLeaseTime(secs));
        self
    }
    /// Option 81, raw: flags, two RCODE bytes, then `name` as given.
    pub fn fqdn(mut self, flags: u8, name: &[u8]) -> Pkt {
        let data = [&[flags, 0, 0][..], name].concat();
        self.0
            .opts_mut()
            .insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
                OptionCode::ClientFQDN,
                data,
            )));
        self
    }
    pub fn broadcast(mut self) -> Pkt {
        self.0.set_flags(Flags::default().set_broadcast());
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.0.to_vec().expect("test packet encodes")
    }
}

/// Effects of one call, sorted by kind (the order is checked separately where it matters).
#[derive(Debug, Default)]
pub struct Out {
    pub effects: Vec<Effect>,
    pub sends: Vec<(Message, Destination)>,
    /// `after_probe` of each send, in the same order.
    pub after_probe: Vec<Option<std::net::Ipv4Addr>>,
    pub persists: Vec<LeaseRecord>,
    pub logs: Vec<Event>,
    pub probes: Vec<std::net::Ipv4Addr>,
}

impl Out {
    pub fn of(effects: Vec<Effect>) -> Out {
        let mut o = Out::default();
        for e in &effects {
            match e {
                Effect::Persist(r) => o.persists.push(r.clone()),
                Effect::Send {
                    bytes,
                    to,
                    after_probe,
                } => {
                    assert!(bytes.len() >= 300, "replies are padded to BOOTP size");
                    let m = Message::decode(&mut Decoder::new(bytes)).expect("reply decodes");
                    assert_eq!(m.opcode(), Opcode::BootReply);
                    o.sends.push((m, *to));
                    o.after_probe.push(*after_probe);
                }
                Effect::Log(ev) => o.logs.push(ev.clone()),
                Effect::Probe(ip) => o.probes.push(*ip),
            }
        }
        o.effects = effects;
        o
    }

    /// The single reply, its type and destination.
    pub fn reply(&self) -> &Message {
        assert_eq!(self.sends.len(), 1, "expected one reply: {:?}", self.logs);
        &self.sends[0].0
    }
    pub fn kind(&self) -> MessageType {
        self.reply().opts().msg_type().expect("reply has a type")
    }
    pub fn dest(&self) -> Destination {
        self.sends[0].1
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.reply().yiaddr()
    }
    pub fn silent(&self) -> bool {
        self.sends.is_empty()
    }
}

/// One request, its journal writes reported durable as a shell does once they are.
pub fn send(s: &mut Server, now: u64, p: Pkt) -> Out {
    let out = Out::of(s.handle(now, &p.bytes()));
    s.recorded(true);
    out
}

pub fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

/// DISCOVER → OFFER → REQUEST → ACK; returns the bound address.
pub fn dora(s: &mut Server, now: u64, m: MacAddr) -> Ipv4Addr {
    let offer = send(s, now, Pkt::discover(m));
    assert_eq!(offer.kind(), MessageType::Offer, "{:?}", offer.logs);
    let a = offer.yiaddr();
    let ack = send(s, now, Pkt::select(m, a));
    assert_eq!(ack.kind(), MessageType::Ack, "{:?}", ack.logs);
    assert_eq!(ack.yiaddr(), a);
    a
}
