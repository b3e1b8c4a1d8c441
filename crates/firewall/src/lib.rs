//! kvnet-firewall: renders the nftables scripts that give kvnet networks
//! libvirt's firewall semantics. Pure string rendering, no I/O: the daemon
//! feeds the result to `nft -f -`, each script being one atomic transaction.
//!
//! # Why one `inet` table
//!
//! * Both address families are changed in one `nft -f` transaction, so a
//!   network never has its IPv4 rules without its IPv6 ones (libvirt needs two
//!   tables, `ip` and `ip6`, and two sets of commands).
//! * The interface-keyed verdict maps are shared by both families, so a
//!   network costs one map element per map instead of two.
//! * `ip …`/`ip6 …` matches carry an implicit family check in `inet`, so
//!   family-specific rules still only see their family, and `reject` answers
//!   with ICMP or ICMPv6 as appropriate.
//! * It is a private table: nothing goes into iptables' `ip filter`/`ip nat`
//!   tables, so iptables(-nft) users and firewalld are left alone.
//!
//! # Layout (table `kvnet` by default)
//!
//! ```text
//! map cross      ifname . ifname : verdict   "BR" . "BR" : accept
//! map to_guest   ifname : verdict            "BR" : jump to_<id>
//! map from_guest ifname : verdict            "BR" : jump from_<id>
//! map svc_in     ifname : verdict            "BR" : jump svc_in_<id>
//! map svc_out    ifname : verdict            "BR" : jump svc_out_<id>
//! map nat4       ipv4_addr (interval)        NET  : jump nat_<id>
//! map nat6       ipv6_addr (interval)        NET  : jump nat_<id>
//!
//! chain forward     (filter/forward, prio 0)  iifname . oifname vmap @cross
//!                                             oifname vmap @to_guest
//!                                             iifname vmap @from_guest
//! chain input       (filter/input, prio 0)    iifname vmap @svc_in
//! chain output      (filter/output, prio 0)   oifname vmap @svc_out
//! chain postrouting (nat/postrouting, srcnat) ip saddr vmap @nat4
//!                                             ip6 saddr vmap @nat6
//! ```
//!
//! Every network owns exactly five chains, `to_<id>`, `from_<id>`,
//! `svc_in_<id>`, `svc_out_<id>` and `nat_<id>` (empty unless the network
//! NATs), where `<id>` is the bridge name escaped by [`chain_id`]. Dispatch is
//! one hash/interval lookup per map whatever the number of networks, and
//! adding or removing a network only touches its own chains and elements.
//!
//! The order cross → to_guest → from_guest is libvirt's
//! `guest_cross`/`guest_input`/`guest_output` order, and every per-network
//! chain ends in a verdict for its own family(ies), so traffic between two
//! kvnet networks is judged exactly as libvirt judges it: a NAT network only
//! admits established/related traffic (NAT→NAT is rejected), a routed network
//! admits anything addressed to its subnets, from anywhere.
//!
//! Bridges are matched by name (`iifname`/`oifname`), not by index, so the
//! rules can be installed before the bridge exists and survive its
//! re-creation.
//!
//! # Caveats
//!
//! * NAT dispatch is an interval map on the source address, which cannot
//!   hold overlapping keys: two running NAT networks with nested subnets
//!   (which libvirt's route-collision check lets through) are refused, by
//!   [`validate_all`] or by nft itself for `render_add`.
//! * `render_full` recreates the table, so it resets all counters.
//! * nft 1.0.6 still reads the table into its cache before each transaction,
//!   so applying a `render_add` gets slightly slower as networks accumulate
//!   even though the script and the kernel transaction do not grow.

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
    /// Two networks NAT overlapping subnets: nftables interval maps cannot
    /// hold overlapping keys.
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

    /// The subnets that go into nat4/nat6, without duplicates or subnets
    /// contained in another of the same network (both would jump to the same
    /// chain, and the interval map refuses overlaps).
    fn nat_keys(&self) -> Vec<IpNet> {
        let natted: Vec<IpNet> = self
            .subnets
            .iter()
            .map(IpNet::trunc)
            .filter(|n| self.subnet_kind(n) == SubnetKind::Natted)
            .collect();
        let mut keys: Vec<IpNet> = Vec::new();
        for (i, n) in natted.iter().enumerate() {
            let covered = natted
                .iter()
                .enumerate()
                .any(|(j, o)| (o != n && o.contains(n)) || (o == n && j < i));
            if !covered {
                keys.push(*n);
            }
        }
        keys
    }
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

