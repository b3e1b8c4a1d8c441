//! A link's current MAC and MTU without a netlink round trip, and the MAC text form.

/// The current MAC of link `name` (`/sys/class/net/NAME/address`); none when the link
/// does not exist or has no Ethernet address. A bridge without a fixed MAC takes one of
/// its ports', so callers re-read it rather than keep it.
///
/// sysfs shows the links of the network namespace it was mounted in (the daemon's),
/// whatever namespace the calling thread is in.
pub fn mac(name: &str) -> Option<[u8; 6]> {
    parse_mac(sysfs(name, "address")?.trim())
}

/// `/sys/class/net/NAME/ATTR`, none for a name that is no link's.
fn sysfs(name: &str, attr: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}")).ok()
}

/// Whether bridge `name` filters VLANs (`bridge/vlan_filtering` in sysfs). `None`
/// when the kernel has no VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING off: the file
/// is missing though `bridge/` is there) or `name` is no bridge.
pub fn bridge_vlan_filtering(name: &str) -> Option<bool> {
    Some(sysfs(name, "bridge/vlan_filtering")?.trim() == "1")
}

/// The current MTU of link `name` (`/sys/class/net/NAME/mtu`), as [`mac`] reads it. A
/// bridge without a configured MTU follows its ports', so callers re-read it.
pub fn mtu(name: &str) -> Option<u32> {
    sysfs(name, "mtu")?.trim().parse().ok()
}

/// `52:54:00:ab:cd:ef` (either case) as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        // from_str_radix alone would take "+5".
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips() {
        let m = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
        assert_eq!(parse_mac("52:54:00:ab:cd:ef"), Some(m));
        assert_eq!(parse_mac("52:54:00:AB:CD:EF"), Some(m));
        assert_eq!(parse_mac(&crate::format_mac(&m)), Some(m));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:e",
            "52:54:00:ab:cd:eg",
            "52-54-00-ab-cd-ef",
            "+5:54:00:ab:cd:ef",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_loopback_mac_is_all_zeros_and_odd_names_are_refused() {
        assert_eq!(mac("lo"), Some([0; 6]));
        assert_eq!(mtu("lo"), Some(65536));
        assert_eq!(mtu("../lo"), None);
        for name in ["", ".", "..", "../lo", "kvnosuch0"] {
            assert_eq!(mac(name), None, "{name}");
        }
    }
}
