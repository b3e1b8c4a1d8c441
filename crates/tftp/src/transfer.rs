//! One read transfer: option negotiation (RFC 2347–2349), then DATA blocks in lock-step
//! with the client's ACKs, each retransmitted when its ACK is late, until the client
//! acknowledges the last one or the tries run out. The clock is passed in; the file is
//! any [`Read`] the shell hands over, read one block ahead of the client's ACK.

use crate::packet::{self, ErrorCode, Mode, Packet, Request};
use std::io::{self, BufReader, Read};
use std::time::{Duration, Instant};

/// RFC 1350's block size, used unless the client negotiates another.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The range of the blksize option (RFC 2348).
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// The range of the timeout option, in seconds (RFC 2349).
pub const MIN_TIMEOUT: u64 = 1;
pub const MAX_TIMEOUT: u64 = 255;
/// IPv4 (20), UDP (8) and TFTP (4) headers in front of a DATA block.
const HEADERS: u32 = 32;

/// How the server runs transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The largest block a client may ask for: what fits the link's MTU unfragmented.
    pub max_blksize: u16,
    /// The retransmission timeout unless the client negotiates one.
    pub timeout: Duration,
    /// Sends of one packet (the first included) before the transfer gives up.
    pub tries: u32,
}

impl Config {
    /// The defaults for a link of `mtu` bytes: blocks up to what fits it, 1 s timeout,
    /// 5 tries.
    pub fn for_mtu(mtu: u32) -> Config {
        let fits = mtu.saturating_sub(HEADERS);
        let max = fits.clamp(u32::from(DEFAULT_BLKSIZE), u32::from(MAX_BLKSIZE));
        Config {
            max_blksize: u16::try_from(max).unwrap_or(MAX_BLKSIZE),
            timeout: Duration::from_secs(1),
            tries: 5,
        }
    }
}

/// What the server agreed to, and the OACK that says so (empty: no OACK, the transfer
/// starts with DATA block 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub timeout: Duration,
    pub oack: Vec<(&'static str, String)>,
}

/// Answer the options of `req` for a file of `size` bytes (None: unknown, e.g. in
/// netascii, where the size on the wire differs: tsize is then not acknowledged).
/// Options out of range, malformed or unknown are left out of the OACK, which RFC 2347
/// lets the server do; the client then uses the defaults.
pub fn negotiate(req: &Request, size: Option<u64>, cfg: &Config) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: cfg.timeout,
        oack: Vec::new(),
    };
    for (name, value) in &req.options {
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        match name.as_str() {
            "blksize" if v >= u64::from(MIN_BLKSIZE) && v <= u64::from(MAX_BLKSIZE) => {
                // A larger request is answered with what fits (RFC 2348 lets the
                // server reply with a smaller size).
                let b = u16::try_from(v)
                    .unwrap_or(MAX_BLKSIZE)
                    .min(cfg.max_blksize.max(MIN_BLKSIZE));
                n.blksize = b;
                n.oack.push(("blksize", b.to_string()));
            }
            "timeout" if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&v) => {
                n.timeout = Duration::from_secs(v);
                n.oack.push(("timeout", v.to_string()));
            }
            // In a read request the client sends 0 and the server answers the size.
            "tsize" => {
                if let Some(size) = size {
                    n.oack.push(("tsize", size.to_string()));
                }
            }
            _ => {}
        }
    }
    n
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send [`Transfer::packet`] (anew or again), then wait for the next packet or
    /// [`Transfer::deadline`].
    Send,
    /// Nothing to send: wait for the next packet or the deadline.
    Wait,
    /// The client acknowledged the last block: the transfer is complete.
    Done,
    /// The transfer is over unfinished; send `reply` if there is one.
    Fail {
        reason: String,
        reply: Option<Vec<u8>>,
    },
}

/// LF → CR LF and CR → CR NUL (RFC 764's NVT-ASCII, as netascii mode sends text).
struct Netascii<R> {
    inner: BufReader<R>,
    pending: Option<u8>,
}

impl<R: Read> Read for Netascii<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            if let Some(p) = self.pending.take() {
                out[n] = p;
                n += 1;
                continue;
            }
            let mut b = [0u8];
            if self.inner.read(&mut b)? == 0 {
                break;
            }
            out[n] = match b[0] {
                b'\n' => {
                    self.pending = Some(b'\n');
                    b'\r'
                }
                b'\r' => {
                    self.pending = Some(0);
                    b'\r'
                }
                c => c,
            };
            n += 1;
        }
        Ok(n)
    }
}

enum Source<R> {
    Octet(R),
    Netascii(Netascii<R>),
}