pub(crate) struct MapDef {
    pub(crate) name: &'static str,
    spec: &'static [&'static str],
}

const MAP_CROSS: MapDef = MapDef {
    name: "cross",
    spec: &["type ifname . ifname : verdict"],
};
const MAP_TO_GUEST: MapDef = MapDef {
    name: "to_guest",
    spec: &["type ifname : verdict"],
};
const MAP_FROM_GUEST: MapDef = MapDef {
    name: "from_guest",
    spec: &["type ifname : verdict"],
};
const MAP_SVC_IN: MapDef = MapDef {
    name: "svc_in",
    spec: &["type ifname : verdict"],
};
const MAP_SVC_OUT: MapDef = MapDef {
    name: "svc_out",
    spec: &["type ifname : verdict"],
};
const MAP_NAT4: MapDef = MapDef {
    name: "nat4",
    spec: &["type ipv4_addr : verdict", "flags interval"],
};
const MAP_NAT6: MapDef = MapDef {
    name: "nat6",
    spec: &["type ipv6_addr : verdict", "flags interval"],
};

const MAPS: [&MapDef; 7] = [
    &MAP_CROSS,
    &MAP_TO_GUEST,
    &MAP_FROM_GUEST,
    &MAP_SVC_IN,
    &MAP_SVC_OUT,
    &MAP_NAT4,
    &MAP_NAT6,
];

struct BaseChain {
    name: &'static str,
    hook: &'static str,
    rules: &'static [&'static str],
}

/// Dispatch rules carry no counter: the per-network rules count, and these
/// are re-added by every `render_add`.
const BASE_CHAINS: [BaseChain; 4] = [
    BaseChain {
        name: "forward",
        hook: "type filter hook forward priority filter; policy accept;",
        rules: &[
            "iifname . oifname vmap @cross",
            "oifname vmap @to_guest",
            "iifname vmap @from_guest",
        ],
    },
    BaseChain {
        name: "input",
        hook: "type filter hook input priority filter; policy accept;",
        rules: &["iifname vmap @svc_in"],
    },
    BaseChain {
        name: "output",
        hook: "type filter hook output priority filter; policy accept;",
        rules: &["oifname vmap @svc_out"],
    },
    BaseChain {
        name: "postrouting",
        hook: "type nat hook postrouting priority srcnat; policy accept;",
        rules: &["ip saddr vmap @nat4", "ip6 saddr vmap @nat6"],
    },
];

/// Per-network chain kinds; the prefixes are prefix-free so names never clash.
const CHAIN_PREFIXES: [&str; 5] = ["to_", "from_", "svc_in_", "svc_out_", "nat_"];

pub(crate) struct Chain {
    pub(crate) name: String,
    pub(crate) rules: Vec<Rule>,
}

/// One per-network rule. Kept structured, not as text, so that the nft
/// script ([`fmt::Display`]) and the netlink batch ([`crate::nl`]) are
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
    Iifname(String),
    Oifname(String),
    /// `ip|ip6 saddr|daddr [!=] NET`; `host` writes a full-length prefix as
    /// a bare address (the listing is the same either way).
    Addr {
        dir: Dir,
        negate: bool,
        net: IpNet,
        host: bool,
    },
    CtEstablishedRelated,
    NfprotoIpv4,
    L4proto(Proto),
    Dport(Proto, u16),
}

