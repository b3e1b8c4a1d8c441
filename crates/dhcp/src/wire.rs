//! Request parsing and reply encoding.
//!
//! Untrusted bytes never reach dhcproto's option decoders directly: some of them assert
//! on lengths (and so panic in debug builds). We walk the option area ourselves, keep
//! only the options the server reads, check their lengths, and hand dhcproto a clean
//! packet to decode.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use kvnet_model::MacAddr;

use crate::fqdn;

const HEADER_LEN: usize = 236;
/// The BOOTP `sname` and `file` fields, which option 52 may fill with options.
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// BOOTP's minimum message size; some old clients drop shorter replies.
const MIN_REPLY_LEN: usize = 300;

/// The parts of a client message the engine acts on.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub msg: Message,
    pub msg_type: MessageType,
    pub mac: MacAddr,
    pub client_id: Option<Vec<u8>>,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// The host label of option 81's name, else of option 12.
    pub hostname: Option<String>,
    /// Option 81's flags, when the client sent it (it gets one back).
    pub fqdn_flags: Option<u8>,
    /// Option 51: the lease time the client asks for.
    pub lease_time: Option<u32>,
}

/// Why a packet was dropped before reaching the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooShort,
    NotRequest,
    NotEthernet,
    BadMagic,
    BadOptions,
    NoMessageType,
    /// A message type a server never receives (OFFER, ACK, …) or does not serve.
    UnsupportedType(u8),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::TooShort => f.write_str("shorter than a DHCP header"),
            Malformed::NotRequest => f.write_str("not a BOOTREQUEST"),
            Malformed::NotEthernet => f.write_str("hardware type is not Ethernet"),
            Malformed::BadMagic => f.write_str("bad magic cookie"),
            Malformed::BadOptions => f.write_str("malformed options"),
            Malformed::NoMessageType => f.write_str("no DHCP message type (BOOTP)"),
            Malformed::UnsupportedType(t) => write!(f, "unsupported message type {t}"),
        }
    }
}

/// The options we read: code and the length rule it must satisfy.
fn wanted(code: u8, len: usize) -> Option<bool> {
    Some(match code {
        53 => len == 1,
        50 | 51 | 54 => len == 4,
        61 => (2..=255).contains(&len),
        12 | 55 => (1..=255).contains(&len),
        _ => return None,
    })
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Request, Malformed> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(Malformed::TooShort);
    }
    if bytes[0] != 1 {
        return Err(Malformed::NotRequest);
    }
    if bytes[1] != 1 || bytes[2] != 6 {
        return Err(Malformed::NotEthernet);
    }
    if bytes[HEADER_LEN..HEADER_LEN + 4] != MAGIC {
        return Err(Malformed::BadMagic);
    }

    // RFC 3396: repeated instances of an option are concatenated. Option 81 is read here,
    // never by dhcproto (which asserts on its lengths). With option 52 (overload), the
    // `file` and then the `sname` field carry options too (RFC 2132 §9.3).
    let mut opts: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut fqdn: Option<Vec<u8>> = None;
    // Returns option 52's value, when `main` (the options field).
    let mut walk = |area: &[u8], main: bool| -> Result<u8, Malformed> {
        let mut overload = 0;
        let mut i = 0;
        while i < area.len() {
            let code = area[i];
            match code {
                0 => i += 1,
                255 => break,
                _ => {
                    let len = *area.get(i + 1).ok_or(Malformed::BadOptions)? as usize;
                    let data = area.get(i + 2..i + 2 + len).ok_or(Malformed::BadOptions)?;
                    if main && code == 52 && len == 1 {
                        overload = data[0];
                    } else if wanted(code, 0).is_some() {
                        opts.entry(code).or_default().extend_from_slice(data);
                    } else if code == 81 {
                        fqdn.get_or_insert_default().extend_from_slice(data);
                    }
                    i += 2 + len;
                }
            }
        }
        Ok(overload)
    };
    let overload = walk(&bytes[HEADER_LEN + 4..], true)?;
    if overload & 1 != 0 {
        walk(&bytes[FILE], false)?;
    }
    if overload & 2 != 0 {
        walk(&bytes[SNAME], false)?;
    }
    opts.retain(|&code, data| wanted(code, data.len()) == Some(true));
    if let Some(h) = opts.get(&12)
        && std::str::from_utf8(h).is_err()
    {
        // A name we cannot use is no reason to refuse an address.
        opts.remove(&12);
    }

    // The header with sname/file blanked (we never read them) plus the vetted options.
    let mut clean = Vec::with_capacity(HEADER_LEN + 4 + 64);
    clean.extend_from_slice(&bytes[..44]);
    clean.resize(HEADER_LEN, 0);
    clean.extend_from_slice(&MAGIC);
    for (code, data) in &opts {
        for chunk in data.chunks(255) {
            clean.push(*code);
            clean.push(chunk.len() as u8);
            clean.extend_from_slice(chunk);
        }
    }
    clean.push(255);

    let msg = Message::decode(&mut Decoder::new(&clean)).map_err(|_| Malformed::BadOptions)?;
    let msg_type = match msg.opts().msg_type() {
        None => return Err(Malformed::NoMessageType),
        Some(
            t @ (MessageType::Discover
            | MessageType::Request
            | MessageType::Decline
            | MessageType::Release
            | MessageType::Inform),
        ) => t,
        Some(t) => return Err(Malformed::UnsupportedType(u8::from(t))),
    };
    let ch = msg.chaddr();
    let mac = MacAddr([ch[0], ch[1], ch[2], ch[3], ch[4], ch[5]]);
    let client_id = match msg.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
        _ => None,
    };
    let ip_opt = |code| match msg.opts().get(code) {
        Some(DhcpOption::RequestedIpAddress(ip) | DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let requested_ip = ip_opt(OptionCode::RequestedIpAddress);
    let server_id = ip_opt(OptionCode::ServerIdentifier);
    let lease_time = match msg.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
    };
    let fqdn = fqdn.as_deref().and_then(fqdn::parse);
    // dnsmasq's order: the FQDN's name, else option 12.
    let hostname = fqdn.as_ref().and_then(|f| f.host.clone()).or_else(|| {
        match msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => fqdn::host_label(h),
            _ => None,
        }
    });
    Ok(Request {
        msg,
        msg_type,
        mac,
        client_id,
        requested_ip,
        server_id,
        hostname,
        fqdn_flags: fqdn.map(|f| f.flags),
        lease_time,
    })
}

