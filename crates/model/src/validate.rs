//! Semantic checks on a parsed (or hand-built) network: libvirt's parser rules plus stricter
//! ones for names and every string that ends up in a line-based config.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::ModelError;
use crate::types::*;

type R = Result<(), ModelError>;

fn fail(path: impl Into<String>, msg: impl Into<String>) -> R {
    Err(ModelError::new(path, msg))
}

/// Control characters (CR/LF included) are refused in every string that reaches a config
/// file: a dnsmasq CVE came from line breaks in DNS records.
fn no_ctrl(path: &str, what: &str, s: &str) -> R {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return fail(
            path,
            format!(
                "{what} '{}' contains a control character ({:?})",
                s.escape_debug(),
                c
            ),
        );
    }
    Ok(())
}

fn non_empty(path: &str, what: &str, s: &str) -> R {
    if s.is_empty() {
        return fail(path, format!("{what} must not be empty"));
    }
    no_ctrl(path, what, s)
}

/// DNS names: letters, digits, '-', '_' and '.'; no empty label except a trailing dot.
fn dns_name(path: &str, what: &str, s: &str) -> R {
    non_empty(path, what, s)?;
    if s.len() > 253 {
        return fail(path, format!("{what} '{s}' is longer than 253 characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return fail(
            path,
            format!("{what} '{s}' contains the invalid character {c:?}"),
        );
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if trimmed.split('.').any(|l| l.is_empty() || l.len() > 63) && s != "." {
        return fail(
            path,
            format!("{what} '{s}' has an empty or over-long label"),
        );
    }
    Ok(())
}

fn family_of(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

pub(crate) fn ipv4_broadcast(net: &ipnet::IpNet) -> Option<IpAddr> {
    match net {
        ipnet::IpNet::V4(n) if n.prefix_len() < 31 => Some(IpAddr::V4(n.broadcast())),
        _ => None,
    }
}

/// Network address for subnets where it is not a usable host (not /31, /32, /127, /128).
pub(crate) fn reserved_network_addr(net: &ipnet::IpNet) -> Option<IpAddr> {
    let usable_all = match net {
        ipnet::IpNet::V4(n) => n.prefix_len() >= 31,
        ipnet::IpNet::V6(n) => n.prefix_len() >= 127,
    };
    if usable_all {
        None
    } else {
        Some(net.network())
    }
}

/// The longest network name kvnet defines, in bytes of UTF-8: its files are named after
/// the network (`NAME.xml`, `.NAME.v6.jsonl.tmp`, `NAME.json.bad-TIME`) and a file name
/// may have 255 bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// kvnet's own rules for the name of a network it defines or creates, beyond libvirt's
/// (which refuses only '/'): each name becomes file names, which must not be hidden,
/// collide or be too long. A network an older kvnetd left running is still adopted.
pub fn check_name_for_files(n: &str) -> Result<(), ModelError> {
    let p = "network/name";
    let why = "kvnet names its files after networks; libvirt would accept it";
    if n.starts_with('.') {
        return fail(
            p,
            format!(
                "network name '{n}' must not start with '.' ({why}, but kvnet's file would be hidden and skipped)"
            ),
        );
    }
    if let Some(base) = n.strip_suffix(".v6") {
        return fail(
            p,
            format!(
                "network name '{n}' must not end in '.v6' ({why}, but its DHCP lease journal would be network '{base}''s DHCPv6 journal)"
            ),
        );
    }
    if n.len() > MAX_NAME_BYTES {
        return fail(
            p,
            format!(
                "network name is {} bytes long in UTF-8, more than kvnet's {MAX_NAME_BYTES} ({why}, but a file name may have only 255 bytes)",
                n.len()
            ),
        );
    }
    Ok(())
}

impl Network {
    /// Check everything libvirt's parser checks, and kvnet's stricter rules. `from_xml` calls it.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check_name()?;
        let mode = self.forward_mode();
        if let Some(t) = &self.title
            && (t.contains('\n') || t.contains('\r'))
        {
            return fail("network/title", "title must not contain newlines");
        }
        if let Some(t) = &self.title {
            no_ctrl("network/title", "title", t)?;
        }
        self.check_forward()?;
        self.check_bridge()?;
        if let Some(m) = self.mtu
            && !(68..=65535).contains(&m)
        {
            return fail(
                "network/mtu",
                format!("invalid mtu size {m}, expected 68..65535"),
            );
        }
        if let Some(m) = self.mac {
            if m.is_multicast() {
                return fail(
                    "network/mac",
                    format!("bridge MAC address {m} is multicast; a unicast address is required"),
                );
            }
            if m.is_zero() {
                return fail("network/mac", "bridge MAC address must not be all zeros");
            }
        }
        if let Some(d) = &self.domain {
            dns_name("network/domain", "domain name", &d.name)?;
            if d.register == Some(true) && d.local_only != Some(true) {
                return fail(
                    "network/domain",
                    "attribute register='yes' requires localOnly='yes'",
                );
            }
        }
        if let Some(d) = &self.dns {
            check_dns(d)?;
        }
        if let Some(v) = &self.vlan {
            check_vlan("network/vlan", v)?;
        }
        if self.bandwidth.is_some()
            && matches!(
                mode,
                ForwardMode::Private | ForwardMode::Passthrough | ForwardMode::Hostdev
            )
        {
            return fail(
                "network/bandwidth",
                format!("network-wide <bandwidth> is not supported with forward mode='{mode}'"),
            );
        }
        self.check_ips()?;
        self.check_routes()?;
        if let Some(vp) = &self.virtualport
            && vp.vp_type.is_none()
            && vp.has_parameters()
        {
            return fail(
                "network/virtualport",
                "a network-level <virtualport> needs a type",
            );
        }
        self.check_portgroups()?;
        for (i, o) in self.dnsmasq_options.iter().enumerate() {
            non_empty(
                &format!("network/dnsmasq:options/dnsmasq:option[{}]", i + 1),
                "dnsmasq option",
                o,
            )?;
        }
        // kvnet's own extension in <metadata>: after <ip>, whose subnets it refers to.
        self.check_kvnet()?;
        Ok(())
    }

    /// libvirt's driver-level checks made at define/create time (`networkValidate`): `<ip>`,
    /// `<dns>` records, `<domain>` and `<mac>` only make sense where kvnet owns the bridge.
    /// Not part of `from_xml`, because libvirt's XML round trip accepts them (passthrough-pf).
    pub fn validate_for_define(&self) -> Result<(), ModelError> {
        self.validate()?;
        check_name_for_files(&self.name)?;
        let mode = self.forward_mode();
        if mode.is_l3() {
            return Ok(());
        }
        if !self.ips.is_empty() {
            return fail(
                "network/ip[1]",
                format!("<ip> is not supported with forward mode='{mode}'"),
            );
        }
        if self
            .dns
            .as_ref()
            .is_some_and(|d| !d.txts.is_empty() || !d.srvs.is_empty() || !d.hosts.is_empty())
        {
            return fail(
                "network/dns",
                format!("<dns> records are not supported with forward mode='{mode}'"),
            );
        }
        if self.domain.is_some() {
            return fail(
                "network/domain",
                format!("<domain> is not supported with forward mode='{mode}'"),
            );
        }
        if self.mac.is_some() {
            return fail(
                "network/mac",
                format!("<mac> is not supported with forward mode='{mode}'"),
            );
        }
        Ok(())
    }

    fn check_name(&self) -> R {
        let p = "network/name";
        let n = &self.name;
        if n.is_empty() {
            return fail(p, "network name must not be empty");
        }
        if n.contains('/') {
            return fail(p, format!("network name '{n}' must not contain '/'"));
        }
        no_ctrl(p, "network name", n)?;
        if n == "." || n == ".." {
            return fail(p, format!("network name '{n}' is not allowed"));
        }
        if n.chars().count() > 64 {
            return fail(p, "network name is longer than 64 characters");
        }
        Ok(())
    }

    fn check_forward(&self) -> R {
        let Some(f) = &self.forward else {
            return Ok(());
        };
        let p = "network/forward";
        let mode = f.mode;
        if f.nat.is_some() && mode != ForwardMode::Nat {
            return fail(
                "network/forward/nat",
                "the <nat> element can only be used when <forward> 'mode' is 'nat'",
            );
        }
        if let Some(nat) = &f.nat {
            if let Some((s, e)) = nat.address
                && u32::from(s) > u32::from(e)
            {
                return fail(
                    "network/forward/nat/address",
                    format!("nat address range start {s} is after end {e}"),
                );
            }
            if let Some((s, e)) = nat.port
                && s > e
            {
                return fail(
                    "network/forward/nat/port",
                    format!("nat port range start {s} is after end {e}"),
                );
            }
        }
        if f.managed.is_some() && mode != ForwardMode::Hostdev {
            return fail(p, "attribute 'managed' is only valid with mode='hostdev'");
        }
        if f.driver.is_some() && mode != ForwardMode::Hostdev {
            return fail(
                "network/forward/driver",
                "<driver> is only valid with mode='hostdev'",
            );
        }
        if f.pf.is_some() && mode.is_l3() {
            return fail(
                "network/forward/pf",
                format!("<pf> is not allowed with forward mode='{mode}'"),
            );
        }
        if !f.addresses.is_empty()
            && !matches!(mode, ForwardMode::Hostdev | ForwardMode::Passthrough)
        {
            return fail(
                "network/forward/address[1]",
                format!(
                    "<address> is only allowed with mode='hostdev' or 'passthrough', not '{mode}'"
                ),
            );
        }
        if let Some(pf) = &f.pf {
            check_ifname("network/forward/pf", "pf dev", pf, false)?;
        }
        let mut seen = HashSet::new();
        for (i, ifc) in f.interfaces.iter().enumerate() {
            let ip = format!("network/forward/interface[{}]", i + 1);
            check_ifname(&ip, "interface dev", &ifc.dev, false)?;
            if !seen.insert(ifc.dev.as_str()) {
                return fail(
                    ip,
                    format!(
                        "forward interface element with device {} can only be listed once",
                        ifc.dev
                    ),
                );
            }
        }
        let mut seen = HashSet::new();
        for (i, a) in f.addresses.iter().enumerate() {
            if !seen.insert(*a) {
                return fail(
                    format!("network/forward/address[{}]", i + 1),
                    format!("PCI device '{a}' can only be listed once"),
                );
            }
        }
        if let (Some(d), Some(first)) = (&f.dev, f.interfaces.first())
            && *d != first.dev
        {
            return fail(
                p,
                format!(
                    "forward dev '{d}' must match first interface element dev '{}'",
                    first.dev
                ),
            );
        }
        match mode {
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open => {
                if self.ips.is_empty() {
                    return fail(
                        p,
                        format!("{mode} forwarding requested, but no IP address provided"),
                    );
                }
                if f.interfaces.len() > 1 {
                    return fail(
                        p,
                        "multiple forwarding interfaces specified, only one is supported",
                    );
                }
                if mode == ForwardMode::Open && !f.interfaces.is_empty() {
                    return fail(p, "forward dev not allowed with forward mode='open'");
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_bridge(&self) -> R {
        let mode = self.forward_mode();
        let Some(b) = &self.bridge else { return Ok(()) };
        let p = "network/bridge";
        if let Some(n) = &b.name {
            check_ifname(p, "bridge name", n, true)?;
        }
        if let Some(z) = &b.zone {
            non_empty(p, "bridge zone", z)?;
        }
        match mode {
            ForwardMode::Private
            | ForwardMode::Vepa
            | ForwardMode::Passthrough
            | ForwardMode::Hostdev => {
                if b.name.is_some() {
                    return fail(p, format!("bridge name not allowed in {mode} mode"));
                }
                if b.zone.is_some() {
                    return fail(p, format!("bridge zone not allowed in {mode} mode"));
                }
                if b.mac_table_manager.is_some() {
                    return fail(
                        p,
                        format!("bridge macTableManager setting not allowed in {mode} mode"),
                    );
                }
            }
            _ => {}
        }
        if !mode.is_l3() && (b.stp.is_some() || b.delay.is_some() || b.zone.is_some()) {
            return fail(
                p,
                format!(
                    "bridge delay/stp/zone options only allowed in route, nat, open and isolated mode, not in {mode}"
                ),
            );
        }
        if mode == ForwardMode::Bridge
            && b.name.is_some()
            && self
                .forward
                .as_ref()
                .is_some_and(|f| !f.interfaces.is_empty() || f.pf.is_some())
        {
            return fail(
                p,
                "a network with forward mode='bridge' can specify a bridge name or a forward dev, but not both",
            );
        }
        Ok(())
    }

    fn check_ips(&self) -> R {
        let mut dhcp4 = false;
        let mut dhcp6 = false;
        for (i, ip) in self.ips.iter().enumerate() {
            let p = format!("network/ip[{}]", i + 1);
            check_ip(&p, ip)?;
            if ip.has_dhcp() {
                let seen = if ip.is_ipv6() { &mut dhcp6 } else { &mut dhcp4 };
                if *seen {
                    let fam = if ip.is_ipv6() { "IPv6" } else { "IPv4" };
                    return fail(
                        format!("{p}/dhcp"),
                        format!(
                            "multiple {fam} dhcp sections found -- dhcp is supported only for a single {fam} address on each network"
                        ),
                    );
                }
                *seen = true;
            }
        }
        Ok(())
    }

    fn check_routes(&self) -> R {
        for (i, r) in self.routes.iter().enumerate() {
            let p = format!("network/route[{}]", i + 1);
            let v6 = check_family(&p, "route", r.family.as_deref(), r.address)?;
            if r.netmask.is_some() && r.prefix.is_some() {
                return fail(p, "route cannot have both a prefix and a netmask");
            }
            if v6 && r.netmask.is_some() {
                return fail(p, "netmask is not allowed for an IPv6 route, use prefix");
            }
            if let Some(m) = r.netmask
                && netmask_bits(m).is_none()
            {
                return fail(p, format!("invalid netmask '{m}'"));
            }
            let max = if v6 { 128 } else { 32 };
            if let Some(pr) = r.prefix
                && pr > max
            {
                return fail(
                    p,
                    format!("invalid prefix {pr} for an {} route", family_of(r.address)),
                );
            }
            if r.gateway.is_ipv6() != v6 {
                return fail(
                    p,
                    format!(
                        "gateway {} is not an {} address",
                        r.gateway,
                        family_of(r.address)
                    ),
                );
            }
            if r.metric == Some(0) {
                return fail(p, "route metric must be greater than 0");
            }
            let dest = r.destination();
            if dest.addr() != r.address {
                return fail(
                    p,
                    format!(
                        "route address {} is not a network address for prefix {}",
                        r.address,
                        r.prefix_len()
                    ),
                );
            }
            let reachable = self
                .ips
                .iter()
                .any(|ip| ip.is_ipv6() == v6 && ip.network().contains(&r.gateway));
            if !reachable {
                return fail(
                    p,
                    format!(
                        "unreachable static route gateway '{}': not in any of the network's subnets",
                        r.gateway
                    ),
                );
            }
        }
        Ok(())
    }

    fn check_portgroups(&self) -> R {
        let mode = self.forward_mode();
        let mut names = HashSet::new();
        let mut default = false;
        for (i, pg) in self.portgroups.iter().enumerate() {
            let p = format!("network/portgroup[{}]", i + 1);
            non_empty(&p, "portgroup name", &pg.name)?;
            if !names.insert(pg.name.as_str()) {
                return fail(
                    p,
                    format!("multiple portgroups with the same name '{}'", pg.name),
                );
            }
            if pg.is_default {
                if default {
                    return fail(
                        p,
                        format!(
                            "portgroup '{}' is a second default portgroup; only one is allowed",
                            pg.name
                        ),
                    );
                }
                default = true;
            }
            if let Some(v) = &pg.vlan {
                check_vlan(&format!("{p}/vlan"), v)?;
            }
            if pg.bandwidth.is_some()
                && matches!(
                    mode,
                    ForwardMode::Private | ForwardMode::Passthrough | ForwardMode::Hostdev
                )
            {
                return fail(
                    format!("{p}/bandwidth"),
                    format!(
                        "<bandwidth> in portgroup '{}' is not supported with forward mode='{mode}'",
                        pg.name
                    ),
                );
            }
            if let Some(vp) = &pg.virtualport
                && let Some(pid) = &vp.profileid
            {
                non_empty(&format!("{p}/virtualport"), "profileid", pid)?;
            }
        }
        if let Some(vp) = &self.virtualport
            && let Some(pid) = &vp.profileid
        {
            non_empty("network/virtualport", "profileid", pid)?;
        }
        Ok(())
    }
}

/// Interface names: [`crate::ifname::check`]. Bridges kvnet creates are held to
/// letters, digits and `_.-`, plus one `%d` template (which the kernel completes).
fn check_ifname(p: &str, what: &str, n: &str, bridge: bool) -> R {
    non_empty(p, what, n)?;
    let checked = if bridge {
        n.replacen("%d", "0", 1)
    } else {
        n.to_string()
    };
    let created = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let res = crate::ifname::check(&checked).and_then(|()| {
        match checked.chars().find(|c| bridge && !created(c)) {
            Some(c) => Err(crate::ifname::IfnameError::BadChar(c)),
            None => Ok(()),
        }
    });
    res.or_else(|e| fail(p, format!("{what} '{n}' {e}")))
}

/// Returns whether the address is IPv6, after checking it agrees with `family`.
fn check_family(
    p: &str,
    what: &str,
    family: Option<&str>,
    addr: IpAddr,
) -> Result<bool, ModelError> {
    match family {
        None => {
            if addr.is_ipv6() {
                return Err(ModelError::new(
                    p,
                    format!(
                        "no family specified for non-IPv4 address '{addr}' in {what}; add family='ipv6'"
                    ),
                ));
            }
            Ok(false)
        }
        Some("ipv4") => {
            if addr.is_ipv6() {
                return Err(ModelError::new(
                    p,
                    format!("family 'ipv4' specified for non-IPv4 address '{addr}'"),
                ));
            }
            Ok(false)
        }
        Some("ipv6") => {
            if addr.is_ipv4() {
                return Err(ModelError::new(
                    p,
                    format!("family 'ipv6' specified for non-IPv6 address '{addr}'"),
                ));
            }
            Ok(true)
        }
        Some(f) => Err(ModelError::new(
            p,
            format!("unrecognized family '{f}', expected 'ipv4' or 'ipv6'"),
        )),
    }
}

fn check_ip(p: &str, ip: &IpDef) -> R {
    let v6 = check_family(p, "<ip>", ip.family.as_deref(), ip.address)?;
    if ip.address.is_unspecified() || ip.address.is_multicast() {
        return fail(
            p,
            format!("{} is not a usable interface address", ip.address),
        );
    }
    if ip.netmask.is_some() && ip.prefix.is_some() {
        return fail(p, "an <ip> cannot have both a prefix and a netmask");
    }
    if v6 && ip.netmask.is_some() {
        return fail(
            p,
            format!(
                "netmask not supported for IPv6 address '{}', use prefix",
                ip.address
            ),
        );
    }
    if let Some(m) = ip.netmask {
        match netmask_bits(m) {
            None => return fail(p, format!("invalid netmask '{m}': not contiguous")),
            Some(0) => return fail(p, format!("invalid netmask '{m}'")),
            Some(_) => {}
        }
    }
    let max = if v6 { 128 } else { 32 };
    match ip.prefix {
        Some(0) => return fail(p, "prefix must be greater than 0"),
        Some(x) if x > max => {
            return fail(p, format!("invalid {} prefix {x}", family_of(ip.address)));
        }
        _ => {}
    }
    if ip.prefix.is_none() && ip.netmask.is_none() && natural_prefix(ip.address).is_none() {
        return fail(
            p,
            format!(
                "cannot determine a default prefix for {}; give prefix or netmask",
                ip.address
            ),
        );
    }
    let net = ip.network();
    if reserved_network_addr(&net) == Some(ip.address) {
        return fail(
            p,
            format!("address {} is the network address of {net}", ip.address),
        );
    }
    if ipv4_broadcast(&net) == Some(ip.address) {
        return fail(
            p,
            format!("address {} is the broadcast address of {net}", ip.address),
        );
    }
    if let Some(t) = &ip.tftp_root {
        if v6 {
            return fail(
                format!("{p}/tftp"),
                "<tftp> is only supported on an IPv4 address",
            );
        }
        non_empty(&format!("{p}/tftp"), "tftp root", t)?;
    }
    let Some(d) = &ip.dhcp else { return Ok(()) };
    let dp = format!("{p}/dhcp");
    for (i, r) in d.ranges.iter().enumerate() {
        check_range(&format!("{dp}/range[{}]", i + 1), ip, &net, r)?;
    }
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for (i, h) in d.hosts.iter().enumerate() {
        let hp = format!("{dp}/host[{}]", i + 1);
        check_dhcp_host(&hp, ip, &net, h)?;
        if let Some(m) = h.mac
            && !macs.insert(m)
        {
            return fail(hp, format!("duplicate dhcp host mac {m}"));
        }
        if let Some(a) = h.ip
            && !ips.insert(a)
        {
            return fail(hp, format!("duplicate dhcp host ip {a}"));
        }
        if let Some(n) = &h.name
            && !names.insert(n.to_ascii_lowercase())
        {
            return fail(hp, format!("duplicate dhcp host name '{n}'"));
        }
        if let Some(x) = &h.id
            && !ids.insert(x.as_str())
        {
            return fail(hp, format!("duplicate dhcp host id '{x}'"));
        }
    }
    if let Some(b) = &d.bootp {
        let bp = format!("{dp}/bootp");
        if v6 {
            return fail(bp, "<bootp> is only supported on an IPv4 address");
        }
        non_empty(&bp, "bootp file", &b.file)?;
        if b.file.contains(',') {
            return fail(bp, format!("bootp file '{}' must not contain ','", b.file));
        }
        if let Some(s) = b.server
            && s.is_ipv6()
        {
            return fail(bp, format!("bootp server {s} is not an IPv4 address"));
        }
    }
    Ok(())
}

fn check_lease(p: &str, l: &Lease) -> R {
    if let Some(s) = l.seconds()
        && s < 120
    {
        return fail(
            format!("{p}/lease"),
            "the minimum lease time is 2 minutes (120 seconds), or 0 for infinite",
        );
    }
    Ok(())
}

fn check_range(p: &str, ip: &IpDef, net: &ipnet::IpNet, r: &DhcpRange) -> R {
    for (what, a) in [("start", r.start), ("end", r.end)] {
        if a.is_ipv6() != ip.is_ipv6() {
            return fail(
                p,
                format!(
                    "range {what} {a} is not an {} address like the network's",
                    family_of(ip.address)
                ),
            );
        }
        if !net.contains(&a) {
            return fail(p, format!("range {what} {a} is outside the network {net}"));
        }
    }
    if r.start > r.end {
        return fail(p, format!("range start {} is after end {}", r.start, r.end));
    }
    let covers = |a: IpAddr| r.start <= a && a <= r.end;
    if let Some(n) = reserved_network_addr(net)
        && covers(n)
    {
        return fail(
            p,
            format!(
                "range {} - {} includes the network address {n}",
                r.start, r.end
            ),
        );
    }
    if let Some(b) = ipv4_broadcast(net)
        && covers(b)
    {
        return fail(
            p,
            format!(
                "range {} - {} includes the broadcast address {b}",
                r.start, r.end
            ),
        );
    }
    if covers(ip.address) {
        return fail(
            p,
            format!(
                "range {} - {} includes the network's own address {}",
                r.start, r.end, ip.address
            ),
        );
    }
    if let Some(l) = &r.lease {
        check_lease(p, l)?;
    }
    Ok(())
}

pub(crate) fn check_dhcp_host(p: &str, ip: &IpDef, net: &ipnet::IpNet, h: &DhcpHost) -> R {
    let v6 = ip.is_ipv6();
    if let Some(m) = h.mac {
        if v6 {
            return fail(
                p,
                format!("invalid to specify MAC address '{m}' in an IPv6 static host definition"),
            );
        }
        if m.is_multicast() {
            return fail(
                p,
                format!("expected unicast mac address, found multicast '{m}'"),
            );
        }
    }
    if v6 {
        if h.id.is_none() && h.name.is_none() {
            return fail(
                p,
                "static host definition in an IPv6 network must have id or name attribute",
            );
        }
    } else if h.mac.is_none() && h.name.is_none() {
        return fail(
            p,
            "static host definition in an IPv4 network must have mac or name attribute",
        );
    }
    if let Some(id) = &h.id {
        non_empty(p, "host id", id)?;
        if let Some(c) = id.chars().find(|c| c.is_whitespace() || *c == ',') {
            return fail(
                p,
                format!("host id '{id}' contains the invalid character {c:?}"),
            );
        }
    }
    if let Some(n) = &h.name {
        dns_name(p, "host name", n)?;
    }
    if let Some(a) = h.ip {
        if a.is_ipv6() != v6 {
            return fail(
                p,
                format!(
                    "host ip {a} is not an {} address like the network's",
                    family_of(ip.address)
                ),
            );
        }
        if !net.contains(&a) {
            return fail(p, format!("host ip {a} is outside the network {net}"));
        }
        if a == ip.address
            || reserved_network_addr(net) == Some(a)
            || ipv4_broadcast(net) == Some(a)
        {
            return fail(
                p,
                format!("host ip {a} is the network's own, network or broadcast address"),
            );
        }
    }
    if let Some(l) = &h.lease {
        check_lease(p, l)?;
    }
    Ok(())
}

fn check_dns(d: &Dns) -> R {
    let p = "network/dns";
    if d.enable == Some(false) && (d.has_content() || d.forward_plain_names.is_some()) {
        return fail(
            p,
            "extra data in disabled network DNS: <dns enable='no'> must be empty",
        );
    }
    for (i, f) in d.forwarders.iter().enumerate() {
        let fp = format!("{p}/forwarder[{}]", i + 1);
        if f.addr.is_none() && f.domain.is_none() {
            return fail(
                fp,
                "invalid forwarder element, must contain at least one of addr or domain",
            );
        }
        if let Some(dom) = &f.domain {
            dns_name(&fp, "forwarder domain", dom)?;
        }
        if f.port.is_some() && f.addr.is_none() {
            return fail(fp, "forwarder port needs an addr");
        }
    }
    let mut txt_names = HashSet::new();
    for (i, t) in d.txts.iter().enumerate() {
        let tp = format!("{p}/txt[{}]", i + 1);
        non_empty(&tp, "DNS TXT record name", &t.name)?;
        if t.name.contains(' ') || t.name.contains(',') {
            return fail(
                tp,
                format!(
                    "prohibited space or comma in DNS TXT record name '{}'",
                    t.name
                ),
            );
        }
        dns_name(&tp, "DNS TXT record name", &t.name)?;
        no_ctrl(&tp, "DNS TXT record value", &t.value)?;
        if !txt_names.insert(t.name.as_str()) {
            return fail(tp, format!("duplicate DNS TXT record name '{}'", t.name));
        }
    }
    for (i, s) in d.srvs.iter().enumerate() {
        check_srv(&format!("{p}/srv[{}]", i + 1), s)?;
    }
    for (i, h) in d.hosts.iter().enumerate() {
        let hp = format!("{p}/host[{}]", i + 1);
        if h.ip.is_none() {
            return fail(hp, "missing IP address in DNS host record");
        }
        if h.hostnames.is_empty() {
            return fail(hp, "DNS host record needs at least one <hostname>");
        }
        for (j, n) in h.hostnames.iter().enumerate() {
            dns_name(&format!("{hp}/hostname[{}]", j + 1), "hostname", n)?;
        }
    }
    Ok(())
}

fn check_srv(p: &str, s: &DnsSrv) -> R {
    non_empty(p, "SRV service", &s.service)?;
    if s.service.len() > 15 {
        return fail(
            p,
            format!("SRV service '{}' is longer than 15 characters", s.service),
        );
    }
    if let Some(c) = s
        .service
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        return fail(
            p,
            format!(
                "SRV service '{}' contains the invalid character {c:?}",
                s.service
            ),
        );
    }
    if s.protocol != "tcp" && s.protocol != "udp" {
        return fail(
            p,
            format!(
                "invalid SRV protocol '{}', expected 'tcp' or 'udp'",
                s.protocol
            ),
        );
    }
    if let Some(d) = &s.domain {
        dns_name(p, "SRV domain", d)?;
    }
    if let Some(t) = &s.target {
        dns_name(p, "SRV target", t)?;
    }
    if s.target.is_none() {
        for (what, v) in [
            ("port", s.port),
            ("priority", s.priority),
            ("weight", s.weight),
        ] {
            if v.is_some() {
                return fail(p, format!("SRV {what} needs a target"));
            }
        }
    }
    Ok(())
}

fn check_vlan(p: &str, v: &Vlan) -> R {
    if v.tags.is_empty() {
        return fail(p, "missing vlan tag data");
    }
    if v.tags.len() > 1 && v.trunk == Some(false) {
        return fail(p, "invalid trunk='no' with multiple VLAN tags");
    }
    let mut native = false;
    for (i, t) in v.tags.iter().enumerate() {
        let tp = format!("{p}/tag[{}]", i + 1);
        if t.id > 4095 {
            return fail(
                tp,
                format!("vlan tag id {} is out of range (0..4095)", t.id),
            );
        }
        if t.native_mode.is_some() {
            if native {
                return fail(tp, "only one vlan tag can have nativeMode");
            }
            native = true;
        }
    }
    Ok(())
}
