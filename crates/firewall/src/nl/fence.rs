//! One device into or out of the overlay DHCP fence ([`crate::fence`]) as an nfnetlink
//! batch: a network's start or stop sends this instead of running `nft`.

use super::consts::*;
use super::{Value, batch, element, ifname, nft};
use crate::fence::{FENCE_SET, fence_table, validate_fence_dev};
use crate::model::check_table;

/// The batch that adds (`add`) or deletes device `dev` in the fence set of kvnet table
/// `table`, numbered from `seq` and acknowledged. The table must exist: an add to a
/// missing one fails as a whole, as does deleting a device not in the set (`ENOENT`);
/// the caller then renders the whole table ([`crate::fence::render_fence`]).
///
/// # Panics
/// If `table` or `dev` fails validation, like the renderers.
pub fn encode_fence(table: &str, dev: &str, add: bool, seq: u32) -> Vec<u8> {
    check_table(table);
    if let Err(e) = validate_fence_dev("", dev) {
        panic!("kvnet-firewall: {e}");
    }
    let name = fence_table(table);
    let (kind, flags) = if add {
        (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
    } else {
        (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
    };
    batch(seq, 256, |b, seq| {
        b.msg(nft(kind), flags, seq.next(), NFPROTO_BRIDGE, 0, |b| {
            b.str(NFTA_SET_ELEM_LIST_TABLE, &name);
            b.str(NFTA_SET_ELEM_LIST_SET, FENCE_SET);
            b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                element(b, 1, &ifname(dev), None, false, Value::None, false)
            });
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn one_element_in_the_bridge_family_between_batch_markers() {
        let add = encode_fence("kvnet", "kvx100", true, 10);
        // BATCH_BEGIN (20 bytes), the element message, BATCH_END (20 bytes).
        let msg = &add[20..add.len() - 20];
        let kind = u16::from_ne_bytes([msg[4], msg[5]]);
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        assert_eq!(kind, nft(NFT_MSG_NEWSETELEM));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(u32::from_ne_bytes(msg[8..12].try_into().unwrap()), 11);
        assert_eq!(msg[16], NFPROTO_BRIDGE);
        let h = hex(msg);
        assert!(h.contains(&hex(b"kvnet_overlay\0")), "{h}");
        assert!(h.contains(&hex(b"overlay\0")));
        assert!(h.contains(&hex(&ifname("kvx100"))));
        let del = encode_fence("kvnet", "kvx100", false, 10);
        let msg = &del[20..del.len() - 20];
        assert_eq!(
            u16::from_ne_bytes([msg[4], msg[5]]),
            nft(NFT_MSG_DELSETELEM)
        );
        assert_eq!(del.len(), add.len());
    }
}
