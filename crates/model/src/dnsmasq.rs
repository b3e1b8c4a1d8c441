//! libvirt's `<dnsmasq:options>` (namespace `http://libvirt.org/schemas/network/dnsmasq/1.0`)
//! read with dnsmasq's meaning: the options kvnet's own DNS server serves, and the others,
//! named, so that a start reports each one kvnet keeps without applying.

use std::net::{IpAddr, SocketAddr};

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
    /// An option kvnet has no equivalent for: its name (before `=`).
    Other(String),
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

/// One option's value, as dnsmasq reads it.
pub fn parse(option: &str) -> DnsmasqOption {
    let (name, value) = option.split_once('=').unwrap_or((option, ""));
    let (name, value) = (name.trim(), value.trim());
    let res = match name {
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
        self.dnsmasq_options.iter().map(|o| parse(o)).collect()
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
        assert_eq!(parse("cname=a,b"), O::Other("cname".into()));
        assert_eq!(parse("log-queries"), O::Other("log-queries".into()));
        for (bad, why) in [
            ("host-record=onlyname", "needs a name and an address"),
            ("host-record=1.2.3.4", "needs a name and an address"),
            ("server=/x/notanip", "not an IP address"),
            ("server=/x/#", "not supported"),
            ("local=/", "needs /DOMAIN/"),
            ("srv-host=ldap,host", "not _service._protocol"),
            ("srv-host=_a._tcp,h,http", "port 'http'"),
            ("txt-record=a,\"x\",\"y\"", "several strings"),
        ] {
            match parse(bad) {
                O::Invalid { why: w, .. } => assert!(w.contains(why), "{bad}: {w}"),
                o => panic!("{bad}: {o:?}"),
            }
        }
    }
}
