//! Rewrites the generated man pages and completions: `cargo run -p kvnet-docgen`
//! (from anywhere in the workspace; or `kvnet-docgen DIR` to write under DIR).

#![forbid(unsafe_code)]

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    for dir in [kvnet_docgen::MAN_DIR, kvnet_docgen::COMPLETIONS_DIR] {
        // Pages of subcommands that were removed must go too.
        let _ = std::fs::remove_dir_all(root.join(dir));
        std::fs::create_dir_all(root.join(dir))?;
    }
    for (path, text) in kvnet_docgen::files() {
        std::fs::write(root.join(&path), text)?;
        println!("{}", path.display());
    }
    Ok(())
}
