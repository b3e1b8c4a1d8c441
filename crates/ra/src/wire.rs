//! The ICMPv6 bodies: Router Advertisement out (RFC 4861 §4.2 and options §4.6, RFC 8106
//! §5), Router Solicitation in (§4.1). The checksum is left 0: the kernel computes it on
//! raw ICMPv6 sockets (RFC 3542 §3.1), and IP headers are the kernel's too.

use crate::config::{
    Config, DNS_LIFETIME, HOP_LIMIT, PREFERRED_LIFETIME, VALID_LIFETIME, encode_name,
};
use kvnet_model::MacAddr;
use std::net::Ipv6Addr;
use thiserror::Error;

pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;

const OPT_SOURCE_LLA: u8 = 1;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;

const FLAG_MANAGED: u8 = 0x80;
const FLAG_ON_LINK: u8 = 0x80;
const FLAG_AUTONOMOUS: u8 = 0x40;

/// The RA that `cfg` describes. `shutdown` makes it the final one of RFC 4861 §6.2.5:
/// router lifetime 0, and the DNS options' lifetimes 0 since kvnetd's DNS goes too.
pub fn encode_ra(cfg: &Config, shutdown: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    let lifetime = if shutdown { 0 } else { cfg.router_lifetime };
    let dns_lifetime = if shutdown { 0 } else { DNS_LIFETIME };
    b.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, HOP_LIMIT]);
    b.push(if cfg.managed { FLAG_MANAGED } else { 0 });
    b.extend_from_slice(&lifetime.to_be_bytes());
    // Reachable time and retransmission timer: 0 = unspecified, guests keep their own.
    b.extend_from_slice(&[0; 8]);
    if let Some(MacAddr(mac)) = cfg.source_mac {
        b.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
        b.extend_from_slice(&mac);
    }
    if let Some(mtu) = cfg.mtu {
        b.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        b.extend_from_slice(&mtu.to_be_bytes());
    }
    for p in &cfg.prefixes {
        let mut flags = FLAG_ON_LINK;
        if p.autonomous {
            flags |= FLAG_AUTONOMOUS;
        }
        b.extend_from_slice(&[OPT_PREFIX, 4, p.net.prefix_len(), flags]);
        b.extend_from_slice(&VALID_LIFETIME.to_be_bytes());
        b.extend_from_slice(&PREFERRED_LIFETIME.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&p.net.network().octets());
    }
    if let Some(dns) = cfg.rdnss {
        b.extend_from_slice(&[OPT_RDNSS, 3, 0, 0]);
        b.extend_from_slice(&dns_lifetime.to_be_bytes());
        b.extend_from_slice(&dns.octets());
    }
    if let Some(name) = cfg.dnssl.as_deref().and_then(encode_name) {
        // Header (8 bytes) and names, zero-padded to a multiple of 8 (RFC 8106 §5.2).
        let len = (8 + name.len()).div_ceil(8);
        b.extend_from_slice(&[OPT_DNSSL, len as u8, 0, 0]);
        b.extend_from_slice(&dns_lifetime.to_be_bytes());
        b.extend_from_slice(&name);
        b.resize(b.len() + len * 8 - 8 - name.len(), 0);
    }
    b
}

/// A Router Solicitation that passed the checks of RFC 4861 §6.1.1 that its bytes allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The Source Link-Layer Address option, if present with an Ethernet address.
    pub source_mac: Option<MacAddr>,
    /// A Source Link-Layer Address option of any length is present.
    pub has_source_lla: bool,
}

/// Why a received message is not a valid Router Solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RsError {
    #[error("shorter than 8 bytes")]
    TooShort,
    #[error("ICMPv6 type {0}, not a router solicitation")]
    NotSolicitation(u8),
    #[error("code {0}, not 0")]
    BadCode(u8),
    #[error("an option with length 0 or running past the end")]
    BadOption,
    #[error("hop limit {0}, not 255: not sent on this link")]
    HopLimit(u8),
    #[error("from the unspecified address with a source link-layer address option")]
    UnspecifiedWithSourceLla,
}

/// Parse an ICMPv6 message as a Router Solicitation: type, code, length and every
/// option's length are checked; unknown options are skipped.
pub fn parse_solicit(bytes: &[u8]) -> Result<Solicitation, RsError> {
    if bytes.len() < 8 {
        return Err(RsError::TooShort);
    }
    if bytes[0] != ROUTER_SOLICITATION {
        return Err(RsError::NotSolicitation(bytes[0]));
    }
    if bytes[1] != 0 {
        return Err(RsError::BadCode(bytes[1]));
    }
    let mut source_mac = None;
    let mut has_source_lla = false;
    let mut rest = &bytes[8..];
    while !rest.is_empty() {
        let [kind, len, ..] = *rest else {
            return Err(RsError::BadOption);
        };
        let len = usize::from(len) * 8;
        if len == 0 || len > rest.len() {
            return Err(RsError::BadOption);
        }
        if kind == OPT_SOURCE_LLA {
            has_source_lla = true;
            if len == 8 {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&rest[2..8]);
                source_mac = Some(MacAddr(mac));
            }
        }
        rest = &rest[len..];
    }
    Ok(Solicitation {
        source_mac,
        has_source_lla,
    })
}

/// The checks that need what the kernel tells about the packet: a solicitation must
/// arrive with hop limit 255 (so it was not routed), and one from the unspecified
/// address must not carry a source link-layer address (RFC 4861 §6.1.1).
pub fn validate_solicit(
    from: Ipv6Addr,
    hop_limit: u8,
    bytes: &[u8],
) -> Result<Solicitation, RsError> {
    if hop_limit != 255 {
        return Err(RsError::HopLimit(hop_limit));
    }
    let rs = parse_solicit(bytes)?;
    if from.is_unspecified() && rs.has_source_lla {
        return Err(RsError::UnspecifiedWithSourceLla);
    }
    Ok(rs)
}
