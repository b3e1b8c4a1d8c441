//! Semantic checks on a parsed (or hand-built) network: libvirt's parser rules plus stricter
//! ones for names and every string that ends up in a line-based config.

use std::net::IpAddr;

use crate::ModelError;
use crate::types::*;

mod dns;
mod forward;
mod ip;

use dns::check_dns;
use forward::check_vlan;
pub(crate) use ip::{ipv4_broadcast, reserved_network_addr};

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
