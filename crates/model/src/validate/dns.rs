//! Checks on `<dns>`: forwarders and the TXT, SRV and host records.

use std::collections::HashSet;

use super::{R, dns_name, fail, no_ctrl, non_empty};
use crate::types::*;

pub(super) fn check_dns(d: &Dns) -> R {
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
