//! Checks on how the network reaches the host: `<forward>`, `<bridge>`, the portgroups
//! and the `<vlan>` tags they and the network carry.

use std::collections::HashSet;

use super::{R, check_ifname, fail, non_empty};
use crate::types::*;

impl Network {
    pub(super) fn check_forward(&self) -> R {
        let Some(f) = &self.forward else {
            return Ok(());
        };
        let p = "network/forward";
        let mode = f.mode;
        if f.nat.is_some() && mode != ForwardMode::Nat {
            return fail(
                "network/forward/nat",
                "the <nat> element can only be used when <forward> 'mode' is 'nat'",
            );
        }
        if let Some(nat) = &f.nat {
            if let Some((s, e)) = nat.address
                && u32::from(s) > u32::from(e)
            {
                return fail(
                    "network/forward/nat/address",
                    format!("nat address range start {s} is after end {e}"),
                );
            }
            if let Some((s, e)) = nat.port
                && s > e
            {
                return fail(
                    "network/forward/nat/port",
                    format!("nat port range start {s} is after end {e}"),
                );
            }
        }
        if f.managed.is_some() && mode != ForwardMode::Hostdev {
            return fail(p, "attribute 'managed' is only valid with mode='hostdev'");
        }
        if f.driver.is_some() && mode != ForwardMode::Hostdev {
            return fail(
                "network/forward/driver",
                "<driver> is only valid with mode='hostdev'",
            );
        }
        if f.pf.is_some() && mode.is_l3() {
            return fail(
                "network/forward/pf",
                format!("<pf> is not allowed with forward mode='{mode}'"),
            );
        }
        if !f.addresses.is_empty()
            && !matches!(mode, ForwardMode::Hostdev | ForwardMode::Passthrough)
        {
            return fail(
                "network/forward/address[1]",
                format!(
                    "<address> is only allowed with mode='hostdev' or 'passthrough', not '{mode}'"
                ),
            );
        }
        if let Some(pf) = &f.pf {
            check_ifname("network/forward/pf", "pf dev", pf, false)?;
        }
        let mut seen = HashSet::new();
        for (i, ifc) in f.interfaces.iter().enumerate() {
            let ip = format!("network/forward/interface[{}]", i + 1);
            check_ifname(&ip, "interface dev", &ifc.dev, false)?;
            if !seen.insert(ifc.dev.as_str()) {
                return fail(
                    ip,
                    format!(
                        "forward interface element with device {} can only be listed once",
                        ifc.dev
                    ),
                );
            }
        }
        let mut seen = HashSet::new();
        for (i, a) in f.addresses.iter().enumerate() {
            if !seen.insert(*a) {
                return fail(
                    format!("network/forward/address[{}]", i + 1),
                    format!("PCI device '{a}' can only be listed once"),
                );
            }
        }
        if let (Some(d), Some(first)) = (&f.dev, f.interfaces.first())
            && *d != first.dev
        {
            return fail(
                p,
                format!(
                    "forward dev '{d}' must match first interface element dev '{}'",
                    first.dev
                ),
            );
        }
        match mode {
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open => {
                if self.ips.is_empty() {
                    return fail(
                        p,
                        format!("{mode} forwarding requested, but no IP address provided"),
                    );
                }
                if f.interfaces.len() > 1 {
                    return fail(
                        p,
                        "multiple forwarding interfaces specified, only one is supported",
                    );
                }
                if mode == ForwardMode::Open && !f.interfaces.is_empty() {
                    return fail(p, "forward dev not allowed with forward mode='open'");
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn check_bridge(&self) -> R {
        let mode = self.forward_mode();
        let Some(b) = &self.bridge else { return Ok(()) };
        let p = "network/bridge";
        if let Some(n) = &b.name {
            check_ifname(p, "bridge name", n, true)?;
        }
        if let Some(z) = &b.zone {
            non_empty(p, "bridge zone", z)?;
        }
        match mode {
            ForwardMode::Private
            | ForwardMode::Vepa
            | ForwardMode::Passthrough
            | ForwardMode::Hostdev => {
                if b.name.is_some() {
                    return fail(p, format!("bridge name not allowed in {mode} mode"));
                }
                if b.zone.is_some() {
                    return fail(p, format!("bridge zone not allowed in {mode} mode"));
                }
                if b.mac_table_manager.is_some() {
                    return fail(
                        p,
                        format!("bridge macTableManager setting not allowed in {mode} mode"),
                    );
                }
            }
            _ => {}
        }
        if !mode.is_l3() && (b.stp.is_some() || b.delay.is_some() || b.zone.is_some()) {
            return fail(
                p,
                format!(
                    "bridge delay/stp/zone options only allowed in route, nat, open and isolated mode, not in {mode}"
                ),
            );
        }
        if mode == ForwardMode::Bridge
            && b.name.is_some()
            && self
                .forward
                .as_ref()
                .is_some_and(|f| !f.interfaces.is_empty() || f.pf.is_some())
        {
            return fail(
                p,
                "a network with forward mode='bridge' can specify a bridge name or a forward dev, but not both",
            );
        }
        Ok(())
    }

    pub(super) fn check_portgroups(&self) -> R {
        let mode = self.forward_mode();
        let mut names = HashSet::new();
        let mut default = false;
        for (i, pg) in self.portgroups.iter().enumerate() {
            let p = format!("network/portgroup[{}]", i + 1);
            non_empty(&p, "portgroup name", &pg.name)?;
            if !names.insert(pg.name.as_str()) {
                return fail(
                    p,
                    format!("multiple portgroups with the same name '{}'", pg.name),
                );
            }
            if pg.is_default {
                if default {
                    return fail(
                        p,
                        format!(
                            "portgroup '{}' is a second default portgroup; only one is allowed",
                            pg.name
                        ),
                    );
                }
                default = true;
            }
            if let Some(v) = &pg.vlan {
                check_vlan(&format!("{p}/vlan"), v)?;
            }
            if pg.bandwidth.is_some()
                && matches!(
                    mode,
                    ForwardMode::Private | ForwardMode::Passthrough | ForwardMode::Hostdev
                )
            {
                return fail(
                    format!("{p}/bandwidth"),
                    format!(
                        "<bandwidth> in portgroup '{}' is not supported with forward mode='{mode}'",
                        pg.name
                    ),
                );
            }
            if let Some(vp) = &pg.virtualport
                && let Some(pid) = &vp.profileid
            {
                non_empty(&format!("{p}/virtualport"), "profileid", pid)?;
            }
        }
        if let Some(vp) = &self.virtualport
            && let Some(pid) = &vp.profileid
        {
            non_empty("network/virtualport", "profileid", pid)?;
        }
        Ok(())
    }
}

pub(super) fn check_vlan(p: &str, v: &Vlan) -> R {
    if v.tags.is_empty() {
        return fail(p, "missing vlan tag data");
    }
    if v.tags.len() > 1 && v.trunk == Some(false) {
        return fail(p, "invalid trunk='no' with multiple VLAN tags");
    }
    let mut native = false;
    for (i, t) in v.tags.iter().enumerate() {
        let tp = format!("{p}/tag[{}]", i + 1);
        if t.id > 4095 {
            return fail(
                tp,
                format!("vlan tag id {} is out of range (0..4095)", t.id),
            );
        }
        if t.native_mode.is_some() {
            if native {
                return fail(tp, "only one vlan tag can have nativeMode");
            }
            native = true;
        }
    }
    Ok(())
}
