//! Quality of service, pure: libvirt's `<bandwidth>` (network, portgroup, port) →
//! the traffic control each device should have ([`TcShape`]), and the changes from
//! what a device has to that. Units are libvirt's as it hands them to tc: rates in
//! kbps (1000 bytes/s), bursts in kb (1024 bytes).
//!
//! * A port's inbound (to the guest) shapes its TAP's egress: HTB `1:`, class `1:1`.
//! * A port's outbound (from the guest) arrives on its TAP's ingress; with no police
//!   action on this kernel it is redirected to an IFB device shaped the same way.
//! * The network's inbound shapes the bridge's egress: class `1:1` at its average,
//!   `1:2` (the default) for whatever has no floor, and a class per port with a floor
//!   (rate = floor, ceil = the network's peak or average), steered by the guest's MAC;
//!   the network's outbound goes through an IFB from the bridge's ingress.
//! * On a direct network a port's macvtap is the guest's own end, so the directions
//!   are swapped: outbound shapes the macvtap's egress, inbound its ingress (through an
//!   IFB); no floor, and the network's own `<bandwidth>` shapes nothing, as in libvirt
//!   ([`direct_plan`]).

use kvnet_host::{HtbClass, MacFilter, TcChange, TcShape};
use kvnet_model::{Bandwidth, BandwidthRate, MacAddr, Network};
use serde::{Deserialize, Serialize};

/// Bytes/s in one of libvirt's rate units, bytes in one burst unit (tc's kbps, kb).
pub const RATE_UNIT: u64 = 1000;
pub const BURST_UNIT: u64 = 1024;
/// tc's default MTU for a burst it computes itself.
const MTU: u64 = 1600;
/// The bridge's class for the network as a whole, its default class, and the first
/// class a port with a floor gets.
pub const NET_CLASS: u16 = 1;
pub const DEFAULT_CLASS: u16 = 2;
pub const FIRST_PORT_CLASS: u16 = 3;

/// What a port asked for, kept in its record: explicit rates override the portgroup's
/// per direction; `class` is its class on the bridge when it has a floor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortQos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<BandwidthRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<BandwidthRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<u16>,
}

impl PortQos {
    pub fn is_empty(&self) -> bool {
        *self == PortQos::default()
    }

    /// The port's bandwidth on `net`: its portgroup's, each direction given
    /// explicitly replacing the portgroup's.
    pub fn effective(&self, net: &Network) -> Bandwidth {
        let pg = self
            .portgroup
            .as_ref()
            .and_then(|n| net.portgroups.iter().find(|p| &p.name == n))
            .and_then(|p| p.bandwidth.clone())
            .unwrap_or_default();
        Bandwidth {
            inbound: self.inbound.clone().or(pg.inbound),
            outbound: self.outbound.clone().or(pg.outbound),
        }
    }
}

/// port-create's QoS on `net`: the named portgroup (which must exist) or the network's
/// default one, the explicit rates checked, and a floor admitted only under the
/// network's inbound average with room left beside the `others`' floors.
pub fn admit(
    net: &Network,
    portgroup: Option<&str>,
    inbound: Option<BandwidthRate>,
    outbound: Option<BandwidthRate>,
    others: &[PortQos],
) -> Result<PortQos, String> {
    let portgroup = match portgroup {
        Some(n) => {
            if !net.portgroups.iter().any(|p| p.name == n) {
                let have: Vec<&str> = net.portgroups.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "network '{}' has no portgroup '{n}' (its portgroups: {})",
                    net.name,
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ));
            }
            Some(n.to_string())
        }
        None => net
            .portgroups
            .iter()
            .find(|p| p.is_default)
            .map(|p| p.name.clone()),
    };
    if let Some(r) = &inbound {
        r.check("inbound", true)?;
    }
    if let Some(r) = &outbound {
        r.check("outbound", false)?;
    }
    check_rates(net, inbound.as_ref(), outbound.as_ref())?;
    let bridged = net.bridge_name().is_some();
    let mut q = PortQos {
        portgroup,
        inbound,
        outbound,
        class: None,
    };
    if let Some(floor) = q.effective(net).inbound.and_then(|r| r.floor)
        && bridged
    {
        let Some(avg) = net_inbound(net).and_then(|r| r.average) else {
            return Err(format!(
                "a floor needs an inbound average on network '{}', which has none",
                net.name
            ));
        };
        let used: u64 = others
            .iter()
            .filter_map(|o| o.effective(net).inbound.and_then(|r| r.floor))
            .sum();
        if used + floor > avg {
            return Err(format!(
                "floor {floor} kB/s with the other ports' floors ({used} kB/s) would exceed network '{}''s inbound average of {avg} kB/s",
                net.name
            ));
        }
        let taken: Vec<u16> = others.iter().filter_map(|o| o.class).collect();
        q.class = (FIRST_PORT_CLASS..=u16::MAX).find(|c| !taken.contains(c));
    }
    Ok(q)
}

