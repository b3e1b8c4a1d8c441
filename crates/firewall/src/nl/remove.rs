//! The [`render_remove`](crate::render_remove) transaction as an nfnetlink batch, for
//! a destroy that runs no `nft`: at a thousand networks, `nft -f` spends ~200 ms of CPU
//! per destroy listing the whole table into its cache; this batch costs what the one
//! network's elements cost.
//!
//! Unlike the script, it does not re-add each element before deleting it, so it is not
//! idempotent: an element someone else removed fails the batch as a whole (`ENOENT`,
//! nothing changed), and the caller falls back to the script.

use super::consts::*;
use super::{batch, group_elements, nft};
use crate::model::{FwNetwork, check_table};
use crate::plan::plan;

/// The batch that removes `net`'s set elements, then its custom NAT chain's rules and
/// the chain (a chain cannot go while a map jumps to it); messages numbered from
/// `seq` and acknowledged, so an error names the message that failed.
///
/// # Panics
/// If `table` or `net` fails validation, like the renderers.
pub fn encode_remove(table: &str, net: &FwNetwork, seq: u32) -> Vec<u8> {
    check_table(table);
    let p = plan(net);
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    batch(seq, 2048, |b, seq| {
        for g in &p.groups {
            b.msg(
                nft(NFT_MSG_DELSETELEM),
                flags,
                seq.next(),
                NFPROTO_INET,
                0,
                |b| {
                    b.str(NFTA_SET_ELEM_LIST_TABLE, table);
                    b.str(NFTA_SET_ELEM_LIST_SET, g.set.name);
                    b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| group_elements(b, g, true));
                },
            );
        }
        if let Some(chain) = &p.chain {
            // A DELRULE naming only the chain flushes it.
            b.msg(
                nft(NFT_MSG_DELRULE),
                flags,
                seq.next(),
                NFPROTO_INET,
                0,
                |b| {
                    b.str(NFTA_RULE_TABLE, table);
                    b.str(NFTA_RULE_CHAIN, &chain.name);
                },
            );
            b.msg(
                nft(NFT_MSG_DELCHAIN),
                flags,
                seq.next(),
                NFPROTO_INET,
                0,
                |b| {
                    b.str(NFTA_CHAIN_TABLE, table);
                    b.str(NFTA_CHAIN_NAME, &chain.name);
                },
            );
        }
    })
}
