//! kvnet-ra: a sans-IO IPv6 router advertisement engine (RFC 4861 §6.2, SLAAC of
//! RFC 4862, DNS options of RFC 8106), one [`Engine`] per network with IPv6 addresses.
//!
//! It does what dnsmasq's `dhcp-range=ADDR,ra-only` / `enable-ra` / `ra-param` do for
//! libvirt. The engine owns no socket, file or clock; the daemon (the *shell*, kvnetd's
//! `ra.rs`) passes the time and the solicitations it receives, and sends what the engine
//! returns:
//!
//! ```text
//! engine = Engine::new(Config::from_network(&net, net.profile().guests)?.with_source_mac(bridge_mac), seed, now);
//! loop {
//!     wait until engine.next_deadline() or a solicitation arrives:
//!         engine.on_solicit(now, source, hop_limit, &icmpv6_body)  // Err: ignore it
//!     while let Some(ra) = engine.poll(now) {
//!         send ra to ff02::1 from the bridge's link-local address;
//!         engine.on_sent() | engine.on_send_failed(now)            // failed: retried later
//!     }
//! }
//! at network stop: send engine.final_ra()
//! ```
//!
//! Messages are ICMPv6 bodies with the checksum left 0: the kernel fills it in on raw
//! ICMPv6 sockets. The shell must send with hop limit 255 from a link-local address,
//! and pass the hop limit a solicitation arrived with (the engine drops any other than
//! 255, RFC 4861 §6.1.1).
//!
//! **Schedule.** The first RA leaves at once, the first
//! [`MAX_INITIAL_RTR_ADVERTISEMENTS`] (3, the first included) at most 16 s apart, then
//! one every random interval in [200 s, 600 s]. A valid solicitation is answered with a
//! multicast RA at once (no random delay: on a virtual bridge kvnetd is the only
//! router), but at most one RA per [`MIN_DELAY_BETWEEN_RAS`] (3 s); later solicitations
//! share the next allowed one. A configuration change restarts the initial RAs.
//!
//! # Mapping from the network XML
//!
//! | XML | RA |
//! |---|---|
//! | `<ip family='ipv6' address prefix>` | Prefix Information: on-link (L) for any length; autonomous (A) only for a /64 without `<dhcp>` (a /64 is the one length SLAAC can use on Ethernet); valid 86400 s, preferred 14400 s |
//! | `<forward>` present | router lifetime 1800 s (guests take a default route via the bridge's link-local address) |
//! | no `<forward>` (isolated) | router lifetime 0: addresses but no default route (libvirt's `ra-param=*,0,0`) |
//! | `<ip family='ipv6'><dhcp>` | M flag (stateful DHCPv6, served by kvnetd); the prefix is on-link but not autonomous (A = 0), as dnsmasq advertises a DHCPv6 range, so guests take addresses from DHCPv6 only |
//! | `<mtu size>` (≥ 1280) | MTU option |
//! | `<dns enable='no'>` absent | RDNSS = the first IPv6 `<ip>` address (kvnetd's DNS listens there) |
//! | `<domain name>`, DNS enabled | DNSSL = that domain |
//! | (the bridge's MAC) | Source Link-Layer Address option |
//!
//! Hop limit 64; reachable time and retransmission timer unspecified (0). Networks that
//! are not L3 (bridge, macvtap, hostdev modes) and networks without an IPv6 `<ip>` send
//! nothing.
//!
//! # Why hand-encoded
//!
//! An RA is a fixed header and five fixed-layout options, about a hundred lines with
//! byte-exact tests. `pnet_packet` types only RFC 4861's own options (RDNSS and DNSSL
//! would still be hand-built bytes) and brings its macro-generated packet layer;
//! smoltcp's wire types come with a whole TCP/IP stack. Neither saves code here.

#![forbid(unsafe_code)]

mod config;
mod engine;
mod wire;

pub use config::{
    Config, DNS_LIFETIME, HOP_LIMIT, MIN_MTU, PREFERRED_LIFETIME, Prefix, ROUTER_LIFETIME,
    VALID_LIFETIME,
};
pub use engine::{
    Engine, MAX_INITIAL_RTR_ADVERT_INTERVAL, MAX_INITIAL_RTR_ADVERTISEMENTS, MAX_RTR_ADV_INTERVAL,
    MIN_DELAY_BETWEEN_RAS, MIN_RTR_ADV_INTERVAL, RETRY_FIRST, RETRY_MAX,
};
pub use wire::{
    ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, RsError, Solicitation, encode_ra, parse_solicit,
    validate_solicit,
};
