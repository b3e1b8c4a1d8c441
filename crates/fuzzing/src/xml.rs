//! Network XML as `net-define` and `net-create` take it: parse and validate; a document
//! that parses formats to XML that parses back to the same network (what `net-dumpxml`
//! prints and kvnetd saves is read again at its next start); a definition that passes
//! the define checks is completed as kvnetd completes it, round-trips the same way, and
//! yields the DHCP, DHCPv6, DNS, RA and firewall configurations a start derives from it.

use std::collections::HashSet;

use kvnet_model::Network;
use serde_json::Value;

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
}

/// What kvnetd does with a definition's text; the network, if it is one.
pub fn check(text: &str) -> Option<Network> {
    let net = Network::from_xml(text).ok()?;
    round_trip(&net);
    let _ = net.profile();
    let _ = kvnet_model::check_name_for_files(&net.name);
    if net.validate_for_define().is_ok() {
        let mut done = net.clone();
        // Fixed entropy: the generated UUID and MAC need not be random to be checked.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut entropy = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state
        };
        done.complete_for_define(&HashSet::new(), &HashSet::new(), &mut entropy);
        round_trip(&done);
        derive(&done);
    }
    Some(net)
}

/// `net` formats to XML that parses back to `net`, but for defaults the XML spells out
/// (`managed='no'`, a lease's unit), and formats the same again.
pub fn round_trip(net: &Network) {
    let out = net.to_xml();
    let back = match Network::from_xml(&out) {
        Ok(n) => n,
        Err(e) => panic!("formatted XML does not parse: {e}\n{out}"),
    };
    assert_eq!(back.to_xml(), out, "formatting is not stable");
    let (a, b) = (to_value(net), to_value(&back));
    if let Err(at) = covers(&a, &b, "network") {
        panic!("{at} changed through the formatted XML:\n{out}\nbefore: {a}\nafter: {b}");
    }
}

fn to_value(net: &Network) -> Value {
    serde_json::to_value(net).expect("a network serializes")
}

/// Whether `after` holds all of `before`: equal, except where `before` has nothing
/// (null, or an object, array or string that is empty) and `after` a default, and
/// where `before` is a zero libvirt does not print (an SRV's `priority='0'`).
fn covers(before: &Value, after: &Value, at: &str) -> Result<(), String> {
    match (before, after) {
        (Value::Object(x), Value::Object(y)) => x.iter().try_for_each(|(k, v)| {
            covers(v, y.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"))
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            let mut pairs = x.iter().zip(y).enumerate();
            pairs.try_for_each(|(i, (v, w))| covers(v, w, &format!("{at}[{i}]")))
        }
        (Value::Number(n), Value::Null) if n.as_u64() == Some(0) => Ok(()),
        _ if before == after || is_empty(before) => Ok(()),
        _ => Err(at.to_string()),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The configurations a start derives: errors are fine, panics are not.
fn derive(net: &Network) {
    let role = net.profile().guests;
    for i in 0..net.ips.len() {
        if net.ips[i].is_ipv6() {
            let _ =
                kvnet_dhcp::v6::Config::from_network(net, i, kvnet_dhcp::v6::duid_uuid([7; 16]));
        } else {
            let _ = kvnet_dhcp::Config::from_network(net, i, role);
        }
    }
    let _ = kvnet_dns::Config::from_network(net, role);
    if let Some(cfg) = kvnet_ra::Config::from_network(net, role) {
        let _ = kvnet_ra::encode_ra(&cfg, false);
    }
    if let Some(fw) = kvnet_firewall::FwNetwork::from_network(net)
        && fw.validate().is_ok()
    {
        let _ = kvnet_firewall::render_full(kvnet_firewall::DEFAULT_TABLE, &[fw]);
    }
}
