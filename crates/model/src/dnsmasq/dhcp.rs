//! `dhcp-option`, `dhcp-option-force` and `dhcp-boot` read with dnsmasq's meaning
//! (dnsmasq(8), `--dhcp-option`): values typed by the option's name or number, or, for
//! numbers kvnet has no type for, guessed the way dnsmasq guesses them.

use std::net::Ipv4Addr;

use super::DnsmasqOption;

/// An extra DHCPv4 option for kvnet's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOpt {
    pub code: u8,
    pub value: DhcpValue,
    /// `dhcp-option-force`: sent even when the client's parameter request list (55) does
    /// not ask for it.
    pub force: bool,
    /// `tag:known` (Some(true)) / `tag:!known` (Some(false)): only for clients that have
    /// (have no) `<host>` entry.
    pub known: Option<bool>,
}

/// An option's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpValue {
    /// IPv4 addresses; 0.0.0.0 stands for the server's own address.
    Addrs(Vec<Ipv4Addr>),
    /// The data as sent. Empty for the options dnsmasq has defaults for (1, 3, 6, 12, 15,
    /// 28) means "send none".
    Bytes(Vec<u8>),
}

/// `dhcp-boot`: the BOOTP file, server name and next-server fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpBoot {
    pub file: String,
    pub server_name: Option<String>,
    /// None: the server's own address, as dnsmasq does.
    pub server_addr: Option<Ipv4Addr>,
    pub known: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Addrs,
    Text,
    /// A number of this many bytes.
    Dec(u8),
    /// RFC 3397 domain list (119).
    Domains,
    /// RFC 3361 SIP servers (120): addresses or names.
    Sip,
    /// No type: guessed from the value.
    Guess,
}

/// dnsmasq's option names (`dnsmasq --help dhcp`), the commonly used ones.
const NAMES: &[(&str, u8, Kind)] = &[
    ("netmask", 1, Kind::Addrs),
    ("time-offset", 2, Kind::Dec(4)),
    ("router", 3, Kind::Addrs),
    ("dns-server", 6, Kind::Addrs),
    ("log-server", 7, Kind::Addrs),
    ("lpr-server", 9, Kind::Addrs),
    ("hostname", 12, Kind::Text),
    ("boot-file-size", 13, Kind::Dec(2)),
    ("domain-name", 15, Kind::Text),
    ("swap-server", 16, Kind::Addrs),
    ("root-path", 17, Kind::Text),
    ("extension-path", 18, Kind::Text),
    ("ip-forward-enable", 19, Kind::Dec(1)),
    ("non-local-source-routing", 20, Kind::Dec(1)),
    ("policy-filter", 21, Kind::Addrs),
    ("max-datagram-reassembly", 22, Kind::Dec(2)),
    ("default-ttl", 23, Kind::Dec(1)),
    ("mtu", 26, Kind::Dec(2)),
    ("all-subnets-local", 27, Kind::Dec(1)),
    ("broadcast", 28, Kind::Addrs),
    ("router-discovery", 31, Kind::Dec(1)),
    ("router-solicitation", 32, Kind::Addrs),
    ("static-route", 33, Kind::Addrs),
    ("trailer-encapsulation", 34, Kind::Dec(1)),
    ("arp-timeout", 35, Kind::Dec(4)),
    ("ethernet-encap", 36, Kind::Dec(1)),
    ("tcp-ttl", 37, Kind::Dec(1)),
    ("tcp-keepalive", 38, Kind::Dec(4)),
    ("nis-domain", 40, Kind::Text),
    ("nis-server", 41, Kind::Addrs),
    ("ntp-server", 42, Kind::Addrs),
    ("netbios-ns", 44, Kind::Addrs),
    ("netbios-dd", 45, Kind::Addrs),
    ("netbios-nodetype", 46, Kind::Dec(1)),
    ("netbios-scope", 47, Kind::Guess),
    ("x-windows-fs", 48, Kind::Addrs),
    ("x-windows-dm", 49, Kind::Addrs),
    ("T1", 58, Kind::Dec(4)),
    ("T2", 59, Kind::Dec(4)),
    ("vendor-class", 60, Kind::Guess),
    ("nis+-domain", 64, Kind::Text),
    ("nis+-server", 65, Kind::Addrs),
    ("tftp-server", 66, Kind::Text),
    ("bootfile-name", 67, Kind::Text),
    ("mobile-ip-home", 68, Kind::Addrs),
    ("smtp-server", 69, Kind::Addrs),
    ("pop3-server", 70, Kind::Addrs),
    ("nntp-server", 71, Kind::Addrs),
    ("irc-server", 74, Kind::Addrs),
    ("user-class", 77, Kind::Guess),
    ("client-arch", 93, Kind::Dec(2)),
    ("posix-timezone", 100, Kind::Text),
    ("tzdb-timezone", 101, Kind::Text),
    ("domain-search", 119, Kind::Domains),
    ("sip-server", 120, Kind::Sip),
    ("classless-static-route", 121, Kind::Guess),
    ("vendor-id-encap", 125, Kind::Guess),
    ("tftp-server-address", 150, Kind::Addrs),
];

