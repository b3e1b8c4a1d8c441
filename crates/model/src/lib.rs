//! kvnet-model: libvirt network XML — model, parser, canonical formatter, validation,
//! define-time completion and `net-update`. Pure code: no I/O, clock or randomness of its own.

mod define;
mod format;
mod parse;
mod types;
mod update;
mod validate;
mod xmltree;

#[cfg(test)]
mod tests;

use std::fmt;

pub use define::uuid_from_entropy;
pub use types::*;
pub use update::{UpdateCommand, UpdateSection, apply_update};
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

    /// nat, route, open or isolated: kvnet creates and addresses the bridge itself.
    pub fn is_l3(&self) -> bool {
        self.forward_mode().is_l3()
    }

    /// The egress device limiting forwarding (`<forward dev>`), if any.
    pub fn forward_dev(&self) -> Option<&str> {
        self.forward.as_ref().and_then(|f| f.dev.as_deref())
    }

    /// Features accepted and kept in the XML that kvnet does not apply, each as
    /// "<element> (what it would do)", e.g. for "note: X is accepted but not applied".
    pub fn unsupported(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.dnsmasq_options.is_empty() {
            let n = self.dnsmasq_options.len();
            out.push(format!(
                "<dnsmasq:options> ({n} option{}; kvnet does not run dnsmasq)",
                if n == 1 { "" } else { "s" }
            ));
        }
        if let Some(b) = &self.bridge {
            if let Some(z) = &b.zone {
                out.push(format!("<bridge zone='{z}'> (firewalld zone)"));
            }
            if b.mac_table_manager == Some(MacTableManager::Libvirt) {
                out.push(
                    "<bridge macTableManager='libvirt'> (FDB entries managed by hand)".to_string(),
                );
            }
        }
        if self
            .domain
            .as_ref()
            .is_some_and(|d| d.register == Some(true))
        {
            out.push("<domain register='yes'> (systemd-resolved registration)".to_string());
        }
        if self.ips.iter().any(|ip| ip.tftp_root.is_some()) {
            out.push("<tftp> (TFTP server)".to_string());
        }
        if let Some(f) = &self.forward {
            if f.pf.is_some() {
                out.push("<forward><pf> (SR-IOV virtual function pool)".to_string());
            }
            if !f.addresses.is_empty() {
                out.push("<forward><address> (PCI device pool)".to_string());
            }
        }
        if self.virtualport.is_some() || self.portgroups.iter().any(|p| p.virtualport.is_some()) {
            out.push(
                "<virtualport> (Open vSwitch / 802.1Qbg / 802.1Qbh / midonet port profile)"
                    .to_string(),
            );
        }
        if self.vlan.is_some() || self.portgroups.iter().any(|p| p.vlan.is_some()) {
            out.push("<vlan> (VLAN tagging)".to_string());
        }
        if self.bandwidth.is_some() || self.portgroups.iter().any(|p| p.bandwidth.is_some()) {
            out.push("<bandwidth> (traffic shaping)".to_string());
        }
        if self.isolated_port == Some(true) {
            out.push("<port isolated='yes'> (guest port isolation)".to_string());
        }
        // kvnetd serves DHCPv4 and DNS; DHCPv6 is a later step.
        if self.ips.iter().any(|ip| ip.is_ipv6() && ip.dhcp.is_some()) {
            out.push("<dhcp> on an IPv6 address (DHCPv6)".to_string());
        }
        if self.is_l3() && self.ips.iter().any(|ip| ip.is_ipv6()) {
            out.push("IPv6 router advertisements".to_string());
        }
        out
    }
}
