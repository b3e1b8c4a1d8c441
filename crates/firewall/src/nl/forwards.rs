//! A network's port forwards changed live (added, removed, or following a guest to a
//! new address) as one nfnetlink batch: map elements only, so no chain is validated
//! and its cost does not depend on how many forwards the table holds.

use super::consts::*;
use super::{Buf, group_elements};
use crate::model::{FwForward, check_table};
use crate::plan::{Group, forward_delta};

/// The batch that takes `bridge`'s forwards from `old` to `new`: a DELSETELEM per set
/// losing elements, then a NEWSETELEM per set gaining some, numbered from `seq` and
/// acknowledged. Elements both lists have are not touched. Not idempotent: an element
/// someone else removed fails the batch as a whole (nothing changes), and the caller
/// rebuilds the table. None when nothing changes.
///
/// # Panics
/// If `table` fails validation. The forwards are not checked here: validate the
/// network they belong to ([`crate::FwNetwork::validate`]) first.
pub fn encode_forwards(
    table: &str,
    bridge: &str,
    old: &[FwForward],
    new: &[FwForward],
    seq: u32,
) -> Option<Vec<u8>> {
    check_table(table);
    let (gone, added) = forward_delta(bridge, old, new);
    if gone.is_empty() && added.is_empty() {
        return None;
    }
    let mut b = Buf(Vec::with_capacity(1024));
    let mut seq = seq;
    let mut next = || {
        seq = seq.wrapping_add(1);
        seq.wrapping_sub(1)
    };
    let nft = |kind: u16| (NFNL_SUBSYS_NFTABLES << 8) | kind;
    b.msg(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next(),
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    let mut groups = |b: &mut Buf, groups: &[Group], kind: u16, flags: u16, deleting: bool| {
        for g in groups {
            b.msg(nft(kind), flags, next(), NFPROTO_INET, 0, |b| {
                b.str(NFTA_SET_ELEM_LIST_TABLE, table);
                b.str(NFTA_SET_ELEM_LIST_SET, g.set.name);
                b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                    group_elements(b, g, deleting)
                });
            });
        }
    };
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    groups(&mut b, &gone, NFT_MSG_DELSETELEM, ack, true);
    groups(
        &mut b,
        &added,
        NFT_MSG_NEWSETELEM,
        ack | NLM_F_CREATE,
        false,
    );
    b.msg(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next(),
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    Some(b.0)
}
