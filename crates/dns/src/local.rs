//! The network's own names: `<dns>` records plus guest names, indexed for lookup.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{Config, SrvRecord};
use crate::hostsfile::HostsFile;
use crate::names::{check_name, is_plain, name_of, reverse_addr};

#[derive(Debug, Default)]
struct Entry {
    addrs: Vec<IpAddr>,
    txts: Vec<String>,
    srvs: Vec<SrvRecord>,
}

/// What the local data says about a (name, type).
#[derive(Debug)]
pub(crate) enum Lookup {
    Records(Vec<Record>),
    /// The name exists with other types: NOERROR with an empty answer.
    NoData,
    NotFound,
}

#[derive(Debug, Default)]
pub(crate) struct LocalData {
    names: HashMap<String, Entry>,
    ptrs: HashMap<IpAddr, Vec<String>>,
    /// The network's domain, when it has one: its apex has an SOA.
    domain: Option<String>,
    /// Names in the domain with local names below them but none of their own (the
    /// apex, `_tcp.example.lan`): they exist, with no data (RFC 8020).
    empty: HashSet<String>,
    /// The host's /etc/hosts, consulted after the network's own names.
    hosts: Arc<HostsFile>,
    /// `cname=`: alias → target and TTL.
    cnames: HashMap<String, (String, Option<u32>)>,
    /// `ptr-record=`: owner → targets (None: the root).
    ptr_records: HashMap<String, Vec<Option<String>>>,
}

/// How many aliases a chain may go through: cnames pointing at each other end here.
const MAX_CHAIN: usize = 8;

/// A guest name as dnsmasq registers a DHCP name: our domain suffix is dropped, and a foreign
/// domain is ignored (only the host part is kept), so guests cannot claim names elsewhere.
pub(crate) fn guest_name(raw: &str, domain: Option<&str>) -> Result<String, String> {
    let n = check_name(raw)?;
    let n = match domain.and_then(|d| n.strip_suffix(d)) {
        Some(host) if host.ends_with('.') => host.trim_end_matches('.').to_string(),
        _ => n,
    };
    Ok(n.split('.').next().unwrap_or_default().to_string())
}

impl LocalData {
    /// `guests` must hold names already passed through [`guest_name`]. A guest name the
    /// host's file holds is not served: the file wins, as in dnsmasq.
    pub(crate) fn build(
        cfg: &Config,
        guests: &[(String, IpAddr)],
        hosts: Arc<HostsFile>,
    ) -> LocalData {
        let mut d = LocalData {
            hosts,
            ..LocalData::default()
        };
        let expand = |n: &str| match &cfg.domain {
            Some(dom) if is_plain(n) => Some(format!("{n}.{dom}")),
            _ => None,
        };
        for (ip, names) in &cfg.hosts {
            for n in names {
                d.add_addr(n, *ip);
                if let Some(full) = expand(n) {
                    d.add_addr(&full, *ip);
                }
            }
            if let Some(first) = names.first() {
                d.add_ptr(*ip, expand(first).unwrap_or_else(|| first.clone()));
            }
        }
        for (n, ip) in guests {
            if d.hosts.contains(n) {
                continue;
            }
            d.add_addr(n, *ip);
            let full = expand(n);
            if let Some(full) = &full {
                d.add_addr(full, *ip);
            }
            d.add_ptr(*ip, full.unwrap_or_else(|| n.clone()));
        }
        for (alias, target, ttl) in &cfg.cnames {
            // dnsmasq: "the cname must be unique"; the first one stands.
            d.cnames
                .entry(alias.clone())
                .or_insert((target.clone(), *ttl));
        }
        for (owner, target) in &cfg.ptr_records {
            d.ptr_records
                .entry(owner.clone())
                .or_default()
                .push(target.clone());
        }
        for (owner, value) in &cfg.txts {
            d.names
                .entry(owner.clone())
                .or_default()
                .txts
                .push(value.clone());
        }
        for s in &cfg.srvs {
            d.names
                .entry(s.name.clone())
                .or_default()
                .srvs
                .push(s.clone());
        }
        if let Some(dom) = &cfg.domain {
            let dom = dom.trim_end_matches('.').to_ascii_lowercase();
            d.empty.insert(dom.clone());
            let suffix = format!(".{dom}");
            for n in d.names.keys() {
                let mut rest = n.as_str();
                while let Some((_, parent)) = rest.split_once('.') {
                    if !parent.ends_with(&suffix) {
                        break;
                    }
                    d.empty.insert(parent.to_string());
                    rest = parent;
                }
            }
            d.empty
                .retain(|n| !d.names.contains_key(n) && !d.hosts.contains(n));
            d.domain = Some(dom);
        }
        d
    }