/// Options the server itself owns (message type, lease time, identifiers, overload…):
/// an admin's value would break the exchange.
const OWN: &[u8] = &[0, 50, 51, 52, 53, 54, 55, 56, 57, 61, 81, 82, 118, 255];

fn kind_of(code: u8) -> Kind {
    NAMES
        .iter()
        .find(|(_, c, _)| *c == code)
        .map_or(Kind::Guess, |(_, _, k)| *k)
}

/// What a tag list means for kvnet's clients: `Ok(None)` every client, `Ok(Some(k))` only
/// those with (k) or without (!k) a `<host>` entry.
fn tags(list: &[&str], bridge: Option<&str>) -> Result<Option<bool>, DnsmasqOption> {
    let unsupported = |why: String| DnsmasqOption::Unsupported {
        option: String::new(),
        why,
    };
    let mut known = None;
    for t in list {
        let (neg, name) = match t.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, *t),
        };
        // Every request is tagged with its interface (the bridge); BOOTP requests with
        // `bootp`, which kvnet does not serve.
        let always = match name {
            "known" => {
                if known.is_some_and(|k| k == neg) {
                    return Err(unsupported("tag:known and tag:!known never match".into()));
                }
                known = Some(!neg);
                continue;
            }
            "bootp" => false,
            n if Some(n) == bridge => true,
            n => {
                return Err(unsupported(format!(
                    "tag '{n}' is set by nothing kvnet applies (only known, !known and the \
                     bridge's name are)"
                )));
            }
        };
        if always == neg {
            return Err(unsupported(format!("tag:{t} never matches on kvnet")));
        }
    }
    Ok(known)
}

/// The leading `tag:`/`net:` items of `fields`, and the rest.
fn split_tags<'a>(fields: &[&'a str]) -> (Vec<&'a str>, usize) {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(t) = fields
        .get(i)
        .and_then(|f| f.strip_prefix("tag:").or_else(|| f.strip_prefix("net:")))
    {
        out.push(t);
        i += 1;
    }
    (out, i)
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
}

/// `1234`, `12b`, `12s`, `12i`: the number and its forced size.
fn decimal(s: &str) -> Option<(u64, Option<u8>)> {
    let (digits, size) = match s.as_bytes().last()? {
        b'b' => (&s[..s.len() - 1], Some(1)),
        b's' => (&s[..s.len() - 1], Some(2)),
        b'i' => (&s[..s.len() - 1], Some(4)),
        _ => (s, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, size))
}

fn encode_dec(v: u64, size: u8, what: &str) -> Result<Vec<u8>, String> {
    let max = if size == 4 {
        u64::from(u32::MAX)
    } else {
        (1u64 << (8 * size)) - 1
    };
    if v > max {
        return Err(format!("{what} {v} does not fit in {size} byte(s)"));
    }
    Ok(v.to_be_bytes()[8 - usize::from(size)..].to_vec())
}

