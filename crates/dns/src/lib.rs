//! kvnet-dns: the DNS server of one kvnet network as a sans-IO engine.
//!
//! The engine does what libvirt's generated dnsmasq.conf asks of dnsmasq, with no sockets,
//! files, clock or entropy of its own: bytes and time go in, [`Decision`]s come out.
//!
//! # What it answers
//! * Guest names ([`Engine::set_guest_names`], from DHCP leases and static hosts) and
//!   `<dns><host>` names: A/AAAA, as `name` and, with `<domain name>`, `name.domain`
//!   (`expand-hosts`); PTR for all of them under `in-addr.arpa` and `ip6.arpa`.
//! * `<txt>` and `<srv>` records (an SRV without a domain lives in the network's domain).
//! * From `<dnsmasq:options>`: `host-record`, `txt-record`, `srv-host`, `cname` (the chain,
//!   then the target's own records) and `ptr-record` (replacing the hosts' PTRs).
//! * The host's `/etc/hosts` ([`Engine::set_hosts_file`] with [`HostsFile::parse`]), as
//!   libvirt's dnsmasq serves it: after the network's own names, before lease names (a
//!   lease's name that the file holds is not served), expanded with the domain too.
//! * Local answers are authoritative (AA); a name that exists with other types gets an empty
//!   NOERROR (NODATA), not NXDOMAIN. RA mirrors RD. TTL 0 by default, like dnsmasq.
//!
//! # What it forwards, and where
//! Names found nowhere locally are routed by the longest matching zone:
//! * `<domain localOnly='yes'>`, `<forwarder domain>` without addr, and `<ip localPtr='yes'>`
//!   reverse zones: NXDOMAIN, never forwarded. (libvirt documents the domain-only forwarder
//!   this way; the `server=/domain/#` it writes makes dnsmasq forward after all, libvirt
//!   issue 597.)
//! * `<dns forwardPlainNames='no'>` (and `domain-needed`): dotless names get NXDOMAIN.
//! * `address=/zone/IP` answers A or AAAA for the zone and below (`#`: 0.0.0.0 and ::, no
//!   IP: NXDOMAIN); it shares the longest-zone rule with `server=` and `local=`, and a
//!   zone without an address of the query's family leaves it to its parent zones.
//! * `bogus-priv`: PTR queries for private ranges (RFC 6303) get NXDOMAIN.
//! * `<forwarder domain addr [port]>`: that domain goes to those upstreams.
//! * Default upstreams: the `<forwarder addr>`s without a domain if any (`no-resolv`), else
//!   none on an isolated network (`no-resolv`), else the host's resolvers
//!   ([`Engine::set_upstreams`] with [`parse_resolv_conf`]).
//! * Upstreams on the network's own addresses are skipped (a loop). A query with no usable
//!   upstream gets REFUSED: a policy answer that makes stub resolvers try their next server,
//!   unlike SERVFAIL, which is kept for upstreams that fail or time out.
//!
//! # The shell's side of the contract
//! * One [`Engine`] per network, from [`Config::from_network`], seeded with 32 bytes from the
//!   OS (upstream query IDs come from a ChaCha generator on that seed).
//! * A datagram or a TCP message (length prefix stripped) from a client goes to
//!   [`Engine::handle_query`]; the shell should only accept clients on the network's bridge.
//! * [`Decision::Answer`] goes back to its peer (TCP: add the length prefix);
//!   [`Decision::Forward`] goes to the upstream over the same transport, from a random
//!   source port (RFC 5452); whatever comes back from it is fed to [`Engine::handle_upstream_reply`] with
//!   that upstream as `from`. Replies that do not match a query sent to that upstream, with
//!   that ID and that question, are dropped.
//! * At [`Engine::next_timeout`] the shell calls [`Engine::poll_timeouts`], which retries the
//!   next upstream or answers SERVFAIL.
//! * On lease changes: [`Engine::set_guest_names`]; on `/etc/resolv.conf` changes:
//!   [`Engine::set_upstreams`]; on `/etc/hosts` changes: [`Engine::set_hosts_file`]; on `net-update`: [`Engine::set_config`].
//! * UDP answers larger than the client's EDNS size (512 without EDNS, at most
//!   [`Limits::max_udp_payload`]) are cut to header and question with TC set.
//! * Malformed queries get FORMERR when their header can be read and are dropped otherwise;
//!   responses sent to the server port are dropped. No input makes the engine panic.
//!
//! ```
//! use kvnet_dns::{Config, Decision, Engine, Peer, parse_resolv_conf};
//!
//! let net = kvnet_model::Network::from_xml(
//!     "<network><name>n</name><forward/><ip address='10.0.0.1' prefix='24'/></network>",
//! )
//! .unwrap();
//! let mut engine = Engine::new(Config::from_network(&net, net.profile().guests).unwrap(), [42; 32]);
//! engine.set_upstreams(parse_resolv_conf("nameserver 192.0.2.53\n"));
//!
//! // "example.org. A", ID 0x0102, RD set.
//! let query = b"\x01\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
//!               \x07example\x03org\x00\x00\x01\x00\x01";
//! let now = std::time::Instant::now();
//! let client = Peer::udp("10.0.0.9:5000".parse().unwrap());
//! let Decision::Forward { to, bytes } = engine.handle_query(now, client, query) else {
//!     panic!("expected a forward");
//! };
//! assert_eq!(to, Peer::udp("192.0.2.53:53".parse().unwrap()));
//!
//! // The upstream answers NXDOMAIN under the ID we chose; the client gets its own ID back.
//! let mut reply = bytes.clone();
//! reply[2] |= 0x80;
//! reply[3] = 0x83;
//! let Decision::Answer { to, bytes } = engine.handle_upstream_reply(now, to, &reply) else {
//!     panic!("expected an answer");
//! };
//! assert_eq!((to, &bytes[..2]), (client, &[1u8, 2][..]));
//! ```

#![forbid(unsafe_code)]

mod config;
mod engine;
mod hostsfile;
mod local;
mod localaddrs;
mod names;
mod querylog;
mod resolv;
mod routes;
mod stats;

pub use config::{Config, ConfigError, Forwarder};
pub use engine::{Decision, Engine, Limits, Peer, Transport};
pub use hostsfile::HostsFile;
pub use localaddrs::LocalAddrs;
pub use querylog::query_log_line;
pub use resolv::{parse_resolv_conf, parse_resolv_conf_with};
pub use stats::Stats;
