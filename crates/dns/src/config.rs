//! The per-network DNS configuration, derived from the libvirt `<network>` definition the way
//! libvirt derives its dnsmasq.conf (reference §4.2–4.3).

use std::net::{IpAddr, SocketAddr};

use kvnet_model::{AddressAnswer, GuestRole, Network};

use crate::names::{check_name, reverse_zone};

/// A `<network>` the engine cannot serve, or a string no DNS record may carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `<dns enable='no'>`: libvirt runs no DNS server (`port=0`).
    #[error("DNS is disabled on this network (<dns enable='no'>)")]
    Disabled,
    /// A name or TXT value that must not reach the wire (control characters, bad labels).
    #[error("{what} '{value}' {why}")]
    Invalid {
        what: &'static str,
        /// Escaped with `escape_debug`, so the message itself stays one clean line.
        value: String,
        why: String,
    },
}

fn invalid(what: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what,
        value: value.escape_debug().to_string(),
        why: why.into(),
    }
}

fn name(what: &'static str, s: &str) -> Result<String, ConfigError> {
    check_name(s).map_err(|why| invalid(what, s, why))
}

/// One `<forwarder>`: `addr` None with a domain means "answer this domain locally only".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarder {
    pub domain: Option<String>,
    pub addr: Option<SocketAddr>,
}

/// One `<srv>` record, owner name already built (`_service._proto[.domain]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub(crate) name: String,
    /// None: the "service not available" target `.`.
    pub(crate) target: Option<String>,
    pub(crate) port: u16,
    pub(crate) priority: u16,
    pub(crate) weight: u16,
}

/// Everything the engine needs from a network definition. Only [`Config::from_network`]
/// builds one, so every name in it is a checked lower-case key without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `<domain name>`: plain names are also answered as `name.domain` (expand-hosts).
    pub(crate) domain: Option<String>,
    /// `<domain localOnly='yes'>`.
    pub(crate) local_only: bool,
    /// `<dns forwardPlainNames>`, default yes.
    pub(crate) forward_plain_names: bool,
    /// No `<forward>`: libvirt writes `no-resolv`, so the host's resolvers are never used.
    pub(crate) isolated: bool,
    /// `<dns><host>`: address and its names, first name canonical (used for PTR).
    pub(crate) hosts: Vec<(IpAddr, Vec<String>)>,
    /// `<dns><txt>`: owner name and value.
    pub(crate) txts: Vec<(String, String)>,
    pub(crate) srvs: Vec<SrvRecord>,
    pub(crate) forwarders: Vec<Forwarder>,
    /// Reverse zones of `<ip localPtr='yes'>` subnets on a label boundary.
    pub(crate) local_ptr_zones: Vec<String>,
    /// `<ip localPtr='yes'>` subnets as (network address, prefix), for any prefix.
    pub(crate) local_ptr_nets: Vec<(IpAddr, u8)>,
    /// The network's own addresses: never used as upstreams (query loops).
    pub(crate) own_addrs: Vec<IpAddr>,
    /// `address=`: zone ("" for every name) and its answer.
    pub(crate) addresses: Vec<(String, AddressAnswer)>,
    /// `cname=`: alias, target, TTL.
    pub(crate) cnames: Vec<(String, String, Option<u32>)>,
    /// `ptr-record=`: owner and target (None: the root).
    pub(crate) ptr_records: Vec<(String, Option<String>)>,
    /// `bogus-priv`.
    pub(crate) bogus_priv: bool,
    /// `log-queries`: the shell logs every query.
    pub(crate) log_queries: bool,
}

impl Config {
    /// The DNS configuration of a network whose guests kvnetd serves; `role` says whether
    /// the host's resolvers are upstreams (the mode profile). Every string is checked
    /// again here (the model validates too) because a CR/LF in a record was a dnsmasq CVE.
    pub fn from_network(net: &Network, role: GuestRole) -> Result<Config, ConfigError> {
        let dns = net.dns.clone().unwrap_or_default();
        if dns.enable == Some(false) {
            return Err(ConfigError::Disabled);
        }
        let mut cfg = Config {
            domain: None,
            local_only: false,
            forward_plain_names: dns.forward_plain_names != Some(false),
            isolated: !role.host_resolvers,
            hosts: Vec::new(),
            txts: Vec::new(),
            srvs: Vec::new(),
            forwarders: Vec::new(),
            local_ptr_zones: Vec::new(),
            local_ptr_nets: Vec::new(),
            own_addrs: Vec::new(),
            addresses: Vec::new(),
            cnames: Vec::new(),
            ptr_records: Vec::new(),
            bogus_priv: false,
            log_queries: false,
        };
        if let Some(d) = &net.domain {
            cfg.domain = Some(name("domain name", &d.name)?);
            cfg.local_only = d.local_only == Some(true);
        }
        for h in &dns.hosts {
            let Some(ip) = h.ip else {
                return Err(invalid("DNS host", "", "has no address"));
            };
            let names = h
                .hostnames
                .iter()
                .map(|n| name("DNS hostname", n))
                .collect::<Result<Vec<_>, _>>()?;
            if !names.is_empty() {
                cfg.hosts.push((ip, names));
            }
        }
        for t in &dns.txts {
            let owner = name("TXT record name", &t.name)?;
            if let Some(c) = t.value.chars().find(|c| c.is_control()) {
                return Err(invalid(
                    "TXT record value",
                    &t.value,
                    format!("contains the control character {c:?}"),
                ));
            }
            cfg.txts.push((owner, t.value.clone()));
        }
        for s in &dns.srvs {
            let service = name("SRV service", &s.service)?;
            let proto = name("SRV protocol", &s.protocol)?;
            // dnsmasq puts an SRV without a domain into the network's domain.
            let domain = match &s.domain {
                Some(d) => Some(name("SRV domain", d)?),
                None => cfg.domain.clone(),
            };
            let mut owner = format!("_{service}._{proto}");
            if let Some(d) = domain {
                owner = format!("{owner}.{d}");
            }
            let owner = name("SRV name", &owner)?;
            let target = match s.target.as_deref() {
                None | Some(".") => None,
                Some(t) => Some(name("SRV target", t)?),
            };
            cfg.srvs.push(SrvRecord {
                name: owner,
                target,
                // dnsmasq's defaults: port 1, priority and weight 0.
                port: s.port.unwrap_or(1),
                priority: s.priority.unwrap_or(0),
                weight: s.weight.unwrap_or(0),
            });
        }
        for f in &dns.forwarders {
            let domain = match &f.domain {
                Some(d) => Some(name("forwarder domain", d)?),
                None => None,
            };
            let addr = f.addr.map(|a| SocketAddr::new(a, f.port.unwrap_or(53)));
            if domain.is_none() && addr.is_none() {
                return Err(invalid("forwarder", "", "needs an addr or a domain"));
            }
            cfg.forwarders.push(Forwarder { domain, addr });
        }
        cfg.add_dnsmasq_options(net)?;
        for ip in &net.ips {
            cfg.own_addrs.push(ip.address);
            if ip.local_ptr == Some(true) {
                let subnet = ip.network();
                cfg.local_ptr_nets
                    .push((subnet.network(), subnet.prefix_len()));
                if let Some(z) = reverse_zone(subnet.network(), subnet.prefix_len()) {
                    cfg.local_ptr_zones.push(z);
                }
            }
        }
        Ok(cfg)
    }