/// `a.b.c.d` or `a.b.c.d/N` (RFC 3442: width, then the significant octets).
enum AddrItem {
    Plain(Ipv4Addr),
    Prefix(Vec<u8>),
}

fn addr_item(s: &str) -> Option<AddrItem> {
    match s.split_once('/') {
        None => s.parse().ok().map(AddrItem::Plain),
        Some((a, n)) => {
            let a: Ipv4Addr = a.parse().ok()?;
            let n: u8 = n.parse().ok().filter(|n| *n <= 32)?;
            let mut out = vec![n];
            out.extend_from_slice(&a.octets()[..usize::from(n.div_ceil(8))]);
            Some(AddrItem::Prefix(out))
        }
    }
}

fn addrs(items: &[&str]) -> Option<DhcpValue> {
    let parsed: Vec<AddrItem> = items.iter().map(|i| addr_item(i)).collect::<Option<_>>()?;
    if parsed.iter().all(|p| matches!(p, AddrItem::Plain(_))) {
        return Some(DhcpValue::Addrs(
            parsed
                .into_iter()
                .filter_map(|p| match p {
                    AddrItem::Plain(a) => Some(a),
                    AddrItem::Prefix(_) => None,
                })
                .collect(),
        ));
    }
    let mut out = Vec::new();
    for p in parsed {
        match p {
            AddrItem::Plain(a) => out.extend_from_slice(&a.octets()),
            AddrItem::Prefix(b) => out.extend(b),
        }
    }
    Some(DhcpValue::Bytes(out))
}

