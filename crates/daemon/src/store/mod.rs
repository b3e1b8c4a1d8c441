//! Files: definitions, autostart links and status records, all written atomically
//! (temp file, rename) so a crash at any instant leaves either the old or the new file,
//! never a torn one. Durable files (definitions, state) are also fsynced, file and
//! directory, to survive a power loss; runtime files (RUN_DIR, a tmpfs that a reboot
//! clears anyway) need only the rename to survive a `kill -9`.
//!
//! A file kvnetd cannot use (torn, not UTF-8, not a definition it would accept) is never
//! fatal and never deleted: it is [`quarantine`]d — renamed aside, logged — and the
//! daemon goes on with the rest.
//!
//! The layout of CONFIG_DIR (0755, so that the bridge helper running as a user reads
//! `bridge.conf`): `networks/NAME.xml` and `networks/autostart/NAME.xml`, private
//! (0700). An older kvnetd's layout is moved there at start ([`migrate`]).

pub mod migrate;
pub mod status;

use crate::ids::now;
use crate::paths::Paths;
use anyhow::{Context, Result, anyhow};
use kvnet_model::Network;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tracing::{error, info};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Runtime,
}

/// Write `path` atomically. On any failure (a full disk, an I/O error) the temp file is
/// removed and `path` is as it was.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32, durability: Durability) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let res = write_then_rename(&tmp, path, data, mode, durability);
    if res.is_err() {
        // After a successful rename (a failed directory fsync) there is nothing to remove.
        let _ = fs::remove_file(&tmp);
    }
    res?;
    if durability == Durability::Durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Whether `name` is a temp file as [`write_atomic`] names them, `.FILE.tmp`.
fn is_temp_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|file| !file.is_empty())
}

/// Remove the temp files of writes a kill interrupted from `dir`. Only at start: no
/// write is under way then (one kvnetd per run dir).
fn remove_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(e.path()) {
                Ok(()) => info!(
                    "removed {}, left by an interrupted write",
                    e.path().display()
                ),
                Err(err) => error!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

fn write_then_rename(
    tmp: &Path,
    path: &Path,
    data: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)
        .with_context(|| format!("write {}", tmp.display()))?;
    if durability == Durability::Durable {
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
    }
    fs::rename(tmp, path).with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
}

/// Make a directory's entries (a file created, renamed or removed) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

/// Remove `path` and make that durable.
fn remove_durably(path: &Path) -> Result<()> {
    remove_if_exists(path)?;
    fsync_dir(path.parent().context("path has no parent directory")?)
}

/// A free name in `dir` for `file_name` set aside: `FILE.bad-UNIXTIME` (then `-2`, ...).
fn aside_path(dir: &Path, file_name: &str) -> PathBuf {
    let base = format!("{file_name}.bad-{}", now());
    (1..)
        .map(|n| match n {
            1 => dir.join(&base),
            n => dir.join(format!("{base}-{n}")),
        })
        .find(|p| p.symlink_metadata().is_err())
        .expect("some name is free")
}

/// Rename a file kvnetd cannot use aside, so that it neither stops the daemon nor gets
/// lost, and log why at error level. Returns where it went; if even the rename fails
/// (a read-only file system), the file stays, is skipped, and is tried again next time.
pub fn quarantine(path: &Path, why: &str) -> Option<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let to = aside_path(dir, &name);
    let moved = fs::rename(path, &to)
        .map_err(anyhow::Error::from)
        .and_then(|()| fsync_dir(dir));
    match moved {
        Ok(()) => {
            error!(
                "{}: {why}; moved aside to {} (kvnetd goes on without it)",
                path.display(),
                to.display()
            );
            Some(to)
        }
        Err(e) => {
            error!(
                "{}: {why}; skipped, and not moved aside: {e:#}",
                path.display()
            );
            to.exists().then_some(to)
        }
    }
}

/// Create `dir` if needed and give it `mode`.
fn dir_with_mode(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {} {mode:o}", dir.display()))
}

