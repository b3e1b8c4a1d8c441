//! libvirt's `<dnsmasq:options>` (namespace `http://libvirt.org/schemas/network/dnsmasq/1.0`)
//! read with dnsmasq's meaning: the options kvnet's own DNS and DHCP servers apply, and the
//! others, named, so that a start reports each one kvnet keeps without applying.

mod dhcp;

pub use dhcp::{DhcpBoot, DhcpOpt, DhcpValue};

use std::net::{IpAddr, SocketAddr};

/// What `address=/DOMAIN/…` answers for the domain and every name below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressAnswer {
    /// A (IPv4) or AAAA (IPv6) queries get this address.
    Ip(IpAddr),
    /// `#`: 0.0.0.0 for A and :: for AAAA.
    Null,
    /// No address: NXDOMAIN, whatever the type.
    NxDomain,
}

/// One `<dnsmasq:option value='…'/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsmasqOption {
    /// `host-record=NAME[,NAME…],ADDR[,ADDR][,TTL]`: A/AAAA records for the names, and
    /// PTR records for the addresses to the first name.
    HostRecord {
        names: Vec<String>,
        addrs: Vec<IpAddr>,
    },
    /// `txt-record=NAME[,TEXT]`.
    TxtRecord { name: String, text: String },
    /// `srv-host=_SERVICE._PROTO[.DOMAIN][,TARGET[,PORT[,PRIORITY[,WEIGHT]]]]`; no target:
    /// "service not available".
    SrvHost {
        name: String,
        target: Option<String>,
        port: u16,
        priority: u16,
        weight: u16,
    },
    /// `server=/DOMAIN/[DOMAIN/…]ADDR[#PORT]` (or `server=ADDR` for every name): those
    /// names' queries go to ADDR; `server=/DOMAIN/` and `local=/DOMAIN/`: answered from
    /// the network's own names only.
    Server {
        domains: Vec<String>,
        addr: Option<SocketAddr>,
    },
    /// `address=/DOMAIN/[DOMAIN/…][IP|#]`; `/#/` (every name) is the domain "".
    Address {
        domains: Vec<String>,
        answer: AddressAnswer,
    },
    /// `cname=ALIAS[,ALIAS…],TARGET[,TTL]`.
    Cname {
        aliases: Vec<String>,
        target: String,
        ttl: Option<u32>,
    },
    /// `ptr-record=NAME[,TARGET]`; no target: a PTR to the root, as dnsmasq answers.
    PtrRecord {
        name: String,
        target: Option<String>,
    },
    /// `dhcp-option` / `dhcp-option-force`.
    DhcpOption(DhcpOpt),
    /// `dhcp-boot`.
    DhcpBoot(DhcpBoot),
    /// `domain-needed`: A/AAAA/ANY queries for dotless names are never forwarded.
    DomainNeeded,
    /// `bogus-priv`: PTR queries for private addresses not known locally get NXDOMAIN.
    BogusPriv,
    /// `log-queries[=…]`: each DNS query logged.
    LogQueries,
    /// `log-dhcp`: each DHCP exchange logged.
    LogDhcp,
    /// An option kvnet has no equivalent for: its name (before `=`).
    Other(String),
    /// An option kvnet reads but cannot apply in this form (an encapsulated DHCP option,
    /// a tag nothing sets…): its name and why.
    Unsupported { option: String, why: String },
    /// A known option kvnet cannot read: its name and why.
    Invalid { option: String, why: String },
}

/// `"text"` without its quotes.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn num(v: Option<&str>, default: u16, what: &str) -> Result<u16, String> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{what} '{v}' is not a number")),
    }
}

fn host_record(v: &str) -> Result<DnsmasqOption, String> {
    let mut names = Vec::new();
    let mut addrs = Vec::new();
    for (i, f) in v.split(',').map(str::trim).enumerate() {
        if let Ok(a) = f.parse::<IpAddr>() {
            addrs.push(a);
        } else if !addrs.is_empty() && f.parse::<u32>().is_ok() {
            // The TTL: kvnet's answers keep their own.
        } else if addrs.is_empty() && !f.is_empty() {
            names.push(f.to_string());
        } else {
            return Err(format!(
                "field {} '{f}' is neither a name nor an address",
                i + 1
            ));
        }
    }
    if names.is_empty() || addrs.is_empty() {
        return Err("needs a name and an address".into());
    }
    Ok(DnsmasqOption::HostRecord { names, addrs })
}

