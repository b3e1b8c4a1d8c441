//! Links: bridges, veths, ports, TAP details, the bridge forwarding table.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "bridge", "veth", "tun", ...; `None` for physical devices and lo.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`), not carrier.
    pub up: bool,
    pub master: Option<u32>,
    /// A loopback device (`IFF_LOOPBACK`).
    pub loopback: bool,
}

/// What the kernel reports about a tun/tap device (`IFLA_TUN_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunInfo {
    /// A TAP (ethernet frames), not a TUN (IP packets).
    pub tap: bool,
    /// Outlives its files (`TUNSETPERSIST`).
    pub persist: bool,
    pub multi_queue: bool,
    /// Files attached to it (one per queue).
    pub queues: u16,
    pub vnet_hdr: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// A bridge forwarding entry for a MAC behind one of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// Index of the port the MAC is behind.
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BridgeSpec {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub stp: bool,
    /// Centiseconds, as the kernel takes it. With STP on the kernel keeps it
    /// within 200..=3000; [`BridgeSpec::effective_forward_delay_cs`] says what it will show.
    pub forward_delay_cs: u32,
}

impl BridgeSpec {
    /// The forward delay the kernel will report for this spec.
    pub fn effective_forward_delay_cs(&self) -> u32 {
        if self.stp {
            self.forward_delay_cs
                .clamp(STP_MIN_FORWARD_DELAY_CS, STP_MAX_FORWARD_DELAY_CS)
        } else {
            self.forward_delay_cs
        }
    }
}

/// Formats a MAC as `52:54:00:09:33:55`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) fn link_from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

pub(super) fn tun_info_from_message(msg: &LinkMessage) -> Option<TunInfo> {
    const IFLA_TUN_OWNER: u16 = 1;
    const IFLA_TUN_GROUP: u16 = 2;
    const IFLA_TUN_TYPE: u16 = 3;
    const IFLA_TUN_VNET_HDR: u16 = 5;
    const IFLA_TUN_PERSIST: u16 = 6;
    const IFLA_TUN_MULTI_QUEUE: u16 = 7;
    const IFLA_TUN_NUM_QUEUES: u16 = 8;
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    })?;
    if !infos.contains(&LinkInfo::Kind(InfoKind::Tun)) {
        return None;
    }
    let mut info = TunInfo::default();
    for i in infos {
        let LinkInfo::Data(InfoData::Tun(nlas)) = i else {
            continue;
        };
        for nla in nlas {
            let mut v = vec![0u8; nla.value_len()];
            nla.emit_value(&mut v);
            let u8v = v.first().copied().unwrap_or(0);
            let u32v = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_ne_bytes)
                .ok();
            match nla.kind() {
                IFLA_TUN_TYPE => info.tap = u8v == libc::IFF_TAP as u8,
                IFLA_TUN_PERSIST => info.persist = u8v != 0,
                IFLA_TUN_MULTI_QUEUE => info.multi_queue = u8v != 0,
                IFLA_TUN_VNET_HDR => info.vnet_hdr = u8v != 0,
                IFLA_TUN_OWNER => info.owner = u32v,
                IFLA_TUN_GROUP => info.group = u32v,
                IFLA_TUN_NUM_QUEUES => {
                    info.queues = u32v.map_or(0, |q| u16::try_from(q).unwrap_or(u16::MAX))
                }
                _ => {}
            }
        }
    }
    Some(info)
}

