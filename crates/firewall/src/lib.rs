//! kvnet-firewall: renders the nftables scripts that give kvnet networks
//! libvirt's firewall semantics. Pure string rendering, no I/O: the daemon
//! feeds the result to `nft -f -`, each script being one atomic transaction.
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
//!
//! chain forward (filter, prio 0)  iifname . oifname @cross accept
//!                                 ct state established,related oifname . ip daddr @est4 accept
//!                                 oifname . ip daddr @rt4 accept         (+ _dev, IPv6)
//!                                 meta nfproto ipv4 oifname @rej4 reject (+ IPv6)
//!                                 iifname . ip saddr @src4 accept        (+ _dev, IPv6)
//!                                 meta nfproto ipv4 iifname @rej4 reject (+ IPv6)
//! chain input  (filter, prio 0)   iifname . meta l4proto . th dport @svc_in accept
//! chain output (filter, prio 0)   oifname . meta l4proto . th dport @svc_out accept
//! chain postrouting (nat, srcnat) ip saddr vmap @nat4_custom             (+ IPv6)
//!                                 ip saddr . ip daddr @nat4_skip return  (+ IPv6)
//!                                 … ip saddr @nat4 masquerade [to :1024-65535]
//!                                 … ip saddr . oifname @nat4_dev masquerade …
//! ```
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
//! * `render_full` recreates the table, so it resets all counters; counters
//!   are per rule, shared by all networks.
//! * Concatenations with intervals (pipapo sets) need Linux 5.6 and nft
//!   0.9.4 or later.
//! * nft 1.0.6 still reads the table into its cache before each transaction,
//!   so applying a script through `nft -f` gets slightly slower as networks
//!   accumulate; the daemon's start path ([`encode_add_new`]) does not use nft.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use ipnet::IpNet;

pub mod nl;
pub use nl::encode_add_new;

/// Forward modes that get firewall rules. Open, bridge and macvtap networks
/// get none: the daemon simply does not pass them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwMode {
    Nat,
    Route,
    Isolated,
}

/// What the firewall needs to know about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    /// Network name, only used in comments.
    pub name: String,
    /// Bridge interface name, e.g. "virbr0".
    pub bridge: String,
    pub mode: FwMode,
    /// `<forward dev='eth1'>`: restricts egress/ingress to that interface.
    pub forward_dev: Option<String>,
    /// One per `<ip>` of the network (both families), network address form.
    pub subnets: Vec<IpNet>,
    /// `<nat ipv6='yes'>`: masquerade IPv6 too; otherwise the IPv6 subnets of
    /// a NAT network get the routed rules.
    pub nat_ipv6: bool,
    /// `<nat><address start end>`: SNAT to that range instead of masquerade.
    pub nat_addresses: Option<(Ipv4Addr, Ipv4Addr)>,
    /// `<nat><port start end>`: replaces 1024-65535 for TCP/UDP.
    pub nat_ports: Option<(u16, u16)>,
    /// The network has an IPv6 `<ip>` or `ipv6='yes'`: adds the IPv6
    /// catch-all rejects. Also implied by any IPv6 subnet.
    pub ipv6: bool,
    pub dhcpv4: bool,
    pub dhcpv6: bool,
    pub dns: bool,
    pub tftp: bool,
}

/// Renders scripts for one table name; a thin wrapper over the free functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
}

impl Default for Ruleset {
    fn default() -> Self {
        Ruleset {
            table: DEFAULT_TABLE.to_string(),
        }
    }
}

impl Ruleset {
    pub fn full(&self, nets: &[FwNetwork]) -> String {
        render_full(&self.table, nets)
    }
    pub fn add(&self, net: &FwNetwork) -> String {
        render_add(&self.table, net)
    }
    pub fn remove(&self, net: &FwNetwork) -> String {
        render_remove(&self.table, net)
    }
}

pub const DEFAULT_TABLE: &str = "kvnet";

/// Why a network (or a set of networks) cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwError {
    InvalidTable(String),
    InvalidIfname {
        network: String,
        ifname: String,
    },
    InvalidPortRange {
        network: String,
        start: u16,
        end: u16,
    },
    InvalidAddressRange {
        network: String,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    DuplicateBridge(String),
    /// NAT subnets that overlap (across networks or nested within one):
    /// nftables interval sets cannot hold overlapping keys.
    OverlappingNatSubnets {
        a: (String, IpNet),
        b: (String, IpNet),
    },
}

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwError::InvalidTable(t) => write!(f, "invalid nftables table name {t:?}"),
            FwError::InvalidIfname { network, ifname } => {
                write!(f, "network {network:?}: invalid interface name {ifname:?}")
            }
            FwError::InvalidPortRange {
                network,
                start,
                end,
            } => write!(
                f,
                "network {network:?}: invalid NAT port range {start}-{end}"
            ),
            FwError::InvalidAddressRange {
                network,
                start,
                end,
            } => write!(
                f,
                "network {network:?}: invalid NAT address range {start}-{end}"
            ),
            FwError::DuplicateBridge(b) => write!(f, "bridge {b:?} used by two networks"),
            FwError::OverlappingNatSubnets { a, b } => write!(
                f,
                "NAT subnet {} of network {:?} overlaps {} of network {:?}",
                a.1, a.0, b.1, b.0
            ),
        }
    }
}

impl std::error::Error for FwError {}

/// Checks that `table` can be used as an nftables table name.
pub fn validate_table(table: &str) -> Result<(), FwError> {
    let mut chars = table.chars();
    let ok = table.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FwError::InvalidTable(table.to_string()))
    }
}

/// An interface name we can safely put in an nft quoted string: what the
/// kernel accepts, minus `"` (cannot be escaped in nft strings), `*` (a
/// trailing one is an nft wildcard) and non-ASCII.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'"' | b'*'))
}

