//! `dhcp-option`, `dhcp-option-force`, `dhcp-boot` and `log-dhcp` from libvirt's
//! `<dnsmasq:options>`, through whole exchanges.

mod common;

use common::*;
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use kvnet_dhcp::{Effect, Event, Server};

/// A NAT network with one static host (mac 1 → .5) and `opts`.
fn net_with(opts: &[&str], bootp: &str) -> String {
    let opts: String = opts
        .iter()
        .map(|o| format!("<dnsmasq:option value='{o}'/>"))
        .collect();
    format!(
        "<network><name>t</name><forward mode='nat'/><bridge name='virbr9'/>\
         <ip address='192.168.122.1' prefix='24'><dhcp>\
         <range start='192.168.122.10' end='192.168.122.20'/>\
         <host mac='52:54:00:00:00:01' ip='192.168.122.5'/>{bootp}</dhcp></ip>\
         <dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
         {opts}</dnsmasq:options></network>"
    )
}

fn prl(p: Pkt, codes: &[u8]) -> Pkt {
    let mut p = p;
    p.0.opts_mut().insert(DhcpOption::ParameterRequestList(
        codes.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    p
}

/// The options of the single reply in `out`, raw: (code, data), in order.
fn raw(out: &Out) -> Vec<(u8, Vec<u8>)> {
    let bytes = out
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Send { bytes, .. } => Some(bytes),
            _ => None,
        })
        .expect("a reply");
    let mut opts = Vec::new();
    let mut i = 240;
    while bytes[i] != 255 {
        if bytes[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(bytes[i + 1]);
        opts.push((bytes[i], bytes[i + 2..i + 2 + len].to_vec()));
        i += 2 + len;
    }
    opts
}

fn get(out: &Out, code: u8) -> Option<Vec<u8>> {
    raw(out)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, d)| d)
}

/// A BOOTP string field without dhcproto's trailing NUL.
fn field(f: Option<Result<&str, std::str::Utf8Error>>) -> Option<&str> {
    f.and_then(Result::ok).map(|s| s.trim_end_matches('\0'))
}

fn offer(s: &mut Server, p: Pkt) -> Out {
    let o = send(s, NOW, p);
    assert_eq!(o.kind(), MessageType::Offer, "{:?}", o.logs);
    o
}

#[test]
fn options_are_sent_when_asked_forced_or_no_list() {
    let mut s = server(&net_with(
        &[
            "dhcp-option=option:ntp-server,0.0.0.0,192.168.122.7",
            "dhcp-option-force=252,\"http://wpad.lab/wpad.dat\"",
            "dhcp-option=option:domain-search,lab.test",
        ],
        "",
    ));
    let ntp = vec![192, 168, 122, 1, 192, 168, 122, 7];
    // Asked for 42: sent (0.0.0.0 is the server), 252 forced, 119 not asked: not sent.
    let o = offer(&mut s, prl(Pkt::discover(mac(9)), &[1, 3, 6, 42]));
    assert_eq!(get(&o, 42), Some(ntp.clone()));
    assert_eq!(get(&o, 252), Some(b"http://wpad.lab/wpad.dat".to_vec()));
    assert_eq!(get(&o, 119), None);
    // The options come in the order of the request list, the forced one after.
    let codes: Vec<u8> = raw(&o).iter().map(|(c, _)| *c).collect();
    let pos = |c| codes.iter().position(|&x| x == c).unwrap();
    assert!(pos(42) < pos(252), "{codes:?}");
    // Not asked: only the forced one.
    let o = offer(&mut s, prl(Pkt::discover(mac(10)), &[1, 3]));
    assert_eq!(get(&o, 42), None);
    assert!(get(&o, 252).is_some());
    // No request list: everything, as dnsmasq does.
    let o = offer(&mut s, Pkt::discover(mac(11)));
    assert_eq!(get(&o, 42), Some(ntp));
    assert_eq!(get(&o, 119), Some(b"\x03lab\x04test\x00".to_vec()));
}

