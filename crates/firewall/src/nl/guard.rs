//! The guard table: what keeps established NAT flows going while kvnet's table is
//! gone, until kvnetd has rebuilt it.
//!
//! The kernel translates an established connection's packets with the binding stored
//! in its conntrack entry, but only while some nat base chain keeps the NAT hooks
//! registered, and only while some rule keeps connection tracking on. `nft flush
//! ruleset` deletes kvnet's table, hence both: for the milliseconds until the rebuild,
//! replies reach the host untranslated and its TCP stack answers them with resets. The
//! guard table holds an empty nat chain (priority 200: after every srcnat chain, it
//! never decides anything) and a rule `ct state invalid` in a chain nothing jumps to
//! (it never runs). It carries `NFT_TABLE_F_OWNER`: it belongs to the netlink socket
//! that created it, other processes can neither change nor delete it, `nft flush
//! ruleset` passes it by, and the kernel deletes it when that socket closes.

use super::Buf;
use super::consts::*;
use crate::model::check_table;

/// The name of the guard table of kvnet table `table`.
pub fn guard_table(table: &str) -> String {
    format!("{table}_guard")
}

/// The batch that creates the guard table of `table` (family inet), its messages
/// numbered from `seq` and acknowledged.
///
/// # Panics
/// If `table` fails validation, like the renderers.
pub fn encode_guard(table: &str, seq: u32) -> Vec<u8> {
    check_table(table);
    let name = guard_table(table);
    let mut b = Buf(Vec::with_capacity(512));
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let batch = |b: &mut Buf, kind, seq| {
        b.msg(kind, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, |_| {});
    };
    // One acknowledged nf_tables message, numbered `seq + n`.
    let object = |b: &mut Buf, kind: u16, flags, n, f: &dyn Fn(&mut Buf)| {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        b.msg(kind, flags, seq + n, NFPROTO_INET, 0, f);
    };
    batch(&mut b, NFNL_MSG_BATCH_BEGIN, seq);
    object(&mut b, NFT_MSG_NEWTABLE, flags, 1, &|b| {
        b.str(NFTA_TABLE_NAME, &name);
        b.be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
    });
    object(&mut b, NFT_MSG_NEWCHAIN, flags, 2, &|b| {
        b.str(NFTA_CHAIN_TABLE, &name);
        b.str(NFTA_CHAIN_NAME, "nat");
        b.nest(NFTA_CHAIN_HOOK, |b| {
            b.be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING);
            b.be32(NFTA_HOOK_PRIORITY, 200);
        });
        b.be32(NFTA_CHAIN_POLICY, NF_ACCEPT as u32);
        b.str(NFTA_CHAIN_TYPE, "nat");
    });
    object(&mut b, NFT_MSG_NEWCHAIN, flags, 3, &|b| {
        b.str(NFTA_CHAIN_TABLE, &name);
        b.str(NFTA_CHAIN_NAME, "conntrack");
    });
    let append = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    object(&mut b, NFT_MSG_NEWRULE, append, 4, &|b| {
        b.str(NFTA_RULE_TABLE, &name);
        b.str(NFTA_RULE_CHAIN, "conntrack");
        b.nest(NFTA_RULE_EXPRESSIONS, |b| {
            // `ct state invalid`: any rule loading the state would do.
            super::expr(b, "ct", |b| {
                b.be32(NFTA_CT_DREG, NFT_REG_1);
                b.be32(NFTA_CT_KEY, NFT_CT_STATE);
            });
            super::bitwise_mask(b, &CT_STATE_INVALID.to_ne_bytes());
            super::cmp(b, NFT_CMP_NEQ, &[0; 4]);
        });
    });
    batch(&mut b, NFNL_MSG_BATCH_END, seq + 5);
    b.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_is_one_acknowledged_transaction_creating_an_owned_table() {
        let b = encode_guard("kvnet", 10);
        let mut msgs = Vec::new();
        let mut rest = &b[..];
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
            let flags = u16::from_ne_bytes(rest[6..8].try_into().unwrap());
            let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
            msgs.push((kind, flags & NLM_F_ACK != 0, seq));
            rest = &rest[len..];
        }
        let nft = |k| (NFNL_SUBSYS_NFTABLES << 8) | k;
        assert_eq!(
            msgs,
            [
                (NFNL_MSG_BATCH_BEGIN, false, 10),
                (nft(NFT_MSG_NEWTABLE), true, 11),
                (nft(NFT_MSG_NEWCHAIN), true, 12),
                (nft(NFT_MSG_NEWCHAIN), true, 13),
                (nft(NFT_MSG_NEWRULE), true, 14),
                (NFNL_MSG_BATCH_END, false, 15),
            ]
        );
        let table = &b[20 + 20..];
        assert_eq!(&table[4..16], b"kvnet_guard\0");
        assert_eq!(&table[20..24], NFT_TABLE_F_OWNER.to_be_bytes());
    }
}
