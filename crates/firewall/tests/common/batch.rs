//! A test-only decoder for the nfnetlink batches of `encode_add_new`: splits
//! a batch into messages and attribute trees, checking every length, the
//! padding and the string terminators, and prints it one line per message
//! and per attribute, indented by nesting, with the attributes named. Set
//! keys are decoded with the key types a script declares for the sets (see
//! [`key_types`]), independently of the encoder.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use kvnet_firewall::nl::consts::*;

pub struct Msg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub family: u8,
    pub res_id: u16,
    pub attrs: Vec<Attr<'a>>,
}

pub struct Attr<'a> {
    /// The type, without `NLA_F_NESTED`.
    pub kind: u16,
    pub payload: &'a [u8],
    /// Set for nested attributes.
    pub children: Option<Vec<Attr<'a>>>,
}

impl Attr<'_> {
    pub fn str(&self) -> String {
        let v = self.payload;
        assert_eq!(v.last(), Some(&0), "string attribute not NUL-terminated");
        String::from_utf8(v[..v.len() - 1].to_vec()).expect("UTF-8 string attribute")
    }

    pub fn be32(&self) -> u32 {
        u32::from_be_bytes(self.payload.try_into().expect("4-byte attribute"))
    }

    fn children(&self) -> &[Attr<'_>] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// The first attribute of type `kind`.
pub fn find<'b, 'a>(attrs: &'b [Attr<'a>], kind: u16) -> Option<&'b Attr<'a>> {
    attrs.iter().find(|a| a.kind == kind)
}

pub const fn nft(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

fn ne16(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

/// Splits a batch into its messages, checking every length and the 4-byte
/// alignment.
pub fn parse(batch: &[u8]) -> Vec<Msg<'_>> {
    assert_eq!(batch.len() % 4, 0);
    let mut out = Vec::new();
    let mut rest = batch;
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len >= NLMSG_HDRLEN + NFGENMSG_LEN && len <= rest.len());
        assert_eq!(len % 4, 0, "message length not aligned");
        let body = &rest[NLMSG_HDRLEN..len];
        out.push(Msg {
            kind: ne16(&rest[4..]),
            flags: ne16(&rest[6..]),
            seq: u32::from_ne_bytes(rest[8..12].try_into().unwrap()),
            family: body[0],
            res_id: u16::from_be_bytes([body[2], body[3]]),
            attrs: parse_attrs(&body[NFGENMSG_LEN..]),
        });
        rest = &rest[len..];
    }
    out
}

/// Attributes exactly fill their parent, zero-padded; nested ones recursively.
fn parse_attrs(mut bytes: &[u8]) -> Vec<Attr<'_>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= NLA_HDRLEN, "truncated attribute header");
        let len = ne16(bytes) as usize;
        let kind = ne16(&bytes[2..]);
        assert!(
            len >= NLA_HDRLEN && len <= bytes.len(),
            "bad attribute length"
        );
        let payload = &bytes[NLA_HDRLEN..len];
        let nested = kind & NLA_F_NESTED != 0;
        out.push(Attr {
            kind: kind & !NLA_F_NESTED,
            payload,
            children: nested.then(|| parse_attrs(payload)),
        });
        let padded = (len + 3) & !3;
        assert!(padded <= bytes.len(), "attribute padding missing");
        assert!(bytes[len..padded].iter().all(|&b| b == 0));
        bytes = &bytes[padded..];
    }
    out
}

/// The key type of each set and map that `script` declares (`add set|map
/// inet TABLE NAME { type A . B[ : verdict]; … }`), as its field types.
pub fn key_types(script: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["add", "set" | "map", "inet", _, name, "{", "type", ..] = words.as_slice() {
            let ty = line.split_once("type ").unwrap().1;
            let ty = ty.split(';').next().unwrap();
            let key = ty.split(" : ").next().unwrap();
            out.insert(
                name.to_string(),
                key.split(" . ").map(str::to_string).collect(),
            );
        }
    }
    out
}

/// Where an attribute sits, which decides its name and how its value reads.
enum Ctx {
    SetElemList,
    Elements,
    Element,
    /// NFTA_DATA_* holding a set key.
    Key,
    Data,
    Verdict,
    Chain,
    Rule,
    Expressions,
    Expression,
    /// The data of the named expression.
    ExprData(String),
    Unknown,
}

