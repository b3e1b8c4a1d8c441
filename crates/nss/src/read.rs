//! Reading the index file, bounded: whatever sits at the path, a lookup reads at most
//! [`MAX_INDEX`] bytes and never blocks.

use crate::index::MAX_INDEX;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Where kvnetd writes the index under its default run dir. A build for another run dir
/// sets `KVNET_NSS_INDEX` at compile time; nothing at run time can move it, so a setuid
/// program cannot be pointed at a file of the caller's.
pub const INDEX_PATH: &str = match option_env!("KVNET_NSS_INDEX") {
    Some(p) => p,
    None => "/run/kvnet/nss-hosts",
};

/// The file's bytes, or None when it is missing, not a regular file or too large.
pub fn read_index(path: &Path) -> Option<Vec<u8>> {
    // O_NONBLOCK: a FIFO put at the path would block open() until a writer came.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_INDEX as u64 {
        return None;
    }
    // The size is a hint (the file may be replaced meanwhile, never rewritten in place
    // by kvnetd): read at most one byte past the cap to tell an oversized file.
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_INDEX as u64 + 1).read_to_end(&mut buf).ok()?;
    (buf.len() <= MAX_INDEX).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_files_read_as_nothing() {
        let d = std::env::temp_dir().join(format!("kvnet-nss-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        assert!(read_index(&d.join("missing")).is_none());
        assert!(read_index(&d).is_none(), "a directory");
        let big = d.join("big");
        std::fs::write(&big, vec![b'a'; MAX_INDEX + 1]).unwrap();
        assert!(read_index(&big).is_none());
        let fifo = d.join("fifo");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status();
        if ok.is_ok_and(|s| s.success()) {
            let t0 = std::time::Instant::now();
            assert!(read_index(&fifo).is_none());
            assert!(t0.elapsed() < std::time::Duration::from_secs(1), "no hang");
        }
        let good = d.join("good");
        std::fs::write(&good, b"kvnet-nss-hosts 1\nend\n").unwrap();
        assert_eq!(read_index(&good).unwrap(), b"kvnet-nss-hosts 1\nend\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