pub(crate) enum Action {
    Accept,
    Return,
    Reject,
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
            Match::Iifname(name) => write!(f, "iifname {}", quote(name)),
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
            Match::CtEstablishedRelated => f.write_str("ct state related,established"),
            Match::NfprotoIpv4 => f.write_str("meta nfproto ipv4"),
            Match::L4proto(p) => write!(f, "meta l4proto {}", p.name()),
            Match::Dport(p, port) => write!(f, "{} dport {port}", p.name()),
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
            Action::Accept => f.write_str("accept"),
            Action::Return => f.write_str("return"),
            Action::Reject => f.write_str("reject"),
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

/// A map element's key: a bridge name, the bridge twice (for `cross`), or a
/// subnet (an interval in nat4/nat6).
pub(crate) enum Key {
    Ifname(String),
    IfnamePair(String),
    Net(IpNet),
}

pub(crate) enum Verdict {
    Accept,
    Jump(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Ifname(b) => f.write_str(&quote(b)),
            Key::IfnamePair(b) => write!(f, "{} . {}", quote(b), quote(b)),
            Key::Net(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
        }
    }
}

pub(crate) struct Element {
    pub(crate) map: &'static MapDef,
    pub(crate) key: Key,
    pub(crate) value: Verdict,
}

/// Everything one network contributes to the table.
pub(crate) struct Plan {
    header: String,
    pub(crate) chains: Vec<Chain>,
    pub(crate) elements: Vec<Element>,
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

pub(crate) fn plan(net: &FwNetwork) -> Plan {
    if let Err(e) = net.validate() {
        panic!("kvnet-firewall: render called on an invalid network: {e}");
    }
    let id = chain_id(&net.bridge);
    let iif_dev = || net.forward_dev.clone().map(Match::Iifname);
    let oif_dev = || net.forward_dev.clone().map(Match::Oifname);

    // Without IPv6 the catch-all only rejects IPv4, as libvirt only adds the
    // ip6 rejects when the network has IPv6.
    let reject = || Rule {
        matches: if net.has_ipv6() {
            vec![]
        } else {
            vec![Match::NfprotoIpv4]
        },
        action: Action::Reject,
    };

    let mut to_guest = Vec::new();
    let mut from_guest = Vec::new();
    let mut nat = Vec::new();
    for subnet in net.subnets.iter().map(IpNet::trunc) {
        let kind = net.subnet_kind(&subnet);
        let mut to = iif_dev().into_iter().collect::<Vec<_>>();
        to.push(addr(Dir::Daddr, false, subnet));
        match kind {
            SubnetKind::None => continue,
            SubnetKind::Natted => to.push(Match::CtEstablishedRelated),
            SubnetKind::Routed => {}
        }
        to_guest.push(Rule {
            matches: to,
            action: Action::Accept,
        });
        let mut from = vec![addr(Dir::Saddr, false, subnet)];
        from.extend(oif_dev());
        from_guest.push(Rule {
            matches: from,
            action: Action::Accept,
        });
        if kind == SubnetKind::Natted {
            nat.extend(nat_rules(net, &subnet));
        }
    }
    to_guest.push(reject());
    from_guest.push(reject());

    let mut svc_in = Vec::new();
    let mut svc_out = Vec::new();
    let mut svc = |on: bool, protos: &[Proto], port_in: u16, port_out: u16| {
        if on {
            for &p in protos {
                for (rules, port) in [(&mut svc_in, port_in), (&mut svc_out, port_out)] {
                    rules.push(Rule {
                        matches: vec![Match::Dport(p, port)],
                        action: Action::Accept,
                    });
                }
            }
        }
    };
    svc(net.dns, &[Proto::Udp, Proto::Tcp], 53, 53);
    svc(net.dhcpv4, &[Proto::Udp, Proto::Tcp], 67, 68);
    svc(net.tftp, &[Proto::Udp], 69, 69);
    svc(net.dhcpv6, &[Proto::Udp], 547, 546);

    let chains: Vec<Chain> = CHAIN_PREFIXES
        .iter()
        .zip([to_guest, from_guest, svc_in, svc_out, nat])
        .map(|(prefix, rules)| Chain {
            name: format!("{prefix}{id}"),
            rules,
        })
        .collect();

    let jump = |prefix: &str| Verdict::Jump(format!("{prefix}{id}"));
    let br = || Key::Ifname(net.bridge.clone());
    let mut elements = vec![
        Element {
            map: &MAP_CROSS,
            key: Key::IfnamePair(net.bridge.clone()),
            value: Verdict::Accept,
        },
        Element {
            map: &MAP_TO_GUEST,
            key: br(),
            value: jump("to_"),
        },
        Element {
            map: &MAP_FROM_GUEST,
            key: br(),
            value: jump("from_"),
        },
        Element {
            map: &MAP_SVC_IN,
            key: br(),
            value: jump("svc_in_"),
        },
        Element {
            map: &MAP_SVC_OUT,
            key: br(),
            value: jump("svc_out_"),
        },
    ];
    for key in net.nat_keys() {
        elements.push(Element {
            map: match key {
                IpNet::V4(_) => &MAP_NAT4,
                IpNet::V6(_) => &MAP_NAT6,
            },
            key: Key::Net(key),
            value: jump("nat_"),
        });
    }

    let header = format!(
        "network \"{}\": bridge {}, {}",
        comment_text(&net.name),
        net.bridge,
        mode_name(net.mode)
    );
    Plan {
        header,
        chains,
        elements,
    }
}

/// libvirt's five NAT rules for one subnet, in its order (four for IPv6,
/// which has no broadcast). `<nat><address>` only applies to IPv4.
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
    for map in MAPS {
        let _ = writeln!(s, "\tmap {} {{", map.name);
        for line in map.spec {
            let _ = writeln!(s, "\t\t{line}");
        }
        let elems: Vec<String> = plans
            .iter()
            .flat_map(|p| &p.elements)
            .filter(|e| e.map.name == map.name)
            .map(|e| format!("{} : {}", e.key, e.value))
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
        let _ = writeln!(s, "\t# {}", p.header);
        for chain in &p.chains {
            let _ = writeln!(s, "\tchain {} {{", chain.name);
            for rule in &chain.rules {
                let _ = writeln!(s, "\t\t{rule}");
            }
            let _ = writeln!(s, "\t}}");
        }
        s.push('\n');
    }
    s.truncate(s.trim_end().len());
    s.push_str("\n}\n");
    s
}

/// Idempotent declarations of the table, the network's chains and the maps
/// (`add` of an identical object is a no-op). The chains come before the
/// maps: nft 1.0.6 sends the elements of an interval map it creates along
/// with the map itself, so a jump target declared later is not found yet.
fn render_decls(s: &mut String, table: &str, p: &Plan) {
    let _ = writeln!(s, "add table inet {table}");
    for chain in &p.chains {
        let _ = writeln!(s, "add chain inet {table} {}", chain.name);
    }
    for map in MAPS {
        let _ = writeln!(
            s,
            "add map inet {table} {} {{ {}; }}",
            map.name,
            map.spec.join("; ")
        );
    }
}

/// One atomic, idempotent transaction adding or replacing one network's
/// rules. Creates the table skeleton if needed (re-adding the few dispatch
/// rules of the base chains after flushing them), flushes and refills the
/// network's five chains and adds its map elements: its size depends only on
/// this network, never on how many networks exist.
///
/// NAT-map elements of subnets the network no longer has are not found
/// here: when a network's subnets or mode change, render_remove the old
/// definition first (or use [`render_full`]).
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
    for chain in &p.chains {
        let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
        for rule in &chain.rules {
            let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
        }
    }
    add_elements(&mut s, table, &p);
    s
}

