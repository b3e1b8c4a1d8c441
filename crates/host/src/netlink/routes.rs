//! Routes: the main table and a link's own routes.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub table: u32,
    /// `RTPROT_*`: 2 kernel, 3 boot (what `ip route add` uses), 4 static.
    pub proto: u8,
}

impl Route {
    /// A main-table route as `ip route add DEST [via GW] [dev OIF]` would make it.
    pub fn new(dest: IpNet, gateway: Option<IpAddr>, oif: Option<u32>) -> Route {
        Route {
            dest,
            gateway,
            oif,
            metric: None,
            table: TABLE_MAIN,
            proto: 3,
        }
    }
}

/// A main-table unicast route through one link, with everything that tells it
/// apart from others (the link itself is implied).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkRoute {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    pub metric: Option<u32>,
    /// `RT_SCOPE_*`: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// `RTPROT_*`: 2 kernel, 3 boot, 4 static, 9 ra, 16 dhcp.
    pub proto: u8,
    pub prefsrc: Option<IpAddr>,
    pub onlink: bool,
}

impl LinkRoute {
    /// What `ip route` would print for it (without the device).
    pub fn describe(&self) -> String {
        let mut s = if self.dest.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.dest.to_string()
        };
        if let Some(gw) = self.gateway {
            s += &format!(" via {gw}");
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        s
    }
}

pub(super) fn route_from_message(msg: &RouteMessage) -> Option<Route> {
    let mut dest = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dest = route_addr(a),
            RouteAttribute::Gateway(a) => gateway = route_addr(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dest = match (dest, msg.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u16; 8]),
        _ => return None,
    };
    Some(Route {
        dest: IpNet::new(dest, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        metric,
        table,
        proto: msg.header.protocol.into(),
    })
}

pub(super) fn link_route_from_message(msg: &RouteMessage) -> Option<(u32, LinkRoute)> {
    let r = route_from_message(msg)?;
    let prefsrc = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::PrefSource(a) => route_addr(a),
        _ => None,
    });
    Some((
        r.oif?,
        LinkRoute {
            dest: r.dest,
            gateway: r.gateway,
            metric: r.metric,
            scope: msg.header.scope.into(),
            proto: r.proto,
            prefsrc,
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
        },
    ))
}

pub(super) fn link_route_message(index: u32, r: &LinkRoute) -> RouteMessage {
    let dest = r.dest.trunc();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest.addr(), dest.prefix_len())
        .expect("IpNet prefix length is valid for its family")
        .output_interface(index);
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).expect("address family checked by the kernel");
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    if r.onlink {
        b = b.onlink();
    }
    let mut msg = b
        .table_id(TABLE_MAIN)
        .protocol(RouteProtocol::from(r.proto))
        .scope(RouteScope::from(r.scope))
        .build();
    if let Some(src) = r.prefsrc {
        msg.attributes.push(RouteAttribute::PrefSource(match src {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
    }
    msg
}

pub(super) fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

pub(super) fn route_message(r: &Route) -> RouteMessage {
    let dest = r.dest.trunc();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest.addr(), dest.prefix_len())
        .expect("IpNet prefix length is valid for its family");
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).expect("address family checked by the kernel");
    }
    if let Some(oif) = r.oif {
        b = b.output_interface(oif);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    // `ip route add PREFIX dev X` makes IPv4 device routes link-scoped; keep the same shape.
    if r.gateway.is_none() && r.dest.addr().is_ipv4() {
        b = b.scope(RouteScope::Link);
    }
    b.table_id(r.table)
        .protocol(RouteProtocol::from(r.proto))
        .build()
}

pub(super) fn describe(r: &Route) -> String {
    let mut s = r.dest.to_string();
    if let Some(gw) = r.gateway {
        s += &format!(" via {gw}");
    }
    if let Some(oif) = r.oif {
        s += &format!(" dev #{oif}");
    }
    if let Some(m) = r.metric {
        s += &format!(" metric {m}");
    }
    if r.table != TABLE_MAIN {
        s += &format!(" table {}", r.table);
    }
    s
}