/// RFC 1035 wire form of names (no compression, which RFC 3397 allows but does not need).
fn wire_names(items: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for n in items {
        let n = n.trim_end_matches('.');
        for label in n.split('.') {
            if label.is_empty()
                || label.len() > 63
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("'{n}' is not a domain name"));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    Ok(out)
}

fn is_hex(s: &str) -> bool {
    s.contains(':')
        && s.split(':')
            .all(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The data of option `code` from its comma-separated value.
fn value(code: u8, raw: &str) -> Result<DhcpValue, String> {
    let items: Vec<&str> = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split(',').map(str::trim).collect()
    };
    if items.is_empty() {
        return Ok(DhcpValue::Bytes(Vec::new()));
    }
    // Quotes force a literal string, whatever the option.
    if let Some(s) = unquote(raw) {
        return Ok(DhcpValue::Bytes(s.as_bytes().to_vec()));
    }
    if items.iter().any(|i| i.starts_with('[')) {
        return Err("IPv6 addresses belong in option6: options".into());
    }
    match kind_of(code) {
        Kind::Addrs => match addrs(&items) {
            Some(DhcpValue::Addrs(a)) => Ok(DhcpValue::Addrs(a)),
            Some(v) if code == 33 || code == 21 => Ok(v),
            _ => Err(format!("'{raw}' is not a list of IPv4 addresses")),
        },
        Kind::Text => Ok(DhcpValue::Bytes(raw.as_bytes().to_vec())),
        Kind::Dec(size) => match (items.as_slice(), decimal(raw)) {
            ([_], Some((v, forced))) => Ok(DhcpValue::Bytes(encode_dec(
                v,
                forced.unwrap_or(size),
                "value",
            )?)),
            _ => Err(format!("'{raw}' is not a number")),
        },
        Kind::Domains => Ok(DhcpValue::Bytes(wire_names(&items)?)),
        Kind::Sip => match addrs(&items) {
            Some(DhcpValue::Addrs(a)) => {
                let mut out = vec![1];
                a.iter().for_each(|a| out.extend_from_slice(&a.octets()));
                Ok(DhcpValue::Bytes(out))
            }
            _ => {
                let mut out = vec![0];
                out.extend(wire_names(&items)?);
                Ok(DhcpValue::Bytes(out))
            }
        },
        Kind::Guess => {
            if let Some(v) = addrs(&items) {
                return Ok(v);
            }
            if let ([_], Some((v, forced))) = (items.as_slice(), decimal(raw)) {
                // dnsmasq's rule: the smallest of 1, 2 or 4 bytes that holds it.
                let size = forced.unwrap_or(match v {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    _ => 4,
                });
                return Ok(DhcpValue::Bytes(encode_dec(v, size, "value")?));
            }
            if is_hex(raw) {
                let bytes = raw
                    .split(':')
                    .map(|p| u8::from_str_radix(p, 16).expect("checked hex"))
                    .collect();
                return Ok(DhcpValue::Bytes(bytes));
            }
            Ok(DhcpValue::Bytes(raw.as_bytes().to_vec()))
        }
    }
}

/// `dhcp-option` / `dhcp-option-force` (`force`).
pub(super) fn dhcp_option(v: &str, force: bool, bridge: Option<&str>) -> DnsmasqOption {
    let name = if force {
        "dhcp-option-force"
    } else {
        "dhcp-option"
    };
    let invalid = |why: String| DnsmasqOption::Invalid {
        option: name.into(),
        why,
    };
    let unsupported = |why: &str| DnsmasqOption::Unsupported {
        option: name.into(),
        why: why.into(),
    };
    let fields: Vec<&str> = v.split(',').map(str::trim).collect();
    let (tag_list, mut i) = split_tags(&fields);
    let known = match tags(&tag_list, bridge) {
        Ok(k) => k,
        Err(DnsmasqOption::Unsupported { why, .. }) => return unsupported(&why),
        Err(o) => return o,
    };
    let Some(&spec) = fields.get(i).filter(|s| !s.is_empty()) else {
        return invalid("needs an option number or option:NAME".into());
    };
    i += 1;
    for prefix in ["encap:", "vi-encap:", "vendor:"] {
        if spec.starts_with(prefix) {
            return unsupported(&format!(
                "{prefix} (encapsulated and vendor options) are not sent by kvnet"
            ));
        }
    }
    if spec.starts_with("option6:") {
        return unsupported("DHCPv6 options (option6:) are not sent by kvnet");
    }
    if spec.starts_with("set:") {
        return invalid("set: does not belong in dhcp-option (only tag:)".into());
    }
    let code = if let Some(n) = spec.strip_prefix("option:") {
        match NAMES.iter().find(|(name, _, _)| *name == n) {
            Some((_, c, _)) => *c,
            None => return invalid(format!("unknown option name '{n}'")),
        }
    } else {
        match spec.parse::<u8>() {
            Ok(c) => c,
            Err(_) => return invalid(format!("'{spec}' is not an option number (1-254)")),
        }
    };
    if OWN.contains(&code) {
        return invalid(format!("option {code} is kvnet's DHCP server's own"));
    }
    let raw = fields[i.min(fields.len())..].join(",");
    match value(code, &raw) {
        Ok(value) => DnsmasqOption::DhcpOption(DhcpOpt {
            code,
            value,
            force,
            known,
        }),
        Err(why) => invalid(format!("option {code}: {why}")),
    }
}

/// `dhcp-boot=[tag:T,]FILE[,SERVERNAME[,SERVERADDR]]`.
pub(super) fn dhcp_boot(v: &str, bridge: Option<&str>) -> DnsmasqOption {
    let fields: Vec<&str> = v.split(',').map(str::trim).collect();
    let (tag_list, i) = split_tags(&fields);
    let known = match tags(&tag_list, bridge) {
        Ok(k) => k,
        Err(DnsmasqOption::Unsupported { why, .. }) => {
            return DnsmasqOption::Unsupported {
                option: "dhcp-boot".into(),
                why,
            };
        }
        Err(o) => return o,
    };
    let invalid = |why: &str| DnsmasqOption::Invalid {
        option: "dhcp-boot".into(),
        why: why.into(),
    };
    let rest = &fields[i..];
    let Some(file) = rest.first().filter(|f| !f.is_empty()) else {
        return invalid("needs a file name");
    };
    if file.len() > 127 || file.chars().any(|c| c.is_control()) {
        return invalid(
            "the file name must fit BOOTP's 128-byte field, without control characters",
        );
    }
    let server_name = rest.get(1).filter(|s| !s.is_empty()).map(|s| s.to_string());
    if server_name.as_ref().is_some_and(|s| s.len() > 63) {
        return invalid("the server name must fit BOOTP's 64-byte field");
    }
    let server_addr = match rest.get(2).filter(|s| !s.is_empty()) {
        None => None,
        Some(a) => match a.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                return DnsmasqOption::Unsupported {
                    option: "dhcp-boot".into(),
                    why: format!("'{a}' is a TFTP server name, kvnet needs an IPv4 address"),
                };
            }
        },
    };
    if rest.len() > 3 {
        return invalid("too many fields");
    }
    DnsmasqOption::DhcpBoot(DhcpBoot {
        file: file.to_string(),
        server_name,
        server_addr,
        known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DnsmasqOption as O;

    fn opt(v: &str) -> DnsmasqOption {
        dhcp_option(v, false, Some("virbr0"))
    }

    fn bytes(v: &str) -> Vec<u8> {
        match opt(v) {
            O::DhcpOption(DhcpOpt {
                value: DhcpValue::Bytes(b),
                ..
            }) => b,
            o => panic!("{v}: {o:?}"),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_numbers() {
        for v in ["option:ntp-server,10.0.0.5,0.0.0.0", "42,10.0.0.5,0.0.0.0"] {
            assert_eq!(
                opt(v),
                O::DhcpOption(DhcpOpt {
                    code: 42,
                    value: DhcpValue::Addrs(vec![ip("10.0.0.5"), ip("0.0.0.0")]),
                    force: false,
                    known: None
                }),
                "{v}"
            );
        }
        assert_eq!(bytes("option:mtu,9000"), vec![0x23, 0x28]);
        assert_eq!(bytes("26,1500"), vec![0x05, 0xdc]);
        assert_eq!(bytes("option:domain-name,lab.example"), b"lab.example");
        assert_eq!(bytes("15"), Vec::<u8>::new());
        assert_eq!(bytes("option:router"), Vec::<u8>::new());
        assert_eq!(bytes("option:tftp-server,\"1.2.3.4\""), b"1.2.3.4");
        assert_eq!(bytes("66,boot.lab"), b"boot.lab");
        assert_eq!(bytes("option:bootfile-name,pxelinux.0"), b"pxelinux.0");
        assert_eq!(bytes("2,3600"), vec![0, 0, 0x0e, 0x10]);
    }

    #[test]
    fn guessed_values_follow_dnsmasq() {
        // A number: the smallest of 1, 2 or 4 bytes, or the size its suffix forces.
        assert_eq!(bytes("252,7"), vec![7]);
        assert_eq!(bytes("252,300"), vec![1, 44]);
        assert_eq!(bytes("252,70000"), vec![0, 1, 0x11, 0x70]);
        assert_eq!(bytes("252,7s"), vec![0, 7]);
        assert_eq!(bytes("252,7i"), vec![0, 0, 0, 7]);
        // Hex, text, quoted text.
        assert_eq!(bytes("252,de:ad:0:ef"), vec![0xde, 0xad, 0, 0xef]);
        assert_eq!(
            bytes("252,http://wpad.lab/wpad.dat"),
            b"http://wpad.lab/wpad.dat"
        );
        assert_eq!(bytes("252,\"10.0.0.1\""), b"10.0.0.1");
        // Addresses; with /N, RFC 3442's classless routes.
        assert_eq!(
            opt("252,10.0.0.1"),
            O::DhcpOption(DhcpOpt {
                code: 252,
                value: DhcpValue::Addrs(vec![ip("10.0.0.1")]),
                force: false,
                known: None
            })
        );
        assert_eq!(
            bytes("option:classless-static-route,10.10.0.0/16,192.168.1.1,0.0.0.0/0,192.168.1.1"),
            vec![16, 10, 10, 192, 168, 1, 1, 0, 192, 168, 1, 1]
        );
        assert_eq!(
            bytes("121,10.1.2.128/25,10.0.0.1")[..5],
            [25, 10, 1, 2, 128]
        );
    }

    #[test]
    fn domain_search_and_sip() {
        assert_eq!(
            bytes("option:domain-search,lab.test,b.c"),
            b"\x03lab\x04test\x00\x01b\x01c\x00"
        );
        assert_eq!(bytes("120,10.0.0.1"), vec![1, 10, 0, 0, 1]);
        assert_eq!(bytes("120,sip.lab"), b"\x00\x03sip\x03lab\x00");
    }

    #[test]
    fn force_and_tags() {
        let f = dhcp_option("tag:!known,42,10.0.0.1", true, Some("virbr0"));
        assert!(matches!(
            f,
            O::DhcpOption(DhcpOpt {
                force: true,
                known: Some(false),
                ..
            })
        ));
        assert!(matches!(
            opt("tag:known,tag:virbr0,3,10.0.0.1"),
            O::DhcpOption(DhcpOpt {
                known: Some(true),
                ..
            })
        ));
        // The interface tag always matches; `bootp` never does on kvnet; `!bootp` always.
        assert!(matches!(
            opt("net:virbr0,tag:!bootp,3,10.0.0.1"),
            O::DhcpOption(DhcpOpt { known: None, .. })
        ));
        for (v, why) in [
            ("tag:red,3,10.0.0.1", "tag 'red' is set by nothing"),
            ("tag:bootp,3,10.0.0.1", "never matches"),
            ("tag:!virbr0,3,10.0.0.1", "never matches"),
            ("tag:known,tag:!known,3,10.0.0.1", "never match"),
            ("encap:175,190,iscsi", "encapsulated"),
            ("vendor:PXEClient,1,0.0.0.0", "vendor"),
            ("option6:dns-server,[::]", "DHCPv6"),
        ] {
            match opt(v) {
                O::Unsupported { option, why: w } => {
                    assert_eq!(option, "dhcp-option");
                    assert!(w.contains(why), "{v}: {w}");
                }
                o => panic!("{v}: {o:?}"),
            }
        }
    }

    #[test]
    fn bad_values_say_why() {
        for (v, why) in [
            ("", "needs an option number"),
            ("option:nope,1", "unknown option name 'nope'"),
            ("300,1", "not an option number"),
            ("x,1", "not an option number"),
            ("53,1", "own"),
            ("option:lease-time,60", "unknown option name"),
            ("54,10.0.0.1", "own"),
            ("3,router.lab", "not a list of IPv4 addresses"),
            ("3,10.0.0.1,10.0.0.256", "not a list of IPv4 addresses"),
            ("26,big", "not a number"),
            ("26,70000", "does not fit in 2 byte(s)"),
            ("23,1,2", "not a number"),
            ("119,bad..name", "not a domain name"),
            ("42,[fd00::1]", "option6"),
            ("set:x,3,10.0.0.1", "set: does not belong"),
        ] {
            match opt(v) {
                O::Invalid { option, why: w } => {
                    assert_eq!(option, "dhcp-option");
                    assert!(w.contains(why), "{v}: {w}");
                }
                o => panic!("{v}: {o:?}"),
            }
        }
    }

    #[test]
    fn boot() {
        assert_eq!(
            dhcp_boot("pxelinux.0", None),
            O::DhcpBoot(DhcpBoot {
                file: "pxelinux.0".into(),
                server_name: None,
                server_addr: None,
                known: None
            })
        );
        assert_eq!(
            dhcp_boot("tag:known,ipxe.efi,bootsrv,10.0.0.9", None),
            O::DhcpBoot(DhcpBoot {
                file: "ipxe.efi".into(),
                server_name: Some("bootsrv".into()),
                server_addr: Some(ip("10.0.0.9")),
                known: Some(true)
            })
        );
        assert!(matches!(dhcp_boot("", None), O::Invalid { .. }));
        assert!(matches!(
            dhcp_boot(&"f".repeat(200), None),
            O::Invalid { .. }
        ));
        assert!(matches!(
            dhcp_boot("f,s,tftp.lab", None),
            O::Unsupported { why, .. } if why.contains("TFTP server name")
        ));
        assert!(matches!(
            dhcp_boot("tag:blue,f", None),
            O::Unsupported { option, .. } if option == "dhcp-boot"
        ));
    }
}