/// `add element` lines for the network's map entries (a no-op for an identical entry).
fn add_elements(s: &mut String, table: &str, p: &Plan) {
    for e in &p.elements {
        let _ = writeln!(
            s,
            "add element inet {table} {} {{ {} : {} }}",
            e.map.name, e.key, e.value
        );
    }
}

/// The fast path of a start: one atomic transaction made only of additions,
/// for a network that has no chains yet in a table whose skeleton (maps and
/// base chains, as [`render_add`] or [`render_full`] leave it) exists.
///
/// Why it exists: the kernel waits for an RCU grace period (15–30 ms here)
/// in every nftables transaction that deletes or replaces anything, a flush
/// included; [`render_add`] flushes to be idempotent, this script never does.
/// `create chain` fails if the network's chains already exist, so a wrong
/// assumption aborts the whole transaction and changes nothing: the caller
/// then falls back to [`render_add`].
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_add_new(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: add new {}\n", p.header);
    for chain in &p.chains {
        let _ = writeln!(s, "create chain inet {table} {}", chain.name);
        for rule in &chain.rules {
            let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
        }
    }
    add_elements(&mut s, table, &p);
    s
}

/// One atomic, idempotent transaction removing exactly this network's map
/// elements and chains. Each object is first added (a no-op if present) so
/// that deleting it cannot fail when it is already gone. Must be given the
/// definition that was applied (its NAT subnets name the nat4/nat6 elements).
/// If the table is missing this leaves an empty one with the maps but no
/// hooks.
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_remove(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: remove {}\n", p.header);
    render_decls(&mut s, table, &p);
    // Elements go first: a chain cannot be deleted while a map jumps to it.
    for e in &p.elements {
        let _ = writeln!(
            s,
            "add element inet {table} {} {{ {} : {} }}",
            e.map.name, e.key, e.value
        );
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            e.map.name, e.key
        );
    }
    for chain in &p.chains {
        let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
        let _ = writeln!(s, "delete chain inet {table} {}", chain.name);
    }
    s
}

