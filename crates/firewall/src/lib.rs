//! kvnet-firewall: renders the nftables scripts that give kvnet networks
//! libvirt's firewall semantics. Pure string rendering, no I/O: the daemon
//! feeds the result to `nft -f -`, each script being one atomic transaction,
//! or sends the start path's native nf_tables batch ([`encode_add_new`]).
//!
//! # Modules
//!
//! Dependencies point one way, down this list:
//!
//! * `model`: the input, [`FwNetwork`] and [`FwMode`], and its validation
//!   ([`FwNetwork::validate`], [`validate_all`], [`validate_table`]);
//!   `input` fills it from a network definition ([`FwNetwork::from_network`]).
//! * `schema`: the table's fixed layout, the same for every network: sets,
//!   base chains and their rules, chain names ([`chain_id`]).
//! * `plan`: what one network adds to that layout, as data (set elements, a
//!   custom-NAT chain).
//! * `render`: plans as nft script text ([`render_full`], [`render_add`],
//!   [`render_add_new`], [`render_remove`]); [`nl`]: the same additions as a
//!   netlink batch.
//! * `listing`: a live table and the rendered one in comparable form
//!   ([`normalize_listing`], [`expected_listing`]); `counters`: each network's
//!   figures from the counters of its elements ([`counters_by_network`]).
//! * [`portfilter`]: anti-spoofing for guest ports, a `bridge` table of its own.
//! * [`fence`]: overlay networks' DHCP fence on their VXLAN ports, another `bridge`
//!   table ([`render_fence`](fence::render_fence), [`encode_fence`]).
//!
//! `tests/plans/` holds golden files in the manner of libvirt's
//! networkxml2firewalltest: a network's XML, the script its first start
//! applies and the batch its fast start sends.
//!
//! # Why one `inet` table
//!
//! * Both address families are changed in one `nft -f` transaction, so a
//!   network never has its IPv4 rules without its IPv6 ones (libvirt needs two
//!   tables, `ip` and `ip6`, and two sets of commands).
//! * `ip …`/`ip6 …` matches carry an implicit family check in `inet`, so
//!   family-specific rules still only see their family.
//! * It is a private table: nothing goes into iptables' `ip filter`/`ip nat`
//!   tables, so iptables(-nft) users and firewalld are left alone.
//!
//! # Why fixed rules over sets
//!
//! On every commit that adds a chain, a rule or a verdict-map element, the
//! kernel re-validates the whole table (`nft_chain_validate`: loops, jump
//! depth, hook types), at about 5 µs per existing network when each network
//! had its own chains reached through verdict maps: the 200th start took
//! about twice as long as the 1st. Here the rules are written once, with the
//! skeleton, and match against sets; a network is only *elements* of those
//! sets, keys without verdicts, so adding or removing it validates nothing
//! and costs the same at any network count (see `examples/fw_commit.rs`).
//! Lookups stay one hash or pipapo lookup per rule whatever the number of
//! networks.
//!
//! # Layout (table `kvnet` by default)
//!
//! ```text
//! set cross     ifname . ifname                BR . BR
//! set est4/6    ifname . ipv4/6_addr (int.)    BR . NET          NAT subnets
//! set rt4/6     ifname . ipv4/6_addr (int.)    BR . NET          routed subnets
//! set src4/6    ifname . ipv4/6_addr (int.)    BR . NET          both
//!     (est/rt/src_dev: ifname . ifname . addr, BR . DEV . NET, for <forward dev>)
//! set rej4/6    ifname                         BR                (rej6: if IPv6)
//! set svc_in/out ifname . inet_proto . inet_service   BR . udp . 53
//! set nat4/6_skip  addr . addr (int.)          NET . 224.0.0.0/24, NET . 255.255.255.255,
//!                                              NET . NET (ff02::/16 for IPv6)
//! set nat4/6    addr (int.)                    NET
//! set nat4/6_dev addr . ifname (int.)          NET . DEV
//! map nat4/6_custom addr (int.) : verdict      NET : jump nat_<id>
//! map fwd4/6     inet_proto . addr . inet_service : addr . inet_service
//!                                              tcp . HOST . 8080 : GUEST . 80
//! map fwd4/6_any inet_proto . inet_service : addr . inet_service
//!                                              tcp . 2222 : GUEST . 22
//! set fwdst4/6   ifname . addr . inet_proto . inet_service
//!                                              BR . GUEST . tcp . 80
//!
//! chain forward (filter, prio 0)  iifname . oifname @cross accept
//!                                 ct status dnat oifname . ip daddr . meta l4proto
//!                                   . th dport @fwdst4 accept         (+ IPv6)
//!                                 ct state established,related oifname . ip daddr @est4 accept
//!                                 oifname . ip daddr @rt4 accept         (+ _dev, IPv6)
//!                                 meta nfproto ipv4 oifname @rej4 reject (+ IPv6)
//!                                 iifname . ip saddr @src4 accept        (+ _dev, IPv6)
//!                                 meta nfproto ipv4 iifname @rej4 reject (+ IPv6)
//! chain input  (filter, prio 0)   iifname . meta l4proto . th dport @svc_in accept
//! chain output (filter, prio 0)   oifname . meta l4proto . th dport @svc_out accept
//! chain prerouting (nat, dstnat)  dnat ip to meta l4proto . ip daddr . th dport map @fwd4
//!                                 fib daddr type local dnat ip to
//!                                   meta l4proto . th dport map @fwd4_any (+ IPv6)
//! chain output_dnat (nat, -100)   the same for the host's own connections,
//!                                   loopback destinations excepted
//! chain postrouting (nat, srcnat) ct status dnat oifname . ip saddr @est4
//!                                   masquerade                  (hairpin, + IPv6)
//!                                 ip saddr vmap @nat4_custom             (+ IPv6)
//!                                 ip saddr . ip daddr @nat4_skip return  (+ IPv6)
//!                                 … ip saddr @nat4 masquerade [to :1024-65535]
//!                                 … ip saddr . oifname @nat4_dev masquerade …
//! ```
//!
//! A port forward is map elements, one per host port, keyed by protocol and
//! port (and host address): one hash lookup per new connection whatever the
//! number of forwards, and adding or moving one validates nothing.
//!
//! Only a network with `<nat><address>` or `<nat><port>` (custom SNAT) owns a
//! chain, `nat_<id>`, holding libvirt's NAT rules with its addresses and
//! ports, where `<id>` is the bridge name escaped by [`chain_id`]. It is rare,
//! and its start pays the validation described above.
//!
//! The forward order is libvirt's `guest_cross` → `guest_input` →
//! `guest_output`: the accepts of the destination bridge, then its rejects,
//! then the accepts and rejects of the source bridge. A bridge is in
//! rej4/rej6 exactly for the families libvirt rejects on it (IPv6 only when
//! the network has IPv6), so traffic between two kvnet networks is judged
//! exactly as libvirt judges it: a NAT network only admits
//! established/related traffic (NAT→NAT is rejected), a routed network
//! admits anything addressed to its subnets, from anywhere.
//!
//! Bridges are matched by name (`iifname`/`oifname`), not by index, so the
//! rules can be installed before the bridge exists and survive its
//! re-creation.
//!
//! # Caveats
//!
//! * Interval sets cannot hold overlapping keys: two running NAT networks
//!   with nested subnets (which libvirt's route-collision check lets
//!   through), or one NAT network with nested subnets, are refused, by
//!   [`validate_all`]/[`FwNetwork::validate`] or by nft itself for
//!   `render_add`. Nested routed subnets of one network are merged.
//! * `render_full` recreates the table, so it resets all counters (a rebuild
//!   after someone else changed the table, an older layout at adoption); the
//!   per-network figures are the counters of the network's elements (est, rt,
//!   src, rej and nat sets), which need Linux 5.12 (set element expressions
//!   cloned from the set's).
//! * Concatenations with intervals (pipapo sets) need Linux 5.6 and nft
//!   0.9.4 or later.
//! * nft 1.0.6 still reads the table into its cache before each transaction,
//!   so applying a script through `nft -f` gets slightly slower as networks
//!   accumulate; the daemon's start path ([`encode_add_new`]) does not use nft.

#![forbid(unsafe_code)]

mod counters;
pub mod fence;
mod input;
mod listing;
mod model;
pub mod nl;
mod plan;
pub mod portfilter;
mod render;
mod schema;

pub use counters::{Count, FwCounters, counters_by_network};
pub use listing::{expected_listing, normalize_listing};
pub use model::{
    FwError, FwForward, FwMode, FwNetwork, MAX_FORWARD_PORTS, Proto, validate_all, validate_table,
};
pub use nl::{
    encode_add_new, encode_fence, encode_forwards, encode_guard, encode_remove, guard_table,
};
pub use render::{
    Ruleset, render_add, render_add_new, render_forwards, render_full, render_rebuild,
    render_remove,
};
pub use schema::{DEFAULT_TABLE, chain_id};
