//! kvnet-attach: how a qemu guest gets onto a kvnet network without libvirt.
//!
//! * `kvnet-ifup` / `kvnet-ifdown`: qemu's `script=` / `downscript=`, which register
//!   the TAP qemu made with kvnetd (port-attach / port-delete).
//! * `kvnet-bridge-helper`: qemu's `helper=` protocol (what qemu-bridge-helper
//!   speaks), for unprivileged qemu, guarded by a bridge.conf ACL ([`acl`]).

#![forbid(unsafe_code)]

pub mod acl;
pub mod cli;

use std::path::PathBuf;

/// The network the ifup/ifdown hooks use when `KVNET_NETWORK` is unset.
pub const DEFAULT_NETWORK: &str = "default";

/// kvnetd's socket: `KVNET_SOCKET` or the default.
pub fn socket_from_env() -> PathBuf {
    std::env::var_os("KVNET_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(kvnet_api::DEFAULT_SOCKET))
}

/// Send one request to kvnetd at `socket`; an error reply becomes an error.
pub fn call(socket: &std::path::Path, req: impl kvnet_api::Call) -> anyhow::Result<()> {
    kvnet_api::call(socket, req)?;
    Ok(())
}
