//! What a macvtap is besides its link: the character device qemu opens
//! (/dev/tapIFINDEX, made by devtmpfs as root 0600).

use crate::{ErrorKind, HostError};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The character device of the macvtap with interface index `ifindex`.
pub fn device_path(ifindex: u32) -> PathBuf {
    PathBuf::from(format!("/dev/tap{ifindex}"))
}

/// Waits (up to `timeout`: devtmpfs makes the node asynchronously) for the macvtap's
/// device and gives it to `owner`/`group`, read-write for them alone, so their qemu
/// can open it; without an owner it stays root's.
pub fn prepare_device(
    ifindex: u32,
    owner: Option<u32>,
    group: Option<u32>,
    timeout: Duration,
) -> Result<PathBuf, HostError> {
    let path = device_path(ifindex);
    let ctx = || format!("macvtap device {}", path.display());
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(HostError::new(
                ctx(),
                ErrorKind::Invalid(format!("not there after {timeout:?} (is /dev a devtmpfs?)")),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if owner.is_some() || group.is_some() {
        chown(&path, owner, group).map_err(|e| HostError::new(ctx(), e))?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| HostError::new(ctx(), e))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_path_is_by_index() {
        assert_eq!(device_path(12), PathBuf::from("/dev/tap12"));
    }
}
