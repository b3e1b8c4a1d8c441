//! Who asks (MAC, client id) and the addresses offered to them, held until REQUESTed.

use super::*;

/// Who is asking: MAC, and option 61 in libvirt's text form when sent.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) mac: MacAddr,
    pub(super) id: Option<String>,
    pub(super) id_raw: Option<Vec<u8>>,
    pub(super) hostname: Option<String>,
}

impl Client {
    pub(super) fn of(req: &Request) -> Client {
        Client {
            mac: req.mac,
            id: req.client_id.as_deref().map(format_client_id),
            id_raw: req.client_id.clone(),
            hostname: req.hostname.clone(),
        }
    }

    pub(super) fn owns(&self, rec: &LeaseRecord) -> bool {
        rec.belongs_to(self.mac, self.id.as_deref())
    }
}

#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub(super) mac: MacAddr,
    pub(super) client_id: Option<String>,
    pub(super) until: u64,
}

impl Offer {
    pub(super) fn for_client(&self, c: &Client) -> bool {
        match (&self.client_id, &c.id) {
            (Some(a), Some(b)) => a == b,
            _ => self.mac == c.mac,
        }
    }
}

/// Pending offers by address, indexed by client like [`LeaseTable`], so that a client's
/// offer is found without a scan. Also remembers the addresses whose offers went away,
/// for the search of never-used addresses.
#[derive(Debug, Clone, Default)]
pub(super) struct Offers {
    pub(super) by_ip: HashMap<Ipv4Addr, Offer>,
    pub(super) by_mac: HashMap<MacAddr, BTreeSet<Ipv4Addr>>,
    pub(super) by_id: HashMap<String, BTreeSet<Ipv4Addr>>,
    pub(super) dropped: Vec<Ipv4Addr>,
}

impl Offers {
    pub(super) fn get(&self, ip: &Ipv4Addr) -> Option<&Offer> {
        self.by_ip.get(ip)
    }

    pub(super) fn until(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_ip.values().map(|o| o.until)
    }

    /// The address of the oldest offer (every offer is held as long, so the first to
    /// run out) made to a client other than `c`, if it runs out by `until`.
    pub(super) fn oldest_not_for(&self, c: &Client, until: u64) -> Option<Ipv4Addr> {
        self.by_ip
            .iter()
            .filter(|(_, o)| !o.for_client(c) && o.until <= until)
            .min_by_key(|(ip, o)| (o.until, **ip))
            .map(|(ip, _)| *ip)
    }

    pub(super) fn insert(&mut self, ip: Ipv4Addr, o: Offer) {
        self.remove(&ip);
        self.by_mac.entry(o.mac).or_default().insert(ip);
        if let Some(id) = &o.client_id {
            self.by_id.entry(id.clone()).or_default().insert(ip);
        }
        self.by_ip.insert(ip, o);
    }

    pub(super) fn remove(&mut self, ip: &Ipv4Addr) -> Option<Offer> {
        let o = self.by_ip.remove(ip)?;
        unindex(&mut self.by_mac, &o.mac, ip);
        if let Some(id) = &o.client_id {
            unindex(&mut self.by_id, id, ip);
        }
        self.dropped.push(*ip);
        Some(o)
    }

    /// The addresses offered to `c` (`Offer::for_client`).
    pub(super) fn of_client(&self, c: &Client) -> Vec<Ipv4Addr> {
        // Matching is by client id when both have one, else by MAC: the union of the two
        // index entries holds every candidate.
        let mut ips = self.by_mac.get(&c.mac).cloned().unwrap_or_default();
        if let Some(set) = c.id.as_ref().and_then(|id| self.by_id.get(id)) {
            ips.extend(set);
        }
        ips.into_iter()
            .filter(|ip| self.by_ip.get(ip).is_some_and(|o| o.for_client(c)))
            .collect()
    }

    pub(super) fn remove_client(&mut self, c: &Client) {
        for ip in self.of_client(c) {
            self.remove(&ip);
        }
    }

    pub(super) fn retain(&mut self, mut f: impl FnMut(&Ipv4Addr, &Offer) -> bool) {
        let gone: Vec<Ipv4Addr> = self
            .by_ip
            .iter()
            .filter(|(ip, o)| !f(ip, o))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in gone {
            self.remove(&ip);
        }
    }
}

pub(super) fn unindex<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, BTreeSet<Ipv4Addr>>,
    key: &K,
    ip: &Ipv4Addr,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(ip);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
