//! TFTP packets (RFC 1350 §5, OACK of RFC 2347): parsing what a client sends, encoding
//! what the server sends. The parser takes any bytes and never panics: a packet it
//! cannot read is a [`ParseError`].

use thiserror::Error;

/// Opcodes (RFC 1350 §5, RFC 2347).
pub mod op {
    pub const RRQ: u16 = 1;
    pub const WRQ: u16 = 2;
    pub const DATA: u16 = 3;
    pub const ACK: u16 = 4;
    pub const ERROR: u16 = 5;
    pub const OACK: u16 = 6;
}

/// Error codes of an ERROR packet (RFC 1350 appendix, RFC 2347 for 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    Undefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    /// The client refused the server's options (RFC 2347).
    OptionRefused = 8,
}

/// The longest request the server reads: a filename, a mode and a few options fit in
/// far less; a longer one is refused, not truncated.
pub const MAX_REQUEST: usize = 512;

/// Transfer mode of a request (RFC 1350 §5; "mail" is obsolete and refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

/// A read or write request as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub write: bool,
    pub filename: String,
    pub mode: Mode,
    /// Options in the order sent, names lower-cased, duplicates dropped (the first
    /// counts). Unknown options are kept here and ignored by the negotiation.
    pub options: Vec<(String, String)>,
}

/// A packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Request(Request),
    Ack(u16),
    Error {
        code: u16,
        message: String,
    },
    /// DATA or OACK: never sent to a read-only server; the transfer ignores them.
    Other(u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("packet shorter than its opcode")]
    Short,
    #[error("unknown opcode {0}")]
    Opcode(u16),
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("request field not terminated by NUL")]
    Unterminated,
    #[error("request field not UTF-8")]
    NotUtf8,
    #[error("empty filename")]
    EmptyName,
    #[error("transfer mode {0:?} not supported")]
    Mode(String),
    #[error("option {0:?} without a value")]
    OptionValue(String),
    #[error("ACK of {0} bytes")]
    AckLength(usize),
}

impl ParseError {
    /// The ERROR packet that answers a request the server could not read.
    pub fn reply(&self) -> Vec<u8> {
        let code = match self {
            ParseError::Mode(_) | ParseError::Opcode(_) => ErrorCode::IllegalOperation,
            _ => ErrorCode::Undefined,
        };
        error(code, &self.to_string())
    }
}

fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Read one packet a client sent.
pub fn parse(bytes: &[u8]) -> Result<Packet, ParseError> {
    let opcode = be16(bytes).ok_or(ParseError::Short)?;
    let body = &bytes[2..];
    match opcode {
        op::RRQ | op::WRQ => parse_request(opcode == op::WRQ, bytes).map(Packet::Request),
        op::ACK => match be16(body) {
            // Trailing bytes after the block number are tolerated, as most servers do.
            Some(block) => Ok(Packet::Ack(block)),
            None => Err(ParseError::AckLength(bytes.len())),
        },
        op::ERROR => {
            let code = be16(body).unwrap_or(0);
            let msg = body.get(2..).unwrap_or_default();
            let msg = msg.split(|&b| b == 0).next().unwrap_or_default();
            Ok(Packet::Error {
                code,
                message: String::from_utf8_lossy(msg).into_owned(),
            })
        }
        op::DATA | op::OACK => Ok(Packet::Other(opcode)),
        other => Err(ParseError::Opcode(other)),
    }
}

fn parse_request(write: bool, bytes: &[u8]) -> Result<Request, ParseError> {
    if bytes.len() > MAX_REQUEST {
        return Err(ParseError::TooLong);
    }
    let body = &bytes[2..];
    // Fields end in NUL; anything after the last NUL is not a field (a client padding
    // its request, as some PXE ROMs do, is tolerated).
    let last = body
        .iter()
        .rposition(|&b| b == 0)
        .ok_or(ParseError::Unterminated)?;
    let mut fields = body[..last].split(|&b| b == 0).map(|f| {
        std::str::from_utf8(f)
            .map(str::to_string)
            .map_err(|_| ParseError::NotUtf8)
    });
    let filename = fields.next().ok_or(ParseError::Unterminated)??;
    if filename.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let mode = fields.next().ok_or(ParseError::Unterminated)??;
    let mode = match mode.to_ascii_lowercase().as_str() {
        "octet" => Mode::Octet,
        "netascii" => Mode::Netascii,
        _ => return Err(ParseError::Mode(mode)),
    };
    let mut options: Vec<(String, String)> = Vec::new();
    while let Some(name) = fields.next() {
        let name = name?.to_ascii_lowercase();
        if name.is_empty() {
            // Padding NULs between or after options.
            continue;
        }
        let value = fields
            .next()
            .ok_or_else(|| ParseError::OptionValue(name.clone()))??;
        if !options.iter().any(|(n, _)| *n == name) {
            options.push((name, value));
        }
    }
    Ok(Request {
        write,
        filename,
        mode,
        options,
    })
}

/// An ERROR packet. The message is cut to keep the packet under 512 bytes.
pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len().min(400));
    p.extend_from_slice(&op::ERROR.to_be_bytes());
    p.extend_from_slice(&(code as u16).to_be_bytes());
    let mut end = message.len().min(400);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    p.extend(message[..end].bytes().filter(|&b| b != 0));
    p.push(0);
    p
}

/// An OACK packet with `options` (name, value) in order.
pub fn oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut p = op::OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        p.push(0);
    }
    p
}

/// The header of a DATA packet for `block`; the data follow it.
pub fn data_header(block: u16) -> [u8; 4] {
    let [a, b] = op::DATA.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

/// An RRQ, as a client builds it (for tests and tools).
pub fn rrq(filename: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut p = op::RRQ.to_be_bytes().to_vec();
    for f in [filename, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(n, v)| [*n, *v]))
    {
        p.extend_from_slice(f.as_bytes());
        p.push(0);
    }
    p
}

/// An ACK, as a client builds it.
pub fn ack(block: u16) -> Vec<u8> {
    [op::ACK.to_be_bytes(), block.to_be_bytes()].concat()
}