impl FwNetwork {
    /// Checks everything the renderers rely on. `render_*` panic on a network
    /// that fails this, because rendering it could inject nft syntax.
    pub fn validate(&self) -> Result<(), FwError> {
        for ifname in std::iter::once(&self.bridge).chain(&self.forward_dev) {
            if !valid_ifname(ifname) {
                return Err(FwError::InvalidIfname {
                    network: self.name.clone(),
                    ifname: ifname.clone(),
                });
            }
        }
        if let Some((start, end)) = self.nat_ports
            && (start == 0 || start > end)
        {
            return Err(FwError::InvalidPortRange {
                network: self.name.clone(),
                start,
                end,
            });
        }
        if let Some((start, end)) = self.nat_addresses
            && start > end
        {
            return Err(FwError::InvalidAddressRange {
                network: self.name.clone(),
                start,
                end,
            });
        }
        if let Some((a, b)) = self.nested_nat_subnets() {
            return Err(FwError::OverlappingNatSubnets {
                a: (self.name.clone(), a),
                b: (self.name.clone(), b),
            });
        }
        Ok(())
    }

    fn has_ipv6(&self) -> bool {
        self.ipv6 || self.subnets.iter().any(|n| matches!(n, IpNet::V6(_)))
    }

    /// How one subnet is treated, following libvirt: IPv6 subnets of a NAT
    /// network without `ipv6='yes'` are routed.
    fn subnet_kind(&self, net: &IpNet) -> SubnetKind {
        match (self.mode, net) {
            (FwMode::Isolated, _) => SubnetKind::None,
            (FwMode::Route, _) => SubnetKind::Routed,
            (FwMode::Nat, IpNet::V4(_)) => SubnetKind::Natted,
            (FwMode::Nat, IpNet::V6(_)) if self.nat_ipv6 => SubnetKind::Natted,
            (FwMode::Nat, IpNet::V6(_)) => SubnetKind::Routed,
        }
    }

    /// The natted subnets, without duplicates: one key each in the NAT sets.
    /// [`FwNetwork::validate`] refuses nested ones.
    fn nat_keys(&self) -> Vec<IpNet> {
        maximal(
            self.subnets
                .iter()
                .map(IpNet::trunc)
                .filter(|n| self.subnet_kind(n) == SubnetKind::Natted),
        )
    }

    /// Two natted subnets of this network that nest (identical ones are
    /// merged). Their NAT set elements would overlap, and libvirt's rules
    /// for them (masquerade unless the destination is in the *smaller*
    /// subnet) cannot be expressed with per-subnet set elements.
    fn nested_nat_subnets(&self) -> Option<(IpNet, IpNet)> {
        let natted: Vec<IpNet> = self
            .subnets
            .iter()
            .map(IpNet::trunc)
            .filter(|n| self.subnet_kind(n) == SubnetKind::Natted)
            .collect();
        natted.iter().enumerate().find_map(|(i, a)| {
            natted[i + 1..]
                .iter()
                .find(|b| a != *b && (a.contains(*b) || b.contains(a)))
                .map(|b| (*a, *b))
        })
    }
}

/// `nets` without duplicates and without those contained in another one, in
/// order: the union stays the same and no two interval elements overlap.
fn maximal(nets: impl Iterator<Item = IpNet>) -> Vec<IpNet> {
    let nets: Vec<IpNet> = nets.collect();
    let mut keys: Vec<IpNet> = Vec::new();
    for (i, n) in nets.iter().enumerate() {
        let covered = nets
            .iter()
            .enumerate()
            .any(|(j, o)| (o != n && o.contains(n)) || (o == n && j < i));
        if !covered {
            keys.push(*n);
        }
    }
    keys
}

/// Checks a whole set of networks for [`render_full`]: each one, plus unique
/// bridges and non-overlapping NAT subnets.
pub fn validate_all(nets: &[FwNetwork]) -> Result<(), FwError> {
    let mut bridges = HashSet::new();
    let mut nat_keys: Vec<(&str, IpNet)> = Vec::new();
    for net in nets {
        net.validate()?;
        if !bridges.insert(net.bridge.as_str()) {
            return Err(FwError::DuplicateBridge(net.bridge.clone()));
        }
        for key in net.nat_keys() {
            if let Some((other, o)) = nat_keys
                .iter()
                .find(|(_, o)| o.contains(&key) || key.contains(o))
            {
                return Err(FwError::OverlappingNatSubnets {
                    a: (other.to_string(), *o),
                    b: (net.name.clone(), key),
                });
            }
            nat_keys.push((&net.name, key));
        }
    }
    Ok(())
}