/// `nft list table` output in a form that compares equal exactly when two tables hold
/// the same rules: counters dropped (they change with traffic) and lines sorted (the
/// kernel lists chains in creation order, which differs between a full render and a
/// sequence of adds).
pub fn normalize_listing(listing: &str) -> String {
    let mut lines: Vec<String> = listing
        .lines()
        .map(|l| {
            let mut words: Vec<&str> = l.split_whitespace().collect();
            while let Some(i) = words
                .windows(5)
                .position(|w| w[0] == "counter" && w[1] == "packets" && w[3] == "bytes")
            {
                words.drain(i + 1..i + 5);
            }
            words.join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines.join("\n")
}

#[cfg(test)]
mod tests {

    #[test]
    fn normalized_listings_ignore_counters_and_order() {
        let a = "table inet t {\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 3 bytes 120 accept\n\t}\n\tchain a {\n\t}\n}";
        let b = "table inet t {\n\tchain a {\n\t}\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 0 bytes 0 accept\n\t}\n}";
        assert_eq!(normalize_listing(a), normalize_listing(b));
        let c = b.replace("10.0.0.0/8", "10.0.0.0/16");
        assert_ne!(normalize_listing(a), normalize_listing(&c));
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
    fn nat_keys_drop_duplicates_and_contained_subnets() {
        let mut n = net("a");
        n.subnets = [
            "10.0.0.0/24",
            "10.0.0.0/16",
            "10.0.0.1/16",
            "10.1.0.0/24",
            "fd00::/64",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let keys: Vec<String> = n.nat_keys().iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["10.0.0.0/16", "10.1.0.0/24"]);
        n.nat_ipv6 = true;
        assert_eq!(n.nat_keys().len(), 3);
    }

    #[test]
    fn ipv4_only_network_rejects_only_ipv4() {
        let s = render_add("kvnet", &net("virbr0"));
        assert!(s.contains("add rule inet kvnet to_virbr0 meta nfproto ipv4 counter reject"));
        let mut n = net("virbr0");
        n.ipv6 = true;
        let s = render_add("kvnet", &n);
        assert!(s.contains("add rule inet kvnet to_virbr0 counter reject\n"));
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
        assert!(s.contains("ip daddr 192.168.122.0/24"));
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
