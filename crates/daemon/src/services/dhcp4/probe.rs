//! The I/O half of address-conflict detection on the bridge (the decisions are
//! `kvnet_dhcp::conflict`'s): ARP probes for addresses about to be offered, within the
//! probe rate, from the bridge's current MAC; the claims seen there.

use kvnet_dhcp::conflict::ProbeRate;
use kvnet_host::arp::ArpSocket;
use kvnet_model::MacAddr;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tracing::debug;

/// The bridge's MAC changes when ports come and go unless it was set; re-read it.
const MAC_MAX_AGE: Duration = Duration::from_secs(5);

pub struct Prober {
    sock: ArpSocket,
    bridge: String,
    rate: ProbeRate,
    mac: Option<([u8; 6], Instant)>,
}

impl Prober {
    pub fn open(bridge: &str) -> Result<Prober, kvnet_host::HostError> {
        Ok(Prober {
            sock: ArpSocket::open(bridge)?,
            bridge: bridge.to_string(),
            rate: ProbeRate::new(Instant::now()),
            mac: None,
        })
    }

    /// Wait until claims may be there; [`Prober::drain`] reads them.
    pub async fn readable(&self) {
        if self.sock.readable().await.is_err() {
            // The runtime is shutting down.
            std::future::pending::<()>().await;
        }
    }

    /// Every claim read without blocking: (sender address, sender MAC).
    pub fn drain(&self, mut claim: impl FnMut(Ipv4Addr, MacAddr)) {
        if let Err(e) = self.sock.drain(|ip, mac| claim(ip, MacAddr(mac))) {
            debug!("ARP receive on {}: {e}", self.bridge);
        }
    }

    /// Probe `ip` unless over the rate; whether a probe left.
    pub fn probe(&mut self, ip: Ipv4Addr) -> bool {
        let now = Instant::now();
        if !self.rate.allow(now) {
            return false;
        }
        let mac = match self.mac {
            Some((m, at)) if at.elapsed() < MAC_MAX_AGE => m,
            _ => match kvnet_host::link::mac(&self.bridge) {
                Some(m) => {
                    self.mac = Some((m, now));
                    m
                }
                None => return false,
            },
        };
        match self.sock.send_probe(mac, ip) {
            Ok(()) => true,
            Err(e) => {
                debug!("ARP probe for {ip} on {}: {e}", self.bridge);
                false
            }
        }
    }
}
