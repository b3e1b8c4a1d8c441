//! The I/O half of address-conflict detection on the bridge (the decisions are
//! `kvnet_dhcp::conflict`'s): ARP probes for addresses about to be offered, within the
//! probe rate, from the bridge's current MAC, through the hub's ARP socket (which also
//! brings the claims seen there).

use super::hub::Port;
use kvnet_dhcp::conflict::ProbeRate;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tracing::debug;

/// The bridge's MAC changes when ports come and go unless it was set; re-read it.
const MAC_MAX_AGE: Duration = Duration::from_secs(5);

pub struct Prober {
    bridge: String,
    rate: ProbeRate,
    mac: Option<([u8; 6], Instant)>,
}

impl Prober {
    pub fn new(bridge: &str) -> Prober {
        Prober {
            bridge: bridge.to_string(),
            rate: ProbeRate::new(Instant::now()),
            mac: None,
        }
    }

    /// Probe `ip` unless over the rate; whether a probe left.
    pub fn probe(&mut self, port: &Port, ip: Ipv4Addr) -> bool {
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
        match port.probe(mac, ip) {
            Ok(()) => true,
            Err(e) => {
                debug!("ARP probe for {ip} on {}: {e}", self.bridge);
                false
            }
        }
    }
}
