//! Define-time completion (what libvirt fills in at net-define), with caller-supplied entropy.

use std::collections::HashSet;

use uuid::Uuid;

use crate::types::*;

/// The highest N tried for `virbrN` / a `%d` template (libvirt's limit is also in this range).
const MAX_BRIDGE_INDEX: u32 = 4096;

impl Network {
    /// What libvirt does at net-define: a v4 UUID from `entropy` if missing; for L3 modes a
    /// unique unicast `52:54:00:xx:xx:xx` MAC (not in `used_macs`) if missing, the lowest free
    /// `virbrN` (or `%d` template expansion) not in `used_bridges`, and stp on / delay 0.
    pub fn complete_for_define(
        &mut self,
        used_bridges: &HashSet<String>,
        used_macs: &HashSet<MacAddr>,
        entropy: &mut dyn FnMut() -> u64,
    ) {
        if self.uuid.is_none() {
            self.uuid = Some(uuid_from_entropy(entropy));
        }
        if !self.forward_mode().is_l3() {
            return;
        }
        if self.mac.is_none() {
            self.mac = Some(match self.kvnet_ext().ok().and_then(|e| e.overlay) {
                // Every host of an overlay defines the network with the same gateway MAC
                // (a distributed anycast gateway) without anyone writing it down.
                Some(o) => overlay_mac(o.vni),
                None => free_mac(used_macs, entropy()),
            });
        }
        let bridge = self.bridge.get_or_insert_with(Bridge::default);
        let template = match bridge.name.as_deref() {
            None => Some("virbr%d".to_string()),
            Some(n) if n.contains("%d") => Some(n.to_string()),
            Some(_) => None,
        };
        if let Some(t) = template
            && let Some(name) = (0..MAX_BRIDGE_INDEX)
                .map(|i| t.replacen("%d", &i.to_string(), 1))
                .find(|n| n.len() <= 15 && !used_bridges.contains(n))
        {
            bridge.name = Some(name);
        }
        bridge.stp.get_or_insert(true);
        bridge.delay.get_or_insert(0);
    }
}

/// 52:54:00 (QEMU's OUI) plus 24 bits, starting at a random point and stepping to a free one.
fn free_mac(used: &HashSet<MacAddr>, r: u64) -> MacAddr {
    let start = (r & 0xff_ffff) as u32;
    let mk = |v: u32| MacAddr([0x52, 0x54, 0x00, (v >> 16) as u8, (v >> 8) as u8, v as u8]);
    (0..0x100_0000u32)
        .map(|i| mk(start.wrapping_add(i) & 0xff_ffff))
        .find(|m| !used.contains(m))
        .unwrap_or_else(|| mk(start))
}

/// The gateway MAC of an overlay with `vni` that names none: locally administered,
/// unicast, `02:6b:76` ("kv") and the VNI's 24 bits.
pub fn overlay_mac(vni: u32) -> MacAddr {
    MacAddr([
        0x02,
        0x6b,
        0x76,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
    ])
}

/// A fresh v4 UUID from the caller's entropy (for daemons that need one outside a define).
pub fn uuid_from_entropy(entropy: &mut dyn FnMut() -> u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&entropy().to_le_bytes());
    bytes[8..].copy_from_slice(&entropy().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