/// One line per message and per attribute, nested attributes indented;
/// `keys` gives the sets' key types (see [`key_types`]).
pub fn render(batch: &[u8], keys: &HashMap<String, Vec<String>>) -> String {
    let mut s = String::new();
    for m in parse(batch) {
        let (name, ctx) = match m.kind {
            NFNL_MSG_BATCH_BEGIN => ("BATCH_BEGIN", Ctx::Unknown),
            NFNL_MSG_BATCH_END => ("BATCH_END", Ctx::Unknown),
            k if k == nft(NFT_MSG_NEWSETELEM) => ("NEWSETELEM", Ctx::SetElemList),
            k if k == nft(NFT_MSG_NEWCHAIN) => ("NEWCHAIN", Ctx::Chain),
            k if k == nft(NFT_MSG_NEWRULE) => ("NEWRULE", Ctx::Rule),
            k => panic!("unexpected message type {k:#x}"),
        };
        let family = match m.family {
            0 => "unspec".to_string(),
            NFPROTO_INET => "inet".to_string(),
            f => f.to_string(),
        };
        let _ = write!(
            s,
            "{name} seq={} flags={} family={family}",
            m.seq,
            flags(m.flags)
        );
        match m.res_id {
            0 => {}
            NFNL_SUBSYS_NFTABLES => s.push_str(" res_id=nftables"),
            r => {
                let _ = write!(s, " res_id={r}");
            }
        }
        s.push('\n');
        let set = matches!(ctx, Ctx::SetElemList)
            .then(|| find(&m.attrs, NFTA_SET_ELEM_LIST_SET).map(Attr::str))
            .flatten();
        let key = match set {
            Some(set) => keys
                .get(&set)
                .unwrap_or_else(|| panic!("no key type declared for set {set}")),
            None => &Vec::new(),
        };
        attrs(&mut s, &m.attrs, &ctx, 1, key);
    }
    s
}

