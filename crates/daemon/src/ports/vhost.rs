//! Whether a port's qemu can use vhost-net (`vhost=on`): the kernel's virtio-net backend,
//! much faster than qemu's own, as libvirt uses by default. qemu opens /dev/vhost-net
//! itself, as the user it runs as: the port's owner (`port-create --owner`), or root
//! when the TAP has none. The decision is pure; `probe` reads the device and the
//! owner's groups.

use std::path::Path;

pub const VHOST_NET: &str = "/dev/vhost-net";

/// /dev/vhost-net's owner and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Who qemu runs as: the port's owner (None: root) and the groups it has, `--group`
/// included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub uid: Option<u32>,
    pub name: String,
    pub groups: Vec<u32>,
}

/// `vhost=on` or not, and why not.
pub fn decide(dev: Option<Device>, who: &Runner) -> Result<(), String> {
    let Some(d) = dev else {
        return Err(format!(
            "{VHOST_NET} does not exist on this host (the vhost_net kernel module is not loaded)"
        ));
    };
    let uid = who.uid.unwrap_or(0);
    let rw = |bits: u32| d.mode & bits == bits;
    let allowed = uid == 0
        || (uid == d.uid && rw(0o600))
        || (who.groups.contains(&d.gid) && rw(0o060))
        || rw(0o006);
    if allowed {
        return Ok(());
    }
    Err(format!(
        "{VHOST_NET} (mode {:04o}, owner {}, group {}) cannot be opened by {} (uid {uid}); add the user to its group",
        d.mode & 0o7777,
        d.uid,
        d.gid,
        who.name
    ))
}

/// The device's owner and mode, None when it does not exist (or is not a character
/// device).
pub fn device(path: &Path) -> Option<Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    m.file_type().is_char_device().then(|| Device {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
    })
}

/// Who qemu will run as for a port owned by `owner` (and `group`).
pub fn runner(owner: Option<u32>, group: Option<u32>) -> Runner {
    let mut groups: Vec<u32> = group.into_iter().collect();
    let mut name = "root".to_string();
    if let Some(uid) = owner
        && let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
    {
        name = u.name.clone();
        groups.push(u.gid.as_raw());
        if let Ok(cname) = std::ffi::CString::new(u.name) {
            groups.extend(
                nix::unistd::getgrouplist(&cname, u.gid)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|g| g.as_raw()),
            );
        }
    } else if let Some(uid) = owner {
        name = format!("uid {uid}");
    }
    Runner {
        uid: owner,
        name,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: Option<u32>, groups: &[u32]) -> Runner {
        Runner {
            uid,
            name: "alice".into(),
            groups: groups.to_vec(),
        }
    }

    /// Debian's: crw-rw---- root:kvm.
    const KVM: Device = Device {
        uid: 0,
        gid: 108,
        mode: 0o660,
    };

    #[test]
    fn who_may_open_vhost_net() {
        assert!(decide(Some(KVM), &who(None, &[])).is_ok(), "root");
        assert!(
            decide(Some(KVM), &who(Some(1000), &[108])).is_ok(),
            "in group kvm"
        );
        let e = decide(Some(KVM), &who(Some(1000), &[1000])).unwrap_err();
        assert!(
            e.contains("mode 0660") && e.contains("alice (uid 1000)"),
            "{e}"
        );
        let open = Device { mode: 0o666, ..KVM };
        assert!(
            decide(Some(open), &who(Some(1000), &[])).is_ok(),
            "world-writable"
        );
        let mine = Device {
            uid: 1000,
            mode: 0o600,
            ..KVM
        };
        assert!(
            decide(Some(mine), &who(Some(1000), &[])).is_ok(),
            "its owner"
        );
        let read_only = Device { mode: 0o640, ..KVM };
        assert!(decide(Some(read_only), &who(Some(1000), &[108])).is_err());
        let e = decide(None, &who(None, &[])).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn a_missing_device_reads_as_none() {
        assert_eq!(device(Path::new("/nonexistent/vhost-net")), None);
        assert_eq!(
            device(Path::new("/etc/hostname")),
            None,
            "not a character device"
        );
        assert!(device(Path::new("/dev/null")).is_some());
    }
}
