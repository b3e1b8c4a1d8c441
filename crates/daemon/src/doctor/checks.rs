//! The doctor's judgements, pure: facts about the host in, findings out. The I/O that
//! gathers the facts is `doctor`'s.

use ipnet::IpNet;
use kvnet_api::{Check, Finding};
use kvnet_foreign::{BridgeNf, Hit, Owner, Traffic};
use kvnet_host::procroutes::HostRoute;
use std::net::IpAddr;

fn finding(
    check: Check,
    network: Option<&str>,
    culprit: String,
    detail: String,
    fix: String,
) -> Finding {
    Finding {
        check,
        problem: true,
        network: network.map(str::to_string),
        culprit,
        detail,
        fix,
    }
}

/// What to do about a drop of `owner`'s, when kvnet's own rules did not lift it.
fn fix_for(h: &Hit, kvnet_fixes: bool) -> String {
    let br = &h.bridge;
    match h.owner {
        o if o.iptables() && kvnet_fixes => format!(
            "kvnetd adds accepts for {br} to {} at network start and after changes; \
             restart the network ('kvnet net-destroy {n}; kvnet net-start {n}') and see kvnetd's log if they are missing",
            if h.hook == "forward" {
                "DOCKER-USER (or FORWARD)"
            } else {
                h.base_chain.as_str()
            },
            n = h.network
        ),
        o if o.iptables() => format!(
            "insert accepts for {br} at the top of {} (e.g. 'iptables -I {} -i {br} -j ACCEPT'), \
             or run kvnetd with --foreign-firewalls fix",
            h.base_chain,
            if h.hook == "forward" {
                "DOCKER-USER"
            } else {
                h.base_chain.as_str()
            }
        ),
        Owner::Firewalld => format!(
            "put {br} in a zone that allows it ('firewall-cmd --zone=kvnet --change-interface={br}'); \
             kvnetd does it at network start when firewalld is on the system D-Bus"
        ),
        _ => format!(
            "in table {} chain {}, accept iifname/oifname \"{br}\" before {}",
            h.table,
            h.at.chain,
            match h.at.handle {
                Some(handle) => format!("rule handle {handle}"),
                None => "the end of the chain (its policy is drop)".to_string(),
            }
        ),
    }
}

/// One finding per network and drop, naming every kind of traffic it hits.
pub fn foreign_drops(hits: &[Hit], kvnet_fixes: bool) -> Vec<Finding> {
    let mut out: Vec<(Finding, Vec<String>)> = Vec::new();
    for h in hits {
        let culprit = format!("{}: {}", h.owner, h.location());
        let kind = format!("{}{}", h.traffic, if h.v6 { " (IPv6)" } else { "" });
        if let Some((_, kinds)) = out
            .iter_mut()
            .find(|(f, _)| f.culprit == culprit && f.network.as_deref() == Some(&h.network))
        {
            kinds.push(kind);
            continue;
        }
        let mut f = finding(
            Check::ForeignDrop,
            Some(&h.network),
            culprit,
            String::new(),
            fix_for(h, kvnet_fixes),
        );
        f.detail = format!(
            "{} {} on hook {} (priority {}){}{}",
            if h.certain { "drops" } else { "may drop" },
            h.bridge,
            h.hook,
            h.prio,
            if h.certain {
                String::new()
            } else {
                format!(", unless {} match", h.at.unknown.join(", "))
            },
            if h.traffic == Traffic::Cross {
                "; bridged traffic crosses it because of br_netfilter"
            } else {
                ""
            }
        );
        out.push((f, vec![kind]));
    }
    out.into_iter()
        .map(|(mut f, kinds)| {
            f.detail = format!("{}: {}", f.detail, kinds.join(", "));
            f
        })
        .collect()
}

