//! Request parsing and reply encoding. Requests are walked here, not by dhcproto's
//! decoders (as for v4: untrusted bytes never reach them); replies are built from
//! dhcproto's v6 types.

use std::net::Ipv6Addr;

use dhcproto::Encodable;
use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, IANA, IATA, Message, MessageType, OptionCode, Status,
    StatusCode, UnknownOption,
};

pub(crate) const SOLICIT: u8 = 1;
pub(crate) const REQUEST: u8 = 3;
pub(crate) const CONFIRM: u8 = 4;
pub(crate) const RENEW: u8 = 5;
pub(crate) const REBIND: u8 = 6;
pub(crate) const RELEASE: u8 = 8;
pub(crate) const DECLINE: u8 = 9;
pub(crate) const INFORMATION_REQUEST: u8 = 11;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IA_TA: u16 = 4;
const OPT_IAADDR: u16 = 5;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_CLIENT_FQDN: u16 = 39;
/// RFC 8415 §11.1: a DUID is at most 128 bytes (plus its 2-byte type).
const MAX_DUID: usize = 130;
/// IAs served per message: one packet must not reserve a whole range, nor make the
/// engine scan it once per IA a thousand times. Real clients send one or two.
pub(crate) const MAX_IAS: usize = 8;

/// An IA_NA as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ia {
    pub iaid: u32,
    pub addrs: Vec<Ipv6Addr>,
}

/// The parts of a client message the engine acts on.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub msg_type: u8,
    pub xid: [u8; 3],
    pub client_id: Option<Vec<u8>>,
    pub server_id: Option<Vec<u8>>,
    pub ia_na: Vec<Ia>,
    pub ia_ta: Vec<u32>,
    pub rapid_commit: bool,
    /// The first label of the client FQDN (option 39), lower-cased.
    pub name: Option<String>,
}

/// Why a packet was dropped before reaching the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooShort,
    BadOptions,
    BadDuid,
    BadIa,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::TooShort => "shorter than a DHCPv6 header",
            Malformed::BadOptions => "option lengths overrun the message",
            Malformed::BadDuid => "empty or oversized DUID",
            Malformed::BadIa => "IA_NA, IA_TA or IAADDR too short",
        })
    }
}

/// (code, data) of each option in `b`.
fn options(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, Malformed> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(Malformed::BadOptions);
        }
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let data = b.get(4..4 + len).ok_or(Malformed::BadOptions)?;
        out.push((code, data));
        b = &b[4 + len..];
    }
    Ok(out)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn duid(d: &[u8]) -> Result<Vec<u8>, Malformed> {
    if d.len() < 2 || d.len() > MAX_DUID {
        return Err(Malformed::BadDuid);
    }
    Ok(d.to_vec())
}

/// The first label of an option-39 domain name (flags byte, then DNS labels, maybe
/// without the root label).
fn fqdn_label(d: &[u8]) -> Option<String> {
    let len = usize::from(*d.get(1)?);
    let label = d.get(2..2 + len).filter(|l| !l.is_empty())?;
    let s = std::str::from_utf8(label).ok()?;
    Some(s.to_ascii_lowercase())
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Request, Malformed> {
    if bytes.len() < 4 {
        return Err(Malformed::TooShort);
    }
    let mut req = Request {
        msg_type: bytes[0],
        xid: [bytes[1], bytes[2], bytes[3]],
        client_id: None,
        server_id: None,
        ia_na: Vec::new(),
        ia_ta: Vec::new(),
        rapid_commit: false,
        name: None,
    };
    for (code, data) in options(&bytes[4..])? {
        match code {
            OPT_CLIENTID => req.client_id = Some(duid(data)?),
            OPT_SERVERID => req.server_id = Some(duid(data)?),
            OPT_IA_NA => {
                if data.len() < 12 {
                    return Err(Malformed::BadIa);
                }
                if req.ia_na.len() == MAX_IAS {
                    continue;
                }
                let mut ia = Ia {
                    iaid: be32(data),
                    addrs: Vec::new(),
                };
                for (c, d) in options(&data[12..])? {
                    if c == OPT_IAADDR {
                        let a: [u8; 16] = d
                            .get(..16)
                            .ok_or(Malformed::BadIa)?
                            .try_into()
                            .map_err(|_| Malformed::BadIa)?;
                        ia.addrs.push(Ipv6Addr::from(a));
                    }
                }
                req.ia_na.push(ia);
            }
            OPT_IA_TA => {
                if data.len() < 4 {
                    return Err(Malformed::BadIa);
                }
                if req.ia_ta.len() < MAX_IAS {
                    req.ia_ta.push(be32(data));
                }
            }
            OPT_RAPID_COMMIT => req.rapid_commit = true,
            OPT_CLIENT_FQDN => req.name = fqdn_label(data),
            _ => {}
        }
    }
    Ok(req)
}

/// What an IA_NA of a reply holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IaReply {
    /// Addresses with (preferred = valid) lifetime; T1, T2.
    Addrs {
        iaid: u32,
        t1: u32,
        t2: u32,
        addrs: Vec<(Ipv6Addr, u32)>,
    },
    Status {
        iaid: u32,
        status: Status,
        msg: &'static str,
    },
}