impl<R: Read> Source<R> {
    /// Fill `buf` unless the file ends first; the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let r = match self {
                Source::Octet(r) => r.read(&mut buf[n..]),
                Source::Netascii(r) => r.read(&mut buf[n..]),
            };
            match r {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// A read transfer in progress.
pub struct Transfer<R> {
    src: Source<R>,
    blksize: usize,
    timeout: Duration,
    tries: u32,
    /// The packet in flight: the OACK (block 0) or DATA `block`.
    packet: Vec<u8>,
    block: u16,
    /// The packet in flight is the OACK.
    oack: bool,
    /// The packet in flight is the last DATA (shorter than a block).
    last: bool,
    /// How often the packet in flight was sent.
    sent: u32,
    deadline: Instant,
    /// Data bytes sent in blocks the client acknowledged, and blocks sent more than once.
    pub acked_bytes: u64,
    pub retransmits: u64,
}

impl<R: Read> Transfer<R> {
    /// Start serving `req` (a read request) from `file` of `size` bytes: negotiate, and
    /// make the first packet, the OACK or DATA block 1, ready to send. An `Err` is the
    /// ERROR packet to send instead (the file could not be read).
    pub fn start(
        req: &Request,
        file: R,
        size: u64,
        cfg: &Config,
        now: Instant,
    ) -> Result<Transfer<R>, Vec<u8>> {
        let (src, size) = match req.mode {
            Mode::Octet => (Source::Octet(file), Some(size)),
            Mode::Netascii => (
                Source::Netascii(Netascii {
                    inner: BufReader::new(file),
                    pending: None,
                }),
                None,
            ),
        };
        let n = negotiate(req, size, cfg);
        let mut t = Transfer {
            src,
            blksize: usize::from(n.blksize),
            timeout: n.timeout,
            tries: cfg.tries.max(1),
            packet: Vec::new(),
            block: 0,
            oack: !n.oack.is_empty(),
            last: false,
            sent: 1,
            deadline: now + n.timeout,
            acked_bytes: 0,
            retransmits: 0,
        };
        if t.oack {
            t.packet = packet::oack(&n.oack);
        } else {
            t.next_block().map_err(|e| read_error(&e))?;
        }
        Ok(t)
    }

    /// The packet to send when a step says [`Step::Send`] (and after `start`).
    pub fn packet(&self) -> &[u8] {
        &self.packet
    }

    /// The block size in use.
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// When the packet in flight is due again, unless its ACK arrives first.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Read the next block into the packet in flight.
    fn next_block(&mut self) -> io::Result<()> {
        let block = self.block.wrapping_add(1);
        let mut p = vec![0u8; 4 + self.blksize];
        let n = self.src.fill(&mut p[4..])?;
        p.truncate(4 + n);
        p[..4].copy_from_slice(&packet::data_header(block));
        self.packet = p;
        self.block = block;
        self.oack = false;
        self.last = n < self.blksize;
        Ok(())
    }

    fn sent_now(&mut self, now: Instant) -> Step {
        self.deadline = now + self.timeout;
        Step::Send
    }

    /// A datagram from the client's port arrived.
    pub fn on_packet(&mut self, bytes: &[u8], now: Instant) -> Step {
        match packet::parse(bytes) {
            Ok(Packet::Ack(b)) if b == self.block => {
                if !self.oack {
                    self.acked_bytes += self.packet.len().saturating_sub(4) as u64;
                }
                if self.last {
                    return Step::Done;
                }
                if let Err(e) = self.next_block() {
                    return Step::Fail {
                        reason: format!("reading the file: {e}"),
                        reply: Some(read_error(&e)),
                    };
                }
                self.sent = 1;
                self.sent_now(now)
            }
            Ok(Packet::Error { code, message }) => Step::Fail {
                reason: format!("the client aborted: error {code} {message:?}"),
                reply: None,
            },
            // An old ACK (a duplicate, or one that crossed a retransmission) is not
            // answered: resending on it would double every later block (the Sorcerer's
            // Apprentice bug, RFC 1123 §4.2.3.1). Anything else from the client's port
            // is ignored.
            _ => Step::Wait,
        }
    }

    /// The clock moved: retransmit the packet in flight if its ACK is overdue, or give
    /// up after the last try.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        if now < self.deadline {
            return Step::Wait;
        }
        if self.sent >= self.tries {
            return Step::Fail {
                reason: format!(
                    "no ACK of block {} after {} tries {:?} apart",
                    self.block, self.sent, self.timeout
                ),
                reply: Some(packet::error(ErrorCode::Undefined, "timed out")),
            };
        }
        self.sent += 1;
        self.retransmits += 1;
        self.sent_now(now)
    }
}

fn read_error(e: &io::Error) -> Vec<u8> {
    packet::error(ErrorCode::Undefined, &format!("read error: {e}"))
}
