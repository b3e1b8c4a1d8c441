//! An older kvnetd's layout — definitions as `CONFIG_DIR/NAME.xml`, autostart links in
//! `CONFIG_DIR/autostart/` — moved into `networks/` at start. Each change is atomic (a
//! rename, a new link, an unlink) and the whole is idempotent: a kill between two
//! changes leaves every definition and autostart mark in the old place or the new one,
//! and the next start finishes the move.

use super::{aside_path, autostart_target, fsync_dir};
use crate::paths::Paths;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use tracing::{error, info, warn};

pub fn legacy_layout(paths: &Paths) -> Result<()> {
    run(paths, &mut |_| Ok(()))
}

/// The `NAME.xml` entries of `dir` that pass `keep`, as (file name, path).
fn xml_entries(
    dir: &Path,
    keep: impl Fn(&fs::FileType) -> bool,
) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if file.ends_with(".xml") && keep(&entry.file_type()?) {
            out.push((file, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The migration; `before` is called ahead of each change (the tests stop there, as a
/// kill would).
fn run(paths: &Paths, before: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    let old_autostart = paths.config_dir.join("autostart");
    let nets = paths.networks_dir();
    let mut moved = 0;
    // Autostart marks first: a link may point at a definition not moved yet; links
    // dangle harmlessly and are only tested for presence.
    for (file, old) in xml_entries(&old_autostart, |_| true)? {
        let name = file.trim_end_matches(".xml");
        let new = paths.autostart_link(name);
        if new.symlink_metadata().is_err() {
            before("link")?;
            std::os::unix::fs::symlink(autostart_target(name), &new)
                .with_context(|| format!("create {}", new.display()))?;
        }
        before("unlink")?;
        fs::remove_file(&old).with_context(|| format!("remove {}", old.display()))?;
        moved += 1;
    }
    if old_autostart.is_dir() {
        fsync_dir(&paths.autostart_dir())?;
        before("rmdir")?;
        if let Err(e) = fs::remove_dir(&old_autostart) {
            warn!(
                "{} left in place: {e} (kvnet uses {} now)",
                old_autostart.display(),
                paths.autostart_dir().display()
            );
        }
    }
    for (file, old) in xml_entries(&paths.config_dir, fs::FileType::is_file)? {
        let new = nets.join(&file);
        if new.symlink_metadata().is_ok() {
            // An older kvnetd ran after this one: the newer layout's file wins.
            let aside = aside_path(&nets, &file);
            before("aside")?;
            fs::rename(&old, &aside).with_context(|| format!("rename {}", old.display()))?;
            error!(
                "{} shadowed by {}: moved aside to {}",
                old.display(),
                new.display(),
                aside.display()
            );
        } else {
            before("rename")?;
            fs::rename(&old, &new)
                .with_context(|| format!("rename {} to {}", old.display(), new.display()))?;
        }
        moved += 1;
    }
    if moved > 0 {
        fsync_dir(&nets)?;
        fsync_dir(&paths.config_dir)?;
        info!(
            "moved {moved} definitions and autostart links of an older kvnetd into {}",
            nets.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdir;
    use anyhow::bail;
    use std::collections::BTreeMap;

    const DEFS: [(&str, &str); 3] = [
        ("a", "<network><name>a</name></network>"),
        ("b", "<network><name>b</name></network>"),
        ("c", "<network><name>c</name></network>"),
    ];

    /// An older kvnetd's config dir: three definitions, two of them autostart, and the
    /// bridge helper's ACL.
    fn legacy() -> (testdir::Dir, Paths) {
        let (d, p) = testdir::bare();
        fs::create_dir_all(p.config_dir.join("autostart")).unwrap();
        for (name, xml) in DEFS {
            fs::write(p.config_dir.join(format!("{name}.xml")), xml).unwrap();
        }
        for name in ["a", "c"] {
            std::os::unix::fs::symlink(
                format!("../{name}.xml"),
                p.config_dir.join(format!("autostart/{name}.xml")),
            )
            .unwrap();
        }
        fs::write(p.config_dir.join("bridge.conf"), "allow virbr0\n").unwrap();
        // What ensure_dirs makes before migrating.
        fs::create_dir_all(p.autostart_dir()).unwrap();
        (d, p)
    }

    /// Each definition's text and autostart mark, wherever it is.
    fn found(p: &Paths) -> BTreeMap<String, (String, bool)> {
        let mut out = BTreeMap::new();
        for (name, _) in DEFS {
            let file = format!("{name}.xml");
            let text = [p.config_dir.join(&file), p.definition(name)]
                .iter()
                .filter_map(|f| fs::read_to_string(f).ok())
                .collect::<Vec<_>>();
            assert_eq!(text.len(), 1, "{name} in exactly one place");
            let auto = [
                p.config_dir.join("autostart").join(&file),
                p.autostart_link(name),
            ]
            .iter()
            .any(|l| l.symlink_metadata().is_ok());
            out.insert(name.to_string(), (text[0].clone(), auto));
        }
        out
    }

    fn finished(p: &Paths, want: &BTreeMap<String, (String, bool)>) {
        for (name, (text, auto)) in want {
            assert_eq!(&fs::read_to_string(p.definition(name)).unwrap(), text);
            assert_eq!(p.autostart_link(name).symlink_metadata().is_ok(), *auto);
            if *auto {
                // The link resolves to the moved definition.
                assert_eq!(&fs::read_to_string(p.autostart_link(name)).unwrap(), text);
            }
        }
        assert!(!p.config_dir.join("autostart").exists());
        assert!(xml_entries(&p.config_dir, |_| true).unwrap().is_empty());
        assert!(p.config_dir.join("bridge.conf").exists());
    }

    /// A kill before any of the migration's changes loses nothing, and the next start
    /// finishes the move.
    #[test]
    fn a_kill_at_any_point_loses_nothing_and_the_next_start_finishes() {
        let want = {
            let (_d, p) = legacy();
            found(&p)
        };
        assert!(want["a"].1 && !want["b"].1 && want["c"].1);
        let mut k = 0;
        loop {
            let (_d, p) = legacy();
            let mut n = 0;
            let res = run(&p, &mut |what| {
                n += 1;
                if n > k {
                    bail!("killed before change {n} ({what})");
                }
                Ok(())
            });
            assert_eq!(found(&p), want, "after {k} changes");
            if res.is_ok() {
                finished(&p, &want);
                // 2 links + 2 unlinks + rmdir + 3 renames.
                assert_eq!(k, 8);
                break;
            }
            legacy_layout(&p).unwrap();
            finished(&p, &want);
            // Nothing left to do at the start after that.
            legacy_layout(&p).unwrap();
            finished(&p, &want);
            k += 1;
        }
    }

    #[test]
    fn a_newer_definition_wins_and_the_older_is_kept_aside() {
        let (_d, p) = legacy();
        fs::write(
            p.definition("b"),
            "<network><name>b</name><title>new</title></network>",
        )
        .unwrap();
        legacy_layout(&p).unwrap();
        assert!(
            fs::read_to_string(p.definition("b"))
                .unwrap()
                .contains("new")
        );
        let aside: Vec<String> = fs::read_dir(p.networks_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with("b.xml.bad-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            fs::read_to_string(p.networks_dir().join(&aside[0])).unwrap(),
            DEFS[1].1
        );
    }
}