/// The chain-name suffix for a bridge: ASCII letters and digits are kept,
/// every other byte (including `_`) becomes `_xx` in lowercase hex. Escaping
/// `_` itself keeps the mapping injective, so two bridges never share chains.
pub fn chain_id(bridge: &str) -> String {
    let mut out = String::with_capacity(bridge.len());
    for b in bridge.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubnetKind {
    None,
    Routed,
    Natted,
}

/// One set (or, for custom NAT, verdict map) of the table skeleton.
pub(crate) struct SetDef {
    pub(crate) name: &'static str,
    /// The nft key type, fields joined by ` . `.
    ty: &'static str,
    pub(crate) interval: bool,
    /// A verdict map (`: verdict`) instead of a set.
    map: bool,
}

impl SetDef {
    /// More than one key field: nft's concatenation, a pipapo set in the
    /// kernel when it has intervals.
    pub(crate) fn concat(&self) -> bool {
        self.ty.contains(" . ")
    }

    fn decl(&self) -> String {
        let value = if self.map { " : verdict" } else { "" };
        let flags = if self.interval {
            "; flags interval"
        } else {
            ""
        };
        format!("type {}{value}{flags}", self.ty)
    }
}

const fn set(name: &'static str, ty: &'static str, interval: bool) -> SetDef {
    SetDef {
        name,
        ty,
        interval,
        map: false,
    }
}

const IF_V4: &str = "ifname . ipv4_addr";
const IF_IF_V4: &str = "ifname . ifname . ipv4_addr";
const IF_V6: &str = "ifname . ipv6_addr";
const IF_IF_V6: &str = "ifname . ifname . ipv6_addr";
const SVC: &str = "ifname . inet_proto . inet_service";

const CROSS: SetDef = set("cross", "ifname . ifname", false);
const EST4: SetDef = set("est4", IF_V4, true);
const EST4_DEV: SetDef = set("est4_dev", IF_IF_V4, true);
const EST6: SetDef = set("est6", IF_V6, true);
const EST6_DEV: SetDef = set("est6_dev", IF_IF_V6, true);
const RT4: SetDef = set("rt4", IF_V4, true);
const RT4_DEV: SetDef = set("rt4_dev", IF_IF_V4, true);
const RT6: SetDef = set("rt6", IF_V6, true);
const RT6_DEV: SetDef = set("rt6_dev", IF_IF_V6, true);
const REJ4: SetDef = set("rej4", "ifname", false);
const REJ6: SetDef = set("rej6", "ifname", false);
const SRC4: SetDef = set("src4", IF_V4, true);
const SRC4_DEV: SetDef = set("src4_dev", IF_IF_V4, true);
const SRC6: SetDef = set("src6", IF_V6, true);
const SRC6_DEV: SetDef = set("src6_dev", IF_IF_V6, true);
const SVC_IN: SetDef = set("svc_in", SVC, false);
const SVC_OUT: SetDef = set("svc_out", SVC, false);
const NAT4_CUSTOM: SetDef = SetDef {
    name: "nat4_custom",
    ty: "ipv4_addr",
    interval: true,
    map: true,
};
const NAT6_CUSTOM: SetDef = SetDef {
    name: "nat6_custom",
    ty: "ipv6_addr",
    interval: true,
    map: true,
};
const NAT4_SKIP: SetDef = set("nat4_skip", "ipv4_addr . ipv4_addr", true);
const NAT6_SKIP: SetDef = set("nat6_skip", "ipv6_addr . ipv6_addr", true);
const NAT4: SetDef = set("nat4", "ipv4_addr", true);
const NAT4_DEV: SetDef = set("nat4_dev", "ipv4_addr . ifname", true);
const NAT6: SetDef = set("nat6", "ipv6_addr", true);
const NAT6_DEV: SetDef = set("nat6_dev", "ipv6_addr . ifname", true);

/// Every set of the skeleton, in declaration order. `cross` comes first: a
/// network's element there marks it as present (see [`render_add_new`]).
const SETS: [&SetDef; 25] = [
    &CROSS,
    &EST4,
    &EST4_DEV,
    &EST6,
    &EST6_DEV,
    &RT4,
    &RT4_DEV,
    &RT6,
    &RT6_DEV,
    &REJ4,
    &REJ6,
    &SRC4,
    &SRC4_DEV,
    &SRC6,
    &SRC6_DEV,
    &SVC_IN,
    &SVC_OUT,
    &NAT4_CUSTOM,
    &NAT6_CUSTOM,
    &NAT4_SKIP,
    &NAT6_SKIP,
    &NAT4,
    &NAT4_DEV,
    &NAT6,
    &NAT6_DEV,
];

struct BaseChain {
    name: &'static str,
    hook: &'static str,
    rules: &'static [&'static str],
}

/// The fixed rules, written as `nft list` prints them so that a listing
/// compares equal to [`render_full`]. The forward order is libvirt's
/// guest_cross → guest_input → guest_output: a bridge is in rej4/rej6
/// exactly for the families its per-network chain used to reject, so a
/// packet leaving one kvnet network for another is judged by the
/// destination's accepts and rejects first, then by the source's.
const BASE_CHAINS: [BaseChain; 4] = [
    BaseChain {
        name: "forward",
        hook: "type filter hook forward priority filter; policy accept;",
        rules: &[
            "iifname . oifname @cross counter accept",
            "ct state established,related oifname . ip daddr @est4 counter accept",
            "ct state established,related oifname . iifname . ip daddr @est4_dev counter accept",
            "ct state established,related oifname . ip6 daddr @est6 counter accept",
            "ct state established,related oifname . iifname . ip6 daddr @est6_dev counter accept",
            "oifname . ip daddr @rt4 counter accept",
            "oifname . iifname . ip daddr @rt4_dev counter accept",
            "oifname . ip6 daddr @rt6 counter accept",
            "oifname . iifname . ip6 daddr @rt6_dev counter accept",
            "meta nfproto ipv4 oifname @rej4 counter reject with icmp port-unreachable",
            "meta nfproto ipv6 oifname @rej6 counter reject with icmpv6 port-unreachable",
            "iifname . ip saddr @src4 counter accept",
            "iifname . oifname . ip saddr @src4_dev counter accept",
            "iifname . ip6 saddr @src6 counter accept",
            "iifname . oifname . ip6 saddr @src6_dev counter accept",
            "meta nfproto ipv4 iifname @rej4 counter reject with icmp port-unreachable",
            "meta nfproto ipv6 iifname @rej6 counter reject with icmpv6 port-unreachable",
        ],
    },
    BaseChain {
        name: "input",
        hook: "type filter hook input priority filter; policy accept;",
        rules: &["iifname . meta l4proto . th dport @svc_in counter accept"],
    },
    BaseChain {
        name: "output",
        hook: "type filter hook output priority filter; policy accept;",
        rules: &["oifname . meta l4proto . th dport @svc_out counter accept"],
    },
    // Custom SNAT networks first, then libvirt's NAT rules for all others:
    // no NAT towards multicast, broadcast or the own subnet, masquerade
    // anything else (TCP/UDP to unprivileged ports).
    BaseChain {
        name: "postrouting",
        hook: "type nat hook postrouting priority srcnat; policy accept;",
        rules: &[
            "ip saddr vmap @nat4_custom",
            "ip6 saddr vmap @nat6_custom",
            "ip saddr . ip daddr @nat4_skip counter return",
            "ip6 saddr . ip6 daddr @nat6_skip counter return",
            "meta l4proto { tcp, udp } ip saddr @nat4 counter masquerade to :1024-65535",
            "ip saddr @nat4 counter masquerade",
            "meta l4proto { tcp, udp } ip saddr . oifname @nat4_dev counter masquerade to :1024-65535",
            "ip saddr . oifname @nat4_dev counter masquerade",
            "meta l4proto { tcp, udp } ip6 saddr @nat6 counter masquerade to :1024-65535",
            "ip6 saddr @nat6 counter masquerade",
            "meta l4proto { tcp, udp } ip6 saddr . oifname @nat6_dev counter masquerade to :1024-65535",
            "ip6 saddr . oifname @nat6_dev counter masquerade",
        ],
    },
];

