//! How many transfers run at once: at most so many on a network, and so many for one
//! client, so that one guest (or a flood of requests with forged sources) cannot take
//! every slot or every open file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use thiserror::Error;

/// Transfers one network serves at once.
pub const PER_NETWORK: usize = 64;
/// Transfers one client address gets at once.
pub const PER_CLIENT: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Busy {
    #[error("{0} transfers already running on this network")]
    Network(usize),
    #[error("{0} transfers already running for this client")]
    Client(usize),
}

/// The running transfers, counted per client.
#[derive(Debug, Clone)]
pub struct Slots {
    per_network: usize,
    per_client: usize,
    total: usize,
    clients: BTreeMap<IpAddr, usize>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots::new(PER_NETWORK, PER_CLIENT)
    }
}

impl Slots {
    pub fn new(per_network: usize, per_client: usize) -> Slots {
        Slots {
            per_network,
            per_client,
            total: 0,
            clients: BTreeMap::new(),
        }
    }

    /// Take a slot for a transfer to `client`; give it back with [`Slots::release`].
    pub fn admit(&mut self, client: IpAddr) -> Result<(), Busy> {
        if self.total >= self.per_network {
            return Err(Busy::Network(self.total));
        }
        let n = self.clients.entry(client).or_default();
        if *n >= self.per_client {
            return Err(Busy::Client(*n));
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A transfer to `client` ended.
    pub fn release(&mut self, client: IpAddr) {
        if let Some(n) = self.clients.get_mut(&client) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.clients.remove(&client);
            }
        }
    }

    /// Transfers running now.
    pub fn running(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_then_per_network() {
        let mut s = Slots::new(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
            "10.0.0.4".parse().unwrap(),
        );
        s.admit(a).unwrap();
        s.admit(a).unwrap();
        assert_eq!(s.admit(a), Err(Busy::Client(2)));
        s.admit(b).unwrap();
        assert_eq!(s.admit(c), Err(Busy::Network(3)));
        s.release(a);
        s.admit(c).unwrap();
        s.release(c);
        s.release(c); // more releases than admits change nothing
        s.release(b);
        s.release(a);
        assert_eq!(s.running(), 0);
        assert!(s.clients.is_empty());
    }
}
