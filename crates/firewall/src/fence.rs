//! The DHCP fence of overlay networks (`<kvnet:overlay>`): DHCP (v4 and v6) stays on
//! each host, so a guest's requests never cross its network's VXLAN port and neither do
//! other hosts' answers; only its own host answers it, from its slice of the ranges.
//!
//! One `bridge` family table beside kvnet's `inet` one (`<table>_overlay`), the VXLAN
//! devices of every running overlay network in one set, fixed rules matching it:
//!
//! ```text
//! set overlay  ifname                   kvx100, kvx200
//! chain forward (bridge, filter, 0)     oifname @overlay udp dport { 67, 68, 546, 547 } drop
//!                                       iifname @overlay udp dport { … } drop
//! chain input   (bridge, filter, 0)     iifname @overlay udp dport { … } drop
//! chain output  (bridge, filter, 0)     oifname @overlay udp dport { … } drop
//! ```
//!
//! A network's start or stop is one element ([`crate::nl::encode_fence`]); the whole
//! table is rendered only when it is made, rebuilt or deleted ([`render_fence`]). With
//! no overlay running there is no table: a host without overlays pays nothing per frame.

use std::collections::BTreeSet;
use std::fmt::Write;

use kvnet_model::ifname;

use crate::listing::normalize_listing;
use crate::model::{FwError, check_table};

/// The set of the VXLAN devices.
pub const FENCE_SET: &str = "overlay";

const DHCP: &str = "udp dport { 67, 68, 546, 547 } drop";

/// The fence table of kvnet table `table`.
pub fn fence_table(table: &str) -> String {
    format!("{table}_overlay")
}

/// Checks that network `network`'s device `dev` can go in the fence (the renderers
/// quote it).
pub fn validate_fence_dev(network: &str, dev: &str) -> Result<(), FwError> {
    ifname::check(dev).map_err(|reason| FwError::InvalidIfname {
        network: network.to_string(),
        field: "overlay device",
        ifname: dev.to_string(),
        reason,
    })
}

/// The table body for `devs` (none when `devs` is empty).
fn body(name: &str, devs: &BTreeSet<String>) -> String {
    if devs.is_empty() {
        return String::new();
    }
    let elements: Vec<String> = devs.iter().map(|d| format!("\"{d}\"")).collect();
    let mut s = format!(
        "table bridge {name} {{\n\tset {FENCE_SET} {{\n\t\ttype ifname\n\t\telements = {{ {} }}\n\t}}\n",
        elements.join(", ")
    );
    let rules: [(&str, &[&str]); 3] = [
        ("forward", &["oifname", "iifname"]),
        ("input", &["iifname"]),
        ("output", &["oifname"]),
    ];
    for (chain, dirs) in rules {
        let _ = writeln!(
            s,
            "\tchain {chain} {{\n\t\ttype filter hook {chain} priority 0; policy accept;"
        );
        for dir in dirs {
            let _ = writeln!(s, "\t\t{dir} @{FENCE_SET} {DHCP}");
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// An `nft -f` script that replaces the fence table of `table` with one fencing `devs`
/// in one transaction, or deletes it when `devs` is empty; it works whether or not the
/// table exists.
///
/// # Panics
/// If `table` or a device fails validation ([`validate_fence_dev`]).
pub fn render_fence(table: &str, devs: &BTreeSet<String>) -> String {
    check_table(table);
    for d in devs {
        if let Err(e) = validate_fence_dev("", d) {
            panic!("kvnet-firewall: {e}");
        }
    }
    let name = fence_table(table);
    format!(
        "table bridge {name} {{}}\ndelete table bridge {name}\n{}",
        body(&name, devs)
    )
}

/// What [`normalize_listing`] gives for the table [`render_fence`] makes; the empty
/// string for none.
pub fn expected_fence_listing(table: &str, devs: &BTreeSet<String>) -> String {
    normalize_listing(&body(&fence_table(table), devs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_fence_is_replaced_whole_and_deleted_when_empty() {
        assert_eq!(
            render_fence("kvnet", &devs(&["kvx200", "kvx100"])),
            "table bridge kvnet_overlay {}\n\
             delete table bridge kvnet_overlay\n\
             table bridge kvnet_overlay {\n\
             \tset overlay {\n\
             \t\ttype ifname\n\
             \t\telements = { \"kvx100\", \"kvx200\" }\n\
             \t}\n\
             \tchain forward {\n\
             \t\ttype filter hook forward priority 0; policy accept;\n\
             \t\toifname @overlay udp dport { 67, 68, 546, 547 } drop\n\
             \t\tiifname @overlay udp dport { 67, 68, 546, 547 } drop\n\
             \t}\n\
             \tchain input {\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\tiifname @overlay udp dport { 67, 68, 546, 547 } drop\n\
             \t}\n\
             \tchain output {\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\toifname @overlay udp dport { 67, 68, 546, 547 } drop\n\
             \t}\n\
             }\n"
        );
        assert_eq!(
            render_fence("kvnet", &devs(&[])),
            "table bridge kvnet_overlay {}\ndelete table bridge kvnet_overlay\n"
        );
        assert_eq!(fence_table("kvnet"), "kvnet_overlay");
    }

    #[test]
    fn the_expected_listing_matches_what_nft_lists() {
        // `nft list table bridge kvnet_overlay` after render_fence (nft 1.0.6).
        let live = "table bridge kvnet_overlay {\n\
            \tset overlay {\n\t\ttype ifname\n\t\telements = { \"kvx100\",\n\t\t\t     \"kvx200\" }\n\t}\n\n\
            \tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\
            \t\toifname @overlay udp dport { 67, 68, 546, 547 } drop\n\
            \t\tiifname @overlay udp dport { 67, 68, 546, 547 } drop\n\t}\n\n\
            \tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\
            \t\tiifname @overlay udp dport { 67, 68, 546, 547 } drop\n\t}\n\n\
            \tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n\
            \t\toifname @overlay udp dport { 67, 68, 546, 547 } drop\n\t}\n}\n";
        let want = devs(&["kvx100", "kvx200"]);
        assert_eq!(
            normalize_listing(live),
            expected_fence_listing("kvnet", &want)
        );
        assert_ne!(
            normalize_listing(live),
            expected_fence_listing("kvnet", &devs(&["kvx100"]))
        );
        let edited = live.replace(
            "iifname @overlay udp dport { 67, 68, 546, 547 } drop\n\t}\n\n\tchain output",
            "\t}\n\n\tchain output",
        );
        assert_ne!(
            normalize_listing(&edited),
            expected_fence_listing("kvnet", &want)
        );
        assert_eq!(expected_fence_listing("kvnet", &devs(&[])), "");
    }

    #[test]
    fn names_that_could_escape_quoting_are_refused() {
        assert!(validate_fence_dev("n", "kvx100").is_ok());
        let e = validate_fence_dev("n", "a\" drop").unwrap_err().to_string();
        assert!(e.contains("overlay device name"), "{e}");
        assert!(validate_fence_dev("n", "").is_err());
    }
}
