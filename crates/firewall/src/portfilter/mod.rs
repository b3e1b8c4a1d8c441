//! Anti-spoofing for guest ports (libvirt's nwfilter `clean-traffic`, without ebtables):
//! a `bridge` family table of its own, `kvnet` by default, whose fixed rules check
//! every frame a filtered port sends against sets. A port is only elements of those
//! sets, so filtering one more port, or following a lease, validates nothing and costs
//! the same per frame whatever the number of ports.
//!
//! ```text
//! set filtered  ifname                      the ports whose frames are checked
//! set learn     ifname                      of those, the ports whose MAC kvnet does not know
//! set mac       ifname . ether_addr         a port's MAC (learned ones added by the rule)
//! set macs      ether_addr                  MACs a port may not learn: every known guest's
//! set addr4     ether_addr . ipv4_addr      a guest's IPv4 addresses (by its MAC)
//! set addr6     ether_addr . ipv6_addr      its IPv6 ones; na6 the same, as ND targets
//! map drops     ifname : counter            each port's counter of dropped frames
//!
//! chain prerouting (bridge, filter, -300)  iifname @filtered jump guest
//! chain guest   a learning port's first frame locks its MAC; a wrong MAC is dropped;
//!               ARP, IPv4, IPv6 and RARP go on by ether type, anything else is dropped
//! chain arp_from   sender MAC the port's, sender IP 0.0.0.0 (a probe) or the guest's
//! chain v4_from    no DHCP server replies; 0.0.0.0 only to a DHCP server; else the
//!                  guest's address
//! chain v6_from    no RA, redirect or DHCPv6 server reply; an NA only for the guest's
//!                  own or a link-local target; `::` only for DAD and MLD; link-local
//!                  sources, or the guest's addresses
//! chain spoofed    count on the port's counter, drop
//! ```
//!
//! The table has no bridge in it: nftables' bridge family cannot match the bridge a
//! frame entered (`meta ibrname` needs `CONFIG_NFT_BRIDGE_META`), so the daemon names
//! each filtered port; addresses are bound to MACs, which are bound to ports.
//!
//! `state` derives the elements from the ports and bindings; `render` writes the table
//! and the changes between two states as nft scripts; `listing` reads what a live table
//! holds (`nft -j`): its elements, the MACs ports learned, the counters.

mod listing;
mod render;
mod state;

pub use listing::{Installed, ListingError, parse_listing};
pub use render::{PORT_FILTER_TABLE, render_changes, render_table};
pub use state::{FilterInput, FilterPort, FilterState, eui64};