/// The chain of a custom-NAT network.
const NAT_CHAIN_PREFIX: &str = "nat_";

pub(crate) struct Chain {
    pub(crate) name: String,
    pub(crate) rules: Vec<Rule>,
}

/// One rule of a custom-NAT chain. Kept structured, not as text, so that the
/// nft script ([`fmt::Display`]) and the netlink batch ([`crate::nl`]) are
/// derived from the same description and cannot drift apart. Every rule
/// counts, then takes its action.
pub(crate) struct Rule {
    pub(crate) matches: Vec<Match>,
    pub(crate) action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub(crate) fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Saddr,
    Daddr,
}

pub(crate) enum Match {
    Oifname(String),
    /// `ip|ip6 saddr|daddr [!=] NET`; `host` writes a full-length prefix as
    /// a bare address (the listing is the same either way).
    Addr {
        dir: Dir,
        negate: bool,
        net: IpNet,
        host: bool,
    },
    L4proto(Proto),
}

pub(crate) enum Action {
    Return,
    Masquerade {
        ports: Option<(u16, u16)>,
    },
    Snat {
        addrs: (Ipv4Addr, Ipv4Addr),
        ports: Option<(u16, u16)>,
    },
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Oifname(name) => write!(f, "oifname {}", quote(name)),
            Match::Addr {
                dir,
                negate,
                net,
                host,
            } => {
                let dir = match dir {
                    Dir::Saddr => "saddr",
                    Dir::Daddr => "daddr",
                };
                let op = if *negate { " !=" } else { "" };
                write!(f, "{} {dir}{op} ", family(net))?;
                if *host {
                    write!(f, "{}", net.addr())
                } else {
                    write!(f, "{net}")
                }
            }
            Match::L4proto(p) => write!(f, "meta l4proto {}", p.name()),
        }
    }
}

struct Ports(Option<(u16, u16)>);

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some((a, b)) if a == b => write!(f, ":{a}"),
            Some((a, b)) => write!(f, ":{a}-{b}"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Return => f.write_str("return"),
            Action::Masquerade { ports: None } => f.write_str("masquerade"),
            Action::Masquerade { ports } => write!(f, "masquerade to {}", Ports(*ports)),
            Action::Snat {
                addrs: (a, b),
                ports,
            } if a == b => {
                write!(f, "snat ip to {a}{}", Ports(*ports))
            }
            Action::Snat {
                addrs: (a, b),
                ports,
            } => {
                write!(f, "snat ip to {a}-{b}{}", Ports(*ports))
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "counter {}", self.action)
    }
}

/// One field of a set element's key.
#[derive(Clone)]
pub(crate) enum Field {
    Ifname(String),
    /// A subnet: an interval in interval sets, shown as a bare address when
    /// it is a single one (as nft lists it).
    Net(IpNet),
    Proto(Proto),
    Port(u16),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Ifname(name) => f.write_str(&quote(name)),
            Field::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Field::Net(n) => write!(f, "{n}"),
            Field::Proto(p) => f.write_str(p.name()),
            Field::Port(p) => write!(f, "{p}"),
        }
    }
}

pub(crate) struct Element {
    pub(crate) key: Vec<Field>,
    /// The chain a custom-NAT map element jumps to.
    pub(crate) jump: Option<String>,
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.key.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{field}")?;
        }
        match &self.jump {
            Some(chain) => write!(f, " : jump {chain}"),
            None => Ok(()),
        }
    }
}

/// Elements added to one set in one `add element` statement (one netlink
/// message). Plain interval sets get one group per element, the way the
/// per-element NAT map statements always went through nft.
pub(crate) struct Group {
    pub(crate) set: &'static SetDef,
    pub(crate) elements: Vec<Element>,
}

impl Group {
    fn list(&self) -> String {
        let elems: Vec<String> = self.elements.iter().map(|e| e.to_string()).collect();
        elems.join(", ")
    }

    /// The keys alone, for `delete element`.
    fn keys(&self) -> String {
        let elems: Vec<String> = self
            .elements
            .iter()
            .map(|e| {
                Element {
                    key: e.key.clone(),
                    jump: None,
                }
                .to_string()
            })
            .collect();
        elems.join(", ")
    }
}

