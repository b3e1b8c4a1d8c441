//! Pure helpers for a new port: its TAP's name, a guest MAC (random or given) and the
//! TAP's own, and the qemu arguments that use them.

use anyhow::{Result, anyhow, bail};
use kvnet_model::MacAddr;
use std::collections::HashSet;

/// The lowest free `PREFIXN`: libvirt names guest TAPs `vnetN`, macvtaps `macvtapN`.
pub fn free_name(prefix: &str, used: &HashSet<String>) -> String {
    (0u32..)
        .map(|n| format!("{prefix}{n}"))
        .find(|n| !used.contains(n))
        .expect("some vnetN is free")
}

/// A random 52:54:00:xx:xx:xx (qemu's prefix) not in `used`.
pub fn random_mac(used: &HashSet<[u8; 6]>, mut rand: impl FnMut() -> u64) -> MacAddr {
    loop {
        let r = rand().to_le_bytes();
        let mac = [0x52, 0x54, 0x00, r[0], r[1], r[2]];
        if !used.contains(&mac) && !used.contains(&tap_mac(mac)) {
            return MacAddr(mac);
        }
    }
}

/// The TAP's own MAC: the guest's with a first byte of 0xFE, as libvirt does, so the
/// bridge never adopts it (a bridge takes its lowest port MAC) and it differs from
/// the guest's.
pub fn tap_mac(guest: [u8; 6]) -> [u8; 6] {
    let mut m = guest;
    m[0] = 0xfe;
    m
}

/// qemu arguments for a port-create'd TAP; `vhost` when its qemu can open
/// /dev/vhost-net ([`vhost::decide`](super::vhost::decide)).
pub fn qemu_args(ifname: &str, mac: MacAddr, queues: u16, vhost: bool) -> Vec<String> {
    let v = if vhost { "on" } else { "off" };
    let mut netdev = format!("tap,id=net0,ifname={ifname},script=no,downscript=no,vhost={v}");
    let mut device = format!("virtio-net-pci,netdev=net0,mac={mac}");
    if queues > 1 {
        netdev += &format!(",queues={queues}");
        // virtio-net wants a vector per queue in each direction, plus config and control.
        device += &format!(",mq=on,vectors={}", 2 * u32::from(queues) + 2);
    }
    vec!["-netdev".into(), netdev, "-device".into(), device]
}

pub(super) fn parse_mac(s: &str) -> Result<MacAddr> {
    let m: MacAddr = s.parse().map_err(|e: String| anyhow!("{e}"))?;
    if m.is_multicast() || m.is_zero() {
        bail!("MAC address '{s}' cannot be a guest's: it is multicast or zero");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_vnet_name() {
        let used: HashSet<String> = ["vnet0", "vnet1", "vnet3", "eth0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(free_name("vnet", &used), "vnet2");
        assert_eq!(free_name("vnet", &HashSet::new()), "vnet0");
        assert_eq!(free_name("macvtap", &used), "macvtap0");
    }

    #[test]
    fn random_mac_avoids_used_and_their_tap_twins() {
        let mut seq = [1u64, 2, 3].into_iter();
        let used: HashSet<[u8; 6]> = [[0x52, 0x54, 0, 1, 0, 0], [0xfe, 0x54, 0, 2, 0, 0]]
            .into_iter()
            .collect();
        let m = random_mac(&used, || seq.next().unwrap());
        assert_eq!(m.to_string(), "52:54:00:03:00:00");
        assert_eq!(tap_mac(m.0), [0xfe, 0x54, 0, 3, 0, 0]);
    }

    #[test]
    fn qemu_arguments() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(
            qemu_args("vnet0", mac, 1, false),
            [
                "-netdev",
                "tap,id=net0,ifname=vnet0,script=no,downscript=no,vhost=off",
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"
            ]
        );
        let a = qemu_args("vnet1", mac, 4, false);
        assert!(qemu_args("vnet1", mac, 1, true)[1].contains(",vhost=on"));
        assert!(a[1].ends_with(",queues=4"), "{a:?}");
        assert!(a[3].ends_with(",mq=on,vectors=10"), "{a:?}");
    }

    #[test]
    fn guest_macs_must_be_unicast() {
        assert!(parse_mac("52:54:00:00:00:01").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert!(parse_mac("52:54:00").is_err());
    }
}
