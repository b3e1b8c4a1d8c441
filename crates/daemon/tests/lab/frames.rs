//! Frames a test writes into a TAP as its guest would, and reads back: the TAP's guest
//! end opened by the test, Ethernet, ARP, IPv4/UDP and IPv6 router advertisements.

use super::Lab;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub fn mac_bytes(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tpa);
    p
}

pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let payload = [0u8; 8];
    let udp_len = 8 + payload.len() as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + udp_len).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&payload);
    p
}

/// A router advertisement from link-local `src`: ICMPv6 type 134 to all nodes.
pub fn ipv6_ra(src: [u8; 16]) -> Vec<u8> {
    let icmp = [134u8, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src);
    let mut dst = [0u8; 16];
    dst[0] = 0xff;
    dst[1] = 0x02;
    dst[15] = 1;
    p.extend_from_slice(&dst);
    p.extend_from_slice(&icmp);
    p
}

/// The guest's end of a TAP: the test writes what the guest sends, reads what it gets.
pub fn open_tap(lab: &Lab, name: &str) -> File {
    let tap = lab
        .host
        .run(|| {
            kvnet_host::tap::create(&kvnet_host::tap::TapConfig {
                name: name.to_string(),
                vnet_hdr: false,
                queues: 1,
                owner: None,
                group: None,
                persist: false,
            })
        })
        .expect("open the TAP");
    let fd = tap.fds.into_iter().next().unwrap();
    let f = File::from(fd);
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    f
}

/// Whether an ARP reply for `ip` to `mac` comes back within two seconds.
pub fn arp_reply_seen(f: &mut File, mac: [u8; 6], ip: [u8; 4]) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        match f.read(&mut buf) {
            Ok(n) if n >= 42 && buf[12..14] == [8, 6] && buf[20..22] == [0, 2] => {
                if buf[0..6] == mac && buf[28..32] == ip {
                    return true;
                }
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// Every frame that arrives on `f` within `d`.
pub fn frames_for(f: &mut File, d: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        match f.read(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    out
}

/// Copy frames from one TAP file to another until `stop`, or until reading fails for a
/// second (its device is gone). A frame the other side refuses (its link not up yet)
/// is dropped, as a wire would.
pub fn pump(mut from: File, mut to: File, stop: Arc<AtomicBool>) {
    use std::os::fd::AsFd;
    let mut buf = vec![0u8; 65536];
    let mut errors = 0;
    while errors < 100 && !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(100u16)), Ok(n) if n > 0) {
            continue;
        }
        match from.read(&mut buf) {
            Ok(n) => {
                errors = 0;
                let _ = to.write(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                errors += 1;
                thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

pub fn blocking(f: File) -> File {
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    f
}

/// A guest namespace standing in for qemu: its `eth0`, a TAP (with a virtio-net header
/// when `vnet_hdr`, like a macvtap's), relayed frame for frame to and from `port` (the
/// guest end of a port's TAP or a macvtap's /dev/tapN), as qemu does with the
/// descriptor it is given. Dropping it stops the relay and lets go of the port.
pub struct RelayGuest {
    pub ns: kvnet_host::testns::TestNs,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Drop for RelayGuest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A [`RelayGuest`] (namespace named from `prefix`) with `mac` and `addr`/24 on `eth0`.
pub fn relay_guest(prefix: &str, port: File, vnet_hdr: bool, mac: &str, addr: &str) -> RelayGuest {
    let ns = kvnet_host::testns::TestNs::with_prefix(prefix).expect("guest ns");
    let tap = ns
        .run(|| {
            kvnet_host::tap::create(&kvnet_host::tap::TapConfig {
                name: "eth0".into(),
                vnet_hdr,
                queues: 1,
                owner: None,
                group: None,
                persist: false,
            })
        })
        .expect("guest TAP");
    let inner = File::from(tap.fds.into_iter().next().unwrap());
    let outer = blocking(port);
    let (i2, o2) = (inner.try_clone().unwrap(), outer.try_clone().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (s1, s2) = (stop.clone(), stop.clone());
    let threads = vec![
        thread::spawn(move || pump(outer, inner, s1)),
        thread::spawn(move || pump(i2, o2, s2)),
    ];
    for cmd in [
        format!("link set eth0 address {mac}"),
        "link set lo up".into(),
        format!("addr add {addr}/24 dev eth0"),
        "link set eth0 up".into(),
    ] {
        super::ip(&ns, &cmd);
    }
    RelayGuest { ns, stop, threads }
}
