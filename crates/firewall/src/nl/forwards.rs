//! A network's port forwards changed live (added, removed, or following a guest to a
//! new address) as one nfnetlink batch: map elements only, so no chain is validated
//! and its cost does not depend on how many forwards the table holds.

use super::consts::*;
use super::{batch, group_elements, nft};
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
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    Some(batch(seq, 1024, |b, seq| {
        let mut groups = |groups: &[Group], kind: u16, flags: u16, deleting: bool| {
            for g in groups {
                b.msg(nft(kind), flags, seq.next(), NFPROTO_INET, 0, |b| {
                    b.str(NFTA_SET_ELEM_LIST_TABLE, table);
                    b.str(NFTA_SET_ELEM_LIST_SET, g.set.name);
                    b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                        group_elements(b, g, deleting)
                    });
                });
            }
        };
        groups(&gone, NFT_MSG_DELSETELEM, ack, true);
        groups(&added, NFT_MSG_NEWSETELEM, ack | NLM_F_CREATE, false);
    }))
}