/// A reply being built.
pub(crate) struct Reply {
    pub msg_type: MessageType,
    pub ias: Vec<IaReply>,
    pub ia_ta: Vec<u32>,
    pub status: Option<(Status, &'static str)>,
    pub rapid_commit: bool,
}

impl Reply {
    pub fn new(msg_type: MessageType) -> Reply {
        Reply {
            msg_type,
            ias: Vec::new(),
            ia_ta: Vec::new(),
            status: None,
            rapid_commit: false,
        }
    }
}

fn status(status: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: msg.to_string(),
    })
}

/// `name` as DNS labels ending in the root label, or None if it is not a valid name.
fn dns_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

pub(crate) fn encode(
    req: &Request,
    reply: Reply,
    server_duid: &[u8],
    dns: Option<Ipv6Addr>,
    domain: Option<&str>,
) -> Vec<u8> {
    let mut m = Message::new_with_id(reply.msg_type, req.xid);
    let o = m.opts_mut();
    o.insert(DhcpOption::ServerId(server_duid.to_vec()));
    if let Some(c) = &req.client_id {
        o.insert(DhcpOption::ClientId(c.clone()));
    }
    if reply.rapid_commit {
        o.insert(DhcpOption::RapidCommit);
    }
    if let Some((s, msg)) = reply.status {
        o.insert(status(s, msg));
    }
    for ia in reply.ias {
        let ia = match ia {
            IaReply::Addrs {
                iaid,
                t1,
                t2,
                addrs,
            } => {
                let mut opts = DhcpOptions::new();
                for (addr, life) in addrs {
                    opts.insert(DhcpOption::IAAddr(IAAddr {
                        addr,
                        preferred_life: life,
                        valid_life: life,
                        opts: DhcpOptions::new(),
                    }));
                }
                IANA {
                    id: iaid,
                    t1,
                    t2,
                    opts,
                }
            }
            IaReply::Status {
                iaid,
                status: s,
                msg,
            } => {
                let mut opts = DhcpOptions::new();
                opts.insert(status(s, msg));
                IANA {
                    id: iaid,
                    t1: 0,
                    t2: 0,
                    opts,
                }
            }
        };
        o.insert(DhcpOption::IANA(ia));
    }
    for id in reply.ia_ta {
        let mut opts = DhcpOptions::new();
        opts.insert(status(
            Status::NoAddrsAvail,
            "temporary addresses are not served",
        ));
        o.insert(DhcpOption::IATA(IATA { id, opts }));
    }
    if let Some(d) = dns {
        o.insert(DhcpOption::DomainNameServers(vec![d]));
    }
    if let Some(wire) = domain.and_then(dns_name) {
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::DomainSearchList,
            wire,
        )));
    }
    m.to_vec().unwrap_or_default()
}