fn attrs(s: &mut String, list: &[Attr<'_>], ctx: &Ctx, depth: usize, key: &[String]) {
    // An expression's data is read according to the expression's name.
    let expr = match ctx {
        Ctx::Expression => find(list, NFTA_EXPR_NAME).map(Attr::str),
        _ => None,
    };
    for a in list {
        let (name, child, value) = describe(a, ctx, key, expr.as_deref());
        let _ = write!(s, "{:width$}{name}", "", width = depth * 2);
        if let Some(v) = value {
            let _ = write!(s, " {v}");
        }
        s.push('\n');
        if let Some(children) = &a.children {
            attrs(s, children, &child.unwrap_or(Ctx::Unknown), depth + 1, key);
        }
    }
}

fn flags(f: u16) -> String {
    let names = [
        (NLM_F_REQUEST, "REQUEST"),
        (NLM_F_ACK, "ACK"),
        (NLM_F_EXCL, "EXCL"),
        (NLM_F_CREATE, "CREATE"),
        (NLM_F_APPEND, "APPEND"),
    ];
    let mut out: Vec<String> = names
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let rest = names.iter().fold(f, |f, (bit, _)| f & !bit);
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join("|")
}

fn hex(b: &[u8]) -> String {
    let digits: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("0x{digits}")
}

/// A value that reads as an interface name: printable, NUL-padded to IFNAMSIZ.
fn ifname(b: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(b).ok()?.trim_end_matches('\0');
    let ok = b.len() == IFNAMSIZ
        && b[IFNAMSIZ - 1] == 0
        && !name.is_empty()
        && name.bytes().all(|c| c.is_ascii_graphic());
    ok.then(|| format!("\"{name}\""))
}

/// A set key, field by field; each field takes whole 4-byte registers.
fn key_value(b: &[u8], types: &[String]) -> String {
    let mut fields = Vec::new();
    let mut rest = b;
    for ty in types {
        let size = match ty.as_str() {
            "ifname" | "ipv6_addr" => 16,
            "ipv4_addr" | "inet_proto" | "inet_service" => 4,
            t => panic!("unknown key type {t}"),
        };
        assert!(rest.len() >= size, "key {} too short for {types:?}", hex(b));
        let (f, r) = rest.split_at(size);
        rest = r;
        // A protocol takes one byte of its register, a port two.
        let used = match ty.as_str() {
            "inet_proto" => 1,
            "inet_service" => 2,
            _ => size,
        };
        assert!(
            f[used..].iter().all(|&x| x == 0),
            "{ty} padding in {}",
            hex(b)
        );
        fields.push(match ty.as_str() {
            "ifname" => ifname(f).unwrap_or_else(|| panic!("bad interface name {}", hex(f))),
            "ipv4_addr" => Ipv4Addr::from(<[u8; 4]>::try_from(f).unwrap()).to_string(),
            "ipv6_addr" => Ipv6Addr::from(<[u8; 16]>::try_from(f).unwrap()).to_string(),
            "inet_proto" => match f[0] {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                p => p.to_string(),
            },
            _ => u16::from_be_bytes([f[0], f[1]]).to_string(),
        });
    }
    assert!(rest.is_empty(), "key {} too long for {types:?}", hex(b));
    fields.join(" . ")
}

/// An attribute's name in `ctx`, the context of its children when nested,
/// and its value when it is a leaf.
fn describe(
    a: &Attr<'_>,
    ctx: &Ctx,
    key: &[String],
    expr: Option<&str>,
) -> (String, Option<Ctx>, Option<String>) {
    let leaf = |name: &str, value: String| (name.to_string(), None, Some(value));
    let nest = |name: &str, ctx: Ctx| (name.to_string(), Some(ctx), None);
    let s = || format!("\"{}\"", a.str());
    match (ctx, a.kind) {
        (Ctx::SetElemList, NFTA_SET_ELEM_LIST_TABLE) => leaf("TABLE", s()),
        (Ctx::SetElemList, NFTA_SET_ELEM_LIST_SET) => leaf("SET", s()),
        (Ctx::SetElemList, NFTA_SET_ELEM_LIST_ELEMENTS) => nest("ELEMENTS", Ctx::Elements),
        // libnftnl numbers the elements of a list; the kernel ignores it.
        (Ctx::Elements, i) => nest(&format!("ELEM {i}"), Ctx::Element),
        (Ctx::Element, NFTA_SET_ELEM_KEY) => nest("KEY", Ctx::Key),
        (Ctx::Element, NFTA_SET_ELEM_KEY_END) => nest("KEY_END", Ctx::Key),
        (Ctx::Element, NFTA_SET_ELEM_DATA) => nest("DATA", Ctx::Data),
        (Ctx::Element, NFTA_SET_ELEM_FLAGS) if a.be32() == NFT_SET_ELEM_INTERVAL_END => {
            leaf("FLAGS", "INTERVAL_END".into())
        }
        (Ctx::Element, NFTA_SET_ELEM_USERDATA) => leaf("USERDATA", hex(a.payload)),
        (Ctx::Key, NFTA_DATA_VALUE) => leaf("VALUE", key_value(a.payload, key)),
        (Ctx::Data, NFTA_DATA_VALUE) => {
            leaf("VALUE", ifname(a.payload).unwrap_or_else(|| hex(a.payload)))
        }
        (Ctx::Data, NFTA_DATA_VERDICT) => nest("VERDICT", Ctx::Verdict),
        (Ctx::Verdict, NFTA_VERDICT_CODE) => leaf(
            "CODE",
            match a.be32() as i32 {
                NF_ACCEPT => "accept".into(),
                NFT_JUMP => "jump".into(),
                NFT_RETURN => "return".into(),
                c => c.to_string(),
            },
        ),
        (Ctx::Verdict, NFTA_VERDICT_CHAIN) => leaf("CHAIN", s()),
        (Ctx::Chain, NFTA_CHAIN_TABLE) => leaf("TABLE", s()),
        (Ctx::Chain, NFTA_CHAIN_NAME) => leaf("NAME", s()),
        (Ctx::Rule, NFTA_RULE_TABLE) => leaf("TABLE", s()),
        (Ctx::Rule, NFTA_RULE_CHAIN) => leaf("CHAIN", s()),
        (Ctx::Rule, NFTA_RULE_EXPRESSIONS) => nest("EXPRESSIONS", Ctx::Expressions),
        (Ctx::Expressions, NFTA_LIST_ELEM) => nest("ELEM", Ctx::Expression),
        (Ctx::Expression, NFTA_EXPR_NAME) => leaf("NAME", s()),
        (Ctx::Expression, NFTA_EXPR_DATA) => {
            nest("DATA", Ctx::ExprData(expr.unwrap_or_default().to_string()))
        }
        (Ctx::ExprData(e), k) => expr_attr(a, e, k),
        (_, k) if a.children.is_some() => nest(&format!("?{k}"), Ctx::Unknown),
        (_, k) => leaf(&format!("?{k}"), hex(a.payload)),
    }
}

/// The data attributes of the expressions the encoder uses (nf_tables.h).
const EXPR_ATTRS: &[(&str, u16, &str)] = &[
    ("meta", NFTA_META_DREG, "DREG"),
    ("meta", NFTA_META_KEY, "KEY"),
    ("cmp", NFTA_CMP_SREG, "SREG"),
    ("cmp", NFTA_CMP_OP, "OP"),
    ("cmp", NFTA_CMP_DATA, "DATA"),
    ("payload", NFTA_PAYLOAD_DREG, "DREG"),
    ("payload", NFTA_PAYLOAD_BASE, "BASE"),
    ("payload", NFTA_PAYLOAD_OFFSET, "OFFSET"),
    ("payload", NFTA_PAYLOAD_LEN, "LEN"),
    ("bitwise", NFTA_BITWISE_SREG, "SREG"),
    ("bitwise", NFTA_BITWISE_DREG, "DREG"),
    ("bitwise", NFTA_BITWISE_LEN, "LEN"),
    ("bitwise", NFTA_BITWISE_MASK, "MASK"),
    ("bitwise", NFTA_BITWISE_XOR, "XOR"),
    ("immediate", NFTA_IMMEDIATE_DREG, "DREG"),
    ("immediate", NFTA_IMMEDIATE_DATA, "DATA"),
    ("masq", NFTA_MASQ_FLAGS, "FLAGS"),
    ("masq", NFTA_MASQ_REG_PROTO_MIN, "REG_PROTO_MIN"),
    ("masq", NFTA_MASQ_REG_PROTO_MAX, "REG_PROTO_MAX"),
    ("nat", NFTA_NAT_TYPE, "TYPE"),
    ("nat", NFTA_NAT_FAMILY, "FAMILY"),
    ("nat", NFTA_NAT_REG_ADDR_MIN, "REG_ADDR_MIN"),
    ("nat", NFTA_NAT_REG_ADDR_MAX, "REG_ADDR_MAX"),
    ("nat", NFTA_NAT_REG_PROTO_MIN, "REG_PROTO_MIN"),
    ("nat", NFTA_NAT_REG_PROTO_MAX, "REG_PROTO_MAX"),
    ("nat", NFTA_NAT_FLAGS, "FLAGS"),
];

fn expr_attr(a: &Attr<'_>, expr: &str, kind: u16) -> (String, Option<Ctx>, Option<String>) {
    let Some(&(_, _, name)) = EXPR_ATTRS.iter().find(|(e, k, _)| *e == expr && *k == kind) else {
        return (format!("?{kind}"), None, Some(hex(a.payload)));
    };
    if matches!(name, "DATA" | "MASK" | "XOR") {
        return (name.to_string(), Some(Ctx::Data), None);
    }
    let v = a.be32();
    let symbol = match (expr, name, v) {
        ("meta", "KEY", NFT_META_IIFNAME) => Some("iifname"),
        ("meta", "KEY", NFT_META_OIFNAME) => Some("oifname"),
        ("meta", "KEY", NFT_META_NFPROTO) => Some("nfproto"),
        ("meta", "KEY", NFT_META_L4PROTO) => Some("l4proto"),
        ("cmp", "OP", NFT_CMP_EQ) => Some("eq"),
        ("cmp", "OP", NFT_CMP_NEQ) => Some("neq"),
        ("payload", "BASE", NFT_PAYLOAD_NETWORK_HEADER) => Some("network"),
        ("payload", "BASE", NFT_PAYLOAD_TRANSPORT_HEADER) => Some("transport"),
        ("nat", "TYPE", NFT_NAT_SNAT) => Some("snat"),
        ("nat", "FAMILY", f) if f == u32::from(NFPROTO_IPV4) => Some("ipv4"),
        (_, "FLAGS", NF_NAT_RANGE_PROTO_SPECIFIED) => Some("PROTO_SPECIFIED"),
        _ => None,
    };
    let value = symbol.map_or_else(|| v.to_string(), str::to_string);
    (name.to_string(), None, Some(value))
}