#[test]
fn options_replace_or_remove_kvnets_own() {
    let mut s = server(&net_with(
        &[
            "dhcp-option=3,192.168.122.254",
            "dhcp-option=option:dns-server",
            "dhcp-option=option:mtu,9000",
        ],
        "",
    ));
    let o = offer(&mut s, prl(Pkt::discover(mac(9)), &[1, 3, 6, 26]));
    assert_eq!(get(&o, 3), Some(vec![192, 168, 122, 254]));
    assert_eq!(get(&o, 6), None);
    assert_eq!(get(&o, 26), Some(vec![0x23, 0x28]));
    assert_eq!(get(&o, 1), Some(vec![255, 255, 255, 0]));
    // One router option only.
    assert_eq!(raw(&o).iter().filter(|(c, _)| *c == 3).count(), 1);
    // The ACK carries them too.
    let a = send(
        &mut s,
        NOW,
        prl(Pkt::select(mac(9), o.yiaddr()), &[1, 3, 6, 26]),
    );
    assert_eq!(a.kind(), MessageType::Ack);
    assert_eq!(get(&a, 3), Some(vec![192, 168, 122, 254]));
    assert_eq!(get(&a, 6), None);
}

#[test]
fn known_tags_follow_host_entries() {
    let mut s = server(&net_with(
        &[
            "dhcp-option-force=tag:known,252,known",
            "dhcp-option-force=tag:!known,252,stranger",
            "dhcp-option-force=tag:virbr9,253,everyone",
        ],
        "",
    ));
    let o = offer(&mut s, Pkt::discover(mac(1)));
    assert_eq!(o.yiaddr(), ip(5));
    assert_eq!(get(&o, 252), Some(b"known".to_vec()));
    assert_eq!(get(&o, 253), Some(b"everyone".to_vec()));
    let o = offer(&mut s, Pkt::discover(mac(2)));
    assert_eq!(get(&o, 252), Some(b"stranger".to_vec()));
    assert_eq!(get(&o, 253), Some(b"everyone".to_vec()));
}

#[test]
fn dhcp_boot_sets_the_bootp_fields_over_bootp() {
    let mut s = server(&net_with(
        &[
            "dhcp-boot=pxelinux.0",
            "dhcp-boot=tag:known,ipxe.efi,bootsrv,192.168.122.9",
        ],
        "<bootp file='old.0' server='192.168.122.8'/>",
    ));
    let o = offer(&mut s, Pkt::discover(mac(2)));
    assert_eq!(field(o.reply().fname_str()), Some("pxelinux.0"));
    // No server address: the server's own, as dnsmasq does.
    assert_eq!(o.reply().siaddr(), SERVER);
    let o = offer(&mut s, Pkt::discover(mac(1)));
    assert_eq!(field(o.reply().fname_str()), Some("ipxe.efi"));
    assert_eq!(field(o.reply().sname_str()), Some("bootsrv"));
    assert_eq!(o.reply().siaddr(), ip(9));
    // Without dhcp-boot, <bootp> as before.
    let mut s = server(&net_with(
        &[],
        "<bootp file='old.0' server='192.168.122.8'/>",
    ));
    let o = offer(&mut s, Pkt::discover(mac(2)));
    assert_eq!(field(o.reply().fname_str()), Some("old.0"));
    assert_eq!(o.reply().siaddr(), ip(8));
}

#[test]
fn log_dhcp_reports_each_exchange() {
    let mut s = server(&net_with(&["log-dhcp"], ""));
    let o = send(&mut s, NOW, prl(Pkt::discover(mac(1)), &[1, 3]));
    let ex: Vec<&Event> = o
        .logs
        .iter()
        .filter(|e| matches!(e, Event::Exchange { .. }))
        .collect();
    assert_eq!(ex.len(), 1, "{:?}", o.logs);
    let line = ex[0].to_string();
    assert!(line.starts_with("DHCPDISCOVER from 52:54:00:00:00:01 (known), requested options [1, 3]; reply options [53, 54"), "{line}");
    // Without it, no such event.
    let mut s = server(&net_with(&[], ""));
    let o = send(&mut s, NOW, Pkt::discover(mac(1)));
    assert!(!o.logs.iter().any(|e| matches!(e, Event::Exchange { .. })));
}