/// Everything one network contributes to the table: set elements, grouped
/// by set in [`SETS`] order (so `cross` first), and a chain only for
/// custom NAT.
pub(crate) struct Plan {
    header: String,
    pub(crate) groups: Vec<Group>,
    pub(crate) chain: Option<Chain>,
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// Makes arbitrary text safe for a `#` script comment.
fn comment_text(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c == '"' {
                '\''
            } else if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

fn mode_name(mode: FwMode) -> &'static str {
    match mode {
        FwMode::Nat => "nat",
        FwMode::Route => "route",
        FwMode::Isolated => "isolated",
    }
}

fn addr(dir: Dir, negate: bool, net: IpNet) -> Match {
    Match::Addr {
        dir,
        negate,
        net,
        host: false,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("valid constant subnet")
}

pub(crate) fn plan(fw: &FwNetwork) -> Plan {
    if let Err(e) = fw.validate() {
        panic!("kvnet-firewall: render called on an invalid network: {e}");
    }
    let br = || Field::Ifname(fw.bridge.clone());
    let dev = fw.forward_dev.as_ref();
    let mut elems: Vec<(&'static SetDef, Element)> = Vec::new();
    let mut add = |set: &'static SetDef, key: Vec<Field>, jump: Option<String>| {
        elems.push((set, Element { key, jump }));
    };

    add(&CROSS, vec![br(), br()], None);
    // Contained subnets add nothing to a union of accepts.
    let accepted = maximal(
        fw.subnets
            .iter()
            .map(IpNet::trunc)
            .filter(|n| fw.subnet_kind(n) != SubnetKind::None),
    );
    for subnet in accepted {
        let v4 = matches!(subnet, IpNet::V4(_));
        let to = match (fw.subnet_kind(&subnet), v4, dev.is_some()) {
            (SubnetKind::Natted, true, false) => &EST4,
            (SubnetKind::Natted, true, true) => &EST4_DEV,
            (SubnetKind::Natted, false, false) => &EST6,
            (SubnetKind::Natted, false, true) => &EST6_DEV,
            (_, true, false) => &RT4,
            (_, true, true) => &RT4_DEV,
            (_, false, false) => &RT6,
            (_, false, true) => &RT6_DEV,
        };
        let from = match (v4, dev.is_some()) {
            (true, false) => &SRC4,
            (true, true) => &SRC4_DEV,
            (false, false) => &SRC6,
            (false, true) => &SRC6_DEV,
        };
        for set in [to, from] {
            let mut key = vec![br()];
            key.extend(dev.map(|d| Field::Ifname(d.clone())));
            key.push(Field::Net(subnet));
            add(set, key, None);
        }
    }
    // libvirt only adds the ip6 rejects when the network has IPv6.
    add(&REJ4, vec![br()], None);
    if fw.has_ipv6() {
        add(&REJ6, vec![br()], None);
    }

    let mut svc = |on: bool, protos: &[Proto], port_in: u16, port_out: u16| {
        if on {
            for &p in protos {
                for (set, port) in [(&SVC_IN, port_in), (&SVC_OUT, port_out)] {
                    add(set, vec![br(), Field::Proto(p), Field::Port(port)], None);
                }
            }
        }
    };
    svc(fw.dns, &[Proto::Udp, Proto::Tcp], 53, 53);
    svc(fw.dhcpv4, &[Proto::Udp, Proto::Tcp], 67, 68);
    svc(fw.tftp, &[Proto::Udp], 69, 69);
    svc(fw.dhcpv6, &[Proto::Udp], 547, 546);

    let nat_keys = fw.nat_keys();
    let custom = fw.nat_addresses.is_some() || fw.nat_ports.is_some();
    let chain = (custom && !nat_keys.is_empty()).then(|| Chain {
        name: format!("{NAT_CHAIN_PREFIX}{}", chain_id(&fw.bridge)),
        rules: nat_keys.iter().flat_map(|s| nat_rules(fw, s)).collect(),
    });
    for subnet in &nat_keys {
        let v4 = matches!(subnet, IpNet::V4(_));
        if let Some(chain) = &chain {
            let map = if v4 { &NAT4_CUSTOM } else { &NAT6_CUSTOM };
            add(map, vec![Field::Net(*subnet)], Some(chain.name.clone()));
            continue;
        }
        let (skip, nat) = match (v4, dev) {
            (true, None) => (&NAT4_SKIP, &NAT4),
            (true, Some(_)) => (&NAT4_SKIP, &NAT4_DEV),
            (false, None) => (&NAT6_SKIP, &NAT6),
            (false, Some(_)) => (&NAT6_SKIP, &NAT6_DEV),
        };
        // Overlapping destinations (a subnet holding the broadcast address)
        // would be refused; all three only skip NAT, so the largest suffices.
        let dests = if v4 {
            vec![net("224.0.0.0/24"), net("255.255.255.255/32"), *subnet]
        } else {
            vec![net("ff02::/16"), *subnet]
        };
        for d in maximal(dests.into_iter()) {
            add(skip, vec![Field::Net(*subnet), Field::Net(d)], None);
        }
        let mut key = vec![Field::Net(*subnet)];
        key.extend(dev.map(|d| Field::Ifname(d.clone())));
        add(nat, key, None);
    }

    let mut groups: Vec<Group> = Vec::new();
    for set in SETS {
        let (mine, rest): (Vec<_>, Vec<_>) =
            elems.into_iter().partition(|(s, _)| s.name == set.name);
        elems = rest;
        let mine = mine.into_iter().map(|(_, e)| e);
        if set.interval && !set.concat() {
            groups.extend(mine.map(|e| Group {
                set,
                elements: vec![e],
            }));
        } else if mine.len() > 0 {
            groups.push(Group {
                set,
                elements: mine.collect(),
            });
        }
    }

    let header = format!(
        "network \"{}\": bridge {}, {}",
        comment_text(&fw.name),
        fw.bridge,
        mode_name(fw.mode)
    );
    Plan {
        header,
        groups,
        chain,
    }
}

/// libvirt's five NAT rules for one subnet, in its order (four for IPv6,
/// which has no broadcast), for a custom-NAT network's chain.
/// `<nat><address>` only applies to IPv4.
fn nat_rules(net: &FwNetwork, subnet: &IpNet) -> Vec<Rule> {
    let (multicast, broadcast): (IpNet, Option<IpNet>) = match subnet {
        IpNet::V4(_) => (
            "224.0.0.0/24".parse().expect("valid"),
            Some("255.255.255.255/32".parse().expect("valid")),
        ),
        IpNet::V6(_) => ("ff02::/16".parse().expect("valid"), None),
    };
    let ports = net.nat_ports.unwrap_or((1024, 65535));
    let snat = match subnet {
        IpNet::V4(_) => net.nat_addresses,
        IpNet::V6(_) => None,
    };
    let action = |with_ports: bool| {
        let ports = with_ports.then_some(ports);
        match snat {
            Some(addrs) => Action::Snat { addrs, ports },
            None => Action::Masquerade { ports },
        }
    };
    let oif_dev = || net.forward_dev.clone().map(Match::Oifname);
    let local = |dst: IpNet, host: bool| {
        let mut m: Vec<Match> = oif_dev().into_iter().collect();
        m.push(addr(Dir::Saddr, false, *subnet));
        m.push(Match::Addr {
            dir: Dir::Daddr,
            negate: false,
            net: dst,
            host,
        });
        Rule {
            matches: m,
            action: Action::Return,
        }
    };
    let outbound = |proto: Option<Proto>, with_ports: bool| {
        let mut m: Vec<Match> = proto.map(Match::L4proto).into_iter().collect();
        m.push(addr(Dir::Saddr, false, *subnet));
        m.push(addr(Dir::Daddr, true, *subnet));
        m.extend(oif_dev());
        Rule {
            matches: m,
            action: action(with_ports),
        }
    };
    let mut rules = vec![local(multicast, false)];
    if let Some(bc) = broadcast {
        rules.push(local(bc, true));
    }
    rules.push(outbound(Some(Proto::Tcp), true));
    rules.push(outbound(Some(Proto::Udp), true));
    rules.push(outbound(None, false));
    rules
}

fn check_table(table: &str) {
    if let Err(e) = validate_table(table) {
        panic!("kvnet-firewall: {e}");
    }
}

/// An `nft -f` script that atomically replaces the whole table with the
/// state for `nets` (creating it if missing). With no networks it just
/// deletes the table, so a host without kvnet networks carries no hooks and
/// loads no conntrack/NAT for kvnet.
///
/// # Panics
/// If `table` or a network fails [`validate_table`]/[`FwNetwork::validate`];
/// call [`validate_all`] first to also catch duplicate bridges and
/// overlapping NAT subnets, which nft would refuse.
pub fn render_full(table: &str, nets: &[FwNetwork]) -> String {
    check_table(table);
    let plans: Vec<Plan> = nets.iter().map(plan).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# kvnet firewall: replace table inet {table} ({} networks)",
        nets.len()
    );
    // Creating the table first makes the delete succeed when it is missing.
    let _ = writeln!(s, "table inet {table} {{}}");
    let _ = writeln!(s, "delete table inet {table}");
    if plans.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table inet {table} {{");
    for set in SETS {
        let kind = if set.map { "map" } else { "set" };
        let _ = writeln!(s, "\t{kind} {} {{", set.name);
        let _ = writeln!(
            s,
            "\t\ttype {}{}",
            set.ty,
            if set.map { " : verdict" } else { "" }
        );
        if set.interval {
            let _ = writeln!(s, "\t\tflags interval");
        }
        let elems: Vec<String> = plans
            .iter()
            .flat_map(|p| &p.groups)
            .filter(|g| g.set.name == set.name)
            .flat_map(|g| &g.elements)
            .map(Element::to_string)
            .collect();
        if !elems.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(",\n\t\t\t     "));
        }
        let _ = writeln!(s, "\t}}\n");
    }
    for base in &BASE_CHAINS {
        let _ = writeln!(s, "\tchain {} {{", base.name);
        let _ = writeln!(s, "\t\t{}", base.hook);
        for rule in base.rules {
            let _ = writeln!(s, "\t\t{rule}");
        }
        let _ = writeln!(s, "\t}}\n");
    }
    for p in &plans {
        if let Some(chain) = &p.chain {
            let _ = writeln!(s, "\t# {}", p.header);
            let _ = writeln!(s, "\tchain {} {{", chain.name);
            for rule in &chain.rules {
                let _ = writeln!(s, "\t\t{rule}");
            }
            let _ = writeln!(s, "\t}}\n");
        }
    }
    s.truncate(s.trim_end().len());
    s.push_str("\n}\n");
    s
}

/// Idempotent declarations of the table, the network's chain and the sets
/// (`add` of an identical object is a no-op). The chain comes before the
/// maps: nft 1.0.6 sends the elements of an interval map it creates along
/// with the map itself, so a jump target declared later is not found yet.
fn render_decls(s: &mut String, table: &str, p: &Plan) {
    let _ = writeln!(s, "add table inet {table}");
    if let Some(chain) = &p.chain {
        let _ = writeln!(s, "add chain inet {table} {}", chain.name);
    }
    for set in SETS {
        let kind = if set.map { "map" } else { "set" };
        let _ = writeln!(
            s,
            "add {kind} inet {table} {} {{ {}; }}",
            set.name,
            set.decl()
        );
    }
}

fn add_chain(s: &mut String, table: &str, chain: &Chain, verb: &str) {
    let _ = writeln!(s, "{verb} chain inet {table} {}", chain.name);
    for rule in &chain.rules {
        let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
    }
}

fn add_group(s: &mut String, table: &str, g: &Group, verb: &str) {
    let _ = writeln!(
        s,
        "{verb} element inet {table} {} {{ {} }}",
        g.set.name,
        g.list()
    );
}

/// One atomic, idempotent transaction adding or replacing one network's
/// rules. Creates the table skeleton if needed (re-adding the fixed rules
/// of the base chains after flushing them) and adds the network's set
/// elements (and custom NAT chain): its size depends only on this network,
/// never on how many networks exist.
///
/// Elements the network no longer has are not found here: when a network's
/// subnets, services or mode change, render_remove the old definition first
/// (or use [`render_full`]).
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_add(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: add {}\n", p.header);
    render_decls(&mut s, table, &p);
    for base in &BASE_CHAINS {
        let _ = writeln!(
            s,
            "add chain inet {table} {} {{ {} }}",
            base.name, base.hook
        );
        let _ = writeln!(s, "flush chain inet {table} {}", base.name);
        for rule in base.rules {
            let _ = writeln!(s, "add rule inet {table} {} {rule}", base.name);
        }
    }
    if let Some(chain) = &p.chain {
        let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
        for rule in &chain.rules {
            let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
        }
    }
    for g in &p.groups {
        add_group(&mut s, table, g, "add");
    }
    s
}

/// The fast path of a start: one atomic transaction made only of additions,
/// for a network that is not in a table whose skeleton (sets and base
/// chains, as [`render_add`] or [`render_full`] leave it) exists. For a
/// plain network these are set elements only, so the kernel has no chain to
/// validate, however many networks there are; a custom-NAT network also
/// creates its chain.
///
/// Why it exists: the kernel waits for an RCU grace period (15–30 ms here)
/// in every nftables transaction that deletes or replaces anything, a flush
/// included; [`render_add`] flushes to be idempotent, this script never does.
/// The `cross` element is created with `create`, which fails if the network
/// is already there, so a wrong assumption aborts the whole transaction and
/// changes nothing: the caller then falls back to [`render_add`].
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_add_new(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: add new {}\n", p.header);
    let (first, rest) = p.groups.split_first().expect("cross element");
    add_group(&mut s, table, first, "create");
    if let Some(chain) = &p.chain {
        add_chain(&mut s, table, chain, "create");
    }
    for g in rest {
        add_group(&mut s, table, g, "add");
    }
    s
}

/// One atomic, idempotent transaction removing exactly this network's set
/// elements and custom NAT chain. Each object is first added (a no-op if
/// present) so that deleting it cannot fail when it is already gone. Must be
/// given the definition that was applied (it names the elements). If the
/// table is missing this leaves an empty one with the sets but no hooks.
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_remove(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: remove {}\n", p.header);
    render_decls(&mut s, table, &p);
    // Elements go first: a chain cannot be deleted while a map jumps to it.
    for g in &p.groups {
        add_group(&mut s, table, g, "add");
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            g.set.name,
            g.keys()
        );
    }
    if let Some(chain) = &p.chain {
        let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
        let _ = writeln!(s, "delete chain inet {table} {}", chain.name);
    }
    s
}