fn txt_record(v: &str) -> Result<DnsmasqOption, String> {
    let (name, rest) = v.split_once(',').unwrap_or((v, ""));
    if rest.contains("\",") {
        return Err("several strings in one record are not supported".into());
    }
    Ok(DnsmasqOption::TxtRecord {
        name: name.trim().to_string(),
        text: unquote(rest.trim()).to_string(),
    })
}

fn srv_host(v: &str) -> Result<DnsmasqOption, String> {
    let f: Vec<&str> = v.split(',').map(str::trim).collect();
    let name = f[0].to_string();
    if !name.starts_with('_') {
        return Err(format!("'{name}' is not _service._protocol[.domain]"));
    }
    let target = f.get(1).filter(|t| !t.is_empty()).map(|t| t.to_string());
    Ok(DnsmasqOption::SrvHost {
        name,
        // dnsmasq's defaults: port 1, priority and weight 0.
        port: num(f.get(2).copied(), 1, "port")?,
        priority: num(f.get(3).copied(), 0, "priority")?,
        weight: num(f.get(4).copied(), 0, "weight")?,
        target,
    })
}

/// `ADDR[#PORT]` as dnsmasq writes an upstream.
fn upstream(s: &str) -> Result<SocketAddr, String> {
    let (a, port) = match s.split_once('#') {
        Some((a, p)) => (a, num(Some(p), 53, "port")?),
        None => (s, 53),
    };
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("'{a}' is not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

fn server(v: &str) -> Result<DnsmasqOption, String> {
    let Some(rest) = v.strip_prefix('/') else {
        return Ok(DnsmasqOption::Server {
            domains: Vec::new(),
            addr: Some(upstream(v)?),
        });
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (addr, domains) = parts.split_last().expect("split gives one part at least");
    let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
    if domains.is_empty() || domains.iter().any(|d| d.is_empty()) {
        return Err("needs /DOMAIN/".into());
    }
    let addr = match *addr {
        "" => None,
        "#" => return Err("'#' (the host's resolvers for a domain) is not supported".into()),
        a => Some(upstream(a)?),
    };
    Ok(DnsmasqOption::Server { domains, addr })
}

/// A name as DNS carries it: letters, digits, `-` and `_` in dot-separated labels.
fn dns_name(s: &str, what: &str) -> Result<String, String> {
    let t = s.strip_suffix('.').unwrap_or(s);
    let ok = !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!("{what} '{}' is not a DNS name", s.escape_debug()))
    }
}

fn address(v: &str) -> Result<DnsmasqOption, String> {
    let rest = v.strip_prefix('/').ok_or("needs /DOMAIN/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (answer, domains) = parts.split_last().expect("split gives one part at least");
    if domains.is_empty() || domains.iter().any(|d| d.is_empty()) {
        return Err("needs /DOMAIN/".into());
    }
    let domains = domains
        .iter()
        .map(|d| match *d {
            "#" => Ok(String::new()),
            d if d.starts_with('*') => {
                Err("'*' patterns (matching inside a label) are not supported".to_string())
            }
            // dnsmasq reads /.example.com/ as /example.com/.
            d => dns_name(d.strip_prefix('.').unwrap_or(d), "domain"),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answer = match *answer {
        "" => AddressAnswer::NxDomain,
        "#" => AddressAnswer::Null,
        a => AddressAnswer::Ip(
            a.parse()
                .map_err(|_| format!("'{a}' is not an IP address"))?,
        ),
    };
    Ok(DnsmasqOption::Address { domains, answer })
}

fn cname(v: &str) -> Result<DnsmasqOption, String> {
    let mut f: Vec<&str> = v.split(',').map(str::trim).collect();
    let ttl = match f.last().and_then(|t| t.parse::<u32>().ok()) {
        Some(t) if f.len() >= 3 => {
            f.pop();
            Some(t)
        }
        _ => None,
    };
    let Some((target, aliases)) = f.split_last().filter(|(_, a)| !a.is_empty()) else {
        return Err("needs an alias and a target".into());
    };
    if aliases.iter().any(|a| a.contains('*')) {
        // dnsmasq takes wildcards only as an authoritative server, which kvnet is not.
        return Err("wildcard aliases are for authoritative zones only".into());
    }
    Ok(DnsmasqOption::Cname {
        aliases: aliases
            .iter()
            .map(|a| dns_name(a, "alias"))
            .collect::<Result<_, _>>()?,
        target: dns_name(target, "target")?,
        ttl,
    })
}

fn ptr_record(v: &str) -> Result<DnsmasqOption, String> {
    let (name, target) = match v.split_once(',') {
        Some((n, t)) => (n.trim(), Some(unquote(t.trim()))),
        None => (v, None),
    };
    Ok(DnsmasqOption::PtrRecord {
        name: dns_name(name, "name")?,
        target: target
            .filter(|t| !t.is_empty())
            .map(|t| dns_name(t, "target"))
            .transpose()?,
    })
}

/// A flag option: no value allowed (or any, for `log-queries=extra`).
fn flag(value: &str, opt: DnsmasqOption) -> Result<DnsmasqOption, String> {
    if value.is_empty() || opt == DnsmasqOption::LogQueries {
        Ok(opt)
    } else {
        Err("takes no value".into())
    }
}

/// One option's value, as dnsmasq reads it.
pub fn parse(option: &str) -> DnsmasqOption {
    parse_on(option, None)
}

/// [`parse`] for a network whose bridge is `bridge`: dnsmasq tags every DHCP request with
/// its interface, so `tag:BRIDGE` always matches.
pub fn parse_on(option: &str, bridge: Option<&str>) -> DnsmasqOption {
    let (name, value) = option.split_once('=').unwrap_or((option, ""));
    let (name, value) = (name.trim(), value.trim());
    let res = match name {
        "address" => address(value),
        "cname" => cname(value),
        "ptr-record" => ptr_record(value),
        "dhcp-option" => return dhcp::dhcp_option(value, false, bridge),
        "dhcp-option-force" => return dhcp::dhcp_option(value, true, bridge),
        "dhcp-boot" => return dhcp::dhcp_boot(value, bridge),
        "domain-needed" => flag(value, DnsmasqOption::DomainNeeded),
        "bogus-priv" => flag(value, DnsmasqOption::BogusPriv),
        "log-queries" => flag(value, DnsmasqOption::LogQueries),
        "log-dhcp" => flag(value, DnsmasqOption::LogDhcp),
        "host-record" => host_record(value),
        "txt-record" => txt_record(value),
        "srv-host" => srv_host(value),
        "server" => server(value),
        "local" => match server(value) {
            Ok(DnsmasqOption::Server { domains, .. }) if !domains.is_empty() => {
                Ok(DnsmasqOption::Server {
                    domains,
                    addr: None,
                })
            }
            Ok(_) => Err("needs /DOMAIN/".into()),
            Err(e) => Err(e),
        },
        _ => return DnsmasqOption::Other(name.to_string()),
    };
    res.unwrap_or_else(|why| DnsmasqOption::Invalid {
        option: name.to_string(),
        why,
    })
}

impl crate::Network {
    /// The network's `<dnsmasq:options>`, read.
    pub fn dnsmasq(&self) -> Vec<DnsmasqOption> {
        let bridge = self.bridge_name();
        self.dnsmasq_options
            .iter()
            .map(|o| parse_on(o, bridge))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DnsmasqOption as O;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn records() {
        assert_eq!(
            parse("host-record=laptop,laptop.lab,192.168.122.5,fd00::5,300"),
            O::HostRecord {
                names: vec!["laptop".into(), "laptop.lab".into()],
                addrs: vec!["192.168.122.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            }
        );
        assert_eq!(
            parse("txt-record=_http._tcp.lab,\"name=value\""),
            O::TxtRecord {
                name: "_http._tcp.lab".into(),
                text: "name=value".into()
            }
        );
        assert_eq!(
            parse("srv-host=_ldap._tcp.lab,ldap.lab,389,1,2"),
            O::SrvHost {
                name: "_ldap._tcp.lab".into(),
                target: Some("ldap.lab".into()),
                port: 389,
                priority: 1,
                weight: 2
            }
        );
        assert!(matches!(
            parse("srv-host=_x._tcp"),
            O::SrvHost {
                target: None,
                port: 1,
                ..
            }
        ));
    }

    #[test]
    fn addresses() {
        let ip = |s: &str| AddressAnswer::Ip(s.parse().unwrap());
        assert_eq!(
            parse("address=/apps.lab/192.168.101.50"),
            O::Address {
                domains: vec!["apps.lab".into()],
                answer: ip("192.168.101.50")
            }
        );
        assert_eq!(
            parse("address=/a.test/.b.test/fd00::50"),
            O::Address {
                domains: vec!["a.test".into(), "b.test".into()],
                answer: ip("fd00::50")
            }
        );
        assert_eq!(
            parse("address=/ads.test/"),
            O::Address {
                domains: vec!["ads.test".into()],
                answer: AddressAnswer::NxDomain
            }
        );
        assert_eq!(
            parse("address=/null.test/#"),
            O::Address {
                domains: vec!["null.test".into()],
                answer: AddressAnswer::Null
            }
        );
        assert_eq!(
            parse("address=/#/10.0.0.1"),
            O::Address {
                domains: vec![String::new()],
                answer: ip("10.0.0.1")
            }
        );
    }

    #[test]
    fn cnames_ptrs_and_flags() {
        assert_eq!(
            parse("cname=www.lab,ftp.lab,nas.lab,600"),
            O::Cname {
                aliases: vec!["www.lab".into(), "ftp.lab".into()],
                target: "nas.lab".into(),
                ttl: Some(600)
            }
        );
        // Two fields: alias and target, even when the target looks like a number.
        assert_eq!(
            parse("cname=alias.lab,nas.lab."),
            O::Cname {
                aliases: vec!["alias.lab".into()],
                target: "nas.lab".into(),
                ttl: None
            }
        );
        assert_eq!(
            parse("ptr-record=9.101.168.192.in-addr.arpa,nas.lab"),
            O::PtrRecord {
                name: "9.101.168.192.in-addr.arpa".into(),
                target: Some("nas.lab".into())
            }
        );
        assert_eq!(
            parse("ptr-record=_http._tcp.dns-sd-services"),
            O::PtrRecord {
                name: "_http._tcp.dns-sd-services".into(),
                target: None
            }
        );
        assert_eq!(parse("domain-needed"), O::DomainNeeded);
        assert_eq!(parse("bogus-priv"), O::BogusPriv);
        assert_eq!(parse("log-queries"), O::LogQueries);
        assert_eq!(parse("log-queries=extra"), O::LogQueries);
        assert_eq!(parse("log-dhcp"), O::LogDhcp);
        // The bridge's tag is known only on the network.
        assert!(matches!(
            parse("dhcp-boot=tag:br9,f"),
            O::Unsupported { .. }
        ));
        assert!(matches!(
            parse_on("dhcp-boot=tag:br9,f", Some("br9")),
            O::DhcpBoot(_)
        ));
    }

    #[test]
    fn servers_and_local_domains() {
        assert_eq!(
            parse("server=/corp.example/10.1.1.1#5353"),
            O::Server {
                domains: vec!["corp.example".into()],
                addr: sa("10.1.1.1:5353")
            }
        );
        assert_eq!(
            parse("server=/a.test/b.test/fd00::53"),
            O::Server {
                domains: vec!["a.test".into(), "b.test".into()],
                addr: sa("[fd00::53]:53")
            }
        );
        assert_eq!(
            parse("server=9.9.9.9"),
            O::Server {
                domains: vec![],
                addr: sa("9.9.9.9:53")
            }
        );
        for local in ["local=/lab.test/", "server=/lab.test/"] {
            assert_eq!(
                parse(local),
                O::Server {
                    domains: vec!["lab.test".into()],
                    addr: None
                },
                "{local}"
            );
        }
    }

    #[test]
    fn others_and_bad_values_are_named() {
        assert_eq!(parse("dhcp-script=/bin/x"), O::Other("dhcp-script".into()));
        assert_eq!(parse("log-facility=-"), O::Other("log-facility".into()));
        for (bad, why) in [
            ("host-record=onlyname", "needs a name and an address"),
            ("host-record=1.2.3.4", "needs a name and an address"),
            ("server=/x/notanip", "not an IP address"),
            ("server=/x/#", "not supported"),
            ("local=/", "needs /DOMAIN/"),
            ("srv-host=ldap,host", "not _service._protocol"),
            ("srv-host=_a._tcp,h,http", "port 'http'"),
            ("txt-record=a,\"x\",\"y\"", "several strings"),
            ("address=apps.lab/1.2.3.4", "needs /DOMAIN/"),
            ("address=//1.2.3.4", "needs /DOMAIN/"),
            ("address=/apps.lab/1.2.3", "not an IP address"),
            ("address=/*apps.lab/1.2.3.4", "'*' patterns"),
            ("address=/a b/1.2.3.4", "not a DNS name"),
            ("cname=onlyone", "needs an alias and a target"),
            ("cname=*.w.lab,t.lab", "wildcard aliases"),
            ("cname=a\tb,t", "not a DNS name"),
            ("ptr-record=", "not a DNS name"),
            (
                "ptr-record=x.arpa,\"My Printer._ipp._tcp\"",
                "not a DNS name",
            ),
            ("domain-needed=yes", "takes no value"),
            ("bogus-priv=1", "takes no value"),
        ] {
            match parse(bad) {
                O::Invalid { why: w, .. } => assert!(w.contains(why), "{bad}: {w}"),
                o => panic!("{bad}: {o:?}"),
            }
        }
    }
}
