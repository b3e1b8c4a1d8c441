//! The pure planner of `iface-bridge` / `iface-unbridge`: from the links, addresses and
//! routes as read, the ordered steps, each with its undo.

use anyhow::{Result, bail};
use kvnet_host::{BridgeSpec, Link, LinkAddress, LinkRoute};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kernel's `RTPROT_KERNEL`: routes the kernel made for an address, which
/// come back by themselves with the address.
pub(super) const PROTO_KERNEL: u8 = 2;

/// Which address families have a default route in the main table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    pub v4: bool,
    pub v6: bool,
}

impl Defaults {
    pub fn of(routes: &[kvnet_host::Route]) -> Defaults {
        let mut d = Defaults::default();
        for r in routes.iter().filter(|r| r.dest.prefix_len() == 0) {
            if r.dest.addr().is_ipv4() {
                d.v4 = true;
            } else {
                d.v6 = true;
            }
        }
        d
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    CreateBridge(BridgeSpec),
    DeleteLink(String),
    Attach {
        port: String,
        bridge: String,
    },
    Detach {
        port: String,
        bridge: String,
    },
    SetUp {
        link: String,
        up: bool,
    },
    AddAddr {
        link: String,
        addr: LinkAddress,
    },
    DelAddr {
        link: String,
        addr: LinkAddress,
    },
    AddRoute {
        link: String,
        route: LinkRoute,
    },
    DelRoute {
        link: String,
        route: LinkRoute,
    },
    /// Fails unless the host still has a default route in each family marked.
    CheckDefaults(Defaults),
}

impl Step {
    /// The step that reverses this one; `None` for a check, and for deleting a link
    /// (always a plan's last step, so never undone).
    pub fn undo(&self) -> Option<Step> {
        Some(match self {
            Step::CreateBridge(s) => Step::DeleteLink(s.name.clone()),
            Step::DeleteLink(_) | Step::CheckDefaults(_) => return None,
            Step::Attach { port, bridge } => Step::Detach {
                port: port.clone(),
                bridge: bridge.clone(),
            },
            Step::Detach { port, bridge } => Step::Attach {
                port: port.clone(),
                bridge: bridge.clone(),
            },
            Step::SetUp { link, up } => Step::SetUp {
                link: link.clone(),
                up: !up,
            },
            Step::AddAddr { link, addr } => Step::DelAddr {
                link: link.clone(),
                addr: addr.clone(),
            },
            Step::DelAddr { link, addr } => Step::AddAddr {
                link: link.clone(),
                addr: addr.clone(),
            },
            Step::AddRoute { link, route } => Step::DelRoute {
                link: link.clone(),
                route: route.clone(),
            },
            Step::DelRoute { link, route } => Step::AddRoute {
                link: link.clone(),
                route: route.clone(),
            },
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateBridge(s) => write!(f, "create bridge {}", s.name),
            Step::DeleteLink(l) => write!(f, "delete {l}"),
            Step::Attach { port, bridge } => write!(f, "attach {port} to {bridge}"),
            Step::Detach { port, bridge } => write!(f, "detach {port} from {bridge}"),
            Step::SetUp { link, up } => {
                write!(f, "set {link} {}", if *up { "up" } else { "down" })
            }
            Step::AddAddr { link, addr } => write!(f, "add address {} to {link}", addr.addr),
            Step::DelAddr { link, addr } => {
                write!(f, "remove address {} from {link}", addr.addr)
            }
            Step::AddRoute { link, route } => {
                write!(f, "add route {} dev {link}", route.describe())
            }
            Step::DelRoute { link, route } => {
                write!(f, "remove route {} dev {link}", route.describe())
            }
            Step::CheckDefaults(_) => write!(f, "check the default routes"),
        }
    }
}

/// What `iface-bridge` starts from.
#[derive(Debug, Clone)]
pub struct BridgeInput {
    pub iface: Link,
    /// The name of the link `iface` is enslaved to, if any.
    pub iface_master: Option<String>,
    pub addrs: Vec<LinkAddress>,
    pub routes: Vec<LinkRoute>,
    /// Routes through `iface` kvnet cannot move (multipath, nexthop objects), described.
    pub unmovable: Vec<String>,
    pub bridge: String,
    /// A link called `bridge` exists already.
    pub bridge_taken: bool,
    pub stp: bool,
    /// Forward delay in seconds.
    pub delay: u32,
    pub start: bool,
    /// Default routes before the change.
    pub defaults: Defaults,
}

/// What `iface-unbridge` starts from.
#[derive(Debug, Clone)]
pub struct UnbridgeInput {
    pub bridge: Link,
    pub ports: Vec<Link>,
    /// The ports that are TAPs (by name).
    pub taps: Vec<String>,
    pub addrs: Vec<LinkAddress>,
    pub routes: Vec<LinkRoute>,
    /// Routes through the bridge kvnet cannot move, described.
    pub unmovable: Vec<String>,
    /// The active kvnet network that uses the bridge, if any.
    pub used_by: Option<String>,
    pub defaults: Defaults,
}

/// A name kvnet may give a bridge ([`kvnet_model::ifname::check`]).
pub fn check_name(name: &str) -> Result<()> {
    kvnet_model::ifname::check(name).or_else(|e| bail!("invalid bridge name '{name}': {e}"))
}

/// The addresses to move: all but the IPv6 link-local ones the kernel makes for
/// each link itself.
fn movable_addrs(addrs: &[LinkAddress]) -> Vec<LinkAddress> {
    addrs
        .iter()
        .filter(|a| !a.is_ipv6_link_local())
        .cloned()
        .collect()
}

/// A route the kernel makes by itself for one of the addresses (its prefix route, or
/// the IPv6 link-local one), which comes back with the address.
fn kernel_made(r: &LinkRoute, addrs: &[LinkAddress]) -> bool {
    r.proto == PROTO_KERNEL
        && r.gateway.is_none()
        && (r.dest == "fe80::/64".parse::<ipnet::IpNet>().expect("valid")
            || addrs.iter().any(|a| {
                a.flags & IFA_F_NOPREFIXROUTE == 0
                    && a.addr.trunc() == r.dest
                    && (r.dest.addr().is_ipv6() || r.prefsrc == Some(a.addr.addr()))
            }))
}

/// The `IFA_F_NOPREFIXROUTE` address flag.
const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// The routes to move, in the order they can be added: routes to a link before
/// routes through a gateway (which may need them). The kernel's own routes for the
/// addresses come back with the addresses.
fn movable_routes(routes: &[LinkRoute], addrs: &[LinkAddress]) -> Vec<LinkRoute> {
    let mut v: Vec<LinkRoute> = routes
        .iter()
        .filter(|r| !kernel_made(r, addrs))
        .cloned()
        .collect();
    v.sort_by_key(|r| r.gateway.is_some());
    v
}

/// Steps that move addresses and routes from `from` to `to`; `between` runs after
/// they left `from` and before they arrive on `to`.
fn move_steps(
    from: &str,
    to: &str,
    addrs: &[LinkAddress],
    routes: &[LinkRoute],
    between: Vec<Step>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    // Routes first: removing an address takes routes with it, which then could not
    // be put back on a rollback.
    for r in routes.iter().rev() {
        steps.push(Step::DelRoute {
            link: from.into(),
            route: r.clone(),
        });
    }
    // Secondaries before their primary: removing a primary IPv4 address removes its
    // secondaries too.
    for a in addrs.iter().rev() {
        steps.push(Step::DelAddr {
            link: from.into(),
            addr: a.clone(),
        });
    }
    steps.extend(between);
    for a in addrs {
        steps.push(Step::AddAddr {
            link: to.into(),
            addr: a.clone(),
        });
    }
    for r in routes {
        steps.push(Step::AddRoute {
            link: to.into(),
            route: r.clone(),
        });
    }
    steps
}

pub fn plan_bridge(i: &BridgeInput) -> Result<Vec<Step>> {
    let name = &i.iface.name;
    let br = &i.bridge;
    if i.iface.loopback {
        bail!("interface {name} is a loopback interface");
    }
    if let Some(m) = &i.iface_master {
        bail!("interface {name} is already enslaved to {m}");
    }
    if i.iface.kind.as_deref() == Some("bridge") {
        bail!("interface {name} is a bridge");
    }
    let Some(mac) = i.iface.mac else {
        bail!("interface {name} has no MAC address: only an ethernet device can be bridged");
    };
    check_name(br)?;
    if i.bridge_taken {
        bail!("interface {br} already exists");
    }
    if !i.unmovable.is_empty() {
        bail!(
            "interface {name} has routes kvnet cannot move: {}",
            i.unmovable.join(", ")
        );
    }
    let addrs = movable_addrs(&i.addrs);
    let routes = movable_routes(&i.routes, &i.addrs);
    if !i.start && !routes.is_empty() {
        bail!(
            "interface {name} has routes ({}) that cannot move onto a bridge that is not \
             started: leave out --no-start",
            routes
                .iter()
                .map(LinkRoute::describe)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut steps = vec![Step::CreateBridge(BridgeSpec {
        name: br.clone(),
        mac: Some(mac),
        mtu: Some(i.iface.mtu),
        stp: i.stp,
        forward_delay_cs: i.delay.saturating_mul(100),
    })];
    let mut between = vec![Step::Attach {
        port: name.clone(),
        bridge: br.clone(),
    }];
    if i.start {
        between.push(Step::SetUp {
            link: br.clone(),
            up: true,
        });
    }
    steps.extend(move_steps(name, br, &addrs, &routes, between));
    steps.push(Step::CheckDefaults(i.defaults));
    Ok(steps)
}

/// The NIC of a bridge `iface-bridge` made: its one port that is not a TAP.
pub fn plan_unbridge(i: &UnbridgeInput) -> Result<Vec<Step>> {
    let br = &i.bridge.name;
    if i.bridge.kind.as_deref() != Some("bridge") {
        bail!("interface {br} is not a bridge");
    }
    if let Some(net) = &i.used_by {
        bail!("bridge {br} is used by the active network '{net}': destroy it first");
    }
    let nics: Vec<&Link> = i
        .ports
        .iter()
        .filter(|p| !i.taps.contains(&p.name))
        .collect();
    let names = |v: &[&Link]| {
        v.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nic = match nics.as_slice() {
        [] => bail!("bridge {br} has no interface attached besides TAPs"),
        [nic] => *nic,
        _ => bail!(
            "bridge {br} has more than one interface attached ({}): detach all but one first",
            names(&nics)
        ),
    };
    let others: Vec<&Link> = i.ports.iter().filter(|p| p.name != nic.name).collect();
    if !others.is_empty() {
        bail!(
            "bridge {br} has other ports besides {}: {} (detach them first)",
            nic.name,
            names(&others)
        );
    }
    if !i.unmovable.is_empty() {
        bail!(
            "bridge {br} has routes kvnet cannot move: {}",
            i.unmovable.join(", ")
        );
    }
    let addrs = movable_addrs(&i.addrs);
    let routes = movable_routes(&i.routes, &i.addrs);
    let mut between = vec![Step::Detach {
        port: nic.name.clone(),
        bridge: br.clone(),
    }];
    if !nic.up {
        between.push(Step::SetUp {
            link: nic.name.clone(),
            up: true,
        });
    }
    let mut steps = move_steps(br, &nic.name, &addrs, &routes, between);
    steps.push(Step::CheckDefaults(i.defaults));
    steps.push(Step::DeleteLink(br.clone()));
    Ok(steps)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    fn link(name: &str, kind: Option<&str>) -> Link {
        Link {
            index: 2,
            name: name.into(),
            kind: kind.map(str::to_string),
            mac: Some([0x52, 0x54, 0, 1, 2, 3]),
            mtu: 9000,
            up: true,
            master: None,
            loopback: false,
        }
    }

    fn addr(s: &str) -> LinkAddress {
        LinkAddress::new(net(s))
    }

    fn route(dest: &str, gw: Option<&str>, proto: u8) -> LinkRoute {
        LinkRoute {
            dest: net(dest),
            gateway: gw.map(|g| g.parse().unwrap()),
            metric: None,
            scope: if gw.is_some() { 0 } else { 253 },
            proto,
            prefsrc: None,
            onlink: false,
        }
    }

    pub(crate) fn input() -> BridgeInput {
        BridgeInput {
            iface: link("eth0", None),
            iface_master: None,
            addrs: vec![
                addr("192.0.2.10/24"),
                addr("192.0.2.11/24"),
                addr("2001:db8::10/64"),
                addr("fe80::5054:ff:fe01:203/64"),
            ],
            routes: vec![
                LinkRoute {
                    prefsrc: Some("192.0.2.10".parse().unwrap()),
                    ..route("192.0.2.0/24", None, PROTO_KERNEL)
                },
                route("2001:db8::/64", None, PROTO_KERNEL),
                route("0.0.0.0/0", Some("192.0.2.1"), 3),
                route("10.0.0.0/8", None, 4),
                route("::/0", Some("2001:db8::1"), 3),
                route("fe80::/64", None, PROTO_KERNEL),
            ],
            unmovable: vec![],
            bridge: "br0".into(),
            bridge_taken: false,
            stp: true,
            delay: 0,
            start: true,
            defaults: Defaults { v4: true, v6: true },
        }
    }

    fn s(steps: &[Step]) -> Vec<String> {
        steps.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn bridge_plan_order() {
        let steps = plan_bridge(&input()).unwrap();
        assert_eq!(
            s(&steps),
            [
                "create bridge br0",
                "remove route default via 2001:db8::1 dev eth0",
                "remove route default via 192.0.2.1 dev eth0",
                "remove route 10.0.0.0/8 dev eth0",
                "remove address 2001:db8::10/64 from eth0",
                "remove address 192.0.2.11/24 from eth0",
                "remove address 192.0.2.10/24 from eth0",
                "attach eth0 to br0",
                "set br0 up",
                "add address 192.0.2.10/24 to br0",
                "add address 192.0.2.11/24 to br0",
                "add address 2001:db8::10/64 to br0",
                "add route 10.0.0.0/8 dev br0",
                "add route default via 192.0.2.1 dev br0",
                "add route default via 2001:db8::1 dev br0",
                "check the default routes",
            ]
        );
        let Step::CreateBridge(spec) = &steps[0] else {
            panic!()
        };
        assert_eq!(
            spec,
            &BridgeSpec {
                name: "br0".into(),
                mac: Some([0x52, 0x54, 0, 1, 2, 3]),
                mtu: Some(9000),
                stp: true,
                forward_delay_cs: 0,
            }
        );
        assert_eq!(
            steps[15],
            Step::CheckDefaults(Defaults { v4: true, v6: true })
        );
    }

    #[test]
    fn bridge_options() {
        let mut i = input();
        i.stp = false;
        i.delay = 7;
        i.start = false;
        i.routes.retain(|r| r.proto == PROTO_KERNEL);
        let steps = plan_bridge(&i).unwrap();
        let Step::CreateBridge(spec) = &steps[0] else {
            panic!()
        };
        assert_eq!((spec.stp, spec.forward_delay_cs), (false, 700));
        assert!(!steps.iter().any(|s| matches!(s, Step::SetUp { .. })));
        // Without routes to move --no-start is fine; with some it is refused.
        let err = plan_bridge(&BridgeInput {
            start: false,
            ..input()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("default via 192.0.2.1") && err.contains("--no-start"),
            "{err}"
        );
    }

    /// Master, up, addresses, routes.
    type LinkState = (Option<String>, bool, Vec<String>, Vec<String>);

    /// A model of the host's links that the steps run on.
    #[derive(Default, Clone, PartialEq, Debug)]
    pub(crate) struct Model {
        links: BTreeMap<String, LinkState>,
    }

    pub(crate) fn apply(m: &mut Model, s: &Step) {
        match s {
            Step::CreateBridge(b) => {
                assert!(m.links.insert(b.name.clone(), Default::default()).is_none())
            }
            Step::DeleteLink(l) => {
                m.links.remove(l);
            }
            Step::Attach { port, bridge } => {
                assert!(m.links.contains_key(bridge));
                m.links.get_mut(port).unwrap().0 = Some(bridge.clone())
            }
            Step::Detach { port, .. } => m.links.get_mut(port).unwrap().0 = None,
            Step::SetUp { link, up } => m.links.get_mut(link).unwrap().1 = *up,
            Step::AddAddr { link, addr } => {
                let v = &mut m.links.get_mut(link).unwrap().2;
                assert!(!v.contains(&addr.addr.to_string()));
                v.push(addr.addr.to_string());
            }
            Step::DelAddr { link, addr } => {
                let v = &mut m.links.get_mut(link).unwrap().2;
                // Secondaries must be gone before their primary.
                assert_eq!(v.last(), Some(&addr.addr.to_string()), "{s}");
                v.pop();
            }
            Step::AddRoute { link, route } => {
                m.links.get_mut(link).unwrap().3.push(route.describe())
            }
            Step::DelRoute { link, route } => {
                let v = &mut m.links.get_mut(link).unwrap().3;
                let i = v
                    .iter()
                    .position(|r| *r == route.describe())
                    .expect("route present");
                v.remove(i);
            }
            Step::CheckDefaults(_) => {}
        }
    }

    /// Whether `s` has nothing to do in `m` (the executor's `in_effect`).
    pub(crate) fn in_effect(m: &Model, s: &Step) -> bool {
        let l = |n: &String| m.links.get(n);
        match s {
            Step::CreateBridge(b) => l(&b.name).is_some(),
            Step::DeleteLink(n) => l(n).is_none(),
            Step::Attach { port, bridge } => l(port).is_some_and(|p| p.0.as_ref() == Some(bridge)),
            Step::Detach { port, bridge } => l(port).is_none_or(|p| p.0.as_ref() != Some(bridge)),
            Step::SetUp { link, up } => l(link).map_or(!up, |x| x.1 == *up),
            Step::AddAddr { link, addr } => {
                l(link).is_some_and(|x| x.2.contains(&addr.addr.to_string()))
            }
            Step::DelAddr { link, addr } => {
                l(link).is_none_or(|x| !x.2.contains(&addr.addr.to_string()))
            }
            Step::AddRoute { link, route } => {
                l(link).is_some_and(|x| x.3.contains(&route.describe()))
            }
            Step::DelRoute { link, route } => {
                l(link).is_none_or(|x| !x.3.contains(&route.describe()))
            }
            Step::CheckDefaults(_) => true,
        }
    }

    /// eth0 of [`input`] before any change.
    pub(crate) fn start() -> Model {
        let i = input();
        let mut start = Model::default();
        start.links.insert(
            "eth0".into(),
            (
                None,
                true,
                movable_addrs(&i.addrs)
                    .iter()
                    .map(|a| a.addr.to_string())
                    .collect(),
                movable_routes(&i.routes, &i.addrs)
                    .iter()
                    .map(LinkRoute::describe)
                    .collect(),
            ),
        );
        start
    }

    /// Unbridging what [`input`] made.
    pub(crate) fn bridged_unbridge_input() -> UnbridgeInput {
        let i = input();
        UnbridgeInput {
            bridge: Link {
                mac: None,
                ..link("br0", Some("bridge"))
            },
            ports: vec![link("eth0", None)],
            taps: vec![],
            addrs: i.addrs.clone(),
            routes: i.routes.clone(),
            unmovable: vec![],
            used_by: None,
            defaults: i.defaults,
        }
    }

    /// Undoing every prefix of the plan in reverse restores each link's addresses and
    /// routes, and the bridge goes: a model of links run over the steps.
    #[test]
    fn every_prefix_rolls_back_to_the_start() {
        let start = start();
        let steps = plan_bridge(&input()).unwrap();
        for n in 0..=steps.len() {
            let mut m = start.clone();
            for s in &steps[..n] {
                apply(&mut m, s);
            }
            if n == steps.len() {
                let mut end = start.links["eth0"].clone();
                end.0 = Some("br0".into());
                let br = &m.links["br0"];
                assert_eq!((&br.2, &br.3), (&end.2, &end.3));
                assert_eq!(m.links["eth0"], (Some("br0".into()), true, vec![], vec![]));
            }
            for s in steps[..n].iter().rev() {
                if let Some(u) = s.undo() {
                    apply(&mut m, &u);
                }
            }
            assert_eq!(m, start, "after undoing {n} steps");
        }

        // And unbridge from there: the plan puts everything back on eth0.
        let mut m = start.clone();
        for s in &steps {
            apply(&mut m, s);
        }
        let un = plan_unbridge(&bridged_unbridge_input()).unwrap();
        let before = m.clone();
        for (n, s) in un.iter().enumerate() {
            apply(&mut m, s);
            if n + 1 < un.len() {
                // Any prefix short of the last step undoes back to the bridged state.
                let mut r = m.clone();
                for d in un[..=n].iter().rev() {
                    if let Some(u) = d.undo() {
                        apply(&mut r, &u);
                    }
                }
                assert_eq!(r, before, "after undoing {} unbridge steps", n + 1);
            }
        }
        assert_eq!(m, start);
    }

    #[test]
    fn only_the_kernels_own_routes_stay_behind() {
        let addrs = vec![
            addr("192.0.2.10/24"),
            LinkAddress {
                flags: IFA_F_NOPREFIXROUTE,
                ..addr("198.51.100.7/24")
            },
        ];
        let src = Some("192.0.2.10".parse().unwrap());
        let routes = vec![
            // The prefix route of 192.0.2.10/24 and the IPv6 link-local one.
            LinkRoute {
                prefsrc: src,
                ..route("192.0.2.0/24", None, PROTO_KERNEL)
            },
            route("fe80::/64", None, PROTO_KERNEL),
            // Kernel protocol, but nothing re-creates them: they move.
            route("0.0.0.0/0", Some("192.0.2.1"), PROTO_KERNEL),
            LinkRoute {
                prefsrc: Some("198.51.100.7".parse().unwrap()),
                ..route("198.51.100.0/24", None, PROTO_KERNEL)
            },
            LinkRoute {
                prefsrc: Some("192.0.2.99".parse().unwrap()),
                ..route("192.0.2.0/24", None, PROTO_KERNEL)
            },
        ];
        let moved: Vec<String> = movable_routes(&routes, &addrs)
            .iter()
            .map(|r| format!("{} src {:?}", r.describe(), r.prefsrc))
            .collect();
        assert_eq!(
            moved,
            [
                "198.51.100.0/24 src Some(198.51.100.7)",
                "192.0.2.0/24 src Some(192.0.2.99)",
                "default via 192.0.2.1 src None",
            ]
        );
    }

    #[test]
    fn unmovable_routes_are_refused() {
        let mut i = input();
        i.unmovable = vec!["0.0.0.0/0 (multipath)".into()];
        assert_eq!(
            plan_bridge(&i).unwrap_err().to_string(),
            "interface eth0 has routes kvnet cannot move: 0.0.0.0/0 (multipath)"
        );
        let mut u = unbridge();
        u.unmovable = vec!["10.0.0.0/8 (nexthop object)".into()];
        assert_eq!(
            plan_unbridge(&u).unwrap_err().to_string(),
            "bridge br0 has routes kvnet cannot move: 10.0.0.0/8 (nexthop object)"
        );
    }

    #[test]
    fn bridge_refusals() {
        let mut i = input();
        i.iface.loopback = true;
        i.iface.name = "lo".into();
        assert_eq!(
            plan_bridge(&i).unwrap_err().to_string(),
            "interface lo is a loopback interface"
        );
        let mut i = input();
        i.iface_master = Some("virbr0".into());
        assert_eq!(
            plan_bridge(&i).unwrap_err().to_string(),
            "interface eth0 is already enslaved to virbr0"
        );
        let mut i = input();
        i.iface.kind = Some("bridge".into());
        assert_eq!(
            plan_bridge(&i).unwrap_err().to_string(),
            "interface eth0 is a bridge"
        );
        let mut i = input();
        i.iface.mac = None;
        assert!(
            plan_bridge(&i)
                .unwrap_err()
                .to_string()
                .contains("no MAC address")
        );
        let mut i = input();
        i.bridge_taken = true;
        assert_eq!(
            plan_bridge(&i).unwrap_err().to_string(),
            "interface br0 already exists"
        );
        for bad in ["", "a/b", "br:0", "br 0", ".", "..", "sixteen-chars-xx"] {
            let mut i = input();
            i.bridge = bad.into();
            let e = plan_bridge(&i).unwrap_err().to_string();
            assert!(e.contains("bridge name"), "{bad:?}: {e}");
        }
        assert!(check_name("fifteen-chars-x").is_ok());
    }

    fn unbridge() -> UnbridgeInput {
        UnbridgeInput {
            bridge: link("br0", Some("bridge")),
            ports: vec![link("eth0", None)],
            taps: vec![],
            addrs: vec![addr("192.0.2.10/24"), addr("fe80::1/64")],
            routes: vec![
                route("0.0.0.0/0", Some("192.0.2.1"), 3),
                LinkRoute {
                    prefsrc: Some("192.0.2.10".parse().unwrap()),
                    ..route("192.0.2.0/24", None, PROTO_KERNEL)
                },
            ],
            unmovable: vec![],
            used_by: None,
            defaults: Defaults {
                v4: true,
                v6: false,
            },
        }
    }

    #[test]
    fn unbridge_plan_order() {
        let mut i = unbridge();
        i.ports[0].up = false;
        assert_eq!(
            s(&plan_unbridge(&i).unwrap()),
            [
                "remove route default via 192.0.2.1 dev br0",
                "remove address 192.0.2.10/24 from br0",
                "detach eth0 from br0",
                "set eth0 up",
                "add address 192.0.2.10/24 to eth0",
                "add route default via 192.0.2.1 dev eth0",
                "check the default routes",
                "delete br0",
            ]
        );
    }

    #[test]
    fn unbridge_refusals() {
        let e = |i: &UnbridgeInput| plan_unbridge(i).unwrap_err().to_string();
        let mut i = unbridge();
        i.bridge.kind = None;
        assert_eq!(e(&i), "interface br0 is not a bridge");
        let mut i = unbridge();
        i.used_by = Some("lan".into());
        assert_eq!(
            e(&i),
            "bridge br0 is used by the active network 'lan': destroy it first"
        );
        let mut i = unbridge();
        i.ports.push(link("vnet0", Some("tun")));
        i.ports.push(link("vnet1", Some("tun")));
        i.taps = vec!["vnet0".into(), "vnet1".into()];
        assert_eq!(
            e(&i),
            "bridge br0 has other ports besides eth0: vnet0, vnet1 (detach them first)"
        );
        let mut i = unbridge();
        i.ports.push(link("eth1", None));
        assert!(e(&i).contains("more than one interface attached (eth0, eth1)"));
        let mut i = unbridge();
        i.ports.clear();
        assert!(e(&i).contains("no interface attached"));
    }

    #[test]
    fn undo_pairs() {
        let st = Step::Attach {
            port: "eth0".into(),
            bridge: "br0".into(),
        };
        assert_eq!(st.undo().and_then(|u| u.undo()), Some(st));
        assert_eq!(Step::DeleteLink("br0".into()).undo(), None);
        assert_eq!(Step::CheckDefaults(Defaults::default()).undo(), None);
        let defaults = Defaults::of(&[kvnet_host::Route::new(net("::/0"), None, Some(1))]);
        assert_eq!(
            defaults,
            Defaults {
                v4: false,
                v6: true
            }
        );
    }
}
