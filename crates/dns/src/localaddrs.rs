//! The addresses of every network kvnetd serves, one set shared by all engines.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::RwLock;

/// Never used as upstreams: a host whose resolv.conf names another network's gateway
/// would otherwise bounce queries between two networks until both pending tables fill.
/// Every engine holds the same set and the shell replaces its contents in place, so a
/// start with a thousand networks running touches one set, not a thousand engines.
#[derive(Debug, Default)]
pub struct LocalAddrs(RwLock<HashSet<IpAddr>>);

impl LocalAddrs {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ip)
    }

    /// Add `addrs` (a network that starts).
    pub fn add(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(addrs);
    }

    /// Remove `addrs` (a network that stops: no two active networks share an address).
    pub fn remove(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        for a in addrs {
            set.remove(&a);
        }
    }

    /// Make the set exactly `addrs`.
    pub fn replace(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        set.clear();
        set.extend(addrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_makes_the_set_exactly_the_new_addresses() {
        let l = LocalAddrs::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "fd00::1".parse().unwrap();
        l.replace([a, b]);
        assert!(l.contains(&a) && l.contains(&b));
        l.replace([b]);
        assert!(!l.contains(&a) && l.contains(&b));
        l.add([a]);
        assert!(l.contains(&a) && l.contains(&b));
        l.remove([b]);
        assert!(l.contains(&a) && !l.contains(&b));
    }
}
