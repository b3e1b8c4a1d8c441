//! Address-conflict detection on the bridge: ARP probes for addresses about to be
//! offered, and the claims (ARP senders) seen there, for `Server::note_in_use`.

use super::bgclose::BgClose;
use kvnet_model::MacAddr;
use nix::libc;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tracing::debug;

const ETH_P_ARP: u16 = 0x0806;
/// Probes are best effort: a flood of new clients must not become a flood of
/// broadcasts, nor cost the DHCP loop more than a few syscalls per batch.
const PROBES_PER_SEC: f64 = 200.0;
const PROBE_BURST: f64 = 50.0;
/// Frames read per drain, so that an ARP storm cannot starve DHCP.
const DRAIN_MAX: usize = 1024;
/// The bridge's MAC changes when ports come and go unless it was set; re-read it.
const MAC_MAX_AGE: Duration = Duration::from_secs(5);

pub struct Socket {
    fd: AsyncFd<BgClose>,
    bridge: String,
    mac: Option<([u8; 6], Instant)>,
    tokens: f64,
    refilled: Instant,
}

impl Socket {
    /// A packet socket for ARP frames on `bridge`. Needs CAP_NET_RAW and a runtime.
    pub fn open(bridge: &str) -> io::Result<Socket> {
        let ifindex = nix::net::if_::if_nametoindex(bridge)?;
        let proto = ETH_P_ARP.to_be();
        // Protocol 0 here and ETH_P_ARP at bind: a socket created with a protocol
        // already listens on every interface, and re-binding it to one waits for an
        // RCU grace period (10-20 ms of every network start).
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = BgClose::new(unsafe { OwnedFd::from_raw_fd(raw) });
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a valid sockaddr_ll and its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket {
            // SAFETY: BgClose keeps its descriptor open and unchanged until dropped.
            fd: unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?,
            bridge: bridge.to_string(),
            mac: None,
            tokens: PROBE_BURST,
            refilled: Instant::now(),
        })
    }

    /// Wait until frames may be there; `drain` reads them.
    pub async fn readable(&self) {
        // Cleared before the drain, so a frame arriving meanwhile wakes us again.
        if let Ok(mut g) = self.fd.readable().await {
            g.clear_ready();
        }
    }

    /// Every claim read without blocking: (sender address, sender MAC).
    pub fn drain(&mut self, mut claim: impl FnMut(Ipv4Addr, MacAddr)) {
        let mut buf = [0u8; 128];
        for _ in 0..DRAIN_MAX {
            // SAFETY: recv(2) into a buffer of the length given.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    debug!("ARP receive on {}: {e}", self.bridge);
                }
                return;
            }
            if let Some((ip, mac)) = parse(&buf[..n as usize]) {
                claim(ip, mac);
            }
        }
    }

    /// Broadcast an RFC 5227 probe (who-has `ip`, sender address 0.0.0.0, so that no
    /// neighbour cache learns anything from it), unless over the rate. Whether it was
    /// sent.
    pub fn probe(&mut self, ip: Ipv4Addr) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + dt * PROBES_PER_SEC).min(PROBE_BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        let Some(mac) = self.own_mac() else {
            return false;
        };
        let frame = probe_frame(mac, ip);
        // SAFETY: send(2) of a buffer of the length given.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            debug!(
                "ARP probe for {ip} on {}: {}",
                self.bridge,
                io::Error::last_os_error()
            );
            return false;
        }
        true
    }

    fn own_mac(&mut self) -> Option<[u8; 6]> {
        if let Some((m, at)) = self.mac
            && at.elapsed() < MAC_MAX_AGE
        {
            return Some(m);
        }
        let path = format!("/sys/class/net/{}/address", self.bridge);
        let text = std::fs::read_to_string(&path).ok()?;
        let m = text.trim().parse::<MacAddr>().ok()?.0;
        self.mac = Some((m, Instant::now()));
        Some(m)
    }
}

/// The sender of an Ethernet/IPv4 ARP request or reply, unless it has no address yet
/// (a probe, sender 0.0.0.0).
pub fn parse(f: &[u8]) -> Option<(Ipv4Addr, MacAddr)> {
    if f.len() < 42 || f[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let a = &f[14..];
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request (1) or reply (2)
    if a[..6] != [0, 1, 8, 0, 6, 4] || !matches!(a[6..8], [0, 1] | [0, 2]) {
        return None;
    }
    let mac = MacAddr(a[8..14].try_into().ok()?);
    let ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    (!ip.is_unspecified() && !mac.is_multicast() && mac.0 != [0; 6]).then_some((ip, mac))
}

pub fn probe_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    // sender address 0.0.0.0 and target MAC 0 are already zero
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// The bridge's complete entries in the kernel's neighbour table (/proc/net/arp).
pub fn neighbours(bridge: &str) -> Vec<(Ipv4Addr, MacAddr)> {
    std::fs::read_to_string("/proc/net/arp")
        .map(|t| parse_proc_arp(&t, bridge))
        .unwrap_or_default()
}

pub fn parse_proc_arp(text: &str, bridge: &str) -> Vec<(Ipv4Addr, MacAddr)> {
    const ATF_COM: u32 = 0x2;
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [ip, _, flags, mac, _, dev] = f[..] else {
                return None;
            };
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            (dev == bridge && flags & ATF_COM != 0)
                .then(|| Some((ip.parse().ok()?, mac.parse().ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_as_no_claim_and_replies_as_claims() {
        let me = [0x52, 0x54, 0, 0, 0, 1];
        let p = probe_frame(me, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(parse(&p), None, "a probe claims nothing");
        let mut reply = p;
        reply[21] = 2;
        reply[28..32].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(
            parse(&reply),
            Some((Ipv4Addr::new(10, 0, 0, 9), MacAddr(me)))
        );
        assert_eq!(parse(&reply[..41]), None);
        let mut ipv6 = reply;
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse(&ipv6), None);
    }

    #[test]
    fn proc_arp_keeps_complete_entries_of_the_bridge() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.0.0.5         0x1         0x2         52:54:00:00:00:05     *        br0\n\
                 10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        br0\n\
                 10.0.0.7         0x1         0x2         52:54:00:00:00:07     *        eth0\n";
        let mac: MacAddr = "52:54:00:00:00:05".parse().unwrap();
        assert_eq!(
            parse_proc_arp(t, "br0"),
            vec![(Ipv4Addr::new(10, 0, 0, 5), mac)]
        );
    }
}