    /// The SOA of the network's domain, for the authority section of negative answers
    /// within it and for SOA queries at its apex. Serial 1 and a minimum of `ttl`:
    /// names come and go with leases, so negative answers are not to be cached longer
    /// than positive ones.
    pub(crate) fn soa_for(&self, key: &str, ttl: u32) -> Option<Record> {
        let dom = self.domain.as_deref()?;
        if key != dom && !key.ends_with(&format!(".{dom}")) {
            return None;
        }
        let apex = name_of(dom)?;
        let mname = name_of(&format!("kvnet.{dom}"))?;
        let rname = name_of(&format!("hostmaster.{dom}"))?;
        let soa = SOA::new(mname, rname, 1, 1200, 180, 1_209_600, ttl);
        Some(Record::from_rdata(apex, ttl, RData::SOA(soa)))
    }

    fn add_addr(&mut self, name: &str, ip: IpAddr) {
        let e = self.names.entry(name.to_string()).or_default();
        if !e.addrs.contains(&ip) {
            e.addrs.push(ip);
        }
    }

    fn add_ptr(&mut self, ip: IpAddr, target: String) {
        let v = self.ptrs.entry(ip).or_default();
        if !v.contains(&target) {
            v.push(target);
        }
    }

    /// The host file's addresses for `key`, or for its plain part when `key` is a plain
    /// name in the network's domain (expand-hosts applies to the file too).
    fn host_file_addrs(&self, key: &str) -> Option<&[IpAddr]> {
        self.hosts.addrs(key).or_else(|| {
            let dom = self.domain.as_deref()?;
            let plain = key.strip_suffix(dom)?.strip_suffix('.')?;
            is_plain(plain).then(|| self.hosts.addrs(plain)).flatten()
        })
    }

    /// The host file's name for `ip`, expanded with the domain when plain.
    fn host_file_ptr(&self, ip: &IpAddr) -> Option<String> {
        let n = self.hosts.name_of(ip)?;
        Some(match &self.domain {
            Some(dom) if is_plain(n) => format!("{n}.{dom}"),
            _ => n.to_string(),
        })
    }