/// Header fields and options of a reply, filled in by the server.
pub(crate) struct Reply {
    pub msg_type: MessageType,
    pub yiaddr: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub file: Option<String>,
    /// BOOTP `sname`.
    pub sname: Option<String>,
    pub broadcast: bool,
    pub opts: Vec<DhcpOption>,
}

/// Options sent first, asked or not: the message type, server id, lease times, the
/// echoed client id, the client FQDN answer.
const ALWAYS_FIRST: [u8; 7] = [53, 54, 51, 58, 59, 61, 81];

/// Put the options of `msg` (an encoded message of ours) in RFC 2132 §9.8's order:
/// those always sent, then the ones the client asked for (option 55) in its order,
/// then the rest. Leaves `msg` as it is if its options cannot be walked.
fn order_options(msg: &mut Vec<u8>, prl: &[u8]) {
    let start = HEADER_LEN + 4;
    let mut opts: Vec<(u8, &[u8])> = Vec::new();
    let mut i = start;
    loop {
        match msg.get(i) {
            Some(255) => break,
            Some(0) => i += 1,
            Some(&code) => {
                let Some(&len) = msg.get(i + 1) else { return };
                let Some(data) = msg.get(i + 2..i + 2 + usize::from(len)) else {
                    return;
                };
                opts.push((code, data));
                i += 2 + usize::from(len);
            }
            None => return,
        }
    }
    let rank = |code: u8| {
        ALWAYS_FIRST
            .iter()
            .position(|&c| c == code)
            .or_else(|| prl.iter().position(|&c| c == code).map(|p| p + 100))
            .unwrap_or(usize::MAX)
    };
    // Stable: options of equal rank (the unasked ones) keep their order.
    opts.sort_by_key(|&(code, _)| rank(code));
    let mut area: Vec<u8> = Vec::with_capacity(msg.len() - start);
    for (code, data) in &opts {
        area.push(*code);
        area.push(data.len() as u8);
        area.extend_from_slice(data);
    }
    area.push(255);
    msg.truncate(start);
    msg.extend_from_slice(&area);
}

/// The codes of the options in `msg` (an encoded message of ours), in order: for
/// `log-dhcp`.
pub(crate) fn option_codes(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = HEADER_LEN + 4;
    while let Some(&code) = msg.get(i) {
        match code {
            255 => break,
            0 => i += 1,
            _ => {
                out.push(code);
                i += 2 + usize::from(msg.get(i + 1).copied().unwrap_or(0));
            }
        }
    }
    out
}

/// The codes of the client's parameter request list (55), if it sent one.
pub(crate) fn requested(req: &Message) -> Option<Vec<u8>> {
    match req.opts().get(OptionCode::ParameterRequestList) {
        Some(DhcpOption::ParameterRequestList(p)) => Some(p.iter().map(|&c| u8::from(c)).collect()),
        _ => None,
    }
}

pub(crate) fn encode_reply(req: &Message, reply: Reply) -> Vec<u8> {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_chaddr(req.chaddr())
        .set_xid(req.xid())
        .set_ciaddr(reply.ciaddr)
        .set_yiaddr(reply.yiaddr)
        .set_siaddr(reply.siaddr)
        .set_giaddr(req.giaddr());
    let flags = if reply.broadcast {
        req.flags().set_broadcast()
    } else {
        req.flags()
    };
    m.set_flags(flags);
    if let Some(f) = reply.file.as_deref().filter(|f| f.len() < 128) {
        m.set_fname_str(f);
    }
    if let Some(s) = reply.sname.as_deref().filter(|s| s.len() < 64) {
        m.set_sname_str(s);
    }
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(reply.msg_type));
    for o in reply.opts {
        opts.insert(o);
    }
    // Encoding our own well-formed message into a Vec cannot fail.
    let mut out = m.to_vec().unwrap_or_default();
    if let Some(DhcpOption::ParameterRequestList(prl)) =
        req.opts().get(OptionCode::ParameterRequestList)
    {
        let prl: Vec<u8> = prl.iter().map(|&c| u8::from(c)).collect();
        order_options(&mut out, &prl);
    }
    if out.len() < MIN_REPLY_LEN {
        out.resize(MIN_REPLY_LEN, 0);
    }
    out
}
