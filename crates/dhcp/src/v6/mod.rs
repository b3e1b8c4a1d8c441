//! A sans-IO DHCPv6 server engine (RFC 8415), one [`Server`] per network's IPv6 `<ip>`
//! with `<dhcp>`: stateful addresses (IA_NA) as libvirt's dnsmasq serves them.
//!
//! The contract is the DHCPv4 engine's (see the crate docs), simplified:
//!
//! ```text
//! table  = replay(&journal_text);              // STATE_DIR/leases/NAME.v6.jsonl
//! server = Server::new(Config::from_network(&net, ip_index(&net)?, server_duid)?, table);
//! loop {
//!     effects = server.handle(now, &datagram)  // from a client, port 547
//!            |  server.expire(now);            // the timer from next_deadline() fired
//!     append and fsync every Persist, then send every Send to the client that sent
//!     the datagram (its link-local address, port 546, scope = the bridge)
//! }
//! ```
//!
//! **Order.** A [`Effect::Persist`] comes before the [`Effect::Send`] of the Reply that
//! grants the lease; several datagrams' effects may be carried out as one batch (group
//! commit). If the journal write fails, drop the replies of the calls that recorded a
//! lease, as for v4, and report it ([`Server::recorded`]). Advertised addresses are held
//! in memory for [`Config::offer_hold`] seconds, not journalled. The v4 engine's renewal
//! rule (a Renew, Rebind or Request for an unchanged, durable binding in the first
//! quarter of its lease is answered with the lifetimes left, without a new record), its
//! budget of lease changes per network ([`Config::change_rate`]; a message that would
//! change a lease without a token left is dropped) and its running compaction apply.
//!
//! **Server DUID.** Given by the shell ([`duid_uuid`] of the network's UUID, or
//! [`duid_ll`] of the bridge's MAC); it must be stable across restarts.
//!
//! **Scope.** IA_NA only: an IA_TA is answered with status NoAddrsAvail, prefix
//! delegation (IA_PD) is ignored, relayed messages are ignored (the socket only hears
//! the bridge), and only the first 8 IAs of a message are served. Messages are
//! validated as RFC 8415 §16 says (client and server identifiers); a Request, Renew,
//! Release or Decline for another server is ignored. A Solicit with Rapid Commit
//! (option 14) is answered with a Reply that binds at once. Renew/Rebind extend the
//! binding, or bind again an address the client names that is still free for it, else
//! answer NoBinding. Confirm answers Success or NotOnLink, Decline quarantines the
//! address for [`Config::decline_quarantine`] seconds. A client over [`Config::rate`]
//! (by DUID, as the v4 engine limits by MAC) is dropped, so a flood from one client does
//! not starve the others. The shell logs malformed, ignored and rate-limited packets at
//! debug level only ([`Event::is_noisy`]).
//!
//! # Mapping from the network XML
//!
//! | XML | DHCPv6 |
//! |---|---|
//! | `<ip family='ipv6' address prefix>` | the on-link prefix (Confirm) |
//! | `<range start end><lease expiry unit>` | pool; IAADDR preferred = valid = lease, T1 = ½, T2 = ⅞; `expiry='0'` = infinite; default 1 hour |
//! | `<host id name ip><lease>` | reservation, matched by DUID (`id`), then by the first label of the client FQDN (option 39); never by MAC |
//! | `<dns enable='no'>` absent | DNS recursive name server (23) = our address |
//! | `<domain name>` | domain search list (24) |

mod config;
mod event;
mod lease;
mod server;
mod wire;

pub use config::{Config, Range, StaticHost, duid_ll, duid_mac, duid_uuid, ip_index};
pub use event::{Effect, Event};
pub use lease::{LeaseRecord, LeaseState, LeaseTable, LeaseView, compact, encode_record, replay};
pub use server::Server;
pub use wire::Malformed;
