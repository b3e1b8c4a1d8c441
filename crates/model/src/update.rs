//! `virsh net-update`: add/delete/modify one piece of a definition, as libvirt's
//! `virNetworkDefUpdateSection` does, then re-validate the whole network.

use std::fmt;
use std::str::FromStr;

use roxmltree::Node;

use crate::ModelError;
use crate::parse::{Parser, parse_document};
use crate::types::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UpdateCommand {
    AddFirst,
    AddLast,
    Delete,
    Modify,
}

impl FromStr for UpdateCommand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "add-first" => UpdateCommand::AddFirst,
            "add-last" | "add" => UpdateCommand::AddLast,
            "delete" => UpdateCommand::Delete,
            "modify" => UpdateCommand::Modify,
            _ => {
                return Err(format!(
                    "unknown update command '{s}' (expected add, add-first, add-last, delete or modify)"
                ));
            }
        })
    }
}

impl fmt::Display for UpdateCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpdateCommand::AddFirst => "add-first",
            UpdateCommand::AddLast => "add-last",
            UpdateCommand::Delete => "delete",
            UpdateCommand::Modify => "modify",
        })
    }
}

/// On the API (kvnet-api) both enums travel as libvirt's words, through `FromStr` and
/// `Display`, so a bad word gets the same message as on the command line.
macro_rules! serde_as_words {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    };
}

serde_as_words!(UpdateCommand);
serde_as_words!(UpdateSection);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UpdateSection {
    IpDhcpHost,
    IpDhcpRange,
    DnsHost,
    DnsTxt,
    DnsSrv,
    ForwardInterface,
    Portgroup,
    Bridge,
    Domain,
    Ip,
    Forward,
    ForwardPf,
}

const SECTIONS: [(UpdateSection, &str); 12] = [
    (UpdateSection::IpDhcpHost, "ip-dhcp-host"),
    (UpdateSection::IpDhcpRange, "ip-dhcp-range"),
    (UpdateSection::DnsHost, "dns-host"),
    (UpdateSection::DnsTxt, "dns-txt"),
    (UpdateSection::DnsSrv, "dns-srv"),
    (UpdateSection::ForwardInterface, "forward-interface"),
    (UpdateSection::Portgroup, "portgroup"),
    (UpdateSection::Bridge, "bridge"),
    (UpdateSection::Domain, "domain"),
    (UpdateSection::Ip, "ip"),
    (UpdateSection::Forward, "forward"),
    (UpdateSection::ForwardPf, "forward-pf"),
];

impl UpdateSection {
    pub fn as_str(self) -> &'static str {
        SECTIONS
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or("")
    }
}

