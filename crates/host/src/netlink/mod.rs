//! Links, bridges, addresses and routes over one rtnetlink connection.

use std::collections::HashMap;
use std::net::IpAddr;

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkMessage, NetlinkPayload, Nla,
};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::HostError;

/// Kernel bounds for a bridge's forward delay while STP runs
/// (`BR_MIN_FORWARD_DELAY`/`BR_MAX_FORWARD_DELAY`, in centiseconds).
pub const STP_MIN_FORWARD_DELAY_CS: u32 = 200;
pub const STP_MAX_FORWARD_DELAY_CS: u32 = 3000;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

mod addresses;
mod links;
mod routes;
mod tc;
mod vlans;
mod vxlan;

pub use addresses::LinkAddress;
pub use links::{BridgeSpec, FdbEntry, Link, TunInfo, format_mac};
pub use routes::{LinkRoute, Route};
pub use tc::{HtbClass, MacFilter, TcChange, TcShape, ifb_name};
pub use vlans::VlanMember;
pub use vxlan::VxlanSpec;

/// One rtnetlink socket; the connection task lives on the tokio runtime that
/// called [`Netlink::connect`] and is stopped when this is dropped.
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kernel NACK before it is given its context.
struct Nack {
    errno: i32,
    ext_ack: Option<String>,
}

impl Nack {
    fn into_error(self, context: impl Into<String>) -> HostError {
        HostError::netlink(context, self.errno, self.ext_ack)
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from an error payload. With `NETLINK_CAP_ACK`
/// the payload is the 16-byte original header followed by the ext-ack TLVs.
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut tlvs = payload.get(16..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace and
    /// spawns its connection task on the current tokio runtime.
    pub async fn connect() -> Result<Netlink, HostError> {
        let (mut conn, handle, _) = rtnetlink::new_connection_with_strict_check()
            .map_err(|e| HostError::new("open rtnetlink socket", e))?;
        let sock = conn.socket_mut().socket_mut();
        // Ext-ack gives the kernel's reason text; cap-ack keeps NACKs small.
        sock.set_ext_ack(true)
            .and_then(|_| sock.set_cap_ack(true))
            .map_err(|e| HostError::new("configure rtnetlink socket", e))?;
        let task = tokio::spawn(conn);
        Ok(Netlink { handle, task })
    }

    /// Sends one request and collects the messages answering it.
    async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Nack> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut responses = self.handle.clone().request(req).map_err(|_| Nack {
            errno: libc::EPIPE,
            ext_ack: Some("rtnetlink connection closed".into()),
        })?;
        let mut out = Vec::new();
        while let Some(m) = responses.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(Nack {
                        errno: -e.raw_code(),
                        ext_ack: ext_ack_message(&e.header),
                    });
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(Nack {
                        errno: libc::ENOBUFS,
                        ext_ack: Some("netlink overrun".into()),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    async fn ack(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), Nack> {
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_found() {
        let mut payload = vec![0u8; 16];
        let text = b"tun/tap creation via rtnetlink is not supported.\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(&payload).as_deref(),
            Some("tun/tap creation via rtnetlink is not supported.")
        );
        assert_eq!(ext_ack_message(&payload[..16]), None);
    }

    #[test]
    fn effective_delay_follows_kernel_bounds() {
        let mut s = BridgeSpec {
            name: "virbr0".into(),
            mac: None,
            mtu: None,
            stp: true,
            forward_delay_cs: 0,
        };
        assert_eq!(s.effective_forward_delay_cs(), 200);
        s.forward_delay_cs = 5000;
        assert_eq!(s.effective_forward_delay_cs(), 3000);
        s.stp = false;
        assert_eq!(s.effective_forward_delay_cs(), 5000);
    }

    #[test]
    fn mac_format() {
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 9, 0x33, 0x55]),
            "52:54:00:09:33:55"
        );
    }
}
