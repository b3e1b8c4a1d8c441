//! Traffic control over rtnetlink: an HTB root with classes, u32 filters steering a
//! destination MAC into a class, and an ingress qdisc whose match-all u32 filter
//! redirects (mirred) to an IFB device. netlink-packet-route has no HTB, so its options
//! are built here as raw attributes (`htb_*`), with linklayer ETHERNET so the kernel needs
//! no rate tables. What kvnet wants on a device is a [`TcShape`]; the daemon plans the
//! [`TcChange`]s between the shape read back and the wanted one.

use super::*;
use rtnetlink::LinkIfb;
use rtnetlink::packet_core::{DefaultNla, NlasIterator};
use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirror, TcActionMirrorOption,
    TcActionOption, TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcHeader, TcMessage,
    TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

/// The handle of kvnet's HTB root qdisc (`1:`); its classes are `1:MINOR`.
pub const HTB_MAJOR: u16 = 1;
const INGRESS_PARENT: u32 = 0xffff_fff1;
const INGRESS_HANDLE: u32 = 0xffff_0000;
const ROOT: u32 = 0xffff_ffff;
/// `ETH_P_ALL` in network order, as `tcm_info`'s protocol half wants it.
const PROTO_ALL: u32 = 0x0300;

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
/// `TC_HTB_PROTOVER`, and tc's default rate-to-quantum divisor.
const HTB_VERSION: u32 = 3;
const HTB_R2Q: u32 = 10;
const LINKLAYER_ETHERNET: u8 = 1;

/// One HTB class `1:minor`. Rates in bytes/s; `buffer`/`cbuffer` in the kernel's
/// scheduler ticks (64 ns), as tc sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtbClass {
    pub minor: u16,
    /// 0: directly under the qdisc.
    pub parent: u16,
    pub rate: u64,
    pub ceil: u64,
    pub buffer: u32,
    pub cbuffer: u32,
    pub quantum: u32,
}

/// A u32 filter on the HTB root: frames to `mac` go to class `1:class`. Each has a
/// priority of its own, so it is deleted by priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacFilter {
    pub prio: u16,
    pub mac: [u8; 6],
    pub class: u16,
}

/// kvnet's traffic control on one device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcShape {
    /// An HTB root `1:` whose unclassified traffic goes to `1:default`.
    pub htb_default: Option<u16>,
    /// Sorted by minor.
    pub classes: Vec<HtbClass>,
    /// Sorted by priority.
    pub filters: Vec<MacFilter>,
    /// Ingress redirected to this device (an IFB's index).
    pub redirect: Option<u32>,
}

/// One step from a device's shape to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcChange {
    /// Replace the root qdisc (whatever it is) by HTB `1:` with this default class.
    AddRoot(u16),
    /// Delete kvnet's HTB root (and so its classes and filters).
    DelRoot,
    /// Create or change a class.
    PutClass(HtbClass),
    DelClass(u16),
    AddFilter(MacFilter),
    DelFilter(u16),
    /// An ingress qdisc (if none) and a match-all filter redirecting to the index.
    AddRedirect(u32),
    /// Delete the ingress qdisc (and so its filters).
    DelIngress,
}

fn ratespec(rate: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = LINKLAYER_ETHERNET;
    // cell_align -1, as tc sends it; cell_log, overhead and mpu 0.
    b[4..6].copy_from_slice(&(-1i16).to_ne_bytes());
    b[8..12].copy_from_slice(&(rate.min(u32::MAX as u64) as u32).to_ne_bytes());
    b
}

/// `struct tc_htb_glob`: version, rate2quantum, defcls, debug, direct_pkts.
pub fn htb_glob(default: u16) -> Vec<u8> {
    [HTB_VERSION, HTB_R2Q, u32::from(default), 0, 0]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect()
}

/// `struct tc_htb_opt`: rate and ceil specs, buffer, cbuffer, quantum, level, prio.
pub fn htb_opt(c: &HtbClass) -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    b.extend_from_slice(&ratespec(c.rate));
    b.extend_from_slice(&ratespec(c.ceil));
    for v in [c.buffer, c.cbuffer, c.quantum, 0, 0] {
        b.extend_from_slice(&v.to_ne_bytes());
    }
    b
}