/// The directories, with an older kvnetd's layout migrated first: definitions private,
/// the config dir and the bridge helper's ACL readable by everyone.
pub fn ensure_dirs(paths: &Paths) -> Result<()> {
    for d in paths.dirs() {
        fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    dir_with_mode(&paths.networks_dir(), 0o700)?;
    dir_with_mode(&paths.autostart_dir(), 0o700)?;
    for d in [paths.status_dir(), paths.leases_dir(), paths.ports_dir()] {
        fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    }
    // The journals and ports files in them are fsynced; so must their directories be.
    fsync_dir(&paths.state_dir)?;
    migrate::legacy_layout(paths)?;
    // A kill during a write leaves its temp file; in STATE_DIR it would stay for good.
    for d in [
        paths.networks_dir(),
        paths.status_dir(),
        paths.ports_dir(),
        paths.leases_dir(),
        paths.run_dir.clone(),
        paths.state_dir.clone(),
    ] {
        remove_temp_files(&d);
    }
    dir_with_mode(&paths.config_dir, 0o755)?;
    let acl = paths.config_dir.join("bridge.conf");
    if let Ok(m) = fs::metadata(&acl)
        && m.is_file()
        && m.permissions().mode() & 0o004 == 0
    {
        fs::set_permissions(
            &acl,
            fs::Permissions::from_mode(m.permissions().mode() | 0o444),
        )
        .with_context(|| format!("chmod a+r {}", acl.display()))?;
        info!(
            "made {} readable by everyone: the bridge helper reads it as the user running qemu",
            acl.display()
        );
    }
    Ok(())
}

/// What a definition file holds, if it is one `define` would have written: its file
/// name is `NAME.xml` for a name kvnet accepts, its text is UTF-8 and names NAME.
pub fn check_definition(file_stem: &str, bytes: Vec<u8>) -> Result<Network> {
    kvnet_model::check_name_for_files(file_stem).map_err(|e| anyhow!("{}", e.message))?;
    let text = String::from_utf8(bytes).map_err(|e| anyhow!("not UTF-8 text: {e}"))?;
    let net = Network::from_xml(&text).map_err(|e| anyhow!("not a valid definition: {e}"))?;
    if net.name != file_stem {
        return Err(anyhow!("it defines network '{}'", net.name));
    }
    Ok(net)
}

/// The definitions in `networks/`, by name; a file that is not a usable definition is
/// quarantined.
pub fn load_definitions(paths: &Paths) -> Result<Vec<Network>> {
    let dir = paths.networks_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        // Temp files end in .tmp, quarantined ones in .bad-TIME; autostart/ is a directory.
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".xml"))
        else {
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        let res = fs::read(&path)
            .with_context(|| format!("read {}", path.display()))
            .and_then(|bytes| check_definition(stem, bytes));
        match res {
            Ok(net) => out.push(net),
            Err(e) => {
                quarantine(&path, &format!("{e:#}"));
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
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

/// net-undefine's files: the autostart link, then the definition, each durably.
pub fn remove_definition(paths: &Paths, name: &str) -> Result<()> {
    remove_durably(&paths.autostart_link(name))?;
    remove_durably(&paths.definition(name))
}

pub fn is_autostart(paths: &Paths, name: &str) -> bool {
    paths.autostart_link(name).symlink_metadata().is_ok()
}

/// What an autostart link points to, relative to `autostart/`.
fn autostart_target(name: &str) -> String {
    format!("../{name}.xml")
}

pub fn set_autostart(paths: &Paths, name: &str, enable: bool) -> Result<()> {
    let link = paths.autostart_link(name);
    remove_if_exists(&link)?;
    if enable {
        std::os::unix::fs::symlink(autostart_target(name), &link)
            .with_context(|| format!("create {}", link.display()))?;
    }
    fsync_dir(&paths.autostart_dir())
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

    /// Paths under a fresh directory, nothing created yet.
    pub fn bare() -> (Dir, Paths) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("kvnet-unit-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = Paths::new(d.join("etc"), d.join("lib"), d.join("run"), None);
        (Dir(d), p)
    }

    pub fn paths() -> (Dir, Paths) {
        let (d, p) = bare();
        super::ensure_dirs(&p).unwrap();
        (d, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_paths() -> (testdir::Dir, Paths) {
        testdir::paths()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const N1: &str = "<network><name>n1</name></network>";

    #[test]
    fn definitions_are_private_and_round_trip() {
        let (_d, p) = tmp_paths();
        save_definition(&p, "n1", "<network/>").unwrap();
        save_definition(&p, "n1", N1).unwrap();
        assert_eq!(mode(&p.definition("n1")), 0o600);
        assert_eq!(mode(&p.networks_dir()), 0o700);
        assert_eq!(mode(&p.autostart_dir()), 0o700);
        assert_eq!(mode(&p.config_dir), 0o755);
        let loaded = load_definitions(&p).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].name, "n1");
        // no temp file is left behind
        assert_eq!(names(&p.networks_dir()), ["autostart", "n1.xml"]);
        remove_definition(&p, "n1").unwrap();
        remove_definition(&p, "n1").unwrap();
        assert_eq!(names(&p.networks_dir()), ["autostart"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let (_d, p) = tmp_paths();
        save_definition(&p, "n1", N1).unwrap();
        // The rename fails (a non-empty directory is in the way); a full disk failing the
        // write takes the same way out (the root test `a_full_disk_leaves_no_temp_file`).
        let blocked = p.definition("blocked");
        fs::create_dir_all(blocked.join("x")).unwrap();
        let e = save_definition(&p, "blocked", N1).unwrap_err();
        assert!(format!("{e:#}").contains("rename"), "{e:#}");
        assert_eq!(
            names(&p.networks_dir()),
            ["autostart", "blocked.xml", "n1.xml"]
        );
        assert_eq!(fs::read_to_string(p.definition("n1")).unwrap(), N1);
    }

    #[test]
    fn temp_files_a_kill_left_are_removed_at_start() {
        let (_d, p) = tmp_paths();
        let left = [
            p.networks_dir().join(".n1.xml.tmp"),
            p.status_dir().join(".n1.json.tmp"),
            p.ports_dir().join(".n1.json.tmp"),
            p.leases_dir().join(".n1.jsonl.tmp"),
            p.run_dir.join(".sysctl-orig.json.tmp"),
            p.state_dir.join(".default-network-defined.tmp"),
        ];
        let kept = [p.status_dir().join("n1.json.tmp"), p.run_dir.join(".tmp")];
        for f in left.iter().chain(&kept) {
            fs::write(f, b"{").unwrap();
        }
        ensure_dirs(&p).unwrap();
        for f in &left {
            assert!(!f.exists(), "{} left", f.display());
        }
        for f in &kept {
            assert!(f.exists(), "{} removed", f.display());
        }
    }

    #[test]
    fn bad_definitions_are_quarantined_and_the_rest_load() {
        let (_d, p) = tmp_paths();
        save_definition(&p, "good", "<network><name>good</name></network>").unwrap();
        let nd = p.networks_dir();
        fs::write(nd.join(".x.xml"), "<network><name>.x</name></network>").unwrap();
        fs::write(
            nd.join("latin1.xml"),
            b"<network><name>caf\xe9</name></network>",
        )
        .unwrap();
        fs::write(nd.join("torn.xml"), "<network><name>torn</na").unwrap();
        fs::write(nd.join("other.xml"), "<network><name>good</name></network>").unwrap();
        // Not definitions: left alone.
        fs::write(nd.join(".good.xml.tmp"), "<netw").unwrap();
        fs::write(nd.join("notes.txt"), "hi").unwrap();
        let loaded: Vec<String> = load_definitions(&p)
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(loaded, ["good"]);
        let left = names(&nd);
        for bad in [".x.xml", "latin1.xml", "torn.xml", "other.xml"] {
            assert!(!left.contains(&bad.to_string()), "{left:?}");
            assert!(
                left.iter().any(|f| f.starts_with(&format!("{bad}.bad-"))),
                "{bad} kept aside: {left:?}"
            );
        }
        assert!(left.contains(&".good.xml.tmp".to_string()) && left.contains(&"notes.txt".into()));
        // A second start finds nothing more to quarantine.
        load_definitions(&p).unwrap();
        assert_eq!(names(&nd), left);
    }

    #[test]
    fn why_a_definition_is_refused() {
        let e = |stem: &str, text: &[u8]| {
            format!("{:#}", check_definition(stem, text.to_vec()).unwrap_err())
        };
        assert!(e(".x", b"<network><name>.x</name></network>").contains("must not start with '.'"));
        assert!(e("a", b"<network><name>a\xff</name></network>").contains("not UTF-8"));
        assert!(e("a", b"<network>").contains("not a valid definition"));
        assert_eq!(
            e("a", b"<network><name>b</name></network>"),
            "it defines network 'b'"
        );
        check_definition("a", b"<network><name>a</name></network>".to_vec()).unwrap();
    }

    #[test]
    fn quarantine_never_overwrites() {
        let (_d, p) = tmp_paths();
        let f = p.status_dir().join("x.json");
        fs::write(&f, "1").unwrap();
        let a = quarantine(&f, "test").unwrap();
        fs::write(&f, "2").unwrap();
        let b = quarantine(&f, "test").unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::read_to_string(a).unwrap(), "1");
        assert_eq!(fs::read_to_string(b).unwrap(), "2");
        assert!(!f.exists());
        // A rename that fails is logged, not fatal.
        assert_eq!(quarantine(&f, "test"), None);
    }

    #[test]
    fn the_bridge_helpers_acl_becomes_readable() {
        let (_d, p) = testdir::bare();
        fs::create_dir_all(&p.config_dir).unwrap();
        fs::set_permissions(&p.config_dir, fs::Permissions::from_mode(0o700)).unwrap();
        let acl = p.config_dir.join("bridge.conf");
        fs::write(&acl, "allow virbr0\n").unwrap();
        fs::set_permissions(&acl, fs::Permissions::from_mode(0o600)).unwrap();
        ensure_dirs(&p).unwrap();
        assert_eq!(mode(&acl), 0o644);
        assert_eq!(mode(&p.config_dir), 0o755);
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