    /// Records for `key` of type `qtype`, owned by `owner` (the query's own spelling).
    /// An alias answers its CNAME before anything else (a CNAME owner holds no other
    /// data); a `ptr-record` replaces the PTRs of hosts and leases for its name, as in
    /// dnsmasq, and exists for PTR queries only (dnsmasq forwards the other types).
    pub(crate) fn lookup(&self, key: &str, owner: &Name, qtype: RecordType, ttl: u32) -> Lookup {
        if let Some(records) = self.cname_chain(key, owner, qtype, ttl) {
            return Lookup::Records(records);
        }
        if let Some(targets) = self
            .ptr_records
            .get(key)
            .filter(|_| matches!(qtype, RecordType::PTR | RecordType::ANY))
        {
            let records = targets
                .iter()
                .filter_map(|t| match t {
                    Some(t) => name_of(t),
                    None => Some(Name::root()),
                })
                .map(|t| Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(t))))
                .collect();
            return Lookup::Records(records);
        }
        self.own_records(key, owner, qtype, ttl)
    }

    /// A `cname=` alias: its CNAME, those of the aliases it leads through, then the
    /// target's own records of `qtype`. A target the network does not hold gets the
    /// CNAME alone, for the client to follow (what dnsmasq 2.90 answers).
    fn cname_chain(
        &self,
        key: &str,
        owner: &Name,
        qtype: RecordType,
        ttl: u32,
    ) -> Option<Vec<Record>> {
        let (mut target, mut own_ttl) = self.cnames.get(key)?.clone();
        let mut owner = owner.clone();
        let mut out = Vec::new();
        let mut seen = vec![key.to_string()];
        loop {
            let tname = name_of(&target)?;
            let cname = RData::CNAME(CNAME(tname.clone()));
            out.push(Record::from_rdata(owner, own_ttl.unwrap_or(ttl), cname));
            if qtype == RecordType::CNAME {
                break;
            }
            match self.cnames.get(&target) {
                Some(next) if !seen.contains(&target) && seen.len() < MAX_CHAIN => {
                    seen.push(target);
                    (target, own_ttl) = next.clone();
                    owner = tname;
                }
                Some(_) => break,
                None => {
                    if let Lookup::Records(r) = self.own_records(&target, &tname, qtype, ttl) {
                        out.extend(r);
                    }
                    break;
                }
            }
        }
        Some(out)
    }

    /// [`LocalData::lookup`] without aliases and `ptr-record`s.
    fn own_records(&self, key: &str, owner: &Name, qtype: RecordType, ttl: u32) -> Lookup {
        let mut out = Vec::new();
        let mut exists = false;
        let any = qtype == RecordType::ANY;
        let mut push = |rdata: RData| out.push(Record::from_rdata(owner.clone(), ttl, rdata));
        let entry = self.names.get(key);
        let addrs = match entry {
            Some(e) => Some(e.addrs.as_slice()),
            None => self.host_file_addrs(key),
        };
        if let Some(addrs) = addrs {
            exists = true;
            for ip in addrs {
                match ip {
                    IpAddr::V4(a) if any || qtype == RecordType::A => push(RData::A(A(*a))),
                    IpAddr::V6(a) if any || qtype == RecordType::AAAA => {
                        push(RData::AAAA(AAAA(*a)))
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = entry {
            exists = true;
            if any || qtype == RecordType::TXT {
                for t in &e.txts {
                    push(RData::TXT(TXT::new(txt_strings(t))));
                }
            }
            if any || qtype == RecordType::SRV {
                for s in &e.srvs {
                    let target = match &s.target {
                        Some(t) => name_of(t),
                        None => Some(Name::root()),
                    };
                    if let Some(target) = target {
                        push(RData::SRV(SRV::new(s.priority, s.weight, s.port, target)));
                    }
                }
            }
        }
        if let Some(ip) = reverse_addr(key) {
            let targets = match self.ptrs.get(&ip) {
                Some(t) => t.clone(),
                None => self.host_file_ptr(&ip).into_iter().collect(),
            };
            exists |= !targets.is_empty();
            if any || qtype == RecordType::PTR {
                for t in targets {
                    if let Some(n) = name_of(&t) {
                        push(RData::PTR(PTR(n)));
                    }
                }
            }
        }
        if self.domain.as_deref() == Some(key) && (any || qtype == RecordType::SOA) {
            exists = true;
            out.extend(self.soa_for(key, ttl));
        }
        exists |= self.empty.contains(key);
        match (exists, out.is_empty()) {
            (false, _) => Lookup::NotFound,
            (true, true) => Lookup::NoData,
            (true, false) => Lookup::Records(out),
        }
    }
}

/// TXT character-strings are at most 255 bytes: longer values are split on char boundaries.
fn txt_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in value.chars() {
        if cur.len() + c.len_utf8() > 255 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_follow_dnsmasq() {
        let d = Some("example.com");
        assert_eq!(guest_name("VM1", d).unwrap(), "vm1");
        assert_eq!(guest_name("vm1.example.com", d).unwrap(), "vm1");
        assert_eq!(guest_name("vm1.example.com.", d).unwrap(), "vm1");
        assert_eq!(guest_name("vm1.evil.org", d).unwrap(), "vm1");
        assert_eq!(guest_name("vm1.sub.example.com", d).unwrap(), "vm1");
        assert_eq!(guest_name("vm1.example.com", None).unwrap(), "vm1");
        assert_eq!(guest_name("example.com", d).unwrap(), "example");
        assert!(guest_name("vm\n1", d).is_err());
        assert!(guest_name("", d).is_err());
        assert!(guest_name("vm 1", d).is_err());
    }

    #[test]
    fn txt_split() {
        assert_eq!(txt_strings(""), vec![String::new()]);
        assert_eq!(txt_strings("abc"), vec!["abc".to_string()]);
        let long = "x".repeat(600);
        let parts = txt_strings(&long);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        let uni = "é".repeat(200);
        let parts = txt_strings(&uni);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.concat(), uni);
    }
}