/// A class's TCA_OPTIONS: the parameters, and the 64-bit rates when 32 bits are short.
pub fn htb_class_options(c: &HtbClass) -> Vec<TcOption> {
    let mut o = vec![TcOption::Other(DefaultNla::new(TCA_HTB_PARMS, htb_opt(c)))];
    if c.rate > u64::from(u32::MAX) {
        o.push(TcOption::Other(DefaultNla::new(
            TCA_HTB_RATE64,
            c.rate.to_ne_bytes().to_vec(),
        )));
    }
    if c.ceil > u64::from(u32::MAX) {
        o.push(TcOption::Other(DefaultNla::new(
            TCA_HTB_CEIL64,
            c.ceil.to_ne_bytes().to_vec(),
        )));
    }
    o
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

/// The nested attributes of an options blob the crate kept raw (HTB's).
fn raw_options(attrs: &[TcAttribute]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for a in attrs {
        let TcAttribute::Options(opts) = a else {
            continue;
        };
        for o in opts {
            let mut v = vec![0u8; o.value_len()];
            o.emit_value(&mut v);
            // The crate keeps an unknown kind's whole TCA_OPTIONS (type 2) as one
            // attribute whose value is the nest; a bare TCA_HTB_INIT (also 2) holds a
            // tc_htb_glob, which does not read as attributes (its first u16 is 3).
            let nested: Option<Vec<(u16, Vec<u8>)>> = (o.kind() == 2)
                .then(|| {
                    NlasIterator::new(&v[..])
                        .map(|n| n.ok().map(|n| (n.kind(), n.value().to_vec())))
                        .collect()
                })
                .flatten();
            match nested {
                Some(n) if !n.is_empty() => out.extend(n),
                _ => out.push((o.kind(), v)),
            }
        }
    }
    out
}

/// A class read back: `None` when it is not an HTB class of `1:`.
pub fn class_from(h: &TcHeader, attrs: &[TcAttribute]) -> Option<HtbClass> {
    let kind = attrs.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.as_str()),
        _ => None,
    });
    if kind != Some("htb") || h.handle.major != HTB_MAJOR {
        return None;
    }
    let opts = raw_options(attrs);
    let parms = opts.iter().find(|(k, _)| *k == TCA_HTB_PARMS)?.1.as_slice();
    let wide = |kind: u16, narrow: u32| {
        opts.iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| {
                v.get(..8)
                    .map(|s| u64::from_ne_bytes(s.try_into().unwrap()))
            })
            .unwrap_or(u64::from(narrow))
    };
    let parent = u32::from(h.parent);
    Some(HtbClass {
        minor: h.handle.minor,
        parent: if parent == ROOT {
            0
        } else {
            (parent & 0xffff) as u16
        },
        rate: wide(TCA_HTB_RATE64, u32_at(parms, 8)),
        ceil: wide(TCA_HTB_CEIL64, u32_at(parms, 20)),
        buffer: u32_at(parms, 24),
        cbuffer: u32_at(parms, 28),
        quantum: u32_at(parms, 32),
    })
}

/// The u32 keys matching destination `mac`, as `tc … u32 match ether dst MAC` packs them:
/// offsets relative to the network header, so the Ethernet header starts at -14.
pub fn mac_keys(mac: [u8; 6]) -> Vec<TcU32Key> {
    let mut hi = TcU32Key::default();
    hi.mask = 0x0000_ffff;
    hi.val = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
    hi.off = -16;
    let mut lo = TcU32Key::default();
    lo.mask = u32::MAX;
    lo.val = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    lo.off = -12;
    vec![hi, lo]
}

fn mac_from_keys(keys: &[TcU32Key]) -> Option<[u8; 6]> {
    let [hi, lo] = keys else { return None };
    if (hi.off, hi.mask, lo.off, lo.mask) != (-16, 0xffff, -12, u32::MAX) {
        return None;
    }
    let h = (hi.val as u16).to_be_bytes();
    let l = lo.val.to_be_bytes();
    Some([h[0], h[1], l[0], l[1], l[2], l[3]])
}