impl FromStr for UpdateSection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SECTIONS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = SECTIONS.iter().map(|(_, n)| *n).collect();
                format!(
                    "unknown network section '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for UpdateSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type R<T> = Result<T, ModelError>;

fn err<T>(element: &str, msg: impl Into<String>) -> R<T> {
    Err(ModelError::new(element, msg))
}

/// Apply one net-update to a copy of `net`; the result has passed `validate()`.
pub fn apply_update(
    net: &Network,
    cmd: UpdateCommand,
    section: UpdateSection,
    xml: &str,
    parent_index: Option<usize>,
) -> Result<Network, ModelError> {
    use UpdateSection as S;
    if matches!(
        section,
        S::Bridge | S::Domain | S::Ip | S::Forward | S::ForwardPf
    ) {
        return err(
            "network",
            format!("can't update '{section}' section of network '{}'", net.name),
        );
    }
    let doc = parse_document(xml)?;
    let root = doc.root_element();
    let mut p = Parser::new(&doc);
    let mut out = net.clone();
    let expect = match section {
        S::IpDhcpHost | S::DnsHost => "host",
        S::IpDhcpRange => "range",
        S::DnsTxt => "txt",
        S::DnsSrv => "srv",
        S::ForwardInterface => "interface",
        S::Portgroup => "portgroup",
        _ => unreachable!("refused above"),
    };
    let name = root.tag_name().name();
    if name != expect || root.tag_name().namespace().is_some() {
        return Err(p.err(
            root,
            name,
            format!(
                "unexpected element <{name}>, expecting <{expect}>, while updating network '{}'",
                net.name
            ),
        ));
    }
    match section {
        S::IpDhcpHost => dhcp_host(&mut out, &mut p, root, cmd, parent_index)?,
        S::IpDhcpRange => dhcp_range(&mut out, &mut p, root, cmd, parent_index)?,
        S::DnsHost => dns_host(&mut out, &mut p, root, cmd)?,
        S::DnsTxt => dns_txt(&mut out, &mut p, root, cmd)?,
        S::DnsSrv => dns_srv(&mut out, &mut p, root, cmd)?,
        S::ForwardInterface => forward_interface(&mut out, &mut p, root, cmd)?,
        S::Portgroup => portgroup(&mut out, &mut p, root, cmd)?,
        _ => unreachable!("refused above"),
    }
    out.validate()?;
    Ok(out)
}

fn insert_at<T>(v: &mut Vec<T>, cmd: UpdateCommand, item: T) {
    if cmd == UpdateCommand::AddFirst {
        v.insert(0, item);
    } else {
        v.push(item);
    }
}

fn is_add(cmd: UpdateCommand) -> bool {
    matches!(cmd, UpdateCommand::AddFirst | UpdateCommand::AddLast)
}

/// Which `<ip>` a DHCP change goes to: `--parent-index`, else the first one of the wanted
/// family that already has DHCP, else the first one of that family.
fn pick_ip(net: &Network, parent_index: Option<usize>, want_v6: Option<bool>) -> R<usize> {
    if let Some(i) = parent_index {
        if i >= net.ips.len() {
            return err(
                "network",
                format!(
                    "couldn't update dhcp - no <ip> element found at index {i} in network '{}'",
                    net.name
                ),
            );
        }
        return Ok(i);
    }
    let fits = |ip: &IpDef| want_v6.is_none_or(|v6| ip.is_ipv6() == v6);
    net.ips
        .iter()
        .position(|ip| fits(ip) && ip.has_dhcp())
        .or_else(|| net.ips.iter().position(|ip| fits(ip) && !ip.is_ipv6()))
        .or_else(|| net.ips.iter().position(fits))
        .ok_or_else(|| {
            ModelError::new(
                "network",
                format!(
                    "couldn't update dhcp - no matching <ip> element found in network '{}'",
                    net.name
                ),
            )
        })
}

fn host_desc(h: &DhcpHost) -> String {
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        h.mac.map(|m| m.to_string()).unwrap_or_default(),
        h.name.clone().unwrap_or_default(),
        h.ip.map(|i| i.to_string()).unwrap_or_default()
    )
}

fn dhcp_host(
    net: &mut Network,
    p: &mut Parser,
    n: Node,
    cmd: UpdateCommand,
    pi: Option<usize>,
) -> R<()> {
    let host = p.dhcp_host(n, "host")?;
    let want_v6 = match (host.ip, &host.id, host.mac) {
        (Some(a), _, _) => Some(a.is_ipv6()),
        (None, Some(_), _) => Some(true),
        (None, None, Some(_)) => Some(false),
        _ => None,
    };
    let idx = pick_ip(net, pi, want_v6)?;
    let name = net.name.clone();
    let ip = &mut net.ips[idx];
    let dhcp = ip.dhcp.get_or_insert_with(Dhcp::default);
    let same = |a: &DhcpHost| {
        (host.mac.is_some() && a.mac == host.mac)
            || (host.name.is_some() && a.name == host.name)
            || (host.ip.is_some() && a.ip == host.ip)
    };
    match cmd {
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if dhcp.hosts.iter().any(same) {
                return err(
                    "host",
                    format!(
                        "there is an existing dhcp host entry in network '{name}' that matches \"{}\"",
                        host_desc(&host)
                    ),
                );
            }
            insert_at(&mut dhcp.hosts, cmd, host);
        }
        UpdateCommand::Modify => {
            let by_key = |a: &DhcpHost| {
                (host.mac.is_some() && a.mac == host.mac)
                    || (host.name.is_some() && a.name == host.name)
            };
            let Some(i) = dhcp.hosts.iter().position(by_key) else {
                return err(
                    "host",
                    format!(
                        "couldn't locate an existing dhcp host entry matching \"{}\" in network '{name}'",
                        host_desc(&host)
                    ),
                );
            };
            dhcp.hosts[i] = host;
        }
        UpdateCommand::Delete => {
            // Every attribute given must match.
            let m = |a: &DhcpHost| {
                (host.mac.is_none() || a.mac.is_none() || a.mac == host.mac)
                    && (host.name.is_none() || a.name == host.name)
                    && (host.ip.is_none() || a.ip == host.ip)
                    && (host.id.is_none() || a.id == host.id)
            };
            let Some(i) = dhcp.hosts.iter().position(m) else {
                return err(
                    "host",
                    format!("couldn't locate a matching dhcp host entry in network '{name}'"),
                );
            };
            dhcp.hosts.remove(i);
        }
    }
    if dhcp.is_empty() {
        ip.dhcp = None;
    }
    Ok(())
}

