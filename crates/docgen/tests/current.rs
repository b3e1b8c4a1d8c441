//! The checked-in man pages and completions are what the clap definitions generate now:
//! a change to an option, its help or the version without `cargo run -p kvnet-docgen`
//! fails here (and so in CI) instead of shipping stale pages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[test]
fn generated_files_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = kvnet_docgen::files();
    let mut stale = Vec::new();
    for (path, text) in &files {
        if std::fs::read(root.join(path)).ok().as_ref() != Some(text) {
            stale.push(path.display().to_string());
        }
    }
    let want: BTreeSet<&PathBuf> = files.iter().map(|(p, _)| p).collect();
    for dir in [kvnet_docgen::MAN_DIR, kvnet_docgen::COMPLETIONS_DIR] {
        for e in std::fs::read_dir(root.join(dir)).expect("generated dir") {
            let p = Path::new(dir).join(e.expect("dir entry").file_name());
            if !want.contains(&p) {
                stale.push(format!("{} (no longer generated)", p.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale: {}; run `cargo run -p kvnet-docgen` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn every_binary_has_its_page() {
    let files = kvnet_docgen::files();
    for page in [
        "kvnet.1",
        "kvnet-net-start.1",
        "kvnetd.8",
        "kvnet-bridge-helper.8",
        "kvnet-ifup.8",
        "kvnet-ifdown.8",
    ] {
        let path = Path::new(kvnet_docgen::MAN_DIR).join(page);
        let text = &files.iter().find(|(p, _)| *p == path).expect(page).1;
        let text = String::from_utf8_lossy(text);
        assert!(text.contains(".SH SYNOPSIS"), "{page}: {text}");
    }
}