/// br_netfilter with `bridge-nf-call-iptables=1`: a note (a drop it exposes bridged
/// traffic to is a foreign-drop problem of its own).
pub fn br_netfilter(brnf: BridgeNf) -> Option<Finding> {
    let on: Vec<&str> = [
        (brnf.call_iptables, "bridge-nf-call-iptables"),
        (brnf.call_ip6tables, "bridge-nf-call-ip6tables"),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    if on.is_empty() {
        return None;
    }
    Some(Finding {
        problem: false,
        ..finding(
            Check::BrNetfilter,
            None,
            format!("br_netfilter: net.bridge.{}=1", on.join("=1, net.bridge.")),
            "bridged guest-to-guest traffic crosses the IP hooks: any forward drop there (Docker's FORWARD policy) cuts it".into(),
            "kvnet lets its bridges' traffic through the drops it sees; if nothing needs it (Kubernetes, Docker with icc=false do), 'sysctl -w net.bridge.bridge-nf-call-iptables=0'".into(),
        )
    })
}

/// A forwarding sysctl `key` the network needs reads `value`.
pub fn ip_forward(network: &str, key: &str, value: &str) -> Option<Finding> {
    (value.trim() != "1").then(|| {
        let dotted = key.replace('/', ".");
        finding(
            Check::IpForward,
            Some(network),
            format!("{dotted}={}", value.trim()),
            "the host does not forward: guests cannot reach beyond it".into(),
            format!("'sysctl -w {dotted}=1' (kvnetd sets it at network start: something reset it)"),
        )
    })
}

/// The interface the host routes `dest` through (longest prefix match).
fn route_dev(routes: &[HostRoute], dest: IpAddr) -> Option<&str> {
    routes
        .iter()
        .filter(|r| r.dest.contains(&dest))
        .max_by_key(|r| r.dest.prefix_len())
        .map(|r| r.dev.as_str())
}

/// Strict reverse-path filtering (effective `max(all, bridge)` = 1) drops guests'
/// packets whose source the host routes through another interface.
pub fn rp_filter(
    network: &str,
    bridge: &str,
    all: u8,
    dev: u8,
    sources: &[IpNet],
    routes: &[HostRoute],
) -> Option<Finding> {
    if all.max(dev) != 1 {
        return None;
    }
    let bad: Vec<String> = sources
        .iter()
        .filter(|n| n.addr().is_ipv4())
        .flat_map(|n| {
            // The subnet itself and any more specific route inside it.
            let mut probes = vec![n.network()];
            probes.extend(
                routes
                    .iter()
                    .filter(|r| n.contains(&r.dest) && r.dest != *n)
                    .map(|r| r.dest.network()),
            );
            probes
        })
        .filter_map(|a| match route_dev(routes, a) {
            Some(d) if d != bridge => Some(format!("{a} via {d}")),
            _ => None,
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(finding(
        Check::RpFilter,
        Some(network),
        format!("net.ipv4.conf.{{all,{bridge}}}.rp_filter=1 (strict)"),
        format!(
            "guests' sources on {bridge} are routed elsewhere ({}): strict reverse-path filtering drops their packets",
            bad.join(", ")
        ),
        format!(
            "'sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{bridge}.rp_filter=2' (loose), or fix the routes"
        ),
    ))
}

/// A socket in listening state, from `ss -Hln[u|t]p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub tcp: bool,
    pub addr: String,
    /// SO_BINDTODEVICE, when shown (`0.0.0.0%virbr0:67`).
    pub dev: Option<String>,
    pub port: u16,
    pub process: String,
    pub pid: Option<u32>,
}

/// Parses `ss -Hln[u|t]p` output.
pub fn parse_ss(text: &str, tcp: bool) -> Vec<Listener> {
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local = cols.get(3)?;
            let (host, port) = local.rsplit_once(':')?;
            let (addr, dev) = match host.split_once('%') {
                Some((a, d)) => (a, Some(d.to_string())),
                None => (host, None),
            };
            let users = cols.get(5..).map(|c| c.join(" ")).unwrap_or_default();
            let process = users.split('"').nth(1).unwrap_or("?").to_string();
            let pid = users
                .split("pid=")
                .nth(1)
                .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok());
            Some(Listener {
                tcp,
                addr: addr.trim_matches(|c| c == '[' || c == ']').to_string(),
                dev,
                port: port.parse().ok()?,
                process,
                pid,
            })
        })
        .collect()
}

