use super::*;

/// Notifications captured in a namespace (each datagram prefixed with its length, u32
/// little-endian) while these ran, one `nft` process each (pids 23456 to 23459):
///
/// 1. `nft -f` of `table inet kvnet` with set `nat4` (interval, one element) and a
///    nat chain `postrouting` with a masquerade rule;
/// 2. `nft add rule inet kvnet postrouting counter`;
/// 3. `nft add element inet kvnet nat4 { 10.0.0.0/8 }`;
/// 4. `nft flush ruleset`.
const CAPTURE: &[u8] = include_bytes!("capture.bin");

fn datagrams(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        out.push(&b[4..4 + n]);
        b = &b[4 + n..];
    }
    out
}

fn commits(capture: &[u8]) -> Vec<Commit> {
    let mut asm = Assembler::default();
    datagrams(capture)
        .into_iter()
        .flat_map(parse)
        .filter_map(|i| asm.push(i))
        .collect()
}

fn change(kind: Kind, added: bool, table: &str) -> Change {
    Change {
        kind,
        added,
        family: NFPROTO_INET,
        table: Some(table.into()),
    }
}

#[test]
fn captured_transactions_become_one_commit_each_with_their_committer() {
    let c = commits(CAPTURE);
    assert_eq!(c.len(), 4, "{c:#?}");
    for (i, c) in c.iter().enumerate() {
        assert_eq!(c.generation, 2 + i as u32);
        assert_eq!(c.pid, 23456 + i as u32, "the nft process");
        assert_eq!(c.portid, c.pid, "nft's socket is bound to its pid");
        assert_eq!(c.comm, "nft");
        assert!(c.touches("kvnet") && !c.touches("other"));
    }
    use Kind::*;
    assert_eq!(
        c[0].changes,
        [
            change(Table, true, "kvnet"),
            change(Chain, true, "kvnet"),
            change(Set, true, "kvnet"),
            change(Element, true, "kvnet"),
            change(Rule, true, "kvnet"),
        ],
        "repeats (three element messages) merged"
    );
    assert_eq!(c[1].changes, [change(Rule, true, "kvnet")]);
    assert_eq!(c[2].changes, [change(Element, true, "kvnet")]);
    assert_eq!(
        c[3].changes,
        [
            change(Rule, false, "kvnet"),
            change(Set, false, "kvnet"),
            change(Chain, false, "kvnet"),
            change(Table, false, "kvnet"),
        ]
    );
}

#[test]
fn a_message_the_parser_refuses_is_a_change_of_an_unknown_table() {
    let dg = datagrams(CAPTURE);
    // The rule of transaction 2, its attributes cut after the table's name.
    let mut rule = dg[2].to_vec();
    let second = 20 + (u16::from_ne_bytes([rule[20], rule[21]]) as usize).next_multiple_of(4);
    let cut = second + 4;
    rule.truncate(cut);
    // The second attribute claims a length past the end.
    rule[second..second + 2].copy_from_slice(&200u16.to_ne_bytes());
    rule[..4].copy_from_slice(&(cut as u32).to_ne_bytes());
    let items = parse(&rule);
    assert_eq!(
        items,
        [Item::Change(Change {
            kind: Kind::Rule,
            added: true,
            family: NFPROTO_INET,
            table: None,
        })]
    );
    let Item::Change(c) = &items[0] else {
        unreachable!()
    };
    assert!(c.may_touch("kvnet") && c.may_touch("other"));
}

#[test]
fn truncated_and_foreign_messages_are_skipped() {
    let dg = datagrams(CAPTURE);
    assert_eq!(parse(&dg[0][..10]), []);
    // A conntrack message (subsystem 1) is not an nftables change.
    let mut ct = dg[1].to_vec();
    ct[4..6].copy_from_slice(&0x0100u16.to_ne_bytes());
    assert_eq!(parse(&ct), []);
}

#[test]
fn committers_are_recognised_while_registered_and_for_a_grace_period() {
    let t0 = Instant::now();
    let mut own = OwnSet::default();
    own.add(Who::Process(100));
    own.add(Who::Port(0x8000_0001));
    assert!(own.contains(100, 100, t0), "an nft child, no pid namespace");
    assert!(
        own.contains(4242, 100, t0),
        "in a pid namespace: by its port id"
    );
    assert!(own.contains(7, 0x8000_0001, t0), "a native batch's socket");
    assert!(!own.contains(0x8000_0001, 5, t0), "a port id is not a pid");
    assert!(!own.contains(101, 101, t0));
    own.release(Who::Process(100), t0);
    assert!(own.contains(100, 100, t0 + OWN_GRACE - Duration::from_millis(1)));
    assert!(!own.contains(100, 100, t0 + OWN_GRACE));
    assert!(
        own.contains(7, 0x8000_0001, t0 + OWN_GRACE),
        "still running"
    );
}

#[test]
fn a_pid_registered_twice_stays_until_both_are_released() {
    let t0 = Instant::now();
    let mut own = OwnSet::default();
    own.add(Who::Process(9));
    own.add(Who::Process(9));
    own.release(Who::Process(9), t0);
    assert!(own.contains(9, 9, t0 + OWN_GRACE * 2));
}
