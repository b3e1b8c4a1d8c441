//! kvnet-tftp: a sans-IO, read-only TFTP server engine (RFC 1350, with the option
//! extension of RFC 2347 and the blksize, timeout and tsize options of RFCs 2348–2349),
//! what dnsmasq's `enable-tftp`/`tftp-root` does for libvirt's `<tftp root='…'/>`.
//!
//! The engine owns no socket, file or clock. The daemon (the *shell*, kvnetd's
//! `services/tftp.rs`) receives requests on the bridge's port 69, opens the file
//! confined to the root, and runs each transfer from its own port (RFC 1350's TID):
//!
//! ```text
//! match packet::parse(datagram) {
//!     Ok(Packet::Request(req)) if !req.write => {
//!         slots.admit(client)?;                        // Busy: ERROR 0 from port 69
//!         let rel = path::relative(&req.filename)?;    // PathError: ERROR 2
//!         open rel beneath the root (no escape, regular files only), fstat its size;
//!         let mut t = Transfer::start(&req, file, size, &Config::for_mtu(mtu), now)?;
//!         send t.packet() from a new port to the client, then loop:
//!             wait for a datagram from the client (d) or t.deadline():
//!             step = t.on_packet(d, now) | t.on_timeout(now);
//!             Send => send t.packet(); Wait => {}; Done | Fail { reply } => send reply, end
//!         slots.release(client);
//!     }
//!     Ok(Packet::Request(_)) => ERROR 2 "access violation" (write requests)
//!     Err(e) => e.reply(), anything else: ignored
//! }
//! ```
//!
//! **Modes.** octet, and netascii (LF sent as CR LF, CR as CR NUL); netascii transfers
//! do not acknowledge tsize, whose value would be the size on disk, not on the wire.
//!
//! **Options.** `blksize` 8–65464, answered with at most what fits the link's MTU
//! unfragmented ([`Config::for_mtu`]); `timeout` 1–255 s, which becomes the
//! retransmission timeout; `tsize`, answered with the file's size. Others, and values
//! out of range, are left out of the OACK (the client then keeps the defaults); no
//! acknowledged option, no OACK: DATA block 1 comes first.
//!
//! **Retransmission.** The packet in flight (OACK or DATA) is sent again when its ACK
//! is `timeout` late, [`Config::tries`] times in all, then the transfer fails with an
//! ERROR. Duplicate ACKs are never answered (RFC 1123's Sorcerer's Apprentice rule).
//! Block numbers wrap from 65535 to 0, so files of any size go through.
//!
//! **Confinement.** [`path::relative`] refuses `..` and maps a leading `/` to the root;
//! symbolic links are the shell's to confine when it opens the file.

#![forbid(unsafe_code)]

pub mod packet;
pub mod path;
pub mod slots;
pub mod transfer;

pub use packet::{ErrorCode, Mode, Packet, ParseError, Request, parse};
pub use path::{PathError, relative};
pub use slots::{Busy, Slots};
pub use transfer::{Config, Negotiated, Step, Transfer, negotiate};
