//! The nfnetlink batch of `encode_add_new` is well-formed and carries, in
//! order, exactly the objects of the `render_add_new` script: set elements
//! only, except for a custom-NAT network's chain. What each message holds is
//! in the golden plans (tests/plans/*.batch).

mod common;

use common::batch::{Msg, find, nft, parse};
use kvnet_firewall::nl::consts::*;
use kvnet_firewall::{FwMode, FwNetwork, encode_add_new, render_add_new};

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
            assert_eq!(find(&m.attrs, table_attr).unwrap().str(), table);
            format!("{what} {}", find(&m.attrs, name_attr).unwrap().str())
        })
        .collect()
}

fn check(table: &str, net: &FwNetwork, seq: u32) {
    let batch = encode_add_new(table, net, seq);
    let msgs = parse(&batch);
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
fn plain_networks_send_only_set_elements() {
    for (name, net) in common::all() {
        let custom = net.nat_addresses.is_some() || net.nat_ports.is_some();
        let batch = encode_add_new("kvnet", &net, 1);
        let msgs = parse(&batch);
        let chains = msgs[1..msgs.len() - 1]
            .iter()
            .filter(|m| m.kind != nft(NFT_MSG_NEWSETELEM))
            .count();
        assert_eq!(chains > 0, custom && net.mode == FwMode::Nat, "{name}");
    }
}

#[test]
#[should_panic(expected = "invalid")]
fn invalid_table_panics() {
    encode_add_new("kv net", &common::nat_default(), 1);
}
