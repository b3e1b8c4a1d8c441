//! The nfnetlink batch of `encode_add_new` is well-formed and carries, in
//! order, exactly the objects of the `render_add_new` script: set elements
//! only, except for a custom-NAT network's chain.

mod common;

use kvnet_firewall::nl::consts::*;
use kvnet_firewall::{FwMode, FwNetwork, encode_add_new, render_add_new};

struct Msg<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &'a [u8],
}

fn ne16(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

/// Splits a batch, checking every length and the 4-byte alignment.
fn messages(batch: &[u8]) -> Vec<Msg<'_>> {
    assert_eq!(batch.len() % 4, 0);
    let mut out = Vec::new();
    let mut rest = batch;
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len >= NLMSG_HDRLEN + NFGENMSG_LEN && len <= rest.len());
        assert_eq!(len % 4, 0, "message length not aligned");
        let body = &rest[NLMSG_HDRLEN..len];
        check_attrs(&body[NFGENMSG_LEN..]);
        out.push(Msg {
            kind: ne16(&rest[4..]),
            flags: ne16(&rest[6..]),
            seq: u32::from_ne_bytes(rest[8..12].try_into().unwrap()),
            family: body[0],
            res_id: u16::from_be_bytes([body[2], body[3]]),
            attrs: &body[NFGENMSG_LEN..],
        });
        rest = &rest[len..];
    }
    out
}

/// Attributes exactly fill their parent; nested ones recursively.
fn check_attrs(mut attrs: &[u8]) {
    while !attrs.is_empty() {
        assert!(attrs.len() >= NLA_HDRLEN, "truncated attribute header");
        let len = ne16(attrs) as usize;
        let kind = ne16(&attrs[2..]);
        assert!(
            len >= NLA_HDRLEN && len <= attrs.len(),
            "bad attribute length"
        );
        if kind & NLA_F_NESTED != 0 {
            check_attrs(&attrs[NLA_HDRLEN..len]);
        }
        let padded = (len + 3) & !3;
        assert!(padded <= attrs.len(), "attribute padding missing");
        assert!(attrs[len..padded].iter().all(|&b| b == 0));
        attrs = &attrs[padded..];
    }
}

fn string_attr(mut attrs: &[u8], kind: u16) -> Option<String> {
    while !attrs.is_empty() {
        let len = ne16(attrs) as usize;
        if ne16(&attrs[2..]) & !NLA_F_NESTED == kind {
            let v = &attrs[NLA_HDRLEN..len];
            assert_eq!(v.last(), Some(&0), "string attribute not NUL-terminated");
            return Some(String::from_utf8(v[..v.len() - 1].to_vec()).unwrap());
        }
        attrs = &attrs[(len + 3) & !3..];
    }
    None
}

const fn nft(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

/// The script's statements, abbreviated as the batch messages they become.
fn script_objects(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["create", "chain", "inet", _, chain] => Some(format!("chain {chain}")),
                ["add", "rule", "inet", _, chain, ..] => Some(format!("rule {chain}")),
                ["add" | "create", "element", "inet", _, set, ..] => Some(format!("element {set}")),
                ["#", ..] => None,
                _ => panic!("unexpected statement {l:?}"),
            }
        })
        .collect()
}

fn batch_objects(msgs: &[Msg<'_>], table: &str) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let (what, table_attr, name_attr) = match m.kind {
                k if k == nft(NFT_MSG_NEWCHAIN) => ("chain", NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME),
                k if k == nft(NFT_MSG_NEWRULE) => ("rule", NFTA_RULE_TABLE, NFTA_RULE_CHAIN),
                k if k == nft(NFT_MSG_NEWSETELEM) => {
                    ("element", NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET)
                }
                k => panic!("unexpected message type {k:#x}"),
            };
            assert_eq!(string_attr(m.attrs, table_attr).as_deref(), Some(table));
            format!("{what} {}", string_attr(m.attrs, name_attr).unwrap())
        })
        .collect()
}

