//! Files: definitions, autostart links and status records, all written atomically
//! (temp file, rename) so a crash at any instant leaves either the old or the new file,
//! never a torn one. Durable files (definitions, state) are also fsynced, file and
//! directory, to survive a power loss; runtime files (RUN_DIR, a tmpfs that a reboot
//! clears anyway) need only the rename to survive a `kill -9`.

pub mod status;

use crate::paths::Paths;
use anyhow::{Context, Result};
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

/// Scratch config/state/run dirs for the daemon's unit tests, removed on drop.
#[cfg(test)]
pub(crate) mod testdir {
    use crate::paths::Paths;

    pub struct Dir(pub std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn paths() -> (Dir, Paths) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("kvnet-unit-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = Paths::new(d.join("etc"), d.join("lib"), d.join("run"), None);
        super::ensure_dirs(&p).unwrap();
        (Dir(d), p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_paths() -> (testdir::Dir, Paths) {
        testdir::paths()
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
}