fn selector(keys: Vec<TcU32Key>) -> TcU32Selector {
    let mut s = TcU32Selector::default();
    s.flags = TcU32SelectorFlags::Terminal;
    s.nkeys = keys.len() as u8;
    s.keys = keys;
    s
}

fn header(index: u32, parent: u32, handle: u32, info: u32) -> TcHeader {
    TcHeader {
        index: index as i32,
        parent: parent.into(),
        handle: handle.into(),
        info,
        ..Default::default()
    }
}

fn kind_of(attrs: &[TcAttribute]) -> Option<&str> {
    attrs.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.as_str()),
        _ => None,
    })
}

/// The deterministic IFB name for a port or bridge: `ifb-NAME` when it fits, else a
/// hash of the name (interface names have 15 bytes).
pub fn ifb_name(of: &str) -> String {
    let n = format!("ifb-{of}");
    if n.len() <= 15 {
        return n;
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let h = of.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("ifb{h:08x}")
}

impl Netlink {
    async fn dump_tc(
        &self,
        msg: RouteNetlinkMessage,
        index: u32,
        ctx: &str,
    ) -> Result<Vec<TcMessage>, HostError> {
        let out = self
            .request(msg, NLM_F_REQUEST | NLM_F_DUMP)
            .await
            .map_err(|n| n.into_error(ctx))?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(t)
                | RouteNetlinkMessage::NewTrafficClass(t)
                | RouteNetlinkMessage::NewTrafficFilter(t) => Some(t),
                _ => None,
            })
            .filter(|t| t.header.index == index as i32)
            .collect())
    }

    /// The devices with an HTB root `1:` or an ingress qdisc: the only ones that can
    /// hold kvnet's traffic control (one dump for all of them).
    pub async fn tc_devices(&self) -> Result<std::collections::HashSet<u32>, HostError> {
        let ctx = "list qdiscs";
        let out = self
            .request(
                RouteNetlinkMessage::GetQueueDiscipline(TcMessage::with_index(0)),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error(ctx))?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(t) => Some(t),
                _ => None,
            })
            .filter(|t| match kind_of(&t.attributes) {
                Some("htb") => t.header.handle.major == HTB_MAJOR,
                Some("ingress") => true,
                _ => false,
            })
            .map(|t| t.header.index as u32)
            .collect())
    }

    /// kvnet's traffic control on device `index`, read back.
    pub async fn tc_shape(&self, index: u32) -> Result<TcShape, HostError> {
        let ctx = format!("read traffic control of link #{index}");
        let q = TcMessage::with_index(index as i32);
        let qdiscs = self
            .dump_tc(RouteNetlinkMessage::GetQueueDiscipline(q), index, &ctx)
            .await?;
        let mut shape = TcShape::default();
        let mut ingress = false;
        for m in &qdiscs {
            let parent = u32::from(m.header.parent);
            match kind_of(&m.attributes) {
                Some("htb") if parent == ROOT && m.header.handle.major == HTB_MAJOR => {
                    let opts = raw_options(&m.attributes);
                    shape.htb_default = opts
                        .iter()
                        .find(|(k, _)| *k == TCA_HTB_INIT)
                        .map(|(_, v)| u32_at(v, 8) as u16);
                }
                Some("ingress") => ingress = true,
                _ => {}
            }
        }
        if shape.htb_default.is_some() {
            let c = TcMessage::with_index(index as i32);
            for m in self
                .dump_tc(RouteNetlinkMessage::GetTrafficClass(c), index, &ctx)
                .await?
            {
                shape.classes.extend(class_from(&m.header, &m.attributes));
            }
            shape.classes.sort_by_key(|c| c.minor);
            shape.filters = self
                .u32_filters(index, u32::from(HTB_MAJOR) << 16, &ctx)
                .await?
                .0;
        }
        if ingress {
            shape.redirect = self.u32_filters(index, INGRESS_HANDLE, &ctx).await?.1;
        }
        Ok(shape)
    }

    /// The u32 filters under `parent`: those steering a MAC into a class, and the
    /// target of a redirect among them.
    async fn u32_filters(
        &self,
        index: u32,
        parent: u32,
        ctx: &str,
    ) -> Result<(Vec<MacFilter>, Option<u32>), HostError> {
        let mut f = TcMessage::with_index(index as i32);
        f.header.parent = parent.into();
        let mut macs = Vec::new();
        let mut redirect = None;
        for m in self
            .dump_tc(RouteNetlinkMessage::GetTrafficFilter(f), index, ctx)
            .await?
        {
            let prio = (m.header.info >> 16) as u16;
            let (mut sel, mut class, mut to) = (None, None, None);
            for a in &m.attributes {
                let TcAttribute::Options(opts) = a else {
                    continue;
                };
                for o in opts {
                    match o {
                        TcOption::U32(TcFilterU32Option::Selector(s)) => sel = Some(s),
                        TcOption::U32(TcFilterU32Option::ClassId(c)) => class = Some(c.minor),
                        TcOption::U32(TcFilterU32Option::Action(acts)) => {
                            to = to.or_else(|| mirred_target(acts));
                        }
                        _ => {}
                    }
                }
            }
            let Some(sel) = sel else { continue };
            if let (Some(mac), Some(class)) = (mac_from_keys(&sel.keys), class) {
                macs.push(MacFilter { prio, mac, class });
            }
            redirect = redirect.or(to);
        }
        macs.sort_by_key(|f| f.prio);
        Ok((macs, redirect))
    }

    /// Applies `changes` to device `index` in order.
    pub async fn tc_apply(&self, index: u32, changes: &[TcChange]) -> Result<(), HostError> {
        for c in changes {
            self.tc_change(index, c).await?;
        }
        Ok(())
    }

    async fn tc_change(&self, index: u32, c: &TcChange) -> Result<(), HostError> {
        let ctx = || format!("traffic control of link #{index}: {c:?}");
        let htb_root = u32::from(HTB_MAJOR) << 16;
        let (msg, flags) = match c {
            TcChange::AddRoot(default) => {
                let m = TcMessage::from_parts(
                    header(index, ROOT, htb_root, 0),
                    vec![
                        TcAttribute::Kind("htb".into()),
                        TcAttribute::Options(vec![TcOption::Other(DefaultNla::new(
                            TCA_HTB_INIT,
                            htb_glob(*default),
                        ))]),
                    ],
                );
                (
                    RouteNetlinkMessage::NewQueueDiscipline(m),
                    NLM_F_CREATE | NLM_F_REPLACE,
                )
            }
            TcChange::DelRoot => (
                RouteNetlinkMessage::DelQueueDiscipline(TcMessage::from_parts(
                    header(index, ROOT, 0, 0),
                    vec![],
                )),
                0,
            ),
            TcChange::PutClass(cl) => {
                let parent = if cl.parent == 0 {
                    htb_root
                } else {
                    htb_root | u32::from(cl.parent)
                };
                let m = TcMessage::from_parts(
                    header(index, parent, htb_root | u32::from(cl.minor), 0),
                    vec![
                        TcAttribute::Kind("htb".into()),
                        TcAttribute::Options(htb_class_options(cl)),
                    ],
                );
                (RouteNetlinkMessage::NewTrafficClass(m), NLM_F_CREATE)
            }
            TcChange::DelClass(minor) => (
                RouteNetlinkMessage::DelTrafficClass(TcMessage::from_parts(
                    header(index, 0, htb_root | u32::from(*minor), 0),
                    vec![],
                )),
                0,
            ),
            TcChange::AddFilter(f) => {
                let m = TcMessage::from_parts(
                    header(index, htb_root, 0, (u32::from(f.prio) << 16) | PROTO_ALL),
                    vec![
                        TcAttribute::Kind("u32".into()),
                        TcAttribute::Options(vec![
                            TcOption::U32(TcFilterU32Option::Selector(selector(mac_keys(f.mac)))),
                            TcOption::U32(TcFilterU32Option::ClassId(TcHandle {
                                major: HTB_MAJOR,
                                minor: f.class,
                            })),
                        ]),
                    ],
                );
                (
                    RouteNetlinkMessage::NewTrafficFilter(m),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
            }
            TcChange::DelFilter(prio) => (
                RouteNetlinkMessage::DelTrafficFilter(TcMessage::from_parts(
                    header(index, htb_root, 0, u32::from(*prio) << 16),
                    vec![],
                )),
                0,
            ),
            TcChange::AddRedirect(to) => {
                let qdiscs = self
                    .dump_tc(
                        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::with_index(
                            index as i32,
                        )),
                        index,
                        &ctx(),
                    )
                    .await?;
                if !qdiscs
                    .iter()
                    .any(|m| kind_of(&m.attributes) == Some("ingress"))
                {
                    let q = TcMessage::from_parts(
                        header(index, INGRESS_PARENT, INGRESS_HANDLE, 0),
                        vec![TcAttribute::Kind("ingress".into())],
                    );
                    self.ack(
                        RouteNetlinkMessage::NewQueueDiscipline(q),
                        NLM_F_CREATE | NLM_F_EXCL,
                    )
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
                }
                let m = TcMessage::from_parts(
                    header(index, INGRESS_HANDLE, 0, (1 << 16) | PROTO_ALL),
                    vec![
                        TcAttribute::Kind("u32".into()),
                        TcAttribute::Options(redirect_options(*to)),
                    ],
                );
                (
                    RouteNetlinkMessage::NewTrafficFilter(m),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
            }
            TcChange::DelIngress => (
                RouteNetlinkMessage::DelQueueDiscipline(TcMessage::from_parts(
                    header(index, INGRESS_PARENT, INGRESS_HANDLE, 0),
                    vec![],
                )),
                0,
            ),
        };
        self.ack(msg, flags).await.map_err(|n| n.into_error(ctx()))
    }

    /// Creates IFB device `name` (up) unless it exists; returns its index.
    pub async fn ensure_ifb(&self, name: &str) -> Result<u32, HostError> {
        let ctx = || format!("create IFB device {name}");
        let index = match self.link(name).await? {
            Some(l) if l.kind.as_deref() == Some("ifb") => l.index,
            Some(_) => {
                return Err(HostError::invalid(
                    ctx(),
                    "a link of another kind has that name",
                ));
            }
            None => {
                let msg = LinkIfb::new(name).build();
                self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
                self.link(name)
                    .await?
                    .ok_or_else(|| HostError::netlink(ctx(), libc::ENODEV, None))?
                    .index
            }
        };
        self.set_up(index, true).await?;
        Ok(index)
    }

    /// Deletes IFB device `name` if there is one.
    pub async fn delete_ifb(&self, name: &str) -> Result<(), HostError> {
        match self.link(name).await? {
            Some(l) if l.kind.as_deref() == Some("ifb") => self.delete_link(l.index).await,
            _ => Ok(()),
        }
    }
}

