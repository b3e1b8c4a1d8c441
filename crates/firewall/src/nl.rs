//! The [`render_add_new`](crate::render_add_new) transaction as an
//! nfnetlink batch, for applying it without the `nft` binary.
//!
//! `nft -f` costs a process start and, in nft 1.0.6, a dump of the whole
//! table into its cache before every transaction, so it gets slower as
//! networks accumulate. [`encode_add_new`] builds the same messages nft sends
//! for that script (checked against `nft --debug=netlink` and the bytes nft
//! writes), from this network alone: its size and cost do not depend on how
//! many networks the table holds. Pure encoding: the caller sends the bytes
//! over a `NETLINK_NETFILTER` socket.
//!
//! Only elements (and a custom-NAT network's chain) are encoded: the sets,
//! with their key types and concatenation field lengths, come from the
//! skeleton that nft creates from [`render_add`](crate::render_add) or
//! [`render_full`](crate::render_full); a missing set fails the batch, and
//! the daemon falls back to nft. A key is its fields one after the other,
//! each in whole 4-byte registers (an interface name takes 16 bytes, a
//! protocol or a port 4); a concatenation with intervals gets the first and
//! the last key of the range (`NFTA_SET_ELEM_KEY`, `NFTA_SET_ELEM_KEY_END`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{FwNetwork, check_table};
use crate::plan::{Action, Chain, Dir, Element, Field, Group, Match, Rule, plan};

pub mod consts;
mod fence;
mod forwards;
mod guard;
mod remove;

pub use fence::encode_fence;
pub use forwards::encode_forwards;
pub use guard::{encode_guard, guard_table};
pub use remove::encode_remove;

use consts::*;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A growing netlink buffer; attributes are padded to 4 bytes as netlink requires.
struct Buf(Vec<u8>);

impl Buf {
    fn pad(&mut self) {
        let len = align4(self.0.len());
        self.0.resize(len, 0);
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + data.len()).expect("netlink attribute too long");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    fn str(&mut self, kind: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(kind, &data);
    }

    fn be32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }

    /// Writes a nested attribute whose content `f` appends.
    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Buf)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; NLA_HDRLEN]);
        f(self);
        let len = u16::try_from(self.0.len() - start).expect("netlink attribute too long");
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.0[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    /// Writes one netlink message: header, `nfgenmsg`, then what `f` appends.
    fn msg(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
        f: impl FnOnce(&mut Buf),
    ) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; NLMSG_HDRLEN]);
        self.0.extend_from_slice(&[family, 0]);
        self.0.extend_from_slice(&res_id.to_be_bytes());
        f(self);
        let len = u32::try_from(self.0.len() - start).expect("netlink message too long");
        let h = &mut self.0[start..start + NLMSG_HDRLEN];
        h[0..4].copy_from_slice(&len.to_ne_bytes());
        h[4..6].copy_from_slice(&kind.to_ne_bytes());
        h[6..8].copy_from_slice(&flags.to_ne_bytes());
        h[8..12].copy_from_slice(&seq.to_ne_bytes());
        // nlmsg_pid stays 0: the kernel fills in the sender.
    }
}

/// Numbers a batch's messages, its first one `seq`.
struct Seq(u32);

impl Seq {
    fn next(&mut self) -> u32 {
        let s = self.0;
        self.0 = s.wrapping_add(1);
        s
    }
}