/// The rates a port may ask for on `net`: none on a hostdev network (its VF is the
/// guest's), no floor without a bridge (libvirt's virNetDevSupportBandwidthFloor: a
/// floor is a class under the bridge's HTB).
pub fn check_rates(
    net: &Network,
    inbound: Option<&BandwidthRate>,
    outbound: Option<&BandwidthRate>,
) -> Result<(), String> {
    if net.profile().hostdev && (inbound.is_some() || outbound.is_some()) {
        return Err(
            "a hostdev port is a virtual function the guest drives itself: the host cannot shape it (--inbound/--outbound)"
                .to_string(),
        );
    }
    if net.bridge_name().is_none() && inbound.is_some_and(|r| r.floor.is_some()) {
        return Err(
            "a floor needs a bridge's traffic classes: it is supported on nat, route, open and isolated networks, not on a direct network"
                .to_string(),
        );
    }
    Ok(())
}

/// The ports' floors on `net`: each needs the network's inbound average, and together
/// they fit under it.
pub fn floors_fit(net: &Network, ports: &[PortQos]) -> Result<(), String> {
    let floors: Vec<u64> = ports
        .iter()
        .filter_map(|q| q.effective(net).inbound.and_then(|r| r.floor))
        .collect();
    // A direct network's portgroup floors are not applied (model's not_applied).
    if floors.is_empty() || net.bridge_name().is_none() {
        return Ok(());
    }
    let sum: u64 = floors.iter().sum();
    match net_inbound(net).and_then(|r| r.average) {
        None => Err(format!(
            "its ports' floors ({sum} kB/s) need an inbound average, which it would not have"
        )),
        Some(avg) if sum > avg => Err(format!(
            "its ports' floors ({sum} kB/s) would exceed its inbound average of {avg} kB/s"
        )),
        Some(_) => Ok(()),
    }
}

fn net_inbound(net: &Network) -> Option<&BandwidthRate> {
    net.bandwidth.as_ref().and_then(|b| b.inbound.as_ref())
}

/// tc's transmit time of `size` bytes at `rate` bytes/s, in scheduler ticks (64 ns).
fn ticks(rate: u64, size: u64) -> u32 {
    let usec = 1_000_000u128 * u128::from(size) / u128::from(rate.max(1));
    (usec * 125 / 8).min(u128::from(u32::MAX)) as u32
}

/// An HTB class at `rate` (libvirt units) up to `ceil`, with `burst` (kb) or tc's
/// default (a rate's worth of a tick plus an MTU).
fn class(minor: u16, parent: u16, rate: u64, ceil: u64, burst: Option<u64>) -> HtbClass {
    let (rate, ceil) = (rate * RATE_UNIT, ceil.max(rate) * RATE_UNIT);
    let size = |r: u64| burst.map_or(r / 1_000_000_000 + MTU, |b| b * BURST_UNIT);
    HtbClass {
        minor,
        parent,
        rate,
        ceil,
        buffer: ticks(rate, size(rate)),
        cbuffer: ticks(ceil, size(ceil)),
        // The kernel's own choice (rate / r2q, within 1000..200000), given so that it
        // reads back the same; never under an MTU, so a class sends whole frames.
        quantum: (rate / 10).clamp(MTU, 200_000) as u32,
    }
}

/// One direction of a port (TAP egress, or the IFB behind its ingress): HTB `1:` whose
/// default `1:1` holds the average, up to the peak.
pub fn leaf_shape(r: Option<&BandwidthRate>) -> TcShape {
    let Some((r, avg)) = r.and_then(|r| r.average.map(|a| (r, a))) else {
        return TcShape::default();
    };
    TcShape {
        htb_default: Some(NET_CLASS),
        classes: vec![class(NET_CLASS, 0, avg, r.peak.unwrap_or(avg), r.burst)],
        ..TcShape::default()
    }
}

/// The bridge's egress: the network's inbound, with a class per port floor
/// (`floors`: the guest's MAC, its floor, its class).
pub fn bridge_shape(net: &Network, floors: &[(MacAddr, u64, u16)]) -> TcShape {
    let Some((r, avg)) = net_inbound(net).and_then(|r| r.average.map(|a| (r, a))) else {
        return TcShape::default();
    };
    let ceil = r.peak.unwrap_or(avg);
    let floored: u64 = floors.iter().map(|f| f.1).sum();
    let mut classes = vec![
        class(NET_CLASS, 0, avg, ceil, r.burst),
        // What has no floor shares what the floors leave (at least 1 kB/s: HTB needs
        // a rate), borrowing up to the ceiling when they are idle.
        class(
            DEFAULT_CLASS,
            NET_CLASS,
            avg.saturating_sub(floored).max(1),
            ceil,
            r.burst,
        ),
    ];
    let mut filters = Vec::new();
    for &(mac, floor, minor) in floors {
        classes.push(class(minor, NET_CLASS, floor, ceil, r.burst));
        filters.push(MacFilter {
            prio: minor,
            mac: mac.0,
            class: minor,
        });
    }
    classes.sort_by_key(|c| c.minor);
    filters.sort_by_key(|f| f.prio);
    TcShape {
        htb_default: Some(DEFAULT_CLASS),
        classes,
        filters,
        redirect: None,
    }
}

