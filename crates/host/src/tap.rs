//! TAP devices for guests. The kernel refuses to create tun/tap over rtnetlink,
//! so they are made with ioctls on `/dev/net/tun`; master, MTU, MAC and up then
//! go through [`crate::Netlink`], and [`crate::Netlink::tun_info`] tells a TAP
//! from other links.
//!
//! The device is created in the network namespace of the calling thread.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::HostError;

const TUN_PATH: &str = "/dev/net/tun";

/// `struct ifreq` as TUNSETIFF reads and writes it: the name and the flags
/// union member, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// The device name, or a pattern such as `tap%d` that the kernel completes.
    pub name: String,
    /// Frames carry a virtio-net header (what qemu's virtio-net wants for offloads).
    pub vnet_hdr: bool,
    /// More than one makes a multi-queue TAP, with one open file per queue.
    pub queues: u16,
    /// Users who may open the TAP without CAP_NET_ADMIN (e.g. an unprivileged qemu).
    pub owner: Option<u32>,
    pub group: Option<u32>,
    /// The device outlives its files (until [`delete`]).
    pub persist: bool,
}

/// A created TAP: its name and one open file per queue. Without `persist`,
/// the device vanishes when the last file is closed.
#[derive(Debug)]
pub struct Tap {
    pub name: String,
    pub fds: Vec<OwnedFd>,
}

fn open_tun() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(TUN_PATH)
}

/// TUNSETIFF: attach `f` to the TAP `name` (creating it if needed); returns the
/// kernel's name for it (a pattern is completed).
fn set_iff(f: &File, name: &str, flags: libc::c_int) -> io::Result<String> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: flags as libc::c_short,
        _pad: [0; 22],
    };
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which IfReq lays out.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = req
        .name
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(req.name.len());
    Ok(String::from_utf8_lossy(&req.name[..end]).into_owned())
}

/// The TUNSET* ioctls that take their argument by value.
fn set_value(f: &File, request: libc::Ioctl, value: libc::c_ulong) -> io::Result<()> {
    // SAFETY: these requests take an integer argument and touch no memory of ours.
    if unsafe { libc::ioctl(f.as_raw_fd(), request, value) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a TAP as `cfg` says.
pub fn create(cfg: &TapConfig) -> Result<Tap, HostError> {
    let ctx = || format!("create TAP {}", cfg.name);
    let queues = cfg.queues.max(1);
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if cfg.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if queues > 1 {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    let first = open_tun().map_err(|e| HostError::new(format!("{}: open {TUN_PATH}", ctx()), e))?;
    let name = set_iff(&first, &cfg.name, flags).map_err(|e| HostError::new(ctx(), e))?;
    // From here on a failure must not leave a persistent device behind.
    let configure = || -> io::Result<Vec<OwnedFd>> {
        if let Some(uid) = cfg.owner {
            set_value(&first, libc::TUNSETOWNER, uid.into())?;
        }
        if let Some(gid) = cfg.group {
            set_value(&first, libc::TUNSETGROUP, gid.into())?;
        }
        if cfg.persist {
            set_value(&first, libc::TUNSETPERSIST, 1)?;
        }
        let mut fds = Vec::with_capacity(queues.into());
        for _ in 1..queues {
            let f = open_tun()?;
            set_iff(&f, &name, flags)?;
            fds.push(OwnedFd::from(f));
        }
        Ok(fds)
    };
    match configure() {
        Ok(more) => {
            let mut fds = vec![OwnedFd::from(first)];
            fds.extend(more);
            Ok(Tap { name, fds })
        }
        Err(e) => {
            let _ = set_value(&first, libc::TUNSETPERSIST, 0);
            Err(HostError::new(format!("create TAP {name}"), e))
        }
    }
}

/// Deletes a persistent TAP: attach to it and drop its persist flag, so it goes
/// when the last file closes (at once, unless a process such as qemu still has
/// it open). A TAP that does not exist is not an error.
pub fn delete(name: &str) -> Result<(), HostError> {
    let ctx = || format!("delete TAP {name}");
    // TUNSETIFF would create a missing TAP, and a process forked meanwhile by another
    // thread could keep it alive past our close: look first (in the calling thread's
    // namespace, unlike /sys).
    if nix::net::if_::if_nametoindex(name).is_err() {
        return Ok(());
    }
    let base = libc::IFF_TAP | libc::IFF_NO_PI;
    let f = open_tun().map_err(|e| HostError::new(format!("{}: open {TUN_PATH}", ctx()), e))?;
    // The multi-queue flag must match the device's, which we need not know.
    let attached = match set_iff(&f, name, base) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            set_iff(&f, name, base | libc::IFF_MULTI_QUEUE)
        }
        r => r,
    };
    // A TAP that did not exist was just created without persist: it goes with `f`.
    match attached {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(HostError::invalid(
                ctx(),
                "it is in use (is the guest's qemu still running?)",
            ));
        }
        Err(e) => return Err(HostError::new(ctx(), e)),
    }
    set_value(&f, libc::TUNSETPERSIST, 0).map_err(|e| HostError::new(ctx(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }
}