/// An nf_tables message type.
fn nft(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

/// A transaction: BATCH_BEGIN, the messages `body` writes, BATCH_END; numbered from
/// `seq` on.
fn batch(seq: u32, capacity: usize, body: impl FnOnce(&mut Buf, &mut Seq)) -> Vec<u8> {
    let mut b = Buf(Vec::with_capacity(capacity));
    let mut s = Seq(seq);
    let marker =
        |b: &mut Buf, kind, seq| b.msg(kind, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, |_| {});
    marker(&mut b, NFNL_MSG_BATCH_BEGIN, s.next());
    body(&mut b, &mut s);
    marker(&mut b, NFNL_MSG_BATCH_END, s.next());
    b.0
}

/// One nftables expression in a rule's expression list.
fn expr(b: &mut Buf, name: &str, data: impl FnOnce(&mut Buf)) {
    b.nest(NFTA_LIST_ELEM, |b| {
        b.str(NFTA_EXPR_NAME, name);
        b.nest(NFTA_EXPR_DATA, data);
    });
}

fn meta_load(b: &mut Buf, key: u32) {
    expr(b, "meta", |b| {
        b.be32(NFTA_META_KEY, key);
        b.be32(NFTA_META_DREG, NFT_REG_1);
    });
}

fn cmp(b: &mut Buf, op: u32, value: &[u8]) {
    expr(b, "cmp", |b| {
        b.be32(NFTA_CMP_SREG, NFT_REG_1);
        b.be32(NFTA_CMP_OP, op);
        b.nest(NFTA_CMP_DATA, |b| b.attr(NFTA_DATA_VALUE, value));
    });
}

fn payload_load(b: &mut Buf, base: u32, offset: u32, len: usize) {
    expr(b, "payload", |b| {
        b.be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
        b.be32(NFTA_PAYLOAD_BASE, base);
        b.be32(NFTA_PAYLOAD_OFFSET, offset);
        b.be32(NFTA_PAYLOAD_LEN, len as u32);
    });
}

/// `reg 1 = (reg 1 & mask) ^ 0`.
fn bitwise_mask(b: &mut Buf, mask: &[u8]) {
    expr(b, "bitwise", |b| {
        b.be32(NFTA_BITWISE_SREG, NFT_REG_1);
        b.be32(NFTA_BITWISE_DREG, NFT_REG_1);
        b.be32(NFTA_BITWISE_LEN, mask.len() as u32);
        b.nest(NFTA_BITWISE_MASK, |b| b.attr(NFTA_DATA_VALUE, mask));
        b.nest(NFTA_BITWISE_XOR, |b| {
            b.attr(NFTA_DATA_VALUE, &vec![0; mask.len()]);
        });
    });
}

fn immediate_value(b: &mut Buf, reg: u32, value: &[u8]) {
    expr(b, "immediate", |b| {
        b.be32(NFTA_IMMEDIATE_DREG, reg);
        b.nest(NFTA_IMMEDIATE_DATA, |b| b.attr(NFTA_DATA_VALUE, value));
    });
}

fn verdict_data(b: &mut Buf, code: i32, chain: Option<&str>) {
    b.nest(NFTA_DATA_VERDICT, |b| {
        b.be32(NFTA_VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            b.str(NFTA_VERDICT_CHAIN, chain);
        }
    });
}

fn immediate_verdict(b: &mut Buf, code: i32) {
    expr(b, "immediate", |b| {
        b.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        b.nest(NFTA_IMMEDIATE_DATA, |b| verdict_data(b, code, None));
    });
}

/// An interface name as nft puts it in a register or a set key.
fn ifname(name: &str) -> [u8; IFNAMSIZ] {
    let mut out = [0; IFNAMSIZ];
    out[..name.len()].copy_from_slice(name.as_bytes());
    out
}

fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn nfproto(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => NFPROTO_IPV4,
        IpNet::V6(_) => NFPROTO_IPV6,
    }
}