/// What [`normalize_listing`] gives for the table that [`render_full`]`(table,
/// nets)` creates. A table that does not match it, e.g. one left by a kvnet
/// with an older layout, must be replaced rather than adopted: the fast
/// start path relies on the skeleton being exactly this one.
///
/// # Panics
/// Like [`render_full`]; call [`validate_all`] first.
pub fn expected_listing(table: &str, nets: &[FwNetwork]) -> String {
    let script = render_full(table, nets);
    let body = script
        .split_once(&format!("delete table inet {table}\n"))
        .map_or("", |(_, body)| body);
    normalize_listing(body)
}

/// `nft list table` output (or a [`render_full`] table body) in a form that
/// compares equal exactly when two tables hold the same rules and elements:
/// counters dropped (they change with traffic), each line and each set
/// element prefixed with its set or chain, and all sorted (the kernel lists
/// chains in creation order and hash-set elements in no stable order, which
/// differ between a full render and a sequence of adds).
pub fn normalize_listing(listing: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut scope = String::new();
    let mut elements: Option<String> = None;
    for line in listing.lines() {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        while let Some(i) = words
            .windows(5)
            .position(|w| w[0] == "counter" && w[1] == "packets" && w[3] == "bytes")
        {
            words.drain(i + 1..i + 5);
        }
        let l = words.join(" ");
        if let Some(acc) = &mut elements {
            acc.push(' ');
            acc.push_str(&l);
        } else if let Some(rest) = l.strip_prefix("elements = {") {
            elements = Some(rest.to_string());
        } else if l.is_empty() || l == "}" || l.starts_with('#') {
            continue;
        } else if let Some(head) = l.strip_suffix(" {") {
            scope = head.to_string();
            out.push(l);
            continue;
        } else {
            out.push(format!("{scope}: {l}"));
            continue;
        }
        if let Some(list) = elements.as_ref().and_then(|e| e.strip_suffix('}')) {
            for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                out.push(format!("{scope}: element {e}"));
            }
            elements = None;
        }
    }
    out.sort();
    out.join("\n")
}

