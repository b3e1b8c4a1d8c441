//! The table's fixed layout, the same for every network: its sets (key
//! types, flags), its base chains and their rules, and how chains are named.
//! The crate docs describe the layout and why it is built this way. A network
//! only ever adds elements to these sets (see [`crate::plan`]).

use std::fmt::Write as _;

/// The table kvnetd uses unless configured otherwise.
pub const DEFAULT_TABLE: &str = "kvnet";

/// The chain-name suffix for a bridge: ASCII letters and digits are kept,
/// every other byte (including `_`) becomes `_xx` in lowercase hex. Escaping
/// `_` itself keeps the mapping injective, so two bridges never share chains.
pub fn chain_id(bridge: &str) -> String {
    let mut out = String::with_capacity(bridge.len());
    for b in bridge.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

/// One set (or, for custom NAT, verdict map) of the table skeleton.
pub(crate) struct SetDef {
    pub(crate) name: &'static str,
    /// The nft key type, fields joined by ` . `.
    pub(crate) ty: &'static str,
    pub(crate) interval: bool,
    pub(crate) data: Data,
    /// Each element counts the packets and bytes it matched (per-network figures for
    /// the metrics: forwarded, rejected, NAT).
    pub(crate) counted: bool,
}

/// What a set maps its keys to: nothing (a plain set), verdicts, or values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Data {
    None,
    Verdict,
    /// The nft type of the values, fields joined by ` . `.
    Typed(&'static str),
}

impl SetDef {
    /// A map (`: verdict` or `: TYPE`) rather than a set.
    pub(crate) fn is_map(&self) -> bool {
        self.data != Data::None
    }

    /// The ` : TYPE` part of the declaration.
    pub(crate) fn data_decl(&self) -> String {
        match self.data {
            Data::None => String::new(),
            Data::Verdict => " : verdict".into(),
            Data::Typed(t) => format!(" : {t}"),
        }
    }

    /// More than one key field: nft's concatenation, a pipapo set in the
    /// kernel when it has intervals.
    pub(crate) fn concat(&self) -> bool {
        self.ty.contains(" . ")
    }
}

const fn set(name: &'static str, ty: &'static str, interval: bool) -> SetDef {
    SetDef {
        name,
        ty,
        interval,
        data: Data::None,
        counted: false,
    }
}

/// A set whose elements count their matches.
const fn counted(name: &'static str, ty: &'static str, interval: bool) -> SetDef {
    SetDef {
        counted: true,
        ..set(name, ty, interval)
    }
}

const fn map(name: &'static str, ty: &'static str, data: &'static str) -> SetDef {
    SetDef {
        name,
        ty,
        interval: false,
        data: Data::Typed(data),
        counted: false,
    }
}

const IF_V4: &str = "ifname . ipv4_addr";
const IF_IF_V4: &str = "ifname . ifname . ipv4_addr";
const IF_V6: &str = "ifname . ipv6_addr";
const IF_IF_V6: &str = "ifname . ifname . ipv6_addr";
const SVC: &str = "ifname . inet_proto . inet_service";

pub(crate) const CROSS: SetDef = set("cross", "ifname . ifname", false);
pub(crate) const EST4: SetDef = counted("est4", IF_V4, true);
pub(crate) const EST4_DEV: SetDef = counted("est4_dev", IF_IF_V4, true);
pub(crate) const EST6: SetDef = counted("est6", IF_V6, true);
pub(crate) const EST6_DEV: SetDef = counted("est6_dev", IF_IF_V6, true);
pub(crate) const RT4: SetDef = counted("rt4", IF_V4, true);
pub(crate) const RT4_DEV: SetDef = counted("rt4_dev", IF_IF_V4, true);
pub(crate) const RT6: SetDef = counted("rt6", IF_V6, true);
pub(crate) const RT6_DEV: SetDef = counted("rt6_dev", IF_IF_V6, true);
pub(crate) const REJ4: SetDef = counted("rej4", "ifname", false);
pub(crate) const REJ6: SetDef = counted("rej6", "ifname", false);
pub(crate) const SRC4: SetDef = counted("src4", IF_V4, true);
pub(crate) const SRC4_DEV: SetDef = counted("src4_dev", IF_IF_V4, true);
pub(crate) const SRC6: SetDef = counted("src6", IF_V6, true);
pub(crate) const SRC6_DEV: SetDef = counted("src6_dev", IF_IF_V6, true);
pub(crate) const SVC_IN: SetDef = set("svc_in", SVC, false);
pub(crate) const SVC_OUT: SetDef = set("svc_out", SVC, false);
pub(crate) const NAT4_CUSTOM: SetDef = SetDef {
    name: "nat4_custom",
    ty: "ipv4_addr",
    interval: true,
    data: Data::Verdict,
    counted: false,
};
pub(crate) const NAT6_CUSTOM: SetDef = SetDef {
    name: "nat6_custom",
    ty: "ipv6_addr",
    interval: true,
    data: Data::Verdict,
    counted: false,
};
pub(crate) const NAT4_SKIP: SetDef = set("nat4_skip", "ipv4_addr . ipv4_addr", true);
pub(crate) const NAT6_SKIP: SetDef = set("nat6_skip", "ipv6_addr . ipv6_addr", true);
pub(crate) const NAT4: SetDef = counted("nat4", "ipv4_addr", true);
pub(crate) const NAT4_DEV: SetDef = counted("nat4_dev", "ipv4_addr . ifname", true);
pub(crate) const NAT6: SetDef = counted("nat6", "ipv6_addr", true);
pub(crate) const NAT6_DEV: SetDef = counted("nat6_dev", "ipv6_addr . ifname", true);
// Port forwards: protocol . host address . host port, or protocol . host port for
// every local address, to guest address . guest port; and the forwarded
// destinations the forward chain admits (bridge . guest . protocol . guest port).
pub(crate) const FWD4: SetDef = map(
    "fwd4",
    "inet_proto . ipv4_addr . inet_service",
    "ipv4_addr . inet_service",
);
pub(crate) const FWD4_ANY: SetDef = map(
    "fwd4_any",
    "inet_proto . inet_service",
    "ipv4_addr . inet_service",
);
pub(crate) const FWD6: SetDef = map(
    "fwd6",
    "inet_proto . ipv6_addr . inet_service",
    "ipv6_addr . inet_service",
);
pub(crate) const FWD6_ANY: SetDef = map(
    "fwd6_any",
    "inet_proto . inet_service",
    "ipv6_addr . inet_service",
);
pub(crate) const FWDST4: SetDef = set(
    "fwdst4",
    "ifname . ipv4_addr . inet_proto . inet_service",
    false,
);
pub(crate) const FWDST6: SetDef = set(
    "fwdst6",
    "ifname . ipv6_addr . inet_proto . inet_service",
    false,
);

/// Every set of the skeleton, in declaration order. `cross` comes first: a
/// network's element there marks it as present (see [`render_add_new`](crate::render_add_new)).
pub(crate) const SETS: [&SetDef; 31] = [
    &CROSS,
    &EST4,
    &EST4_DEV,
    &EST6,
    &EST6_DEV,
    &RT4,
    &RT4_DEV,
    &RT6,
    &RT6_DEV,
    &REJ4,
    &REJ6,
    &SRC4,
    &SRC4_DEV,
    &SRC6,
    &SRC6_DEV,
    &SVC_IN,
    &SVC_OUT,
    &NAT4_CUSTOM,
    &NAT6_CUSTOM,
    &NAT4_SKIP,
    &NAT6_SKIP,
    &NAT4,
    &NAT4_DEV,
    &NAT6,
    &NAT6_DEV,
    &FWD4,
    &FWD4_ANY,
    &FWD6,
    &FWD6_ANY,
    &FWDST4,
    &FWDST6,
];

/// A chain hooked into netfilter, with its fixed rules.
pub(crate) struct BaseChain {
    pub(crate) name: &'static str,
    pub(crate) hook: &'static str,
    pub(crate) rules: &'static [&'static str],
}