pub(super) fn bridge_settings_from_message(msg: &LinkMessage) -> Option<(bool, u32)> {
    let mut stp = None;
    let mut delay = None;
    for attr in &msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = attr {
            for info in infos {
                if let LinkInfo::Data(InfoData::Bridge(opts)) = info {
                    for opt in opts {
                        match opt {
                            InfoBridge::StpState(s) => stp = Some(*s != BridgeStpState::Disabled),
                            InfoBridge::ForwardDelay(d) => delay = Some(*d),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Some((stp?, delay?))
}

pub(super) fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl Netlink {
    pub(super) async fn get_link_message(
        &self,
        msg: LinkMessage,
    ) -> Result<Option<LinkMessage>, Nack> {
        match self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(n) if n.errno == libc::ENODEV => Ok(None),
            Err(n) => Err(n),
        }
    }

    pub(super) async fn link_message_by_index(&self, index: u32) -> Result<LinkMessage, HostError> {
        let ctx = || format!("get link #{index}");
        self.get_link_message(LinkUnspec::new_with_index(index).build())
            .await
            .map_err(|n| n.into_error(ctx()))?
            .ok_or_else(|| HostError::netlink(ctx(), libc::ENODEV, None))
    }

    /// The link called `name`, or `None`.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, HostError> {
        Ok(self
            .link_message(name)
            .await?
            .as_ref()
            .map(link_from_message))
    }

    pub(super) async fn link_message(&self, name: &str) -> Result<Option<LinkMessage>, HostError> {
        self.get_link_message(LinkUnspec::new_with_name(name).build())
            .await
            .map_err(|n| n.into_error(format!("get link {name}")))
    }

    /// The link with this index, or `None`.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, HostError> {
        let msg = self
            .get_link_message(LinkUnspec::new_with_index(index).build())
            .await
            .map_err(|n| n.into_error(format!("get link #{index}")))?;
        Ok(msg.as_ref().map(link_from_message))
    }

    pub async fn links(&self) -> Result<Vec<Link>, HostError> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error("list links"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Every link's traffic counters by name: `(rx bytes, rx packets, tx bytes, tx
    /// packets)` (IFLA_STATS64).
    pub async fn link_traffic(&self) -> Result<HashMap<String, [u64; 4]>, HostError> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error("list link statistics"))?;
        let mut out = HashMap::new();
        for m in &msgs {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            let mut name = None;
            let mut stats = None;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Stats64(s) => {
                        stats = Some([s.rx_bytes, s.rx_packets, s.tx_bytes, s.tx_packets]);
                    }
                    _ => {}
                }
            }
            if let (Some(n), Some(s)) = (name, stats) {
                out.insert(n, s);
            }
        }
        Ok(out)
    }

    /// Creates the bridge DOWN in one RTM_NEWLINK carrying its MAC, MTU, STP
    /// state and forward delay; returns its index.
    pub async fn create_bridge(&self, spec: &BridgeSpec) -> Result<u32, HostError> {
        let ctx = || format!("create bridge {}", spec.name);
        // The kernel applies IFLA_BR_FORWARD_DELAY before IFLA_BR_STP_STATE, and
        // starting STP raises the delay to its minimum, so this matches what
        // libvirt gets by writing forward_delay and then stp_state in sysfs.
        let mut b = LinkBridge::new(&spec.name)
            .down()
            .forward_delay(spec.forward_delay_cs)
            .stp_state(if spec.stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            });
        if let Some(mac) = spec.mac {
            // An explicit address also stops the bridge adopting its ports' MACs.
            b = b.address(mac.to_vec());
        }
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        // NLM_F_ECHO (kernel >= 6.3) returns the new link, saving a lookup.
        let echoed = self
            .request(
                RouteNetlinkMessage::NewLink(b.build()),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            )
            .await
            .map_err(|n| n.into_error(ctx()))?;
        let echoed = echoed.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) if l.header.index != 0 => {
                let link = link_from_message(l);
                (link.name == spec.name).then_some(link.index)
            }
            _ => None,
        });
        if let Some(index) = echoed {
            return Ok(index);
        }
        match self.link(&spec.name).await? {
            Some(l) => Ok(l.index),
            None => Err(HostError::netlink(
                ctx(),
                libc::ENODEV,
                Some("vanished after creation".into()),
            )),
        }
    }

    /// Sends a RTM_NEWLINK that must create link `name`; returns its index.
    pub(super) async fn create(
        &self,
        msg: LinkMessage,
        name: &str,
        ctx: String,
    ) -> Result<u32, HostError> {
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|n| n.into_error(ctx.clone()))?;
        match self.link(name).await? {
            Some(l) => Ok(l.index),
            None => Err(HostError::netlink(
                ctx,
                libc::ENODEV,
                Some("vanished after creation".into()),
            )),
        }
    }

    /// Creates a veth pair (both ends DOWN); returns the index of `name`.
    pub async fn create_veth(&self, name: &str, peer: &str) -> Result<u32, HostError> {
        let ctx = || format!("create veth {name} peer {peer}");
        let msg = LinkVeth::new(name, peer).down().build();
        self.create(msg, name, ctx()).await
    }

    /// Gives virtual function `vf` of physical function `pf` (an index) the guest's
    /// MAC (`ip link set PF vf N mac MAC`), as libvirt does before handing it to qemu.
    pub async fn set_vf_mac(&self, pf: u32, vf: u32, mac: [u8; 6]) -> Result<(), HostError> {
        use rtnetlink::packet_route::link::{LinkVfInfo, VfInfo, VfInfoMac};
        let msg = LinkUnspec::new_with_index(pf)
            .append_extra_attribute(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(vf, &mac)),
            ])]))
            .build();
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(|n| n.into_error(format!("set the MAC of VF {vf} of link #{pf}")))
    }

    /// Creates a macvtap on `parent` in `mode` ("bridge", "private", "vepa",
    /// "passthru") with the guest's `mac`, down; returns its index. Its character device
    /// is /dev/tapINDEX ([`crate::macvtap`]).
    pub async fn create_macvtap(
        &self,
        name: &str,
        parent: u32,
        mode: &str,
        mac: [u8; 6],
    ) -> Result<u32, HostError> {
        use rtnetlink::packet_route::link::MacVtapMode;
        let ctx = || format!("create macvtap {name} ({mode}) on link #{parent}");
        let mode = match mode {
            "bridge" => MacVtapMode::Bridge,
            "private" => MacVtapMode::Private,
            "vepa" => MacVtapMode::Vepa,
            "passthru" => MacVtapMode::Passthrough,
            other => {
                return Err(HostError::new(
                    ctx(),
                    crate::ErrorKind::Invalid(format!("unknown mode {other}")),
                ));
            }
        };
        let msg = rtnetlink::LinkMacVtap::new(name, parent, mode)
            .address(mac.to_vec())
            .down()
            .build();
        self.create(msg, name, ctx()).await
    }

    /// Brings an existing bridge's MAC, MTU, STP and forward delay in line with
    /// `spec`; returns a description of each correction (empty: nothing changed).
    pub async fn reconcile_bridge(&self, spec: &BridgeSpec) -> Result<Vec<String>, HostError> {
        let ctx = || format!("reconcile bridge {}", spec.name);
        let msg = self
            .get_link_message(LinkUnspec::new_with_name(&spec.name).build())
            .await
            .map_err(|n| n.into_error(ctx()))?
            .ok_or_else(|| HostError::netlink(ctx(), libc::ENODEV, None))?;
        let link = link_from_message(&msg);
        if link.kind.as_deref() != Some("bridge") {
            return Err(HostError::invalid(
                ctx(),
                format!(
                    "exists as {} link, not a bridge",
                    link.kind.as_deref().unwrap_or("a plain")
                ),
            ));
        }
        let (stp, delay) = bridge_settings_from_message(&msg)
            .ok_or_else(|| HostError::invalid(ctx(), "kernel reported no bridge settings"))?;

        let mut changes = Vec::new();
        let mut b = LinkUnspec::new_with_index(link.index);
        let mut touched = false;
        if let Some(mac) = spec.mac
            && link.mac != Some(mac)
        {
            let old = link.mac.as_ref().map(format_mac).unwrap_or_default();
            changes.push(format!("mac {old} -> {}", format_mac(&mac)));
            b = b.address(mac.to_vec());
            touched = true;
        }
        if let Some(mtu) = spec.mtu
            && link.mtu != mtu
        {
            changes.push(format!("mtu {} -> {mtu}", link.mtu));
            b = b.mtu(mtu);
            touched = true;
        }
        if touched {
            self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
                .await
                .map_err(|n| n.into_error(ctx()))?;
        }

        let want_delay = spec.effective_forward_delay_cs();
        if stp != spec.stp || delay != want_delay {
            if stp != spec.stp {
                changes.push(format!("stp {} -> {}", on_off(stp), on_off(spec.stp)));
            }
            if delay != want_delay {
                changes.push(format!("forward_delay {delay} -> {want_delay}"));
            }
            // The kernel checks the delay against STP's bounds before it
            // applies a new STP state, so when STP goes off a short delay has
            // to follow in a second message.
            let state = if spec.stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            };
            if stp && !spec.stp && want_delay < STP_MIN_FORWARD_DELAY_CS {
                self.change_bridge(&link, vec![InfoBridge::StpState(state)])
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
                self.change_bridge(&link, vec![InfoBridge::ForwardDelay(want_delay)])
                    .await
                    .map_err(|n| n.into_error(ctx()))?;
            } else {
                self.change_bridge(
                    &link,
                    vec![
                        InfoBridge::ForwardDelay(want_delay),
                        InfoBridge::StpState(state),
                    ],
                )
                .await
                .map_err(|n| n.into_error(ctx()))?;
            }
        }
        Ok(changes)
    }

    pub(super) async fn change_bridge(
        &self,
        link: &Link,
        opts: Vec<InfoBridge>,
    ) -> Result<(), Nack> {
        let mut msg = LinkUnspec::new_with_index(link.index).build();
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(opts)),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0).await
    }

    /// `(stp_enabled, forward_delay_cs)` of a bridge.
    pub async fn bridge_settings(&self, index: u32) -> Result<(bool, u32), HostError> {
        let msg = self.link_message_by_index(index).await?;
        bridge_settings_from_message(&msg).ok_or_else(|| {
            HostError::invalid(
                format!("get bridge settings of link #{index}"),
                "not a bridge",
            )
        })
    }

    pub async fn set_up(&self, index: u32, up: bool) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index);
        let b = if up { b.up() } else { b.down() };
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| {
                n.into_error(format!(
                    "set link #{index} {}",
                    if up { "up" } else { "down" }
                ))
            })
    }

    /// Sets the bridge port flag `isolated` of the link: isolated ports reach the bridge's
    /// other ports and the host, but not each other.
    pub async fn set_port_isolated(&self, index: u32, isolated: bool) -> Result<(), HostError> {
        let b = LinkBridgePort::new(index).append_info_data(InfoBridgePort::Isolated(isolated));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set port isolation of link #{index}")))
    }

    /// Bridge port flags `learning` and `flood` (unicast flooding to unknown
    /// destinations) of the link, both `on` or both off: off for libvirt's
    /// `macTableManager='libvirt'`, where kvnet keeps the forwarding table itself.
    pub async fn set_port_learning(&self, index: u32, on: bool) -> Result<(), HostError> {
        let b = LinkBridgePort::new(index)
            .append_info_data(InfoBridgePort::Learning(on))
            .append_info_data(InfoBridgePort::UnicastFlood(on));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set learning and flooding of link #{index}")))
    }

    /// A static forwarding entry: frames to `mac` go to bridge port `port`
    /// (`bridge fdb replace MAC dev PORT master static`).
    pub async fn add_static_fdb(&self, port: u32, mac: [u8; 6]) -> Result<(), HostError> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = port;
        m.header.state = NeighbourState::Noarp;
        m.header.flags = rtnetlink::packet_route::neighbour::NeighbourFlags::Controller;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.ack(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|n| {
            n.into_error(format!(
                "add forwarding entry {} on link #{port}",
                format_mac(&mac)
            ))
        })
    }

    /// Enslaves the link to `master`, or releases it with `None`.
    pub async fn set_master(&self, index: u32, master: Option<u32>) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).controller(master.unwrap_or(0));
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| {
                n.into_error(match master {
                    Some(m) => format!("set master of link #{index} to #{m}"),
                    None => format!("release link #{index} from its master"),
                })
            })
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).mtu(mtu);
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set mtu of link #{index} to {mtu}")))
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), HostError> {
        let b = LinkUnspec::new_with_index(index).address(mac.to_vec());
        self.ack(RouteNetlinkMessage::NewLink(b.build()), 0)
            .await
            .map_err(|n| n.into_error(format!("set MAC of link #{index} to {}", format_mac(&mac))))
    }

    /// The tun/tap facts of the link called `name`; `None` when there is no such
    /// link or it is not a tun/tap device.
    pub async fn tun_info(&self, name: &str) -> Result<Option<TunInfo>, HostError> {
        Ok(self
            .link_message(name)
            .await?
            .as_ref()
            .and_then(tun_info_from_message))
    }

    /// The MACs a bridge forwards to its ports: learned and static entries, not
    /// the bridge's and its ports' own (local) addresses.
    pub async fn bridge_fdb(&self, bridge: u32) -> Result<Vec<FdbEntry>, HostError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        // With strict checking the kernel filters the dump by master.
        req.attributes.push(NeighbourAttribute::Controller(bridge));
        let msgs = self
            .request(
                RouteNetlinkMessage::GetNeighbour(req),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|n| n.into_error(format!("list forwarding entries of bridge #{bridge}")))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.state != NeighbourState::Permanent
                        && n.header.ifindex != bridge =>
                {
                    let mac = n.attributes.iter().find_map(|a| match a {
                        NeighbourAttribute::LinkLayerAddress(a) => {
                            <[u8; 6]>::try_from(a.as_slice()).ok()
                        }
                        _ => None,
                    })?;
                    Some(FdbEntry {
                        mac,
                        port: n.header.ifindex,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Deletes a link; one that is already gone is not an error.
    pub async fn delete_link(&self, index: u32) -> Result<(), HostError> {
        let msg = LinkUnspec::new_with_index(index).build();
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0).await {
            Err(n) if n.errno != libc::ENODEV => Err(n.into_error(format!("delete link #{index}"))),
            _ => Ok(()),
        }
    }
}
