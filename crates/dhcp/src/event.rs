//! What the engine asks the shell to do, and what it reports.

use std::fmt;
use std::net::Ipv4Addr;

use kvnet_model::MacAddr;

use crate::lease::LeaseRecord;
use crate::wire::Malformed;

/// One thing for the shell to do. Effects come in the order they must be carried out;
/// see the crate docs for the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append `encode_record(&rec)` to the network's journal and make it durable (fsync)
    /// before carrying out any later `Send` of the same batch.
    Persist(LeaseRecord),
    /// A complete DHCP message (UDP payload) from our server address, port 67.
    ///
    /// `after_probe` is set on the ACK that binds an address the client did not hold as
    /// an active lease (a fresh binding): if the shell sent an ARP probe for that address
    /// moments ago and its answer may still be on the way, it should hold this ACK until
    /// the probe settles, and drop it if a claim for the address meanwhile makes
    /// [`crate::Server::note_in_use`] report a [`Event::Conflict`] (the engine has then
    /// abandoned the lease; the client retries, is NAKed and starts over). The wait is
    /// the shell's to choose, as the engine has no clock finer than seconds. `None` on
    /// every other reply: OFFERs, NAKs, INFORM answers, renewals.
    Send {
        bytes: Vec<u8>,
        to: Destination,
        after_probe: Option<Ipv4Addr>,
    },
    Log(Event),
    /// The address is about to be offered to a client that does not hold it: ask the
    /// bridge whether another machine uses it (an ARP probe, RFC 5227), without waiting.
    /// A claim seen in return goes to [`crate::Server::note_in_use`]. Best effort: the
    /// shell may skip probes to bound their rate. The ACK that later binds the address
    /// names it in `Send::after_probe`.
    Probe(Ipv4Addr),
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// 255.255.255.255:68, Ethernet broadcast.
    Broadcast,
    /// `ip`:68 in an Ethernet frame to `mac`, without ARP: the client has no address yet
    /// and cannot answer ARP. Send it through a packet socket, or after installing a
    /// neighbour entry `ip → mac` on the bridge.
    Hardware { ip: Ipv4Addr, mac: MacAddr },
    /// Ordinary unicast to `ip`:68, the address the client already uses (renew, INFORM).
    Unicast(Ipv4Addr),
    /// To the relay agent at `ip`:67.
    Relay(Ipv4Addr),
}

impl Destination {
    /// UDP destination port.
    pub fn port(&self) -> u16 {
        match self {
            Destination::Relay(_) => 67,
            _ => 68,
        }
    }

    /// Destination IP address.
    pub fn ip(&self) -> Ipv4Addr {
        match *self {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Hardware { ip, .. }
            | Destination::Unicast(ip)
            | Destination::Relay(ip) => ip,
        }
    }
}

