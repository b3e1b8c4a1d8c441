//! What the firewall is given and what it accepts: [`FwNetwork`] (one
//! network's firewall-relevant facts), [`FwMode`], and the checks every
//! renderer relies on ([`FwNetwork::validate`], [`validate_all`],
//! [`validate_table`]). The rest of the crate depends on this module, never
//! the other way round.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use kvnet_model::ifname::{self, IfnameError};
use serde::{Deserialize, Serialize};

/// The firewall roles that install rules, from
/// [`kvnet_model::FirewallRole`]: open, bridge, macvtap and hostdev networks
/// get none, so they have no [`FwNetwork`] (see [`FwNetwork::from_network`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwMode {
    Nat,
    Route,
    Isolated,
}

impl FwMode {
    /// The libvirt forward mode's name, for script comments.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FwMode::Nat => "nat",
            FwMode::Route => "route",
            FwMode::Isolated => "isolated",
        }
    }
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
    /// The host services kvnetd runs on the bridge, each opening its ports
    /// (in from guests, out to them): DHCPv4 udp/tcp 67 in and 68 out,
    /// DHCPv6 udp 547 in and 546 out, DNS udp/tcp 53, TFTP udp 69. Only
    /// what is served is opened (libvirt opens DHCPv4 and DNS on every
    /// network, DHCPv6 and DNS on every IPv6 one).
    pub dhcpv4: bool,
    pub dhcpv6: bool,
    pub dns: bool,
    pub tftp: bool,
    /// Port forwards into this (NAT) network whose guest address is known; the
    /// daemon resolves a forward's guest (name, MAC) to its lease's address.
    pub forwards: Vec<FwForward>,
}

/// A transport protocol a rule or a forward matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
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

/// The most host ports one forward may take: each is one map element.
pub const MAX_FORWARD_PORTS: u32 = 4096;

/// One port forward with its guest's address resolved: host ports
/// `ports.0..=ports.1` (on `address`, or on every local address) go to
/// `guest`, port `guest_port` onwards, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FwForward {
    pub proto: Proto,
    pub address: Option<IpAddr>,
    pub ports: (u16, u16),
    pub guest: IpAddr,
    pub guest_port: u16,
}

impl FwForward {
    /// `(host port, guest port)` pairs, in order.
    pub(crate) fn port_pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (self.ports.0..=self.ports.1).map(move |p| (p, self.guest_port + (p - self.ports.0)))
    }

    fn describe(&self) -> String {
        let addr = match self.address {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            Some(a) => a.to_string(),
            None => "*".into(),
        };
        let (a, b) = self.ports;
        let ports = if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        };
        format!("{} {addr}:{ports}", self.proto.name())
    }

    /// Two forwards that would claim the same host port.
    fn clashes(&self, o: &FwForward) -> bool {
        self.proto == o.proto
            && self.address == o.address
            && self.ports.0 <= o.ports.1
            && o.ports.0 <= self.ports.1
    }
}

