//! Files: definitions, autostart links and status records, all written atomically
//! (temp file, rename) so a crash at any instant leaves either the old or the new file,
//! never a torn one. Durable files (definitions, state) are also fsynced, file and
//! directory, to survive a power loss; runtime files (RUN_DIR, a tmpfs that a reboot
//! clears anyway) need only the rename to survive a `kill -9`.

use crate::paths::Paths;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Runtime,
}

pub fn write_atomic(path: &Path, data: &[u8], mode: u32, durability: Durability) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)
        .with_context(|| format!("write {}", tmp.display()))?;
    if durability == Durability::Durable {
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    if durability == Durability::Durable {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync {}", dir.display()))?;
    }
    Ok(())
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

pub fn ensure_dirs(paths: &Paths) -> Result<()> {
    for d in paths.dirs() {
        fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    for d in [paths.autostart_dir(), paths.status_dir()] {
        fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    }
    fs::set_permissions(&paths.config_dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// `NAME.xml` files of the config dir: (name from the file, text).
pub fn load_definitions(paths: &Paths) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(&paths.config_dir)
        .with_context(|| format!("read {}", paths.config_dir.display()))?
    {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".xml") else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        out.push((stem.to_string(), text));
    }
    out.sort();
    Ok(out)
}

pub fn save_definition(paths: &Paths, name: &str, xml: &str) -> Result<()> {
    write_atomic(
        &paths.definition(name),
        xml.as_bytes(),
        0o600,
        Durability::Durable,
    )
}

pub fn is_autostart(paths: &Paths, name: &str) -> bool {
    paths.autostart_link(name).symlink_metadata().is_ok()
}

pub fn set_autostart(paths: &Paths, name: &str, enable: bool) -> Result<()> {
    let link = paths.autostart_link(name);
    remove_if_exists(&link)?;
    if enable {
        std::os::unix::fs::symlink(format!("../{name}.xml"), &link)
            .with_context(|| format!("create {}", link.display()))?;
    }
    Ok(())
}

/// What kvnetd knows about an active network, so that a restarted daemon can adopt it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The definition the network was started with.
    pub live_xml: String,
    /// Started by net-create, or undefined while running: gone once stopped.
    pub transient: bool,
    /// kvnet created the bridge (L3 modes) and must delete it at destroy.
    pub owns_bridge: bool,
    /// Unix time of the start.
    pub started: u64,
    /// Destroyed; the background teardown has not finished yet.
    #[serde(default)]
    pub stopping: bool,
}

pub fn save_status(paths: &Paths, name: &str, st: &Status) -> Result<()> {
    write_atomic(
        &paths.status(name),
        &serde_json::to_vec_pretty(st)?,
        0o600,
        Durability::Runtime,
    )
}

pub fn load_statuses(paths: &Paths) -> Result<Vec<(String, Result<Status>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(paths.status_dir())? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        let st = fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
            .with_context(|| format!("status file {}", path.display()));
        out.push((stem.to_string(), st));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

pub fn load_sysctl_orig(paths: &Paths) -> BTreeMap<String, String> {
    fs::read(paths.sysctl_orig())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_sysctl_orig(paths: &Paths, m: &BTreeMap<String, String>) -> Result<()> {
    if m.is_empty() {
        return remove_if_exists(&paths.sysctl_orig());
    }
    write_atomic(
        &paths.sysctl_orig(),
        &serde_json::to_vec_pretty(m)?,
        0o600,
        Durability::Runtime,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_paths() -> (tempdir::Dir, Paths) {
        let d = tempdir::Dir::new();
        let p = Paths::new(d.0.join("etc"), d.0.join("lib"), d.0.join("run"), None);
        ensure_dirs(&p).unwrap();
        (d, p)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p =
                    std::env::temp_dir().join(format!("kvnet-store-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn definitions_are_private_and_round_trip() {
        let (_d, p) = tmp_paths();
        save_definition(&p, "n1", "<network/>").unwrap();
        save_definition(&p, "n1", "<network><name>n1</name></network>").unwrap();
        let mode = fs::metadata(p.definition("n1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_definitions(&p).unwrap(),
            vec![(
                "n1".to_string(),
                "<network><name>n1</name></network>".to_string()
            )]
        );
        // no temp file is left behind
        assert_eq!(fs::read_dir(&p.config_dir).unwrap().count(), 2);
    }

    #[test]
    fn autostart_is_a_link_beside_the_definition() {
        let (_d, p) = tmp_paths();
        save_definition(&p, "a", "<network/>").unwrap();
        assert!(!is_autostart(&p, "a"));
        set_autostart(&p, "a", true).unwrap();
        set_autostart(&p, "a", true).unwrap();
        assert!(is_autostart(&p, "a"));
        assert_eq!(
            fs::read_to_string(p.autostart_link("a")).unwrap(),
            "<network/>"
        );
        set_autostart(&p, "a", false).unwrap();
        assert!(!is_autostart(&p, "a"));
    }

    #[test]
    fn status_and_sysctl_records_round_trip() {
        let (_d, p) = tmp_paths();
        let st = Status {
            live_xml: "<network/>".into(),
            transient: true,
            owns_bridge: true,
            started: 5,
            stopping: false,
        };
        save_status(&p, "x", &st).unwrap();
        let all = load_statuses(&p).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].1.as_ref().unwrap().transient);
        let mut m = BTreeMap::new();
        m.insert("net/ipv4/ip_forward".to_string(), "0".to_string());
        save_sysctl_orig(&p, &m).unwrap();
        assert_eq!(load_sysctl_orig(&p), m);
        save_sysctl_orig(&p, &BTreeMap::new()).unwrap();
        assert!(!p.sysctl_orig().exists());
    }
}
