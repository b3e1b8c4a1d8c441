//! kvnet-host: the thin I/O layer over the kernel — links, bridges, addresses
//! and routes over rtnetlink, `/proc/sys`, and nftables through `nft`.
//!
//! Everything acts on the network namespace of the calling thread (for
//! [`Netlink`], of the thread that called [`Netlink::connect`]).

mod error;
mod netlink;
pub mod nft;
pub mod procroutes;
pub mod routewatch;
pub mod sock;
pub mod sysctl;
pub mod tap;
pub mod testns;

pub use error::{ErrorKind, HostError};
pub use netlink::{
    BridgeSpec, FdbEntry, Link, LinkAddress, LinkRoute, Netlink, Route, STP_MAX_FORWARD_DELAY_CS,
    STP_MIN_FORWARD_DELAY_CS, TABLE_MAIN, TunInfo, format_mac,
};