#[cfg(test)]
mod tests {

    #[test]
    fn normalized_listings_ignore_counters_and_element_order() {
        let a = "table inet t {\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 3 bytes 120 accept\n\t}\n\tchain a {\n\t}\n}";
        let b = "table inet t {\n\tchain a {\n\t}\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 0 bytes 0 accept\n\t}\n}";
        assert_eq!(normalize_listing(a), normalize_listing(b));
        let c = b.replace("10.0.0.0/8", "10.0.0.0/16");
        assert_ne!(normalize_listing(a), normalize_listing(&c));
        let s1 = "table inet t {\n\tset s {\n\t\telements = { \"a\",\n\t\t\t     \"b\" }\n\t}\n\tset r {\n\t}\n}";
        let s2 =
            "table inet t {\n\tset r {\n\t}\n\tset s {\n\t\telements = { \"b\", \"a\" }\n\t}\n}";
        assert_eq!(normalize_listing(s1), normalize_listing(s2));
        // An element belongs to its set.
        let s3 = s2.replace("set r {\n\t}\n\tset s", "set s {\n\t}\n\tset r");
        assert_ne!(normalize_listing(s1), normalize_listing(&s3));
    }

    use super::*;

    fn net(bridge: &str) -> FwNetwork {
        FwNetwork {
            name: "n".into(),
            bridge: bridge.into(),
            mode: FwMode::Nat,
            forward_dev: None,
            subnets: vec!["192.168.122.0/24".parse().unwrap()],
            nat_ipv6: false,
            nat_addresses: None,
            nat_ports: None,
            ipv6: false,
            dhcpv4: true,
            dhcpv6: false,
            dns: true,
            tftp: false,
        }
    }

    #[test]
    fn chain_id_keeps_alnum_and_escapes_the_rest() {
        assert_eq!(chain_id("virbr0"), "virbr0");
        assert_eq!(chain_id("br-lan.10"), "br_2dlan_2e10");
        assert_eq!(chain_id("a_b"), "a_5fb");
    }

