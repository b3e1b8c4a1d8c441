//! Names as the engine compares them: lower-case ASCII "keys" without the trailing dot.
//!
//! Configured names are checked to contain only `[a-z0-9-_]` labels, while wire names are
//! rendered with every other byte escaped as `\DDD`. So a hostile label such as `a.b`, `A\r\n`
//! or one with NUL bytes can never be mistaken for a configured name or cross a label boundary.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// Why a configured or guest-supplied name is unusable.
pub(crate) fn check_name(s: &str) -> Result<String, String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if trimmed.is_empty() {
        return Err("is empty".to_string());
    }
    if trimmed.len() > 253 {
        return Err("is longer than 253 characters".to_string());
    }
    let lower = trimmed.to_ascii_lowercase();
    for label in lower.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty or over-long label".to_string());
        }
        if let Some(c) = label.chars().find(|c| !is_name_char(*c)) {
            return Err(format!("contains the invalid character {c:?}"));
        }
    }
    Ok(lower)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

/// The comparison key of a wire name: lower-case, dot-joined, no trailing dot ("" for the root).
pub(crate) fn key_of(name: &Name) -> String {
    let mut s = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        for &b in label {
            let c = char::from(b.to_ascii_lowercase());
            if is_name_char(c) {
                s.push(c);
            } else {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s
}

/// A wire name for an answer record built from a checked key.
pub(crate) fn name_of(key: &str) -> Option<Name> {
    if key.is_empty() {
        return Some(Name::root());
    }
    Name::from_ascii(format!("{key}.")).ok()
}

/// `key` is `zone` or below it.
pub(crate) fn in_zone(key: &str, zone: &str) -> bool {
    zone.is_empty()
        || key == zone
        || (key.len() > zone.len()
            && key.ends_with(zone)
            && key.as_bytes()[key.len() - zone.len() - 1] == b'.')
}

/// A dotless name (one label), what `forwardPlainNames='no'` keeps local.
pub(crate) fn is_plain(key: &str) -> bool {
    !key.is_empty() && !key.contains('.')
}

/// The address a full `in-addr.arpa` / `ip6.arpa` name stands for.
pub(crate) fn reverse_addr(key: &str) -> Option<IpAddr> {
    if let Some(rest) = key.strip_suffix(".in-addr.arpa") {
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        let mut o = [0u8; 4];
        for (i, p) in parts.iter().rev().enumerate() {
            // No leading zeros or signs: "01" is a different name than "1".
            if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
                return None;
            }
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            o[i] = p.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if let Some(rest) = key.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = rest.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for n in nibbles.iter().rev() {
            if n.len() != 1 {
                return None;
            }
            let d = u128::from(n.chars().next()?.to_digit(16)?);
            v = (v << 4) | d;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// The reverse-lookup key of an address.
pub(crate) fn reverse_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// The reverse zone of a subnet when its prefix falls on a label boundary (8 bits for IPv4,
/// 4 for IPv6), as dnsmasq's `local=/…arpa/` needs.
pub(crate) fn reverse_zone(ip: IpAddr, prefix: u8) -> Option<String> {
    let full = reverse_key(ip);
    let (labels_total, per_label, suffix_labels) = match ip {
        IpAddr::V4(_) => (4usize, 8u8, 2usize),
        IpAddr::V6(_) => (32usize, 4u8, 2usize),
    };
    if !prefix.is_multiple_of(per_label) {
        return None;
    }
    let keep = usize::from(prefix / per_label);
    let labels: Vec<&str> = full.split('.').collect();
    let skip = labels_total - keep.min(labels_total);
    debug_assert_eq!(labels.len(), labels_total + suffix_labels);
    Some(labels[skip..].join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_name_accepts_and_lowercases() {
        assert_eq!(check_name("Vm1.Example.COM.").unwrap(), "vm1.example.com");
        assert_eq!(check_name("_ldap._tcp").unwrap(), "_ldap._tcp");
    }

    #[test]
    fn check_name_rejects_control_and_junk() {
        for bad in [
            "a\nb", "a\rb", "a\0b", "a\u{7f}", "", ".", "a..b", "a b", "a,b", "ä", "a/b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name(&["a"; 128].join(".")).is_err());
    }

    #[test]
    fn key_escapes_hostile_bytes() {
        let n = Name::from_labels(vec![b"A.b".to_vec(), b"C\r".to_vec()]).unwrap();
        assert_eq!(key_of(&n), "a\\046b.c\\013");
        assert_eq!(key_of(&Name::root()), "");
        let n = Name::from_ascii("WWW.Example.com.").unwrap();
        assert_eq!(key_of(&n), "www.example.com");
    }

    #[test]
    fn zone_membership() {
        assert!(in_zone("a.example.com", "example.com"));
        assert!(in_zone("example.com", "example.com"));
        assert!(!in_zone("badexample.com", "example.com"));
        assert!(!in_zone("com", "example.com"));
        assert!(in_zone("anything", ""));
        assert!(is_plain("vm1"));
        assert!(!is_plain("vm1.lan"));
        assert!(!is_plain(""));
    }

    #[test]
    fn reverse_round_trip() {
        for ip in [
            "192.168.122.10".parse::<IpAddr>().unwrap(),
            "0.0.0.0".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "fe80::abcd:1".parse().unwrap(),
        ] {
            assert_eq!(reverse_addr(&reverse_key(ip)), Some(ip));
        }
        assert_eq!(
            reverse_key("192.168.122.10".parse().unwrap()),
            "10.122.168.192.in-addr.arpa"
        );
        assert!(reverse_key("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0.0.0.0.0"));
    }

    #[test]
    fn reverse_rejects_partial_and_odd() {
        for k in [
            "122.168.192.in-addr.arpa",
            "010.122.168.192.in-addr.arpa",
            "256.122.168.192.in-addr.arpa",
            "a.122.168.192.in-addr.arpa",
            "1.2.3.4.5.in-addr.arpa",
            "1.0.ip6.arpa",
            "example.com",
        ] {
            assert_eq!(reverse_addr(k), None, "{k}");
        }
    }

    #[test]
    fn reverse_zones() {
        let v4: IpAddr = "192.168.122.1".parse().unwrap();
        assert_eq!(
            reverse_zone(v4, 24).as_deref(),
            Some("122.168.192.in-addr.arpa")
        );
        assert_eq!(
            reverse_zone(v4, 16).as_deref(),
            Some("168.192.in-addr.arpa")
        );
        assert_eq!(reverse_zone(v4, 25), None);
        let v6: IpAddr = "2001:db8:ac10:fd01::1".parse().unwrap();
        assert_eq!(
            reverse_zone(v6, 64).as_deref(),
            Some("1.0.d.f.0.1.c.a.8.b.d.0.1.0.0.2.ip6.arpa")
        );
        assert_eq!(reverse_zone(v6, 62), None);
    }
}
