//! kvnet-model: libvirt network XML — model, parser, canonical formatter, validation,
//! define-time completion and `net-update`. Pure code: no I/O, clock or randomness of its own.

#![forbid(unsafe_code)]

mod bandwidth;
mod define;
mod dnsmasq;
mod extension;
pub mod fabric;
mod format;
pub mod ifname;
mod parse;
mod profile;
mod types;
mod update;
mod validate;
mod xmltree;

#[cfg(test)]
mod tests;

use std::fmt;

pub use define::uuid_from_entropy;
pub use dnsmasq::{DnsmasqOption, parse as parse_dnsmasq_option};
pub use extension::{
    FwdProto, GuestRef, KVNET_NS, KvnetExt, MAX_FORWARD_PORTS, MAX_FORWARDS, PortForward,
    PortRange, TrafficFilter, parse_target,
};
pub use fabric::{DEFAULT_FABRIC_PATH, Fabric, FabricError, FabricHost};
pub use profile::{BridgeRole, FirewallRole, GuestRole, MacvtapMode, Profile};
pub use types::*;
pub use update::{UpdateCommand, UpdateSection, apply_update};
pub use validate::{MAX_NAME_BYTES, check_name_for_files};
pub use xmltree::{XmlElement, XmlNode};

/// The namespace of `<dnsmasq:options>`.
pub const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/// A rejected definition: where (line in the XML when known, element path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ModelError {
    pub line: Option<u32>,
    /// XPath-like location, e.g. `network/ip[1]/dhcp/range[2]`.
    pub element: String,
    pub message: String,
}

impl ModelError {
    pub fn new(element: impl Into<String>, message: impl Into<String>) -> ModelError {
        ModelError {
            line: None,
            element: element.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        write!(f, "<{}>: {}", self.element, self.message)
    }
}

impl Network {
    /// Parse and validate a `<network>` document, as `virsh net-define` would.
    pub fn from_xml(text: &str) -> Result<Network, ModelError> {
        let (net, lines) = parse::parse_network(text)?;
        net.validate().map_err(|e| lines.locate(e))?;
        Ok(net)
    }

    /// libvirt's canonical XML for this network (single quotes, 2-space indent), ending in "\n".
    pub fn to_xml(&self) -> String {
        format::network(self)
    }

    /// The forward mode; `Isolated` when there is no `<forward>`.
    pub fn forward_mode(&self) -> ForwardMode {
        self.forward
            .as_ref()
            .map(|f| f.mode)
            .unwrap_or(ForwardMode::Isolated)
    }

    /// The bridge's name (`<bridge name>`), if any.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.as_ref().and_then(|b| b.name.as_deref())
    }

    /// The egress device limiting forwarding (`<forward dev>`), if any.
    pub fn forward_dev(&self) -> Option<&str> {
        self.forward.as_ref().and_then(|f| f.dev.as_deref())
    }
}
