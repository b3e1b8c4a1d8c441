//! The host's `/etc/hosts`, served to guests as libvirt's dnsmasq serves it (libvirt does
//! not pass `no-hosts`): `localhost` and the host's own names resolve in every network.
//! One parsed copy is shared by every engine, so a large file costs its size once.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::names::check_name;

/// Lines beyond this are ignored: the file is the admin's, but a runaway one must not
/// make every network's DNS hold millions of names.
pub const MAX_ENTRIES: usize = 200_000;

/// `/etc/hosts` parsed: names to addresses and addresses to names, in file order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostsFile {
    names: HashMap<String, Vec<IpAddr>>,
    ptrs: HashMap<IpAddr, String>,
    /// Lines that were not `ADDRESS NAME...`, for the shell to log.
    skipped: usize,
}

impl HostsFile {
    /// Parse the hosts(5) format: `ADDRESS NAME [ALIAS...]`, `#` to the end of the line.
    /// Lines with an unparsable address (including IPv6 zones) or no valid name are
    /// skipped; invalid names on a line are dropped and the rest kept. Never fails.
    pub fn parse(text: &str) -> HostsFile {
        let mut h = HostsFile::default();
        let mut entries = 0;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_ascii_whitespace();
            let Some(addr) = words.next() else {
                continue;
            };
            if entries >= MAX_ENTRIES {
                h.skipped += 1;
                continue;
            }
            let Ok(ip) = addr.parse::<IpAddr>() else {
                h.skipped += 1;
                continue;
            };
            let mut any = false;
            for n in words.filter_map(|w| check_name(w).ok()) {
                any = true;
                entries += 1;
                let addrs = h.names.entry(n.clone()).or_default();
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
                // The first name given for an address is its canonical one (glibc).
                h.ptrs.entry(ip).or_insert(n);
            }
            if !any {
                h.skipped += 1;
            }
        }
        h
    }

    /// Addresses of `key` (a lower-case name without trailing dot).
    pub fn addrs(&self, key: &str) -> Option<&[IpAddr]> {
        self.names.get(key).map(Vec::as_slice)
    }

    /// The canonical name of `ip`.
    pub fn name_of(&self, ip: &IpAddr) -> Option<&str> {
        self.ptrs.get(ip).map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.names.contains_key(key)
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Lines skipped as malformed (or beyond [`MAX_ENTRIES`]).
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_default_and_aliases() {
        let h = HostsFile::parse(
            "127.0.0.1\tlocalhost\n127.0.1.1\tHyper.example.org hyper\n\n\
             # The following lines are desirable for IPv6 capable hosts\n\
             ::1     localhost ip6-localhost ip6-loopback\n\
             ff02::1 ip6-allnodes\n",
        );
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(h.addrs("localhost"), Some(&[v4, v6][..]));
        assert_eq!(h.addrs("hyper"), Some(&["127.0.1.1".parse().unwrap()][..]));
        assert_eq!(
            h.name_of(&"127.0.1.1".parse().unwrap()),
            Some("hyper.example.org")
        );
        assert_eq!(h.name_of(&v6), Some("localhost"));
        assert!(h.contains("ip6-allnodes"));
        assert_eq!(h.skipped(), 0);
    }

    #[test]
    fn junk_is_skipped_not_fatal() {
        let h = HostsFile::parse(
            "not-an-address name\nfe80::1%eth0 zoned\n10.0.0.1\n10.0.0.2 bad\u{7}name ok # c\n\
             10.0.0.3 a..b\n\u{0}\u{ff}garbage\n",
        );
        assert_eq!(h.len(), 1);
        assert!(h.contains("ok"));
        assert_eq!(h.skipped(), 5);
    }

    #[test]
    fn bounded() {
        let text: String = (0..MAX_ENTRIES + 10)
            .map(|i| format!("10.{}.{}.{} n{i}\n", i >> 16 & 255, i >> 8 & 255, i & 255))
            .collect();
        let h = HostsFile::parse(&text);
        assert_eq!(h.len(), MAX_ENTRIES);
        assert_eq!(h.skipped(), 10);
    }
}