/// Encodes one custom-NAT rule's expressions the way nft 1.0.6 linearizes
/// it for an `inet` table: address matches get a `meta nfproto` dependency
/// (once per rule), prefixes on a byte boundary load only their bytes, other
/// prefixes load the address and mask it.
fn rule_exprs(b: &mut Buf, rule: &Rule) {
    let mut family: Option<u8> = None;
    for m in &rule.matches {
        match m {
            Match::Oifname(name) => {
                meta_load(b, NFT_META_OIFNAME);
                cmp(b, NFT_CMP_EQ, &ifname(name));
            }
            Match::Addr {
                dir, negate, net, ..
            } => {
                let fam = nfproto(net);
                if family != Some(fam) {
                    meta_load(b, NFT_META_NFPROTO);
                    cmp(b, NFT_CMP_EQ, &[fam]);
                    family = Some(fam);
                }
                let offset = match (net, dir) {
                    (IpNet::V4(_), Dir::Saddr) => 12,
                    (IpNet::V4(_), Dir::Daddr) => 16,
                    (IpNet::V6(_), Dir::Saddr) => 8,
                    (IpNet::V6(_), Dir::Daddr) => 24,
                };
                let bits = usize::from(net.prefix_len());
                let addr = addr_bytes(net.network());
                let op = if *negate { NFT_CMP_NEQ } else { NFT_CMP_EQ };
                if bits > 0 && bits % 8 == 0 {
                    payload_load(b, NFT_PAYLOAD_NETWORK_HEADER, offset, bits / 8);
                    cmp(b, op, &addr[..bits / 8]);
                } else {
                    payload_load(b, NFT_PAYLOAD_NETWORK_HEADER, offset, addr.len());
                    bitwise_mask(b, &addr_bytes(net.netmask()));
                    cmp(b, op, &addr);
                }
            }
            Match::L4proto(p) => {
                meta_load(b, NFT_META_L4PROTO);
                cmp(b, NFT_CMP_EQ, &[p.number()]);
            }
        }
    }
    // Like nft, no initial values: the kernel starts counters at zero.
    expr(b, "counter", |_| {});
    match &rule.action {
        Action::Return => immediate_verdict(b, NFT_RETURN),
        Action::Masquerade { ports } => {
            let regs = ports.map(|p| load_ports(b, NFT_REG_1, p));
            expr(b, "masq", |b| {
                if let Some((min, max)) = regs {
                    b.be32(NFTA_MASQ_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                    b.be32(NFTA_MASQ_REG_PROTO_MIN, min);
                    if let Some(max) = max {
                        b.be32(NFTA_MASQ_REG_PROTO_MAX, max);
                    }
                }
            });
        }
        Action::Snat {
            addrs: (a1, a2),
            ports,
        } => {
            // Registers are handed out in order: addresses, then ports; a
            // single address or port takes one register, as nft does.
            let mut next = NFT_REG_1;
            immediate_value(b, next, &a1.octets());
            let addr_min = next;
            next += 1;
            let addr_max = (a1 != a2).then(|| {
                immediate_value(b, next, &a2.octets());
                next += 1;
                next - 1
            });
            let port_regs = ports.map(|p| load_ports(b, next, p));
            expr(b, "nat", |b| {
                b.be32(NFTA_NAT_TYPE, NFT_NAT_SNAT);
                b.be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
                b.be32(NFTA_NAT_REG_ADDR_MIN, addr_min);
                if let Some(r) = addr_max {
                    b.be32(NFTA_NAT_REG_ADDR_MAX, r);
                }
                if let Some((min, max)) = port_regs {
                    b.be32(NFTA_NAT_REG_PROTO_MIN, min);
                    if let Some(max) = max {
                        b.be32(NFTA_NAT_REG_PROTO_MAX, max);
                    }
                    b.be32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                }
            });
        }
    }
}

/// Loads a port range into registers from `first`; returns the registers of
/// the minimum and (unless it is a single port) the maximum.
fn load_ports(b: &mut Buf, first: u32, (p1, p2): (u16, u16)) -> (u32, Option<u32>) {
    immediate_value(b, first, &p1.to_be_bytes());
    if p1 == p2 {
        return (first, None);
    }
    immediate_value(b, first + 1, &p2.to_be_bytes());
    (first, Some(first + 1))
}

/// The first address after `net`, or None when `net` reaches the end of the
/// address space.
fn interval_end(net: &IpNet) -> Option<Vec<u8>> {
    match net {
        IpNet::V4(n) => {
            let end = u64::from(u32::from(n.broadcast())) + 1;
            u32::try_from(end).ok().map(|e| e.to_be_bytes().to_vec())
        }
        IpNet::V6(n) => u128::from(n.broadcast())
            .checked_add(1)
            .map(|e| e.to_be_bytes().to_vec()),
    }
}

/// One field as the kernel stores it in a key: in a register of its own,
/// zero-padded to 4 bytes. `last` gives the end of a subnet's range.
fn field_bytes(f: &Field, last: bool) -> Vec<u8> {
    let mut out = match f {
        Field::Ifname(name) => ifname(name).to_vec(),
        Field::Net(n) if last => addr_bytes(n.broadcast()),
        Field::Net(n) => addr_bytes(n.network()),
        Field::Proto(p) => vec![p.number()],
        Field::Port(p) => p.to_be_bytes().to_vec(),
    };
    out.resize(align4(out.len()), 0);
    out
}

fn key_bytes(e: &Element, last: bool) -> Vec<u8> {
    e.key.iter().flat_map(|f| field_bytes(f, last)).collect()
}

/// What a map element maps to.
#[derive(Clone, Copy)]
enum Value<'a> {
    None,
    Jump(&'a str),
    Data(&'a [u8]),
}

/// One set element inside NFTA_SET_ELEM_LIST_ELEMENTS. libnftnl numbers
/// them 1, 2, … (the kernel ignores the number), so `index` is copied.
fn element(
    b: &mut Buf,
    index: u16,
    key: &[u8],
    key_end: Option<&[u8]>,
    end: bool,
    value: Value,
    open: bool,
) {
    b.nest(index, |b| {
        if end {
            b.be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        b.nest(NFTA_SET_ELEM_KEY, |b| b.attr(NFTA_DATA_VALUE, key));
        match value {
            Value::None => {}
            Value::Jump(chain) => b.nest(NFTA_SET_ELEM_DATA, |b| {
                verdict_data(b, NFT_JUMP, Some(chain))
            }),
            Value::Data(data) => b.nest(NFTA_SET_ELEM_DATA, |b| b.attr(NFTA_DATA_VALUE, data)),
        }
        if open {
            let mut udata = vec![NFTNL_UDATA_SET_ELEM_FLAGS, 4];
            udata.extend_from_slice(&NFTNL_SET_ELEM_F_INTERVAL_OPEN.to_ne_bytes());
            b.attr(NFTA_SET_ELEM_USERDATA, &udata);
        }
        if let Some(key_end) = key_end {
            b.nest(NFTA_SET_ELEM_KEY_END, |b| b.attr(NFTA_DATA_VALUE, key_end));
        }
    });
}

/// The elements of one group, as nft sends them. A concatenation with
/// intervals (pipapo) takes each element as a key and an inclusive key end.
/// A single-field interval set takes an element per boundary: the start
/// (with the verdict), then the end flagged `NFT_SET_ELEM_INTERVAL_END`
/// (none when the interval runs to the top of the address space, which nft
/// marks in the start's user data instead); nft also sends an end element
/// at address zero when its cache shows the set empty, and without a cache
/// it is sent every time, which the kernel ignores when it is already there.
/// A deletion (`deleting`) leaves that end alone: other intervals may need it,
/// and names elements by key alone. A forward map's value is its fields in
/// whole registers, like a key.
fn group_elements(b: &mut Buf, g: &Group, deleting: bool) {
    let mut index = 1;
    for e in &g.elements {
        let data: Vec<u8> = if deleting {
            Vec::new()
        } else {
            e.data.iter().flat_map(|f| field_bytes(f, false)).collect()
        };
        let value = match (&e.jump, data.is_empty()) {
            (Some(chain), _) => Value::Jump(chain),
            (None, false) => Value::Data(&data),
            (None, true) => Value::None,
        };
        match (g.set.interval, g.set.concat(), e.key.as_slice()) {
            (true, false, [Field::Net(n)]) => {
                let start = addr_bytes(n.network());
                if !deleting && start.iter().any(|&x| x != 0) {
                    element(
                        b,
                        index,
                        &vec![0; start.len()],
                        None,
                        true,
                        Value::None,
                        false,
                    );
                    index += 1;
                }
                let end = interval_end(n);
                element(b, index, &start, None, false, value, end.is_none());
                index += 1;
                if let Some(end) = end {
                    element(b, index, &end, None, true, Value::None, false);
                    index += 1;
                }
            }
            (true, _, _) => {
                let end = key_bytes(e, true);
                element(
                    b,
                    index,
                    &key_bytes(e, false),
                    Some(&end),
                    false,
                    value,
                    false,
                );
                index += 1;
            }
            (false, _, _) => {
                element(b, index, &key_bytes(e, false), None, false, value, false);
                index += 1;
            }
        }
    }
}

/// The batch that applies [`render_add_new`](crate::render_add_new)`(table,
/// net)`: BATCH_BEGIN (sequence number `seq`), a NEWSETELEM with
/// `NLM_F_CREATE | NLM_F_EXCL` for the `cross` element (fails if it exists,
/// like `create element`), for a custom-NAT network a NEWCHAIN (also
/// exclusive) and a NEWRULE per rule, a NEWSETELEM per other group of
/// elements, then BATCH_END; the messages in between carry `seq + 1`,
/// `seq + 2`, … and `NLM_F_ACK`, so the kernel acknowledges each one and an
/// error names the message that failed.
///
/// # Panics
/// If `table` or `net` fails validation, like the renderers.
pub fn encode_add_new(table: &str, net: &FwNetwork, seq: u32) -> Vec<u8> {
    check_table(table);
    let p = plan(net);
    let mut b = Buf(Vec::with_capacity(4096));
    let mut seq = seq;
    let mut next_seq = || {
        let s = seq;
        seq = seq.wrapping_add(1);
        s
    };
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    let nft = |kind: u16| (NFNL_SUBSYS_NFTABLES << 8) | kind;
    let group = |b: &mut Buf, g: &Group, seq: u32, extra: u16| {
        b.msg(
            nft(NFT_MSG_NEWSETELEM),
            flags | NLM_F_CREATE | extra,
            seq,
            NFPROTO_INET,
            0,
            |b| {
                b.str(NFTA_SET_ELEM_LIST_TABLE, table);
                b.str(NFTA_SET_ELEM_LIST_SET, g.set.name);
                b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| group_elements(b, g, false));
            },
        );
    };
    let chain_msgs = |b: &mut Buf, chain: &Chain, next_seq: &mut dyn FnMut() -> u32| {
        b.msg(
            nft(NFT_MSG_NEWCHAIN),
            flags | NLM_F_CREATE | NLM_F_EXCL,
            next_seq(),
            NFPROTO_INET,
            0,
            |b| {
                b.str(NFTA_CHAIN_TABLE, table);
                b.str(NFTA_CHAIN_NAME, &chain.name);
            },
        );
        for rule in &chain.rules {
            b.msg(
                nft(NFT_MSG_NEWRULE),
                flags | NLM_F_CREATE | NLM_F_APPEND,
                next_seq(),
                NFPROTO_INET,
                0,
                |b| {
                    b.str(NFTA_RULE_TABLE, table);
                    b.str(NFTA_RULE_CHAIN, &chain.name);
                    b.nest(NFTA_RULE_EXPRESSIONS, |b| rule_exprs(b, rule));
                },
            );
        }
    };

    b.msg(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next_seq(),
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    let (first, rest) = p.groups.split_first().expect("cross element");
    group(&mut b, first, next_seq(), NLM_F_EXCL);
    if let Some(chain) = &p.chain {
        chain_msgs(&mut b, chain, &mut next_seq);
    }
    for g in rest {
        group(&mut b, g, next_seq(), 0);
    }
    b.msg(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next_seq(),
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    b.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn interval_ends() {
        let end = |s: &str| interval_end(&s.parse().unwrap()).map(|e| hex(&e));
        assert_eq!(end("192.168.122.0/24").as_deref(), Some("c0a87b00"));
        assert_eq!(end("10.0.0.0/12").as_deref(), Some("0a100000"));
        assert_eq!(end("255.255.255.0/24"), None);
        assert_eq!(end("0.0.0.0/0"), None);
        assert_eq!(
            end("fd00:141::/64").as_deref(),
            Some("fd000141000000010000000000000000")
        );
        assert_eq!(end("ffff::/16"), None);
    }

    #[test]
    fn ifnames_are_zero_padded_to_ifnamsiz() {
        assert_eq!(hex(&ifname("wan0")), "77616e30000000000000000000000000");
        assert_eq!(ifname("abcdefghijklmno")[15], 0);
    }

    /// The encoded expression list of one rule.
    fn exprs(rule: &Rule) -> Vec<u8> {
        let mut b = Buf(Vec::new());
        rule_exprs(&mut b, rule);
        b.0
    }

    #[test]
    fn key_fields_fill_whole_registers() {
        let e = Element {
            key: vec![
                Field::Ifname("virbr0".into()),
                Field::Proto(crate::plan::Proto::Udp),
                Field::Port(53),
            ],
            jump: None,
            data: Vec::new(),
        };
        assert_eq!(
            hex(&key_bytes(&e, false)),
            "766972627230000000000000000000001100000000350000"
        );
        let e = Element {
            key: vec![Field::Net("10.1.0.0/16".parse().unwrap())],
            jump: None,
            data: Vec::new(),
        };
        assert_eq!(hex(&key_bytes(&e, false)), "0a010000");
        assert_eq!(hex(&key_bytes(&e, true)), "0a01ffff");
    }

    #[test]
    fn prefixes_load_whole_bytes_or_mask() {
        let rule = |net: &str| Rule {
            matches: vec![crate::plan::addr(Dir::Saddr, false, net.parse().unwrap())],
            action: Action::Return,
        };
        // A /24 loads 3 bytes and needs no mask; a /12 loads 4 and masks.
        let aligned = hex(&exprs(&rule("10.1.2.0/24")));
        assert!(aligned.contains(&hex(&[7, 0, 1, 0, 10, 1, 2])), "{aligned}");
        assert!(!aligned.contains(&hex(b"bitwise")));
        let masked = hex(&exprs(&rule("10.16.0.0/12")));
        assert!(masked.contains(&hex(b"bitwise")));
        assert!(
            masked.contains(&hex(&[8, 0, 1, 0, 255, 240, 0, 0])),
            "{masked}"
        );
    }
}