impl Netlink {
    /// The main table's unicast route messages, IPv4 and IPv6.
    pub(super) async fn main_route_messages(&self) -> Result<Vec<RouteMessage>, HostError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            req.header.table = RouteHeader::RT_TABLE_MAIN;
            let msgs = self
                .request(
                    RouteNetlinkMessage::GetRoute(req),
                    NLM_F_REQUEST | NLM_F_DUMP,
                )
                .await
                .map_err(|n| n.into_error("list routes"))?;
            out.extend(msgs.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.kind == RouteType::Unicast
                        && route_from_message(&r).is_some_and(|x| x.table == TABLE_MAIN) =>
                {
                    Some(r)
                }
                _ => None,
            }));
        }
        Ok(out)
    }

    /// The main table's unicast routes whose single nexthop is the link (not
    /// multipath, no nexthop object).
    pub async fn link_routes(&self, index: u32) -> Result<Vec<LinkRoute>, HostError> {
        Ok(self
            .main_route_messages()
            .await?
            .iter()
            .filter(|r| {
                !r.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::NhId(_)))
            })
            .filter_map(link_route_from_message)
            .filter_map(|(oif, r)| (oif == index).then_some(r))
            .collect())
    }

    /// The main table's routes through the link that [`Netlink::link_routes`] leaves
    /// out, described: multipath routes with a nexthop on it and routes using a
    /// nexthop object.
    pub async fn other_link_routes(&self, index: u32) -> Result<Vec<String>, HostError> {
        let mut out = Vec::new();
        for msg in self.main_route_messages().await? {
            let Some(r) = route_from_message(&msg) else {
                continue;
            };
            let multipath = msg.attributes.iter().any(|a| {
                matches!(a, RouteAttribute::MultiPath(hops)
                    if hops.iter().any(|h| h.interface_index == index))
            });
            let nhid = r.oif == Some(index)
                && msg
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::NhId(_)));
            if multipath || nhid {
                out.push(format!(
                    "{} ({})",
                    r.dest,
                    if multipath {
                        "multipath"
                    } else {
                        "nexthop object"
                    }
                ));
            }
        }
        Ok(out)
    }

    /// Adds a route through the link; an identical one already present is not an error.
    pub async fn add_link_route(&self, index: u32, r: &LinkRoute) -> Result<(), HostError> {
        match self
            .ack(
                RouteNetlinkMessage::NewRoute(link_route_message(index, r)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add route {} dev #{index}", r.describe())))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a route through the link; one that is not there is not an error.
    pub async fn del_link_route(&self, index: u32, r: &LinkRoute) -> Result<(), HostError> {
        let mut msg = link_route_message(index, r);
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes
            .retain(|a| !matches!(a, RouteAttribute::PrefSource(_)));
        match self.ack(RouteNetlinkMessage::DelRoute(msg), 0).await {
            Err(n) if n.errno != libc::ESRCH => {
                Err(n.into_error(format!("delete route {} dev #{index}", r.describe())))
            }
            _ => Ok(()),
        }
    }

    /// Unicast routes of the main table, IPv4 and IPv6.
    pub async fn routes(&self) -> Result<Vec<Route>, HostError> {
        let msgs = self.main_route_messages().await?;
        Ok(msgs.iter().filter_map(route_from_message).collect())
    }

    /// Adds a route; an identical one already present is not an error.
    pub async fn add_route(&self, r: &Route) -> Result<(), HostError> {
        match self
            .ack(
                RouteNetlinkMessage::NewRoute(route_message(r)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(n) if n.errno != libc::EEXIST => {
                Err(n.into_error(format!("add route {}", describe(r))))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a route; one that is not there is not an error. Matches like
    /// `ip route del`: any scope, and any protocol when `r.proto` is 0 (the
    /// kernel only compares protocols when one is given).
    pub async fn del_route(&self, r: &Route) -> Result<(), HostError> {
        let mut msg = route_message(r);
        msg.header.scope = RouteScope::NoWhere;
        match self.ack(RouteNetlinkMessage::DelRoute(msg), 0).await {
            Err(n) if n.errno != libc::ESRCH => {
                Err(n.into_error(format!("delete route {}", describe(r))))
            }
            _ => Ok(()),
        }
    }
}