fn dhcp_range(
    net: &mut Network,
    p: &mut Parser,
    n: Node,
    cmd: UpdateCommand,
    pi: Option<usize>,
) -> R<()> {
    if cmd == UpdateCommand::Modify {
        return err(
            "range",
            "dhcp ranges cannot be modified, only added or deleted",
        );
    }
    let range = p.dhcp_range(n, "range")?;
    let idx = pick_ip(net, pi, Some(range.start.is_ipv6()))?;
    let name = net.name.clone();
    let ip = &mut net.ips[idx];
    if ip.address.is_ipv6() != range.start.is_ipv6() {
        return err(
            "range",
            "the address family of a dhcp range must match the address family of the dhcp element's parent",
        );
    }
    let dhcp = ip.dhcp.get_or_insert_with(Dhcp::default);
    let found = dhcp
        .ranges
        .iter()
        .position(|r| r.start == range.start && r.end == range.end);
    if is_add(cmd) {
        if found.is_some() {
            return err(
                "range",
                format!(
                    "there is an existing dhcp range entry in network '{name}' that matches \"<range start='{}' end='{}'/>\"",
                    range.start, range.end
                ),
            );
        }
        insert_at(&mut dhcp.ranges, cmd, range);
    } else {
        let Some(i) = found else {
            return err(
                "range",
                format!("couldn't locate a matching dhcp range entry in network '{name}'"),
            );
        };
        dhcp.ranges.remove(i);
    }
    if dhcp.is_empty() {
        ip.dhcp = None;
    }
    Ok(())
}

fn forward_interface(net: &mut Network, p: &mut Parser, n: Node, cmd: UpdateCommand) -> R<()> {
    if cmd == UpdateCommand::Modify {
        return err(
            "interface",
            "forward interface entries cannot be modified, only added or deleted",
        );
    }
    let ifc = p.forward_interface(n, "interface")?;
    let name = net.name.clone();
    let Some(f) = net.forward.as_mut() else {
        return err(
            "interface",
            format!("network '{name}' has no <forward> element to hold interfaces"),
        );
    };
    let found = f.interfaces.iter().position(|i| i.dev == ifc.dev);
    if is_add(cmd) {
        if found.is_some() {
            return err(
                "interface",
                format!(
                    "there is an existing interface entry in network '{name}' that matches \"<interface dev='{}'>\"",
                    ifc.dev
                ),
            );
        }
        insert_at(&mut f.interfaces, cmd, ifc);
    } else {
        let Some(i) = found else {
            return err(
                "interface",
                format!(
                    "couldn't find an interface entry in network '{name}' matching <interface dev='{}'>",
                    ifc.dev
                ),
            );
        };
        if let Some(c) = f.interfaces[i].connections.filter(|c| *c > 0) {
            return err(
                "interface",
                format!(
                    "unable to delete interface '{}' in network '{name}'. It is currently being used by {c} domains.",
                    ifc.dev
                ),
            );
        }
        f.interfaces.remove(i);
    }
    if f.pf.is_none() {
        f.dev = f.interfaces.first().map(|i| i.dev.clone());
    }
    Ok(())
}

fn portgroup(net: &mut Network, p: &mut Parser, n: Node, cmd: UpdateCommand) -> R<()> {
    let pg = p.portgroup(n, "portgroup")?;
    let name = net.name.clone();
    let found = net.portgroups.iter().position(|g| g.name == pg.name);
    let default = net.portgroups.iter().position(|g| g.is_default);
    if found.is_none() && matches!(cmd, UpdateCommand::Modify | UpdateCommand::Delete) {
        return err(
            "portgroup",
            format!(
                "couldn't find a portgroup entry in network '{name}' matching <portgroup name='{}'>",
                pg.name
            ),
        );
    }
    if found.is_some() && is_add(cmd) {
        return err(
            "portgroup",
            format!(
                "there is an existing portgroup entry in network '{name}' that matches \"<portgroup name='{}'>\"",
                pg.name
            ),
        );
    }
    if cmd != UpdateCommand::Delete && pg.is_default && default.is_some() && default != found {
        return err(
            "portgroup",
            format!(
                "a different portgroup entry in network '{name}' is already set as the default. Only one default is allowed."
            ),
        );
    }
    match (cmd, found) {
        (UpdateCommand::Modify, Some(i)) => net.portgroups[i] = pg,
        (UpdateCommand::Delete, Some(i)) => {
            net.portgroups.remove(i);
        }
        _ => insert_at(&mut net.portgroups, cmd, pg),
    }
    Ok(())
}