fn check(table: &str, net: &FwNetwork, seq: u32) {
    let batch = encode_add_new(table, net, seq);
    let msgs = messages(&batch);
    let (begin, end) = (&msgs[0], &msgs[msgs.len() - 1]);
    for m in [begin, end] {
        assert_eq!((m.family, m.res_id), (0, NFNL_SUBSYS_NFTABLES));
        assert_eq!(m.flags, NLM_F_REQUEST);
    }
    assert_eq!(begin.kind, NFNL_MSG_BATCH_BEGIN);
    assert_eq!(end.kind, NFNL_MSG_BATCH_END);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.seq, seq.wrapping_add(i as u32), "sequence numbers");
    }
    let inner = &msgs[1..msgs.len() - 1];
    for (i, m) in inner.iter().enumerate() {
        assert_eq!(m.family, NFPROTO_INET);
        assert_eq!(m.res_id, 0);
        // Only the first element (cross) and a custom chain are exclusive,
        // like `create` in the script.
        let extra = match m.kind {
            k if k == nft(NFT_MSG_NEWCHAIN) => NLM_F_CREATE | NLM_F_EXCL,
            k if k == nft(NFT_MSG_NEWRULE) => NLM_F_CREATE | NLM_F_APPEND,
            _ if i == 0 => NLM_F_CREATE | NLM_F_EXCL,
            _ => NLM_F_CREATE,
        };
        assert_eq!(m.flags, NLM_F_REQUEST | NLM_F_ACK | extra, "{:#x}", m.kind);
    }
    assert_eq!(
        batch_objects(inner, table),
        script_objects(&render_add_new(table, net)),
        "{}",
        net.name
    );
}

#[test]
fn batches_are_well_formed_and_follow_the_script() {
    for (_, net) in common::all() {
        check("kvnet", &net, 1);
        check("kvnet_test", &net, 0xffff_fffe);
    }
    check("kvnet", &common::numbered(7), 42);
}

#[test]
fn batch_size_does_not_depend_on_network_number() {
    let a = encode_add_new("kvnet", &common::numbered(1), 1);
    let b = encode_add_new("kvnet", &common::numbered(2), 1);
    assert_eq!(a.len(), b.len());
}

#[test]
fn interval_elements_carry_start_and_end() {
    let net = FwNetwork {
        mode: FwMode::Nat,
        ..common::nat_default()
    };
    let batch = encode_add_new("kvnet", &net, 1);
    let msgs = messages(&batch);
    let nat4 = msgs
        .iter()
        .find(|m| string_attr(m.attrs, NFTA_SET_ELEM_LIST_SET).as_deref() == Some("nat4"))
        .expect("nat4 element");
    let hex: String = nat4.attrs.iter().map(|b| format!("{b:02x}")).collect();
    // The zero end nft sends for an empty map, the start, and the end.
    for key in ["00000000", "c0a87a00", "c0a87b00"] {
        assert!(hex.contains(&format!("08000100{key}")), "{key} in {hex}");
    }
}

#[test]
fn plain_networks_send_only_set_elements() {
    for (name, net) in common::all() {
        let custom = net.nat_addresses.is_some() || net.nat_ports.is_some();
        let batch = encode_add_new("kvnet", &net, 1);
        let msgs = messages(&batch);
        let chains = msgs[1..msgs.len() - 1]
            .iter()
            .filter(|m| m.kind != nft(NFT_MSG_NEWSETELEM))
            .count();
        assert_eq!(chains > 0, custom && net.mode == FwMode::Nat, "{name}");
    }
}

/// A concatenation with intervals carries the key and the inclusive end.
#[test]
fn concatenated_interval_elements_carry_key_end() {
    let batch = encode_add_new("kvnet", &common::nat_default(), 1);
    let msgs = messages(&batch);
    let est4 = msgs
        .iter()
        .find(|m| string_attr(m.attrs, NFTA_SET_ELEM_LIST_SET).as_deref() == Some("est4"))
        .expect("est4 element");
    let hex: String = est4.attrs.iter().map(|b| format!("{b:02x}")).collect();
    let name = "76697262723000000000000000000000";
    // NFTA_SET_ELEM_KEY and NFTA_SET_ELEM_KEY_END, each a nested NFTA_DATA_VALUE.
    assert!(
        hex.contains(&format!("1c00018018000100{name}c0a87a00")),
        "{hex}"
    );
    assert!(
        hex.contains(&format!("1c000a8018000100{name}c0a87aff")),
        "{hex}"
    );
}

#[test]
#[should_panic(expected = "invalid")]
fn invalid_table_panics() {
    encode_add_new("kv net", &common::nat_default(), 1);
}