/// Other DHCP and DNS servers on a network's bridge: any other process's socket on
/// udp 67 that hears the bridge (wildcard address unbound or bound to the bridge, or
/// a bridge address: DHCP requests are broadcasts, every such socket gets them), and
/// on port 53 bound to a bridge address or the bridge.
pub fn listeners(
    network: &str,
    bridge: &str,
    addrs: &[IpAddr],
    sockets: &[Listener],
    own_pid: u32,
) -> Vec<Finding> {
    sockets
        .iter()
        .filter(|s| s.pid != Some(own_pid))
        .filter(|s| {
            let on_bridge = s.dev.as_deref() == Some(bridge)
                || addrs.iter().any(|a| a.to_string() == s.addr);
            let wildcard = matches!(s.addr.as_str(), "0.0.0.0" | "*" | "::") && s.dev.is_none();
            match (s.port, s.tcp) {
                (67, false) => on_bridge || wildcard,
                (53, _) => on_bridge,
                _ => false,
            }
        })
        .map(|s| {
            let what = if s.port == 67 { "DHCP" } else { "DNS" };
            let at = format!(
                "{}{}:{}",
                s.addr,
                s.dev.as_deref().map(|d| format!("%{d}")).unwrap_or_default(),
                s.port
            );
            finding(
                Check::Listener,
                Some(network),
                format!(
                    "{} (pid {}) on {} {at}",
                    s.process,
                    s.pid.map_or("?".into(), |p| p.to_string()),
                    if s.tcp { "tcp" } else { "udp" }
                ),
                format!("another {what} server hears guests on {bridge}: guests may get its answers instead of kvnet's"),
                format!("stop it or bind it to other interfaces (dnsmasq: --except-interface={bridge} --bind-interfaces)"),
            )
        })
        .collect()
}

/// A link's name and MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mtu {
    pub name: String,
    pub mtu: u32,
}

/// Ports whose MTU differs from the bridge's, and a bridge that differs from the
/// network's `<mtu>`.
pub fn mtu(network: &str, bridge: &Mtu, wanted: Option<u32>, ports: &[Mtu]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(w) = wanted
        && w != bridge.mtu
    {
        out.push(finding(
            Check::Mtu,
            Some(network),
            format!("{} mtu {}", bridge.name, bridge.mtu),
            format!("the network's <mtu size='{w}'/> is not the bridge's"),
            format!(
                "'ip link set {} mtu {w}' or restart the network",
                bridge.name
            ),
        ));
    }
    for p in ports.iter().filter(|p| p.mtu != bridge.mtu) {
        out.push(finding(
            Check::Mtu,
            Some(network),
            format!(
                "{} mtu {} on {} mtu {}",
                p.name, p.mtu, bridge.name, bridge.mtu
            ),
            format!(
                "frames larger than {} are dropped between {} and the bridge",
                p.mtu.min(bridge.mtu),
                p.name
            ),
            format!("'ip link set {} mtu {}'", p.name, bridge.mtu),
        ));
    }
    out
}

/// A kernel feature kvnet relies on, and the files that show it is there.
pub struct Feature {
    pub module: &'static str,
    pub why: &'static str,
    pub probes: &'static [&'static str],
    /// Missing it stops nothing: a note.
    pub optional: bool,
}

pub const FEATURES: &[Feature] = &[
    Feature {
        module: "bridge",
        why: "kvnet's networks are Linux bridges",
        probes: &["/sys/module/bridge"],
        optional: false,
    },
    Feature {
        module: "tun",
        why: "guest ports are TAP devices",
        probes: &["/sys/class/misc/tun", "/dev/net/tun"],
        optional: false,
    },
    Feature {
        module: "nf_conntrack",
        why: "NAT and the established/related rules need connection tracking",
        probes: &[
            "/proc/sys/net/netfilter/nf_conntrack_max",
            "/sys/module/nf_conntrack",
        ],
        optional: false,
    },
    Feature {
        module: "vhost_net",
        why: "qemu's vhost=on (in-kernel virtio-net) is faster",
        probes: &["/sys/class/misc/vhost-net", "/dev/vhost-net"],
        optional: true,
    },
];

/// The features whose module is neither loaded nor built in (`present` says whether a
/// probe path exists or the module is listed in /proc/modules or modules.builtin).
pub fn modules(present: impl Fn(&Feature) -> bool) -> Vec<Finding> {
    FEATURES
        .iter()
        .filter(|f| !present(f))
        .map(|f| Finding {
            problem: !f.optional,
            ..finding(
                Check::KernelModule,
                None,
                format!("module {} missing", f.module),
                format!("{}; it is neither loaded nor built into this kernel", f.why),
                format!("'modprobe {}'", f.module),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