fn dns_host(net: &mut Network, p: &mut Parser, n: Node, cmd: UpdateCommand) -> R<()> {
    let host = p.dns_host(n, "host", cmd == UpdateCommand::Delete)?;
    let name = net.name.clone();
    let dns = net.dns.get_or_insert_with(Dns::default);
    // Several records may share a hostname, so adding only checks the address.
    let matches = |h: &DnsHost| {
        (host.ip.is_some() && h.ip == host.ip)
            || (!is_add(cmd) && host.hostnames.iter().any(|n| h.hostnames.contains(n)))
    };
    let found: Vec<usize> = dns
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| matches(h))
        .map(|(i, _)| i)
        .collect();
    if is_add(cmd) {
        if !found.is_empty() {
            return err(
                "host",
                format!(
                    "there is already at least one DNS HOST record with a matching field in network {name}"
                ),
            );
        }
        insert_at(&mut dns.hosts, cmd, host);
    } else {
        match found.as_slice() {
            [] => {
                return err(
                    "host",
                    format!("couldn't locate a matching DNS HOST record in network {name}"),
                );
            }
            [i] => {
                if cmd == UpdateCommand::Modify {
                    dns.hosts[*i] = host;
                } else {
                    dns.hosts.remove(*i);
                }
            }
            _ => {
                return err(
                    "host",
                    format!("multiple matching DNS HOST records were found in network {name}"),
                );
            }
        }
    }
    if dns.is_empty() {
        net.dns = None;
    }
    Ok(())
}

fn dns_txt(net: &mut Network, p: &mut Parser, n: Node, cmd: UpdateCommand) -> R<()> {
    let txt = p.dns_txt(n, "txt", cmd == UpdateCommand::Delete)?;
    let name = net.name.clone();
    let dns = net.dns.get_or_insert_with(Dns::default);
    let found = dns.txts.iter().position(|t| t.name == txt.name);
    match (cmd, found) {
        (UpdateCommand::AddFirst | UpdateCommand::AddLast, Some(_)) => {
            return err(
                "txt",
                format!(
                    "there is already a DNS TXT record with name '{}' in network {name}",
                    txt.name
                ),
            );
        }
        (UpdateCommand::AddFirst | UpdateCommand::AddLast, None) => {
            insert_at(&mut dns.txts, cmd, txt)
        }
        (_, None) => {
            return err(
                "txt",
                format!("couldn't locate a matching DNS TXT record in network {name}"),
            );
        }
        (UpdateCommand::Modify, Some(i)) => dns.txts[i].value = txt.value,
        (UpdateCommand::Delete, Some(i)) => {
            dns.txts.remove(i);
        }
    }
    if dns.is_empty() {
        net.dns = None;
    }
    Ok(())
}

fn dns_srv(net: &mut Network, p: &mut Parser, n: Node, cmd: UpdateCommand) -> R<()> {
    if cmd == UpdateCommand::Modify {
        return err(
            "srv",
            "DNS SRV records cannot be modified, only added or deleted",
        );
    }
    let spec = p.dns_srv(n, "srv", cmd == UpdateCommand::Delete)?;
    let name = net.name.clone();
    let dns = net.dns.get_or_insert_with(Dns::default);
    let eq = |given: &Option<String>, have: &str| given.as_deref().is_none_or(|g| g == have);
    let eq_opt = |given: &Option<String>, have: &Option<String>| given.is_none() || given == have;
    let found: Vec<usize> = dns
        .srvs
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            eq_opt(&spec.domain, &s.domain)
                && eq(&spec.service, &s.service)
                && eq(&spec.protocol, &s.protocol)
                && eq_opt(&spec.target, &s.target)
        })
        .map(|(i, _)| i)
        .collect();
    if is_add(cmd) {
        if !found.is_empty() {
            return err(
                "srv",
                format!(
                    "there is already at least one DNS SRV record matching all specified fields in network {name}"
                ),
            );
        }
        let srv = DnsSrv {
            service: spec.service.unwrap_or_default(),
            protocol: spec.protocol.unwrap_or_default(),
            domain: spec.domain,
            target: spec.target,
            port: spec.port,
            priority: spec.priority,
            weight: spec.weight,
        };
        insert_at(&mut dns.srvs, cmd, srv);
    } else {
        match found.as_slice() {
            [] => {
                return err(
                    "srv",
                    format!("couldn't locate a matching DNS SRV record in network {name}"),
                );
            }
            [i] => {
                dns.srvs.remove(*i);
            }
            _ => {
                return err(
                    "srv",
                    format!(
                        "multiple DNS SRV records matching all specified fields were found in network {name}"
                    ),
                );
            }
        }
    }
    if dns.is_empty() {
        net.dns = None;
    }
    Ok(())
}