/// One device's wanted traffic control; `ifb`: the IFB its ingress goes through and
/// that IFB's shape (its outbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPlan {
    pub dev: String,
    pub egress: TcShape,
    pub ifb: Option<(String, TcShape)>,
}

fn ifb(dev: &str, out: Option<&BandwidthRate>) -> Option<(String, TcShape)> {
    let s = leaf_shape(out);
    (s != TcShape::default()).then(|| (kvnet_host::ifb_name(dev), s))
}

/// Every device of network `net` on `bridge` with `ports` (name, guest MAC, QoS): the
/// bridge first, then each port, including those that want nothing (so that what they
/// had goes).
pub fn network_plan(
    net: &Network,
    bridge: &str,
    ports: &[(String, Option<MacAddr>, PortQos)],
) -> Vec<DevPlan> {
    let mut floors = Vec::new();
    let mut out = Vec::new();
    for (name, mac, q) in ports {
        let bw = q.effective(net);
        if let (Some(mac), Some(floor), Some(c)) =
            (mac, bw.inbound.as_ref().and_then(|r| r.floor), q.class)
            && net_inbound(net).is_some_and(|r| r.average.is_some())
        {
            floors.push((*mac, floor, c));
        }
        out.push(DevPlan {
            dev: name.clone(),
            egress: leaf_shape(bw.inbound.as_ref()),
            ifb: ifb(name, bw.outbound.as_ref()),
        });
    }
    let nb = net.bandwidth.clone().unwrap_or_default();
    out.insert(
        0,
        DevPlan {
            dev: bridge.to_string(),
            egress: bridge_shape(net, &floors),
            ifb: ifb(bridge, nb.outbound.as_ref()),
        },
    );
    out
}

/// Every macvtap of direct network `net` with `ports` (name, QoS), including those
/// that want nothing (so that what they had goes). A macvtap is seen from the host as
/// the guest's own interface (libvirt's "shares host view", bandwidth not swapped): what
/// the guest sends leaves through its egress (outbound: HTB there), what it receives
/// arrives on its ingress (inbound: through an IFB). The port's own rates, else its
/// portgroup's (the default one if it named none); not the network's `<bandwidth>`,
/// which libvirt gives no port and, without a bridge, applies nowhere.
pub fn direct_plan(net: &Network, ports: &[(String, PortQos)]) -> Vec<DevPlan> {
    ports
        .iter()
        .map(|(name, q)| {
            let bw = q.effective(net);
            DevPlan {
                dev: name.clone(),
                egress: leaf_shape(bw.outbound.as_ref()),
                ifb: ifb(name, bw.inbound.as_ref()),
            }
        })
        .collect()
}

/// Classes parents first.
fn parents_first(c: &[HtbClass]) -> Vec<&HtbClass> {
    let mut v: Vec<&HtbClass> = c.iter().collect();
    v.sort_by_key(|c| (c.parent != 0, c.minor));
    v
}

/// The steps from `cur` to `want`: nothing when they are equal; a new root when the
/// root differs; else only the filters and classes that differ (filters leave before
/// the classes they point at and come after them).
pub fn changes(cur: &TcShape, want: &TcShape) -> Vec<TcChange> {
    let mut out = Vec::new();
    if cur.htb_default != want.htb_default {
        if cur.htb_default.is_some() {
            out.push(TcChange::DelRoot);
        }
        if let Some(d) = want.htb_default {
            out.push(TcChange::AddRoot(d));
            out.extend(
                parents_first(&want.classes)
                    .into_iter()
                    .map(|c| TcChange::PutClass(c.clone())),
            );
            out.extend(want.filters.iter().cloned().map(TcChange::AddFilter));
        }
    } else if want.htb_default.is_some() {
        for f in &cur.filters {
            if !want.filters.contains(f) {
                out.push(TcChange::DelFilter(f.prio));
            }
        }
        for c in parents_first(&want.classes) {
            if !cur.classes.contains(c) {
                out.push(TcChange::PutClass(c.clone()));
            }
        }
        let mut gone: Vec<&HtbClass> = parents_first(&cur.classes);
        gone.reverse();
        for c in gone {
            if !want.classes.iter().any(|w| w.minor == c.minor) {
                out.push(TcChange::DelClass(c.minor));
            }
        }
        for f in &want.filters {
            if !cur.filters.contains(f) {
                out.push(TcChange::AddFilter(f.clone()));
            }
        }
    }
    if cur.redirect != want.redirect {
        if cur.redirect.is_some() {
            out.push(TcChange::DelIngress);
        }
        if let Some(to) = want.redirect {
            out.push(TcChange::AddRedirect(to));
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
