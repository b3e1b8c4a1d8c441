//! The kvnetd API: one JSON request per line on a Unix stream socket, one JSON reply
//! line back. Shared by the daemon and the CLI so both sides agree on the wire format;
//! the client is synchronous so the CLI needs no async runtime (it starts in ~1 ms).
//! The protocol is documented in docs/api.md.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub const DEFAULT_SOCKET: &str = "/run/kvnet/kvnetd.sock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Ping,
    /// Define (or redefine) a persistent network from XML.
    Define {
        xml: String,
    },
    /// Create and start a transient network from XML.
    Create {
        xml: String,
    },
    Undefine {
        network: String,
    },
    Start {
        network: String,
    },
    /// Stop a network. Traffic stops at once; with `wait` the reply also waits until
    /// the kernel has finished deleting the bridge and the rules.
    Destroy {
        network: String,
        #[serde(default)]
        wait: bool,
    },
    Autostart {
        network: String,
        enable: bool,
    },
    List,
    Info {
        network: String,
    },
    DumpXml {
        network: String,
        inactive: bool,
    },
    /// The DHCP leases of a network: `kvnet_dhcp::LeaseView`s (IPv4), then
    /// `kvnet_dhcp::v6::LeaseView`s (IPv6, DUID in `client-id`, plus `iaid`), optionally
    /// only those of one MAC address (for IPv6, the MAC inside a DUID-LL or DUID-LLT).
    DhcpLeases {
        network: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    Update {
        network: String,
        command: String,
        section: String,
        xml: String,
        parent_index: Option<usize>,
        live: bool,
        config: bool,
    },
    /// Create a persistent TAP on an active network for a guest (docs/api.md).
    PortCreate {
        network: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ifname: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queues: Option<u16>,
    },
    /// Register a TAP someone else created and put it on the network's bridge: by
    /// network name (a qemu `script=`) or by bridge name (the bridge helper).
    PortAttach {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bridge: Option<String>,
        ifname: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    /// Detach and unregister a port; a TAP kvnet created is deleted.
    PortDelete {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
        ifname: String,
    },
    PortList {
        network: String,
    },
    /// Make a host bridge from a NIC, like virsh iface-bridge: the bridge takes the
    /// NIC's MAC, MTU, addresses and routes, and the NIC becomes its port.
    IfaceBridge {
        iface: String,
        bridge: String,
        #[serde(default = "yes")]
        stp: bool,
        /// Forward delay in seconds.
        #[serde(default)]
        delay: u32,
        /// Bring the bridge up (virsh's default; `--no-start` sends false).
        #[serde(default = "yes")]
        start: bool,
    },
    /// Undo `iface-bridge`: the addresses and routes go back to the bridge's one NIC
    /// and the bridge is deleted.
    IfaceUnbridge {
        bridge: String,
    },
}

fn yes() -> bool {
    true
}

/// How a port's TAP came to be.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PortKind {
    /// Created by kvnet (port-create): persistent, deleted by port-delete.
    Persistent,
    /// Created by qemu and registered by its `script=` (kvnet-ifup).
    Script,
    /// Created by kvnet-bridge-helper for qemu.
    Helper,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Persistent => "persistent",
            PortKind::Script => "script",
            PortKind::Helper => "helper",
        }
    }
}

/// One guest port of a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Port {
    pub ifname: String,
    /// The guest's MAC address; unknown (None) for a TAP attached without one.
    pub mac: Option<String>,
    pub network: String,
    pub kind: PortKind,
    pub queues: u16,
}

/// The reply to `port-create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatedPort {
    pub port: Port,
    /// Arguments that give a qemu guest this port, e.g. `-netdev tap,...`.
    pub qemu_args: Vec<String>,
}

/// One network as `net-list` / `net-info` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetSummary {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub bridge: Option<String>,
    pub forward: String,
    pub title: Option<String>,
}

/// What a successful call returns besides its data: warnings the user must see
/// (e.g. features kvnet accepted but cannot apply yet).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn ok(data: serde_json::Value) -> Reply {
        Reply {
            ok: true,
            data,
            ..Reply::default()
        }
    }

    pub fn err(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            ..Reply::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach kvnetd at {path}: {source}\n(is the daemon running? start it with `kvnetd` as root, or point --socket / KVNET_SOCKET at its socket)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to kvnetd: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad reply from kvnetd: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("kvnetd closed the connection without replying")]
    Closed,
}

/// Send one request and wait for its reply.
pub fn call(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut buf = String::new();
    if reader.read_line(&mut buf)? == 0 {
        return Err(ClientError::Closed);
    }
    Ok(serde_json::from_str(&buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format_is_tagged_kebab_case() {
        let r = Request::DumpXml {
            network: "default".into(),
            inactive: true,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"dump-xml","network":"default","inactive":true}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
    }

    #[test]
    fn dhcp_leases_mac_is_optional() {
        let r: Request =
            serde_json::from_str(r#"{"op":"dhcp-leases","network":"default"}"#).unwrap();
        assert_eq!(
            r,
            Request::DhcpLeases {
                network: "default".into(),
                mac: None
            }
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"op":"dhcp-leases","network":"default"}"#
        );
    }

    #[test]
    fn port_requests_omit_unset_options() {
        let r = Request::PortAttach {
            network: None,
            bridge: Some("virbr0".into()),
            ifname: "tap0".into(),
            mac: None,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"port-attach","bridge":"virbr0","ifname":"tap0"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let r: Request =
            serde_json::from_str(r#"{"op":"port-create","network":"default"}"#).unwrap();
        assert!(matches!(r, Request::PortCreate { queues: None, .. }));
        assert_eq!(
            serde_json::to_string(&PortKind::Persistent).unwrap(),
            r#""persistent""#
        );
    }

    #[test]
    fn iface_bridge_defaults_like_virsh() {
        let r: Request =
            serde_json::from_str(r#"{"op":"iface-bridge","iface":"eth0","bridge":"br0"}"#).unwrap();
        assert_eq!(
            r,
            Request::IfaceBridge {
                iface: "eth0".into(),
                bridge: "br0".into(),
                stp: true,
                delay: 0,
                start: true,
            }
        );
        let s = serde_json::to_string(&Request::IfaceUnbridge {
            bridge: "br0".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"op":"iface-unbridge","bridge":"br0"}"#);
    }

    #[test]
    fn reply_omits_empty_fields() {
        assert_eq!(
            serde_json::to_string(&Reply::ok(serde_json::Value::Null)).unwrap(),
            r#"{"ok":true}"#
        );
        let e: Reply = serde_json::from_str(r#"{"ok":false,"error":"x"}"#).unwrap();
        assert_eq!(e.error.as_deref(), Some("x"));
    }

    #[test]
    fn connect_error_says_how_to_start_the_daemon() {
        let err = call(Path::new("/nonexistent/kvnetd.sock"), &Request::Ping).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/kvnetd.sock") && msg.contains("kvnetd"),
            "{msg}"
        );
    }
}