/// Why a network (or a set of networks) cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwError {
    InvalidTable(String),
    /// `field` names the offending interface ("bridge" or "forward dev").
    InvalidIfname {
        network: String,
        field: &'static str,
        ifname: String,
        reason: IfnameError,
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
    /// A forward that cannot be installed; `forward` describes it
    /// (`tcp *:8080`).
    InvalidForward {
        network: String,
        forward: String,
        reason: String,
    },
    /// Two forwards (of one network or two) claiming the same host port.
    ClashingForwards {
        a: (String, String),
        b: (String, String),
    },
}

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwError::InvalidTable(t) => write!(f, "invalid nftables table name {t:?}"),
            FwError::InvalidIfname {
                network,
                field,
                ifname,
                reason,
            } => write!(f, "network {network:?}: {field} name {ifname:?} {reason}"),
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
            FwError::InvalidForward {
                network,
                forward,
                reason,
            } => write!(f, "network {network:?}: forward {forward}: {reason}"),
            FwError::ClashingForwards { a, b } => write!(
                f,
                "forward {} of network {:?} takes a host port of forward {} of network {:?}",
                b.1, b.0, a.1, a.0
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

/// Panics unless `table` passes [`validate_table`]: the renderers' guard.
pub(crate) fn check_table(table: &str) {
    if let Err(e) = validate_table(table) {
        panic!("kvnet-firewall: {e}");
    }
}

impl FwNetwork {
    /// Checks everything the renderers rely on. `render_*` panic on a network
    /// that fails this, because rendering it could inject nft syntax.
    pub fn validate(&self) -> Result<(), FwError> {
        // The shared check keeps names safe inside nft's quoted strings.
        let ifnames = [
            ("bridge", Some(&self.bridge)),
            ("forward dev", self.forward_dev.as_ref()),
        ];
        for (field, name) in ifnames {
            if let Some(name) = name
                && let Err(reason) = ifname::check(name)
            {
                return Err(FwError::InvalidIfname {
                    network: self.name.clone(),
                    field,
                    ifname: name.clone(),
                    reason,
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
        let nat_keys = self.nat_keys();
        for fwd in &self.forwards {
            self.check_forward(fwd, &nat_keys)?;
        }
        let all: Vec<(&str, &FwForward)> = self.forwards.iter().map(|f| (&*self.name, f)).collect();
        clash_free(all)
    }

    fn check_forward(&self, fwd: &FwForward, nat_keys: &[IpNet]) -> Result<(), FwError> {
        let bad = |reason: String| {
            Err(FwError::InvalidForward {
                network: self.name.clone(),
                forward: fwd.describe(),
                reason,
            })
        };
        let (a, b) = fwd.ports;
        if a == 0 || a > b {
            return bad(format!("invalid host port range {a}-{b}"));
        }
        let n = u32::from(b - a) + 1;
        if n > MAX_FORWARD_PORTS {
            return bad(format!(
                "{n} host ports, more than the {MAX_FORWARD_PORTS} one forward may take"
            ));
        }
        if fwd.guest_port == 0 || u32::from(fwd.guest_port) + n - 1 > 65535 {
            return bad(format!("guest ports from {} do not fit", fwd.guest_port));
        }
        if self.mode != FwMode::Nat {
            return bad(format!(
                "port forwards need a NAT network, this one is {}",
                self.mode.name()
            ));
        }
        if fwd
            .address
            .is_some_and(|h| h.is_ipv4() != fwd.guest.is_ipv4())
        {
            return bad("host and guest addresses of different families".into());
        }
        if fwd
            .address
            .is_some_and(|h| h.is_loopback() || h.is_unspecified())
        {
            return bad(
                "a loopback or unspecified host address cannot be forwarded (omit the address for every address)"
                    .into(),
            );
        }
        // The forward filter and hairpin rules match the network's NAT subnets.
        let natted = nat_keys.iter().any(|n| n.contains(&fwd.guest));
        if !natted {
            return bad(format!(
                "guest address {} is not in a NAT subnet of this network{}",
                fwd.guest,
                if fwd.guest.is_ipv6() {
                    " (IPv6 needs <nat ipv6='yes'>)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    pub(crate) fn has_ipv6(&self) -> bool {
        self.ipv6 || self.subnets.iter().any(|n| matches!(n, IpNet::V6(_)))
    }

    /// How one subnet is treated, following libvirt: IPv6 subnets of a NAT
    /// network without `ipv6='yes'` are routed.
    pub(crate) fn subnet_kind(&self, net: &IpNet) -> SubnetKind {
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
    pub(crate) fn nat_keys(&self) -> Vec<IpNet> {
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
pub(crate) fn maximal(nets: impl Iterator<Item = IpNet>) -> Vec<IpNet> {
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

/// Checks a whole set of networks for [`render_full`](crate::render_full): each one, plus unique
/// bridges and non-overlapping NAT subnets.
pub fn validate_all(nets: &[FwNetwork]) -> Result<(), FwError> {
    let mut bridges = HashSet::new();
    let mut nat_keys: Vec<(&str, IpNet)> = Vec::new();
    let mut forwards: Vec<(&str, &FwForward)> = Vec::new();
    for net in nets {
        net.validate()?;
        forwards.extend(net.forwards.iter().map(|f| (net.name.as_str(), f)));
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
    clash_free(forwards)
}

/// Refuses two forwards that take the same host port, in O(n log n): sorted by
/// protocol, address and first port, a clash is a forward starting at or before the
/// highest port taken so far in its (protocol, address) run.
fn clash_free(mut fwds: Vec<(&str, &FwForward)>) -> Result<(), FwError> {
    fwds.sort_by_key(|(_, f)| (f.proto, f.address, f.ports.0));
    let mut reach: Option<(&str, &FwForward)> = None;
    for (net, f) in fwds {
        if let Some((onet, o)) = reach
            && o.clashes(f)
        {
            return Err(FwError::ClashingForwards {
                a: (onet.to_string(), o.describe()),
                b: (net.to_string(), f.describe()),
            });
        }
        let further = reach.is_none_or(|(_, o)| {
            o.proto != f.proto || o.address != f.address || f.ports.1 > o.ports.1
        });
        if further {
            reach = Some((net, f));
        }
    }
    Ok(())
}
/// How one subnet of a network is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubnetKind {
    None,
    Routed,
    Natted,
}

/// A valid NAT network with DHCP and DNS on `bridge`, for unit tests.
#[cfg(test)]
pub(crate) fn test_net(bridge: &str) -> FwNetwork {
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
        forwards: Vec::new(),
    }
}

/// A TCP forward of `ports` on every host address to `guest`.
#[cfg(test)]
pub(crate) fn test_forward(ports: (u16, u16), guest: &str, guest_port: u16) -> FwForward {
    FwForward {
        proto: Proto::Tcp,
        address: None,
        ports,
        guest: guest.parse().unwrap(),
        guest_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_net as net;

    #[test]
    fn validate_rejects_bad_input() {
        let mut n = net("bad\"br");
        assert!(matches!(n.validate(), Err(FwError::InvalidIfname { .. })));
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
    fn interface_errors_name_the_field_and_the_reason() {
        let mut n = net("virbr0");
        n.forward_dev = Some("eth 0".into());
        assert_eq!(
            n.validate().unwrap_err().to_string(),
            r#"network "n": forward dev name "eth 0" contains the invalid character ' '"#
        );
        n = net("sixteen-chars-xx");
        assert_eq!(
            n.validate().unwrap_err().to_string(),
            r#"network "n": bridge name "sixteen-chars-xx" is longer than 15 characters"#
        );
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
        // Routed subnets may nest (the planner merges their accepts).
        n.mode = FwMode::Route;
        assert!(n.validate().is_ok());
    }

    #[test]
    fn forwards_are_checked_and_named_in_errors() {
        let err = |f: FwForward| {
            let mut n = net("virbr0");
            n.forwards = vec![f];
            n.validate().unwrap_err().to_string()
        };
        let ok = test_forward((8080, 8081), "192.168.122.10", 80);
        let mut n = net("virbr0");
        n.forwards = vec![ok.clone()];
        assert!(n.validate().is_ok());

        let mut f = ok.clone();
        f.ports = (9, 8);
        assert_eq!(
            err(f),
            r#"network "n": forward tcp *:9-8: invalid host port range 9-8"#
        );
        let mut f = ok.clone();
        f.ports = (1, 5000);
        assert!(err(f).ends_with("5000 host ports, more than the 4096 one forward may take"));
        let mut f = ok.clone();
        f.guest_port = 65535;
        assert!(err(f).ends_with("guest ports from 65535 do not fit"));
        let mut f = ok.clone();
        f.guest = "10.9.9.9".parse().unwrap();
        assert!(err(f).ends_with("guest address 10.9.9.9 is not in a NAT subnet of this network"));
        let mut f = ok.clone();
        f.guest = "fd00::5".parse().unwrap();
        assert!(err(f).ends_with("(IPv6 needs <nat ipv6='yes'>)"));
        let mut f = ok.clone();
        f.address = Some("fd00::1".parse().unwrap());
        assert!(err(f).ends_with("host and guest addresses of different families"));
        let mut f = ok.clone();
        f.address = Some("127.0.0.1".parse().unwrap());
        assert!(err(f).contains("loopback"));

        let mut routed = net("virbr0");
        routed.mode = FwMode::Route;
        routed.forwards = vec![ok];
        assert!(
            routed
                .validate()
                .unwrap_err()
                .to_string()
                .ends_with("port forwards need a NAT network, this one is route")
        );
    }

    #[test]
    fn a_host_port_is_forwarded_once() {
        let a = test_forward((8080, 8089), "192.168.122.10", 80);
        let b = test_forward((8089, 8089), "192.168.122.11", 80);
        let mut n = net("virbr0");
        n.forwards = vec![a.clone(), b.clone()];
        assert_eq!(
            n.validate().unwrap_err().to_string(),
            r#"forward tcp *:8089 of network "n" takes a host port of forward tcp *:8080-8089 of network "n""#
        );
        // Another protocol, or a given address, is another port.
        let mut c = b.clone();
        c.proto = Proto::Udp;
        let mut d = b.clone();
        d.address = Some("198.51.100.1".parse().unwrap());
        n.forwards = vec![a.clone(), c, d];
        assert!(n.validate().is_ok());
        // Across networks too.
        let mut other = net("virbr1");
        other.name = "o".into();
        other.subnets = vec!["192.168.123.0/24".parse().unwrap()];
        other.forwards = vec![test_forward((8085, 8085), "192.168.123.10", 80)];
        let mut first = net("virbr0");
        first.forwards = vec![a];
        assert!(matches!(
            validate_all(&[first, other]),
            Err(FwError::ClashingForwards { .. })
        ));
    }
}