    /// libvirt's `<dnsmasq:options>` this server serves, with dnsmasq's meaning:
    /// `host-record`, `txt-record`, `srv-host`, `server`, `local`, `address`, `cname`,
    /// `ptr-record`, `domain-needed`, `bogus-priv` and `log-queries` (the DHCP ones are
    /// the DHCP server's; the others are reported at start by the model's `not_applied`).
    fn add_dnsmasq_options(&mut self, net: &Network) -> Result<(), ConfigError> {
        use kvnet_model::DnsmasqOption as O;
        for o in net.dnsmasq() {
            match o {
                O::HostRecord { names, addrs } => {
                    let names = names
                        .iter()
                        .map(|n| name("host-record name", n))
                        .collect::<Result<Vec<_>, _>>()?;
                    for a in addrs {
                        self.hosts.push((a, names.clone()));
                    }
                }
                O::TxtRecord { name: owner, text } => {
                    if let Some(c) = text.chars().find(|c| c.is_control()) {
                        return Err(invalid(
                            "txt-record value",
                            &text,
                            format!("contains the control character {c:?}"),
                        ));
                    }
                    self.txts.push((name("txt-record name", &owner)?, text));
                }
                O::SrvHost {
                    name: owner,
                    target,
                    port,
                    priority,
                    weight,
                } => self.srvs.push(SrvRecord {
                    name: name("srv-host name", &owner)?,
                    target: target.map(|t| name("srv-host target", &t)).transpose()?,
                    port,
                    priority,
                    weight,
                }),
                O::Server { domains, addr } if domains.is_empty() => {
                    self.forwarders.push(Forwarder { domain: None, addr });
                }
                O::Server { domains, addr } => {
                    for d in domains {
                        self.forwarders.push(Forwarder {
                            domain: Some(name("server domain", &d)?),
                            addr,
                        });
                    }
                }
                O::Address { domains, answer } => {
                    for d in domains {
                        // "" is `/#/`: every name.
                        let zone = match d.as_str() {
                            "" => d,
                            d => name("address domain", d)?,
                        };
                        self.addresses.push((zone, answer));
                    }
                }
                O::Cname {
                    aliases,
                    target,
                    ttl,
                } => {
                    let target = name("cname target", &target)?;
                    for a in aliases {
                        self.cnames
                            .push((name("cname alias", &a)?, target.clone(), ttl));
                    }
                }
                O::PtrRecord {
                    name: owner,
                    target,
                } => self.ptr_records.push((
                    name("ptr-record name", &owner)?,
                    target.map(|t| name("ptr-record target", &t)).transpose()?,
                )),
                // libvirt writes `domain-needed` for forwardPlainNames='no'.
                O::DomainNeeded => self.forward_plain_names = false,
                O::BogusPriv => self.bogus_priv = true,
                O::LogQueries => self.log_queries = true,
                O::DhcpOption(_)
                | O::DhcpBoot(_)
                | O::LogDhcp
                | O::Other(_)
                | O::Unsupported { .. }
                | O::Invalid { .. } => {}
            }
        }
        Ok(())
    }

    /// The network's domain, lower-case, without a trailing dot.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    pub fn local_only(&self) -> bool {
        self.local_only
    }

    pub fn forward_plain_names(&self) -> bool {
        self.forward_plain_names
    }

    /// `log-queries`: the shell logs each query and what became of it.
    pub fn log_queries(&self) -> bool {
        self.log_queries
    }

    /// No `<forward>`: the host's resolvers are never used.
    pub fn isolated(&self) -> bool {
        self.isolated
    }

    pub fn forwarders(&self) -> &[Forwarder] {
        &self.forwarders
    }

    /// The network's own addresses, never used as upstreams.
    pub fn own_addrs(&self) -> &[IpAddr] {
        &self.own_addrs
    }

    /// Any `<forwarder addr>` without a domain replaces the host's resolvers (`no-resolv`).
    pub fn has_default_forwarders(&self) -> bool {
        self.forwarders
            .iter()
            .any(|f| f.domain.is_none() && f.addr.is_some())
    }
}
