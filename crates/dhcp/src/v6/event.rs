//! What the DHCPv6 engine asks the shell to do ([`Effect`]), and what it reports
//! ([`Event`]).

use std::fmt;
use std::net::Ipv6Addr;

use super::lease::LeaseRecord;
use super::wire::Malformed;

/// One thing for the shell to do, in order: every `Persist` must be durable before any
/// later `Send` of the batch leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append `encode_record(&rec)` to the network's v6 journal and fsync it.
    Persist(LeaseRecord),
    /// A complete DHCPv6 message, for the client that sent the datagram just handled
    /// (its link-local address, port 546, on the bridge).
    Send(Vec<u8>),
    Log(Event),
}

/// Log events, dnsmasq-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Advertise {
        ip: Ipv6Addr,
        duid: String,
    },
    Reply {
        ip: Ipv6Addr,
        duid: String,
        hostname: Option<String>,
    },
    NoAddrs {
        duid: String,
    },
    NoBinding {
        duid: String,
    },
    Confirm {
        duid: String,
        on_link: bool,
    },
    Release {
        ip: Ipv6Addr,
        duid: String,
    },
    Decline {
        ip: Ipv6Addr,
        duid: String,
    },
    Expired {
        ip: Ipv6Addr,
        duid: String,
    },
    /// A static host's address went to its host, taking it from `previous`.
    Revoked {
        ip: Ipv6Addr,
        previous: String,
    },
    Malformed(Malformed),
    Ignored {
        reason: &'static str,
    },
    /// A client over its packet rate: dropped (logged once per episode).
    RateLimited {
        duid: String,
    },
    /// The network's budget of lease changes is spent: a message that would change a
    /// lease was dropped (logged once per dry spell).
    ChangesLimited {
        duid: String,
    },
}

impl Event {
    /// Kinds a stranger can make us log at will; the shell logs them at debug level.
    pub fn is_noisy(&self) -> bool {
        matches!(
            self,
            Event::Malformed(_) | Event::Ignored { .. } | Event::RateLimited { .. }
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Advertise { ip, duid } => write!(f, "DHCPADVERTISE(v6) {ip} {duid}"),
            Event::Reply { ip, duid, hostname } => {
                write!(f, "DHCPREPLY(v6) {ip} {duid}")?;
                if let Some(h) = hostname {
                    write!(f, " {h}")?;
                }
                Ok(())
            }
            Event::NoAddrs { duid } => write!(f, "DHCPv6: no address available for {duid}"),
            Event::NoBinding { duid } => write!(f, "DHCPv6: no binding for {duid}"),
            Event::Confirm { duid, on_link } => write!(
                f,
                "DHCPCONFIRM(v6) {duid}: {}",
                if *on_link { "on link" } else { "not on link" }
            ),
            Event::Release { ip, duid } => write!(f, "DHCPRELEASE(v6) {ip} {duid}"),
            Event::Decline { ip, duid } => write!(f, "DHCPDECLINE(v6) {ip} {duid}"),
            Event::Expired { ip, duid } => write!(f, "DHCPv6 lease {ip} of {duid} expired"),
            Event::Revoked { ip, previous } => write!(
                f,
                "{ip} is reserved for a static host: DHCPv6 lease of {previous} revoked"
            ),
            Event::Malformed(m) => write!(f, "malformed DHCPv6 packet: {m}"),
            Event::Ignored { reason } => write!(f, "ignoring DHCPv6 packet: {reason}"),
            Event::RateLimited { duid } => {
                write!(f, "too many DHCPv6 packets from {duid}: dropping")
            }
            Event::ChangesLimited { duid } => write!(
                f,
                "too many DHCPv6 lease changes on this network: dropping the message of {duid} (logged once while it lasts)"
            ),
        }
    }
}
