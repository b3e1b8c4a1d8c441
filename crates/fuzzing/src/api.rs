//! A line on kvnetd's API socket, decoded as the server decodes it. A request that
//! decodes encodes back to the same request (the CLI and kvnetd speak through this
//! type); the XML a `define` or `create` carries goes through [`crate::xml::check`], and
//! an `update` is applied to a running-like network: what it yields must still be a
//! network that formats and parses back the same.

use std::sync::OnceLock;

use kvnet_api::Request;
use kvnet_model::{Network, apply_update};

/// The network updates are applied to: one of each section an update can touch.
const BASE: &str = "<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0'/>
  <dns><host ip='192.168.122.9'><hostname>h</hostname></host><txt name='t' value='v'/>
    <srv service='s' protocol='tcp'/></dns>
  <ip address='192.168.122.1' prefix='24'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/>
      <host mac='52:54:00:00:00:01' ip='192.168.122.10'/></dhcp>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64'>
    <dhcp><range start='fd00::10' end='fd00::ff'/></dhcp>
  </ip>
  <portgroup name='pg'/>
</network>";

fn base() -> &'static Network {
    static NET: OnceLock<Network> = OnceLock::new();
    NET.get_or_init(|| Network::from_xml(BASE).expect("the base network parses"))
}

pub fn run(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let line = serde_json::to_vec(&req).expect("a request encodes");
    let back: Request = serde_json::from_slice(&line).expect("an encoded request decodes");
    assert_eq!(back, req, "the request changed through JSON");
    match &req {
        Request::Define(r) => {
            crate::xml::check(&r.xml);
        }
        Request::Create(r) => {
            crate::xml::check(&r.xml);
        }
        Request::Update(u) => {
            if let Ok(net) = apply_update(base(), u.command, u.section, &u.xml, u.parent_index) {
                crate::xml::round_trip(&net);
            }
        }
        _ => {}
    }
}