/// A match-all selector whose action steals the frame and sends it out of `to`, as
/// `tc filter … u32 match u32 0 0 action mirred egress redirect dev TO`.
pub fn redirect_options(to: u32) -> Vec<TcOption> {
    let mut mirror = TcMirror::default();
    let mut generic = TcActionGeneric::default();
    generic.action = TcActionType::Stolen;
    mirror.generic = generic;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.tab = 1;
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    vec![
        TcOption::U32(TcFilterU32Option::Selector(selector(vec![
            TcU32Key::default(),
        ]))),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]
}

fn mirred_target(acts: &[TcAction]) -> Option<u32> {
    acts.iter().find_map(|a| {
        a.attributes.iter().find_map(|x| match x {
            TcActionAttribute::Options(o) => o.iter().find_map(|o| match o {
                TcActionOption::Mirror(TcActionMirrorOption::Parms(m))
                    if m.eaction == TcMirrorActionType::EgressRedir =>
                {
                    Some(m.ifindex)
                }
                _ => None,
            }),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{Emitable, Parseable};

    fn class() -> HtbClass {
        HtbClass {
            minor: 1,
            parent: 0,
            rate: 125_000,
            ceil: 250_000,
            buffer: 200_000,
            cbuffer: 100_000,
            quantum: 12_500,
        }
    }

    #[test]
    fn htb_opt_bytes_are_tcs() {
        // `tc class add dev X parent 1: classid 1:1 htb rate 1mbit ceil 2mbit` sends
        // TCA_HTB_PARMS as these 44 bytes (x86-64, little-endian): ratespec(cell_log,
        // linklayer=1, overhead, cell_align=-1, mpu, rate), ceil's, buffer, cbuffer,
        // quantum, level, prio.
        let b = htb_opt(&class());
        assert_eq!(b.len(), 44);
        let mut want = Vec::new();
        for rate in [125_000u32, 250_000] {
            want.extend_from_slice(&[0, 1, 0, 0, 0xff, 0xff, 0, 0]);
            want.extend_from_slice(&rate.to_ne_bytes());
        }
        for v in [200_000u32, 100_000, 12_500, 0, 0] {
            want.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(b, want);
        assert_eq!(
            htb_glob(2),
            [3u32, 10, 2, 0, 0]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fast_rates_get_64_bit_attributes() {
        let mut c = class();
        assert_eq!(htb_class_options(&c).len(), 1);
        c.rate = 10_000_000_000;
        c.ceil = 10_000_000_000;
        let o = htb_class_options(&c);
        assert_eq!(o.len(), 3);
        assert_eq!(u32_at(&htb_opt(&c), 8), u32::MAX);
        assert_eq!(o[1].kind(), TCA_HTB_RATE64);
        assert_eq!(o[2].kind(), TCA_HTB_CEIL64);
    }

    /// A class message the kernel would send back, through the crate's own parser.
    #[test]
    fn a_class_reads_back_through_the_parser() {
        let mut c = class();
        c.minor = 5;
        c.parent = 1;
        c.ceil = 6_000_000_000;
        let attrs = vec![
            TcAttribute::Kind("htb".into()),
            TcAttribute::Options(htb_class_options(&c)),
        ];
        let m = TcMessage::from_parts(header(3, 0x0001_0001, 0x0001_0005, 0), attrs);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let back = TcMessage::parse(&buf[..]).unwrap();
        assert_eq!(class_from(&back.header, &back.attributes), Some(c.clone()));
        // Directly under the qdisc the kernel says TC_H_ROOT.
        c.parent = 0;
        let m = TcMessage::from_parts(
            header(3, ROOT, 0x0001_0005, 0),
            vec![
                TcAttribute::Kind("htb".into()),
                TcAttribute::Options(htb_class_options(&c)),
            ],
        );
        assert_eq!(class_from(&m.header, &m.attributes), Some(c));
    }

    #[test]
    fn mac_keys_are_tcs_ether_dst() {
        // `u32 match ether dst 52:54:00:12:34:56` packs these two keys.
        let keys = mac_keys([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(
            (keys[0].off, keys[0].mask, keys[0].val),
            (-16, 0xffff, 0x5254)
        );
        assert_eq!(
            (keys[1].off, keys[1].mask, keys[1].val),
            (-12, !0, 0x0012_3456)
        );
        let mut raw = vec![0u8; 16];
        keys[0].emit(&mut raw);
        // On the wire mask and value are big-endian, the offset native.
        assert_eq!(&raw[..8], &[0, 0, 0xff, 0xff, 0, 0, 0x52, 0x54]);
        assert_eq!(
            mac_from_keys(&keys),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        let opts = vec![TcAttribute::Options(redirect_options(7))];
        let m = TcMessage::from_parts(header(3, INGRESS_HANDLE, 0, 0), {
            let mut a = vec![TcAttribute::Kind("u32".into())];
            a.extend(opts);
            a
        });
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let back = TcMessage::parse(&buf[..]).unwrap();
        let acts = back.attributes.iter().find_map(|a| match a {
            TcAttribute::Options(o) => o.iter().find_map(|o| match o {
                TcOption::U32(TcFilterU32Option::Action(a)) => Some(a.clone()),
                _ => None,
            }),
            _ => None,
        });
        assert_eq!(mirred_target(&acts.unwrap()), Some(7));
    }

    #[test]
    fn ifb_names_fit() {
        assert_eq!(ifb_name("vnet0"), "ifb-vnet0");
        assert_eq!(ifb_name("virbr0"), "ifb-virbr0");
        let long = ifb_name("a-very-long-tap");
        assert!(long.len() <= 15 && long.starts_with("ifb"), "{long}");
        assert_eq!(long, ifb_name("a-very-long-tap"));
        assert_ne!(long, ifb_name("a-very-long-tax"));
    }
}
