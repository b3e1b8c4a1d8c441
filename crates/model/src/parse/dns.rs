//! `<dns>`: forwarders and the TXT, SRV and host records (also read alone, partially,
//! for net-update).

use roxmltree::Node;

use super::{Parser, R};
use crate::types::*;

impl<'a, 'i> Parser<'a, 'i> {
    pub(super) fn dns(&mut self, n: Node, path: &str) -> R<Dns> {
        self.attrs(n, path, &["enable", "forwardPlainNames"])?;
        let mut d = Dns {
            enable: self.yes_no(n, path, "enable")?,
            forward_plain_names: self.yes_no(n, path, "forwardPlainNames")?,
            ..Default::default()
        };
        let kids = self.children(n, path, &["forwarder*", "txt*", "srv*", "host*"])?;
        for (c, cp) in &kids {
            let (c, cp) = (*c, cp.as_str());
            match c.tag_name().name() {
                "forwarder" => {
                    self.attrs(c, cp, &["addr", "domain", "port"])?;
                    let fw = DnsForwarder {
                        addr: self.ip(c, cp, "addr")?,
                        domain: Self::string(c, "domain"),
                        port: self.num(c, cp, "port")?,
                    };
                    if fw.addr.is_none() && fw.domain.is_none() {
                        return Err(self.err(c, cp, "invalid forwarder element, must contain at least one of addr or domain"));
                    }
                    d.forwarders.push(fw);
                }
                "txt" => d.txts.push(self.dns_txt(c, cp, false)?),
                "srv" => {
                    let s = self.dns_srv(c, cp, false)?;
                    d.srvs.push(DnsSrv {
                        service: s.service.unwrap_or_default(),
                        protocol: s.protocol.unwrap_or_default(),
                        domain: s.domain,
                        target: s.target,
                        port: s.port,
                        priority: s.priority,
                        weight: s.weight,
                    });
                }
                "host" => d.hosts.push(self.dns_host(c, cp, false)?),
                _ => unreachable!(),
            }
        }
        Ok(d)
    }

    pub(crate) fn dns_txt(&mut self, n: Node, path: &str, partial: bool) -> R<DnsTxt> {
        self.attrs(n, path, &["name", "value"])?;
        self.children(n, path, &[])?;
        let name = self.req(n, path, "name")?.to_string();
        let value = match n.attribute("value") {
            Some(v) => v.to_string(),
            None if partial => String::new(),
            None => {
                return Err(self.err(
                    n,
                    path,
                    format!("missing required attribute 'value' in DNS TXT record '{name}'"),
                ));
            }
        };
        Ok(DnsTxt { name, value })
    }

    pub(crate) fn dns_srv(&mut self, n: Node, path: &str, partial: bool) -> R<SrvSpec> {
        self.attrs(
            n,
            path,
            &[
                "service", "protocol", "domain", "target", "port", "priority", "weight",
            ],
        )?;
        self.children(n, path, &[])?;
        let s = SrvSpec {
            service: Self::string(n, "service"),
            protocol: Self::string(n, "protocol"),
            domain: Self::string(n, "domain"),
            target: Self::string(n, "target"),
            port: self.num(n, path, "port")?,
            priority: self.num(n, path, "priority")?,
            weight: self.num(n, path, "weight")?,
        };
        if !partial {
            if s.service.is_none() {
                return Err(self.err(
                    n,
                    path,
                    "missing required attribute 'service' in DNS SRV record",
                ));
            }
            if s.protocol.is_none() {
                return Err(self.err(
                    n,
                    path,
                    "missing required attribute 'protocol' in DNS SRV record",
                ));
            }
        }
        Ok(s)
    }

    pub(crate) fn dns_host(&mut self, n: Node, path: &str, partial: bool) -> R<DnsHost> {
        self.attrs(n, path, &["ip"])?;
        let ip = self.ip(n, path, "ip")?;
        if ip.is_none() && !partial {
            return Err(self.err(
                n,
                path,
                "missing required attribute 'ip' in DNS host record",
            ));
        }
        let mut h = DnsHost {
            ip,
            hostnames: Vec::new(),
        };
        for (c, cp) in self.children(n, path, &["hostname*"])? {
            self.attrs(c, &cp, &[])?;
            h.hostnames.push(self.text(c, &cp)?);
        }
        if h.hostnames.is_empty() && !partial {
            return Err(self.err(n, path, "DNS host record needs at least one <hostname>"));
        }
        Ok(h)
    }
}

/// A DNS SRV record where every field may be missing (net-update delete matches on what is given).
#[derive(Debug, Clone, Default)]
pub(crate) struct SrvSpec {
    pub service: Option<String>,
    pub protocol: Option<String>,
    pub domain: Option<String>,
    pub target: Option<String>,
    pub port: Option<u16>,
    pub priority: Option<u16>,
    pub weight: Option<u16>,
}
