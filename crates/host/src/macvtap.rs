//! What a macvtap is besides its link: the character device qemu opens
//! (/dev/tapIFINDEX, made by devtmpfs as root 0600) and, for pools given as an SR-IOV
//! physical function (`<pf dev>`), the netdevs of its virtual functions in sysfs.

use crate::{ErrorKind, HostError};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
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

/// The netdevs of the virtual functions of physical function `pf`, read under `sys`
/// (`/sys` on a host): `class/net/PF/device/virtfnN/net/NAME`, in VF order. An error
/// says why there are none: not a PCI device, not SR-IOV capable, or no VF enabled.
pub fn vf_netdevs(sys: &Path, pf: &str) -> Result<Vec<String>, String> {
    let dev = sys.join("class/net").join(pf).join("device");
    if !sys.join("class/net").join(pf).exists() {
        return Err(format!("{pf} does not exist"));
    }
    if !dev.exists() {
        return Err(format!(
            "{pf} is not a PCI device, so it has no SR-IOV virtual functions"
        ));
    }
    let total = std::fs::read_to_string(dev.join("sriov_totalvfs"))
        .map_err(|_| format!("{pf} is not SR-IOV capable (no sriov_totalvfs)"))?;
    let mut vfs: Vec<(u32, PathBuf)> = std::fs::read_dir(&dev)
        .map_err(|e| format!("read {}: {e}", dev.display()))?
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("virtfn")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    if vfs.is_empty() {
        return Err(format!(
            "{pf} has no virtual functions enabled (of {} possible: write a number to {}/sriov_numvfs)",
            total.trim(),
            dev.display()
        ));
    }
    vfs.sort();
    let mut names = Vec::new();
    for (n, path) in vfs {
        let netdev = std::fs::read_dir(path.join("net"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| e.file_name().to_str().map(String::from))
            .ok_or_else(|| {
                format!("virtual function {n} of {pf} has no network device (bound to vfio?)")
            })?;
        names.push(netdev);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A directory removed on drop.
    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn fake_sys() -> Dir {
        let d = Dir(std::env::temp_dir().join(format!("kvnet-sys-{}", std::process::id())));
        let net = d.path().join("class/net");
        // eth0: SR-IOV with two VFs; eth1: capable, none enabled; lo: no device.
        let dev0 = d.path().join("devices/pci0/0000:01:00.0");
        for (vf, name) in [(1, "eth0v1"), (0, "eth0v0")] {
            let vfdir = d.path().join(format!("devices/pci0/0000:01:00.{}", vf + 1));
            fs::create_dir_all(vfdir.join("net").join(name)).unwrap();
            fs::create_dir_all(&dev0).unwrap();
            std::os::unix::fs::symlink(&vfdir, dev0.join(format!("virtfn{vf}"))).unwrap();
        }
        fs::write(dev0.join("sriov_totalvfs"), "8\n").unwrap();
        let dev1 = d.path().join("devices/pci0/0000:02:00.0");
        fs::create_dir_all(&dev1).unwrap();
        fs::write(dev1.join("sriov_totalvfs"), "4\n").unwrap();
        let dev2 = d.path().join("devices/pci0/0000:03:00.0");
        fs::create_dir_all(&dev2).unwrap();
        for (n, dev) in [
            ("eth0", Some(&dev0)),
            ("eth1", Some(&dev1)),
            ("eth2", Some(&dev2)),
            ("lo", None),
        ] {
            fs::create_dir_all(net.join(n)).unwrap();
            if let Some(dev) = dev {
                std::os::unix::fs::symlink(dev, net.join(n).join("device")).unwrap();
            }
        }
        d
    }

    #[test]
    fn virtual_functions_or_why_none() {
        let d = fake_sys();
        assert_eq!(vf_netdevs(d.path(), "eth0").unwrap(), ["eth0v0", "eth0v1"]);
        let e = vf_netdevs(d.path(), "eth1").unwrap_err();
        assert!(
            e.contains("eth1 has no virtual functions enabled (of 4 possible"),
            "{e}"
        );
        let e = vf_netdevs(d.path(), "eth2").unwrap_err();
        assert_eq!(e, "eth2 is not SR-IOV capable (no sriov_totalvfs)");
        let e = vf_netdevs(d.path(), "lo").unwrap_err();
        assert_eq!(
            e,
            "lo is not a PCI device, so it has no SR-IOV virtual functions"
        );
        assert_eq!(
            vf_netdevs(d.path(), "nope").unwrap_err(),
            "nope does not exist"
        );
    }

    #[test]
    fn device_path_is_by_index() {
        assert_eq!(device_path(12), PathBuf::from("/dev/tap12"));
    }
}