/// The fixed rules, written as `nft list` prints them so that a listing
/// compares equal to [`render_full`](crate::render_full). The forward order is libvirt's
/// guest_cross → guest_input → guest_output: a bridge is in rej4/rej6
/// exactly for the families its per-network chain used to reject, so a
/// packet leaving one kvnet network for another is judged by the
/// destination's accepts and rejects first, then by the source's.
pub(crate) const BASE_CHAINS: [BaseChain; 6] = [
    BaseChain {
        name: "forward",
        hook: "type filter hook forward priority filter; policy accept;",
        rules: &[
            "iifname . oifname @cross counter accept",
            // New connections through a port forward, before a NAT network's rejects.
            "ct status dnat oifname . ip daddr . meta l4proto . th dport @fwdst4 counter accept",
            "ct status dnat oifname . ip6 daddr . meta l4proto . th dport @fwdst6 counter accept",
            "ct state established,related oifname . ip daddr @est4 counter accept",
            "ct state established,related oifname . iifname . ip daddr @est4_dev counter accept",
            "ct state established,related oifname . ip6 daddr @est6 counter accept",
            "ct state established,related oifname . iifname . ip6 daddr @est6_dev counter accept",
            "oifname . ip daddr @rt4 counter accept",
            "oifname . iifname . ip daddr @rt4_dev counter accept",
            "oifname . ip6 daddr @rt6 counter accept",
            "oifname . iifname . ip6 daddr @rt6_dev counter accept",
            "meta nfproto ipv4 oifname @rej4 counter reject with icmp port-unreachable",
            "meta nfproto ipv6 oifname @rej6 counter reject with icmpv6 port-unreachable",
            "iifname . ip saddr @src4 counter accept",
            "iifname . oifname . ip saddr @src4_dev counter accept",
            "iifname . ip6 saddr @src6 counter accept",
            "iifname . oifname . ip6 saddr @src6_dev counter accept",
            "meta nfproto ipv4 iifname @rej4 counter reject with icmp port-unreachable",
            "meta nfproto ipv6 iifname @rej6 counter reject with icmpv6 port-unreachable",
        ],
    },
    BaseChain {
        name: "input",
        hook: "type filter hook input priority filter; policy accept;",
        rules: &["iifname . meta l4proto . th dport @svc_in counter accept"],
    },
    BaseChain {
        name: "output",
        hook: "type filter hook output priority filter; policy accept;",
        rules: &["oifname . meta l4proto . th dport @svc_out counter accept"],
    },
    // Custom SNAT networks first, then libvirt's NAT rules for all others:
    // no NAT towards multicast, broadcast or the own subnet, masquerade
    // anything else (TCP/UDP to unprivileged ports).
    // Port forwards: to a given host address, or to any address of the host's own.
    // NAT chains only see a connection's first packet, so the fib lookup is rare.
    BaseChain {
        name: "prerouting",
        hook: "type nat hook prerouting priority dstnat; policy accept;",
        rules: &[
            "counter dnat ip to meta l4proto . ip daddr . th dport map @fwd4",
            "fib daddr type local counter dnat ip to meta l4proto . th dport map @fwd4_any",
            "counter dnat ip6 to meta l4proto . ip6 daddr . th dport map @fwd6",
            "fib daddr type local counter dnat ip6 to meta l4proto . th dport map @fwd6_any",
        ],
    },
    // The same for the host's own connections; loopback cannot be routed to a guest.
    BaseChain {
        name: "output_dnat",
        hook: "type nat hook output priority -100; policy accept;",
        rules: &[
            "counter dnat ip to meta l4proto . ip daddr . th dport map @fwd4",
            "ip daddr != 127.0.0.0/8 fib daddr type local counter dnat ip to meta l4proto . th dport map @fwd4_any",
            "counter dnat ip6 to meta l4proto . ip6 daddr . th dport map @fwd6",
            "ip6 daddr != ::1 fib daddr type local counter dnat ip6 to meta l4proto . th dport map @fwd6_any",
        ],
    },
    BaseChain {
        name: "postrouting",
        hook: "type nat hook postrouting priority srcnat; policy accept;",
        rules: &[
            // Hairpin: a guest reaching another guest of its own network through a
            // forward gets the host as source, so the reply comes back through it.
            "ct status dnat oifname . ip saddr @est4 counter masquerade",
            "ct status dnat oifname . ip6 saddr @est6 counter masquerade",
            "ip saddr vmap @nat4_custom",
            "ip6 saddr vmap @nat6_custom",
            "ip saddr . ip daddr @nat4_skip counter return",
            "ip6 saddr . ip6 daddr @nat6_skip counter return",
            "meta l4proto { tcp, udp } ip saddr @nat4 counter masquerade to :1024-65535",
            "ip saddr @nat4 counter masquerade",
            "meta l4proto { tcp, udp } ip saddr . oifname @nat4_dev counter masquerade to :1024-65535",
            "ip saddr . oifname @nat4_dev counter masquerade",
            "meta l4proto { tcp, udp } ip6 saddr @nat6 counter masquerade to :1024-65535",
            "ip6 saddr @nat6 counter masquerade",
            "meta l4proto { tcp, udp } ip6 saddr . oifname @nat6_dev counter masquerade to :1024-65535",
            "ip6 saddr . oifname @nat6_dev counter masquerade",
        ],
    },
];

/// The chain of a custom-NAT network: `nat_<id>`, see [`chain_id`].
pub(crate) fn nat_chain(bridge: &str) -> String {
    format!("nat_{}", chain_id(bridge))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn chain_id_keeps_alnum_and_escapes_the_rest() {
        assert_eq!(chain_id("virbr0"), "virbr0");
        assert_eq!(chain_id("br-lan.10"), "br_2dlan_2e10");
        assert_eq!(chain_id("a_b"), "a_5fb");
    }

    #[test]
    fn chain_id_is_injective() {
        // '_' is escaped too, so an escaped sequence cannot be forged.
        let names = ["a.b", "a_2eb", "a-b", "a_b", "a_5fb", "a__b", "ab", "a.2eb"];
        let ids: HashSet<String> = names.iter().map(|n| chain_id(n)).collect();
        assert_eq!(ids.len(), names.len());
    }
}
