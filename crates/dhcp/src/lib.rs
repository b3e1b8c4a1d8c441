//! kvnet-dhcp: a sans-IO DHCPv4 server engine (RFC 2131/2132), one [`Server`] per
//! network's IPv4 subnet, and in [`v6`] its DHCPv6 counterpart (RFC 8415, IA_NA) for the
//! network's IPv6 `<ip>` with `<dhcp>`, on the same contract and journal design.
//!
//! The engine owns no socket, file or clock. The daemon (the *shell*) feeds it datagrams
//! and the current time, and carries out the [`Effect`]s it returns:
//!
//! ```text
//! table  = replay(&journal_text);              // at start-up; then rewrite with compact()
//! server = Server::new(Config::from_network(&net, ip_index, net.profile().guests)?, table);
//! loop {
//!     effects = server.handle(now, &datagram)  // a packet arrived on port 67
//!            |  server.expire(now)             // the timer from next_deadline() fired
//!            |  server.note_in_use(ip, mac, now); // ARP/neighbour/traffic sighting
//!     for e in effects { run(e) }              // strictly in order, see below
//!     server.recorded(write_ok);               // how the batch's journal write went
//!     send the held ACKs whose probe settled   // see Conflicts
//!     if compaction.due(..) { rewrite with compact(server.table()) } // see Journal
//! }
//! ```
//!
//! # The contract
//!
//! **Order.** Effects are returned in the order they must be carried out. Every
//! [`Effect::Persist`] comes before the [`Effect::Send`] whose promise it records (the
//! ACK), so the shell must append `encode_record(&rec)` to the network's journal and make
//! it durable (fsync) before sending anything that follows it in the same batch. Every
//! reply that promises a lease comes from a call that records it, so if the write fails,
//! drop the replies of every call whose effects hold a `Persist`: the client retries, and
//! an unsent ACK is harmless while an ACK for an unrecorded lease could hand one address
//! to two clients after a crash. The replies of the other calls (OFFERs, NAKs, INFORM
//! answers, renewals answered from a durable record) promise nothing the journal does not
//! hold and may still leave. OFFERs are not journalled: an offer is a tentative
//! reservation kept in memory for [`Config::offer_hold`] seconds. When a client moves to
//! another address, the release of its old one is persisted before the new binding. The
//! effects of several calls may be carried out as one batch (group commit): append all
//! their records, fsync once, then send, which keeps the rule for every reply of the
//! batch.
//!
//! **Reporting the write.** After each batch the shell calls [`Server::recorded`]:
//! `true` once its records are durable, `false` when the write failed. On failure the
//! engine's table goes back to what the journal holds (the shell must make sure the file
//! holds no part of the failed write, e.g. by truncating it back), so that nothing is
//! later promised from a record the journal lacks; the clients' retries are journalled
//! anew once the disk takes them again. Until reported durable, a record is never reused
//! (below), so a shell that never reports only loses that saving.
//!
//! **The renewal rule.** An ACK never promises more than the journal holds. A client
//! renewing its unchanged binding (same address, MAC, client id, hostname) within the
//! first quarter of its lease is answered from the durable record without a new line:
//! the ACK's lease time (and T1, T2) is what is left of the recorded lease, never past
//! its recorded expiry (ISC dhcpd's `dhcp-cache-threshold` and Kea's lease caching do
//! the same). A later renewal writes a new record and gets a whole lease, so clients
//! renewing at T1 see no difference, and a client renewing as fast as it may costs one
//! journal line per quarter lease instead of one per packet. On a full disk, renewals
//! within that quarter are still answered; later ones are not (they would need a new
//! promise) and the client keeps its address until its recorded expiry, retrying.
//!
//! **The network's budget.** Besides the per-client packet rate ([`Config::rate`], by
//! MAC, which a guest chooses at will), every lease change that costs a journal line
//! (a new or moved binding, a changed hostname or client id, a release, a decline) takes
//! a token from the network's bucket, [`Config::change_rate`]
//! ([`RateLimit::for_pool`]: the whole pool at once, then the pool every ten minutes,
//! at least 16 a second); without one the request is dropped and the client retries.
//! Renewals of an unchanged binding take none: the renewal rule already bounds them to
//! one line per lease per quarter lease, and a guest's churn must not starve the others'
//! renewals.
//!
//! **Journal.** [`encode_record`] gives one JSON line (newline included); [`replay`]
//! rebuilds the table from the file's text, skipping a line torn by a crash or a failed
//! write; [`compact`] writes the table as a fresh journal (write to a temporary file,
//! fsync, rename, fsync the directory). Compact at start-up, and while the service runs
//! whenever [`Compaction::due`] says so: once the journal has more than twice as many
//! lines as the table has records (and more than [`COMPACTION_FLOOR`] bytes), between
//! two batches, after [`Server::recorded`], when the table is exactly what the journal
//! holds. With the budget above, the journal stays within about twice its live content,
//! whatever the guests do. Keep one journal per network *name*, so leases survive a
//! network stop/start. Lease expiry is never journalled: records carry their expiry
//! time.
//!
//! **Destinations.** [`Destination`] says where a reply goes (RFC 2131 §4.1): the relay
//! (`giaddr`, port 67), broadcast (255.255.255.255:68, NAKs and clients that set the
//! broadcast flag), unicast to `ciaddr` (renewals, INFORM), or
//! [`Destination::Hardware`]: to the offered address in a frame addressed to the client's
//! MAC, which must bypass ARP because the client cannot answer for an address it does not
//! have yet (packet socket, or a neighbour entry installed first).
//!
//! **What the shell adds.** Replies are complete DHCP messages (the UDP payload, padded
//! to BOOTP's 300 bytes). IP/UDP headers and the UDP checksum are the shell's job;
//! compute it in full rather than relying on checksum offload, which old guest clients
//! reject (libvirt adds a CHECKSUM-fill rule for the same reason). Replies leave from
//! [`Config::server_ip`], port 67.
//!
//! **Conflicts.** OFFERs never wait (dnsmasq pings for 3 s before an offer). Instead the
//! engine returns [`Effect::Probe`] before offering an address the client does not hold,
//! the shell asks the bridge (ARP) without waiting, and reports every address it sees in
//! use (ARP answers and announcements, the kernel's neighbour table) with
//! [`Server::note_in_use`]; allocation skips them, a REQUEST for one is NAKed, and an offer
//! or lease that turns out to collide is abandoned. Clients send their REQUEST about a
//! millisecond after the OFFER, before a slow squatter's answer, so the ACK of a fresh
//! binding (an address the client did not hold as an active lease) names that address in
//! `Send::after_probe`: the shell holds it, after the journal write, until 100 ms after
//! the probe it sent for the address, and drops it if `note_in_use` meanwhile reports a
//! [`Event::Conflict`] for the address (the client retries, is NAKed and starts over).
//! The engine keeps no sub-second clock: the shell times the wait, and sends at once when
//! it sent no probe for the address (rate limit, no ARP socket) or the probe is older
//! than that. Other replies never wait. [`conflict`] holds these decisions, on the
//! `Instant`s the shell passes in: the probes' rate limit ([`conflict::ProbeRate`]) and
//! the held ACKs ([`conflict::AckHolds`]).
//!
//! # Mapping from the network XML
//!
//! | XML | DHCP |
//! |---|---|
//! | `<ip address prefix>` | server id (54), subnet mask (1), broadcast (28) |
//! | `<range start end><lease expiry unit>` | pool; lease time (51), T1 (58) = ½, T2 (59) = ⅞; `expiry='0'` = infinite; default 1 hour |
//! | `<host mac|id|name ip><lease>` | reservation, matched by MAC, then option 61, then option 12; hostname (12) |
//! | `<forward>` present | router (3) = our address; none on isolated networks |
//! | `<dns enable='no'>` absent | DNS server (6) = our address |
//! | `<domain name>` | domain name (15) |
//! | `<mtu size>` | interface MTU (26) |
//! | `<bootp file server>` | BOOTP `file`, `siaddr` = server or us |
//! | `<tftp root>` | `siaddr` = us |

#![forbid(unsafe_code)]

mod config;
pub mod conflict;
mod event;
mod extra;
mod fqdn;
mod journal;
mod lease;
mod ratelimit;
mod renewal;
mod server;
mod slice;
mod stats;
pub mod v6;
mod wire;

pub use config::{
    Config, ConfigError, LeaseTime, Range, RateLimit, StaticHost, format_client_id, parse_client_id,
};
pub use event::{Destination, Effect, Event};
pub use extra::{BootRule, ExtraOption};
pub use journal::{COMPACTION_FLOOR, Compaction};
pub use lease::{LeaseRecord, LeaseState, LeaseTable, LeaseView, compact, encode_record, replay};
pub use server::Server;
pub use stats::Stats;
pub use wire::Malformed;
