//! kvnet-foreign: other firewalls on a kvnet host, judged without I/O. The daemon
//! reads `nft -j list ruleset`; this crate says which base chain's drop would hit
//! which network's traffic and who owns it ([`analyse()`]), which accepts kvnet must
//! add to iptables' tables or may remove ([`iptables::plan`]), and which firewalld
//! zone a bridge belongs in ([`firewalld::zone_for`]).
//!
//! Why this is needed: on a hook, a packet must survive every base chain of every
//! table, so an accept in kvnet's own table does not outvote Docker's `FORWARD`
//! policy drop, firewalld's zone rejects or ufw's default-deny.
//!
//! # Modules (dependencies point down)
//!
//! * `ruleset`: the JSON as tables, chains and rules.
//! * `traffic`: what each network needs to pass, as representative packets.
//! * `eval`: one packet through one base chain, with three-valued matches.
//! * `analyse`: every packet through every chain; owners.
//! * `legacy`: iptables-legacy's rules (`iptables-legacy-save`) in the same model.
//! * `iptables`, `firewalld`: the remedies.

#![forbid(unsafe_code)]

pub mod analyse;
pub mod eval;
pub mod firewalld;
pub mod iptables;
pub mod legacy;
pub mod ruleset;
pub mod traffic;

pub use analyse::{Context, Hit, Owner, analyse};
pub use ruleset::{ParseError, Ruleset, TableId};
pub use traffic::{BridgeNf, Traffic};