    #[test]
    fn chain_id_is_injective() {
        // '_' is escaped too, so an escaped sequence cannot be forged.
        let names = ["a.b", "a_2eb", "a-b", "a_b", "a_5fb", "a__b", "ab", "a.2eb"];
        let ids: HashSet<String> = names.iter().map(|n| chain_id(n)).collect();
        assert_eq!(ids.len(), names.len());
    }

    #[test]
    fn ifname_validation() {
        for ok in ["virbr0", "br-lan.10", "a@b", "x+y"] {
            assert!(valid_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a\"b",
            "br*",
            "a/b",
            "a:b",
            "0123456789abcdef",
            "é",
            "a\nb",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn validate_rejects_bad_input() {
        let mut n = net("bad\"br");
        assert!(matches!(n.validate(), Err(FwError::InvalidIfname { .. })));
        n = net("virbr0");
        n.forward_dev = Some("eth 0".into());
        assert!(n.validate().is_err());
        n = net("virbr0");
        n.nat_ports = Some((2000, 1000));
        assert!(matches!(
            n.validate(),
            Err(FwError::InvalidPortRange { .. })
        ));
        n = net("virbr0");
        n.nat_addresses = Some(("10.0.0.9".parse().unwrap(), "10.0.0.1".parse().unwrap()));
        assert!(matches!(
            n.validate(),
            Err(FwError::InvalidAddressRange { .. })
        ));
        assert!(validate_table("kvnet").is_ok());
        assert!(validate_table("kv net").is_err());
        assert!(validate_table("1kv").is_err());
    }

    #[test]
    #[should_panic(expected = "invalid network")]
    fn render_panics_on_injection_attempt() {
        render_add("kvnet", &net("x\" accept"));
    }

    #[test]
    fn validate_all_catches_conflicts() {
        assert!(matches!(
            validate_all(&[net("a"), net("a")]),
            Err(FwError::DuplicateBridge(_))
        ));
        let mut b = net("b");
        b.subnets = vec!["192.168.0.0/16".parse().unwrap()];
        assert!(matches!(
            validate_all(&[net("a"), b.clone()]),
            Err(FwError::OverlappingNatSubnets { .. })
        ));
        b.mode = FwMode::Route;
        assert!(validate_all(&[net("a"), b]).is_ok());
    }

    #[test]
    fn nat_keys_drop_duplicates_and_nested_ones_are_refused() {
        let mut n = net("a");
        n.subnets = ["10.0.0.0/24", "10.0.0.1/24", "10.1.0.0/24", "fd00::/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let keys: Vec<String> = n.nat_keys().iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["10.0.0.0/24", "10.1.0.0/24"]);
        n.nat_ipv6 = true;
        assert_eq!(n.nat_keys().len(), 3);
        n.subnets.push("10.0.0.0/16".parse().unwrap());
        assert!(matches!(
            n.validate(),
            Err(FwError::OverlappingNatSubnets { .. })
        ));
        // Routed subnets may nest: their accepts are merged.
        n.mode = FwMode::Route;
        assert!(n.validate().is_ok());
        let s = render_add("kvnet", &n);
        assert!(
            s.contains(r#"rt4 { "a" . 10.1.0.0/24, "a" . 10.0.0.0/16 }"#),
            "{s}"
        );
    }

    #[test]
    fn ipv4_only_network_rejects_only_ipv4() {
        let s = render_add("kvnet", &net("virbr0"));
        assert!(s.contains(r#"add element inet kvnet rej4 { "virbr0" }"#));
        assert!(!s.contains("element inet kvnet rej6"));
        let mut n = net("virbr0");
        n.ipv6 = true;
        let s = render_add("kvnet", &n);
        assert!(s.contains(r#"add element inet kvnet rej6 { "virbr0" }"#));
    }

    #[test]
    fn plain_network_adds_only_elements() {
        let s = render_add_new("kvnet", &net("virbr0"));
        for line in s.lines().skip(1) {
            assert!(
                line.starts_with("add element ") || line.starts_with("create element "),
                "{line}"
            );
        }
        let mut custom = net("virbr0");
        custom.nat_ports = Some((2000, 3000));
        let s = render_add_new("kvnet", &custom);
        assert!(s.contains("create chain inet kvnet nat_virbr0\n"));
        assert!(s.contains("nat4_custom { 192.168.122.0/24 : jump nat_virbr0 }"));
        assert!(!s.contains("nat4 {"));
    }

    #[test]
    fn skip_elements_never_overlap() {
        let mut n = net("virbr0");
        n.subnets = vec!["255.255.255.0/24".parse().unwrap()];
        let s = render_add("kvnet", &n);
        assert!(
            s.contains(
                "nat4_skip { 255.255.255.0/24 . 224.0.0.0/24, 255.255.255.0/24 . 255.255.255.0/24 }"
            ),
            "{s}"
        );
    }

    #[test]
    fn snat_single_address_and_single_port() {
        let mut n = net("virbr0");
        n.nat_addresses = Some((
            "203.0.113.5".parse().unwrap(),
            "203.0.113.5".parse().unwrap(),
        ));
        n.nat_ports = Some((4000, 4000));
        let s = render_add("kvnet", &n);
        assert!(s.contains("counter snat ip to 203.0.113.5:4000\n"));
        assert!(s.contains("counter snat ip to 203.0.113.5\n"));
    }

    #[test]
    fn host_bits_are_cleared() {
        let mut n = net("virbr0");
        n.subnets = vec!["192.168.122.1/24".parse().unwrap()];
        let s = render_add("kvnet", &n);
        assert!(s.contains(r#""virbr0" . 192.168.122.0/24"#));
        assert!(!s.contains("192.168.122.1/24"));
    }

    #[test]
    fn empty_full_just_deletes_the_table() {
        assert_eq!(
            render_full("kvnet", &[]),
            "# kvnet firewall: replace table inet kvnet (0 networks)\n\
             table inet kvnet {}\ndelete table inet kvnet\n"
        );
    }
}
