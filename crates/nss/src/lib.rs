//! kvnet's NSS module: `hosts: files kvnet dns` in /etc/nsswitch.conf lets every program
//! on the host resolve the guests of kvnet's active networks by name — DHCP lease
//! hostnames, static DHCP hosts and `<dns><host>` names, plain and in the network's
//! domain. Like libvirt's libvirt-nss, but kvnetd keeps a small sorted index for it
//! ([`index`]), so a lookup reads one small file and never talks to the daemon.
//!
//! The module runs inside every program that resolves a name: a missing or bad index is
//! "not found", never a crash or a hang; no panic crosses into C ([`ffi`] catches them
//! all); no global state; a lookup reads a small index whole and a large one (up to
//! [`index::MAX_INDEX`]) piecewise, a few KiB per lookup.
//!
//! `unsafe` lives only in [`ffi`], glibc's calling convention; the format, parser and
//! lookup ([`index`]) and the bounded read ([`read`]) are safe code.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod ffi;
pub mod index;
pub mod read;

use index::Family;
use std::net::IpAddr;
use std::path::Path;

/// The addresses of `query` (as a C caller gave it) in the index at `path`.
pub fn resolve(path: &Path, query: &[u8], family: Family) -> (Option<String>, Vec<IpAddr>) {
    let Some(name) = index::normalize(query) else {
        return (None, Vec::new());
    };
    let addrs = match read::open_index(path) {
        Some(mut src) => index::lookup_in(&mut src, &name, family),
        None => Vec::new(),
    };
    (Some(name), addrs)
}
