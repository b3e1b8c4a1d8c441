//! kvnet-host: the thin I/O layer over the kernel — links, bridges, addresses
//! and routes over rtnetlink, `/proc/sys`, nftables through `nft`, and the raw
//! sockets of the guest services (ARP, IPv4/UDP, ICMPv6).
//!
//! It is the one crate of the workspace that may hold `unsafe` code; every block
//! states the invariant it relies on in a `// SAFETY:` comment.
//!
//! Everything acts on the network namespace of the calling thread (for
//! [`Netlink`], of the thread that called [`Netlink::connect`]), except
//! [`link::mac`], which reads sysfs.

pub mod arp;
pub mod beneath;
pub mod bgclose;
mod error;
pub mod firewalld;
pub mod icmp6;
pub mod iptables;
pub mod link;
pub mod linkwatch;
pub mod macvtap;
mod netlink;
pub mod nft;
pub mod nftwatch;
pub mod portprobe;
pub mod procroutes;
pub mod rawip;
pub mod resolved;
pub mod routewatch;
pub mod sock;
pub mod sriov;
mod sys;
pub mod sysctl;
pub mod tap;
pub mod testns;

pub use error::{ErrorKind, HostError};
pub use netlink::{
    BridgeSpec, FdbEntry, HtbClass, Link, LinkAddress, LinkRoute, MacFilter, Netlink, Route,
    STP_MAX_FORWARD_DELAY_CS, STP_MIN_FORWARD_DELAY_CS, TABLE_MAIN, TcChange, TcShape, TunInfo,
    VlanMember, VxlanSpec, format_mac, ifb_name,
};