/// Log events, dnsmasq-style. Noisy kinds (malformed packets, floods, exhaustion) are
/// rate-limited by the engine and summarised by [`Event::Suppressed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Offer {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    Ack {
        ip: Ipv4Addr,
        mac: MacAddr,
        hostname: Option<String>,
        /// The client already held this address under a live lease (a renewal), as
        /// opposed to a new binding.
        renewed: bool,
    },
    /// A client asked for a name the admin defined (a `<dns><host>` or static host's):
    /// its lease goes without it.
    NameRefused {
        name: String,
        mac: MacAddr,
    },
    /// A newer lease took `name`: the older one (of `from`) loses it.
    NameMoved {
        name: String,
        from: MacAddr,
        to: MacAddr,
    },
    Nak {
        ip: Ipv4Addr,
        mac: MacAddr,
        reason: &'static str,
    },
    Inform {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    Release {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    Decline {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    /// A lease ran out without renewal.
    Expired {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    /// Another machine was seen using `ip`; the offer or lease of `holder` was dropped.
    Conflict {
        ip: Ipv4Addr,
        holder: MacAddr,
        seen: MacAddr,
    },
    /// A static host's address went to its host, taking it from `previous`.
    Revoked {
        ip: Ipv4Addr,
        previous: MacAddr,
    },
    /// A static host's address is declined or used by another machine: no offer.
    StaticUnavailable {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    PoolExhausted {
        mac: MacAddr,
    },
    RateLimited {
        mac: MacAddr,
    },
    /// The network's budget of lease changes is spent: a request that would change a
    /// lease was dropped (logged once per dry spell).
    ChangesLimited {
        mac: MacAddr,
    },
    Malformed(Malformed),
    /// A well-formed message we deliberately do not answer.
    Ignored {
        mac: MacAddr,
        reason: &'static str,
    },
    /// Noisy events dropped by the log rate limit since the last summary.
    Suppressed {
        count: u64,
    },
    /// `log-dhcp`: a message and the reply to it, with the options the client asked for
    /// (None: it sent no request list) and the options sent back, in order.
    Exchange {
        mac: MacAddr,
        request: &'static str,
        /// The client has a `<host>` entry (dnsmasq's tag `known`).
        known: bool,
        asked: Option<Vec<u8>>,
        sent: Vec<u8>,
    },
}

impl Event {
    /// Whether this kind is subject to the log rate limit.
    pub(crate) fn is_noisy(&self) -> bool {
        matches!(
            self,
            Event::PoolExhausted { .. }
                | Event::RateLimited { .. }
                | Event::ChangesLimited { .. }
                | Event::Malformed(_)
                | Event::Ignored { .. }
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Offer { ip, mac } => write!(f, "DHCPOFFER {ip} {mac}"),
            Event::Ack {
                ip, mac, hostname, ..
            } => {
                write!(f, "DHCPACK {ip} {mac}")?;
                if let Some(h) = hostname {
                    write!(f, " {h}")?;
                }
                Ok(())
            }
            Event::Nak { ip, mac, reason } => write!(f, "DHCPNAK {ip} {mac} {reason}"),
            Event::NameRefused { name, mac } => write!(
                f,
                "{mac} asked for the name {name}, which the network defines: not given"
            ),
            Event::NameMoved { name, from, to } => {
                write!(
                    f,
                    "the name {name} moves from {from} to {to}, its newer lease"
                )
            }
            Event::Inform { ip, mac } => write!(f, "DHCPINFORM {ip} {mac}"),
            Event::Release { ip, mac } => write!(f, "DHCPRELEASE {ip} {mac}"),
            Event::Decline { ip, mac } => write!(f, "DHCPDECLINE {ip} {mac}"),
            Event::Expired { ip, mac } => write!(f, "lease {ip} of {mac} expired"),
            Event::Conflict { ip, holder, seen } => {
                write!(f, "{ip} of {holder} is in use by {seen}: abandoned")
            }
            Event::Revoked { ip, previous } => {
                write!(
                    f,
                    "{ip} is reserved for a static host: lease of {previous} revoked"
                )
            }
            Event::StaticUnavailable { ip, mac } => {
                write!(f, "reserved address {ip} of {mac} is in use or declined")
            }
            Event::PoolExhausted { mac } => write!(
                f,
                "no address available for {mac}: every address of the range is leased, offered or held (logged once a minute while it lasts)"
            ),
            Event::RateLimited { mac } => write!(f, "too many packets from {mac}: dropping"),
            Event::ChangesLimited { mac } => write!(
                f,
                "too many lease changes on this network: dropping the request of {mac} (logged once while it lasts)"
            ),
            Event::Malformed(m) => write!(f, "malformed packet: {m}"),
            Event::Ignored { mac, reason } => write!(f, "ignoring packet from {mac}: {reason}"),
            Event::Suppressed { count } => write!(f, "{count} similar messages suppressed"),
            Event::Exchange {
                mac,
                request,
                known,
                asked,
                sent,
            } => {
                let tags = if *known { "known" } else { "unknown" };
                write!(f, "{request} from {mac} ({tags})")?;
                match asked {
                    Some(a) => write!(f, ", requested options {a:?}")?,
                    None => write!(f, ", no parameter request list")?,
                }
                write!(f, "; reply options {sent:?}")
            }
        }
    }
}
