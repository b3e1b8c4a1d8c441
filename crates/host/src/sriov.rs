//! SR-IOV and PCI devices in sysfs (a root passed in: `/sys` on a host, a directory in
//! tests): the virtual functions of a physical function (`<pf dev>`), their PCI
//! addresses and netdevs, and handing a device to vfio-pci for qemu (libvirt's
//! `managed='yes'`) and back.

use crate::HostError;
use std::fs;
use std::path::{Path, PathBuf};

/// One virtual function of a physical function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vf {
    /// Its number on the PF (`virtfnN`), as `ip link set PF vf N` takes it.
    pub index: u32,
    /// Its PCI address, `dddd:bb:ss.f`.
    pub pci: String,
    /// Its network device, when a network driver holds it (not vfio-pci).
    pub netdev: Option<String>,
}

/// The virtual functions of physical function `pf`, in VF order. An error says why
/// there are none: no such device, not a PCI device, not SR-IOV capable, none enabled.
pub fn vfs(sys: &Path, pf: &str) -> Result<Vec<Vf>, String> {
    let class = sys.join("class/net").join(pf);
    let dev = class.join("device");
    if !class.exists() {
        return Err(format!("{pf} does not exist"));
    }
    if !dev.exists() {
        return Err(format!(
            "{pf} is not a PCI device, so it has no SR-IOV virtual functions"
        ));
    }
    let total = fs::read_to_string(dev.join("sriov_totalvfs"))
        .map_err(|_| format!("{pf} is not SR-IOV capable (no sriov_totalvfs)"))?;
    let mut vfs: Vec<Vf> = fs::read_dir(&dev)
        .map_err(|e| format!("read {}: {e}", dev.display()))?
        .filter_map(|e| {
            let e = e.ok()?;
            let index = e
                .file_name()
                .to_str()?
                .strip_prefix("virtfn")?
                .parse()
                .ok()?;
            let target = fs::read_link(e.path()).ok()?;
            let pci = target.file_name()?.to_str()?.to_string();
            let netdev = fs::read_dir(e.path().join("net"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .and_then(|e| e.file_name().to_str().map(String::from));
            Some(Vf { index, pci, netdev })
        })
        .collect();
    if vfs.is_empty() {
        return Err(format!(
            "{pf} has no virtual functions enabled (of {} possible: write a number to {}/sriov_numvfs)",
            total.trim(),
            dev.display()
        ));
    }
    vfs.sort_by_key(|v| v.index);
    Ok(vfs)
}

/// The netdevs of `pf`'s virtual functions (a macvtap pool): every VF must have one.
pub fn vf_netdevs(sys: &Path, pf: &str) -> Result<Vec<String>, String> {
    vfs(sys, pf)?
        .into_iter()
        .map(|v| {
            v.netdev.ok_or_else(|| {
                format!(
                    "virtual function {} of {pf} ({}) has no network device (bound to vfio-pci?)",
                    v.index, v.pci
                )
            })
        })
        .collect()
}

fn device(sys: &Path, pci: &str) -> PathBuf {
    sys.join("bus/pci/devices").join(pci)
}

/// The driver PCI device `pci` is bound to, if any.
pub fn driver(sys: &Path, pci: &str) -> Option<String> {
    let l = fs::read_link(device(sys, pci).join("driver")).ok()?;
    l.file_name()?.to_str().map(String::from)
}

/// The IOMMU group of PCI device `pci`: qemu opens /dev/vfio/GROUP.
pub fn iommu_group(sys: &Path, pci: &str) -> Option<String> {
    let l = fs::read_link(device(sys, pci).join("iommu_group")).ok()?;
    l.file_name()?.to_str().map(String::from)
}

fn write(path: &Path, value: &str) -> Result<(), HostError> {
    fs::write(path, value)
        .map_err(|e| HostError::new(format!("write {value:?} to {}", path.display()), e))
}

/// Hands PCI device `pci` to vfio-pci, as libvirt does for `managed='yes'`: the
/// override first (so no other driver takes it), off its driver, probed again.
/// Returns the driver it had.
pub fn bind_vfio(sys: &Path, pci: &str) -> Result<Option<String>, HostError> {
    let dev = device(sys, pci);
    let had = driver(sys, pci);
    if had.as_deref() == Some("vfio-pci") {
        return Ok(had);
    }
    write(&dev.join("driver_override"), "vfio-pci")?;
    if had.is_some() {
        write(&dev.join("driver/unbind"), pci)?;
    }
    write(&sys.join("bus/pci/drivers_probe"), pci)?;
    Ok(had)
}

/// Gives PCI device `pci` back to the host's drivers: off vfio-pci, the override
/// cleared, probed again (its network driver takes it back).
pub fn release_vfio(sys: &Path, pci: &str) -> Result<(), HostError> {
    let dev = device(sys, pci);
    if driver(sys, pci).as_deref() == Some("vfio-pci") {
        write(&dev.join("driver/unbind"), pci)?;
    }
    write(&dev.join("driver_override"), "\n")?;
    write(&sys.join("bus/pci/drivers_probe"), pci)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A directory removed on drop.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// eth0: SR-IOV with VFs 0 (netdev eth0v0, driver iavf) and 1 (on vfio-pci, no
    /// netdev); eth1: capable, none enabled; eth2: a PCI device without SR-IOV; lo: none.
    fn fake_sys(tag: &str) -> Dir {
        let d = Dir(std::env::temp_dir().join(format!("kvnet-sys-{tag}-{}", std::process::id())));
        let root = &d.0;
        let pci = root.join("devices/pci0000:00");
        let devs = root.join("bus/pci/devices");
        fs::create_dir_all(&devs).unwrap();
        fs::create_dir_all(root.join("bus/pci/drivers/iavf")).unwrap();
        fs::create_dir_all(root.join("bus/pci/drivers/vfio-pci")).unwrap();
        fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
        let dev = |addr: &str| {
            let p = pci.join(addr);
            fs::create_dir_all(&p).unwrap();
            symlink(&p, devs.join(addr)).unwrap();
            p
        };
        let pf0 = dev("0000:01:00.0");
        fs::write(pf0.join("sriov_totalvfs"), "8\n").unwrap();
        for (n, addr, netdev, drv) in [
            (1, "0000:01:10.1", None, "vfio-pci"),
            (0, "0000:01:10.0", Some("eth0v0"), "iavf"),
        ] {
            let vf = dev(addr);
            symlink(&vf, pf0.join(format!("virtfn{n}"))).unwrap();
            if let Some(nd) = netdev {
                fs::create_dir_all(vf.join("net").join(nd)).unwrap();
            }
            symlink(root.join("bus/pci/drivers").join(drv), vf.join("driver")).unwrap();
            fs::create_dir_all(root.join("kernel/iommu_groups").join(format!("4{n}"))).unwrap();
            symlink(
                root.join("kernel/iommu_groups").join(format!("4{n}")),
                vf.join("iommu_group"),
            )
            .unwrap();
        }
        let pf1 = dev("0000:02:00.0");
        fs::write(pf1.join("sriov_totalvfs"), "4\n").unwrap();
        let plain = dev("0000:03:00.0");
        let net = root.join("class/net");
        for (n, dev) in [
            ("eth0", Some(&pf0)),
            ("eth1", Some(&pf1)),
            ("eth2", Some(&plain)),
            ("lo", None),
        ] {
            fs::create_dir_all(net.join(n)).unwrap();
            if let Some(dev) = dev {
                symlink(dev, net.join(n).join("device")).unwrap();
            }
        }
        d
    }

    #[test]
    fn virtual_functions_or_why_none() {
        let d = fake_sys("vfs");
        let s = d.0.as_path();
        let v = vfs(s, "eth0").unwrap();
        assert_eq!(
            v,
            [
                Vf {
                    index: 0,
                    pci: "0000:01:10.0".into(),
                    netdev: Some("eth0v0".into())
                },
                Vf {
                    index: 1,
                    pci: "0000:01:10.1".into(),
                    netdev: None
                },
            ]
        );
        let e = vf_netdevs(s, "eth0").unwrap_err();
        assert_eq!(
            e,
            "virtual function 1 of eth0 (0000:01:10.1) has no network device (bound to vfio-pci?)"
        );
        let e = vfs(s, "eth1").unwrap_err();
        assert!(
            e.contains("eth1 has no virtual functions enabled (of 4 possible"),
            "{e}"
        );
        assert_eq!(
            vfs(s, "eth2").unwrap_err(),
            "eth2 is not SR-IOV capable (no sriov_totalvfs)"
        );
        assert_eq!(
            vfs(s, "lo").unwrap_err(),
            "lo is not a PCI device, so it has no SR-IOV virtual functions"
        );
        assert_eq!(vfs(s, "nope").unwrap_err(), "nope does not exist");
        assert_eq!(driver(s, "0000:01:10.0").as_deref(), Some("iavf"));
        assert_eq!(iommu_group(s, "0000:01:10.1").as_deref(), Some("41"));
    }

    #[test]
    fn binding_to_vfio_writes_what_libvirt_writes() {
        let d = fake_sys("bind");
        let s = d.0.as_path();
        let dev = s.join("bus/pci/devices/0000:01:10.0");
        // The fake driver directory takes the unbind write as a file.
        assert_eq!(
            bind_vfio(s, "0000:01:10.0").unwrap().as_deref(),
            Some("iavf")
        );
        assert_eq!(
            fs::read_to_string(dev.join("driver_override")).unwrap(),
            "vfio-pci"
        );
        assert_eq!(
            fs::read_to_string(dev.join("driver/unbind")).unwrap(),
            "0000:01:10.0"
        );
        assert_eq!(
            fs::read_to_string(s.join("bus/pci/drivers_probe")).unwrap(),
            "0000:01:10.0"
        );
        // Already on vfio-pci: nothing written.
        assert_eq!(
            bind_vfio(s, "0000:01:10.1").unwrap().as_deref(),
            Some("vfio-pci")
        );
        assert!(
            !s.join("bus/pci/devices/0000:01:10.1/driver_override")
                .exists()
        );
        release_vfio(s, "0000:01:10.1").unwrap();
        let vf1 = s.join("bus/pci/devices/0000:01:10.1");
        assert_eq!(
            fs::read_to_string(vf1.join("driver/unbind")).unwrap(),
            "0000:01:10.1"
        );
        assert_eq!(
            fs::read_to_string(vf1.join("driver_override")).unwrap(),
            "\n"
        );
    }
}
