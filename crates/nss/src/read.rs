//! Opening the index file, bounded: whatever sits at the path, a lookup never blocks,
//! reads a small index whole and a large one piecewise (`pread`, a few KiB per lookup),
//! and never reads more than [`MAX_INDEX`] bytes.

use crate::index::{MAX_INDEX, Source};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Where kvnetd writes the index under its default run dir. A build for another run dir
/// sets `KVNET_NSS_INDEX` at compile time; nothing at run time can move it, so a setuid
/// program cannot be pointed at a file of the caller's.
pub const INDEX_PATH: &str = match option_env!("KVNET_NSS_INDEX") {
    Some(p) => p,
    None => "/run/kvnet/nss-hosts",
};

/// Up to this size one read() is cheaper than the dozen preads of a search (about
/// 1,300 guests).
const READ_WHOLE: usize = 64 << 10;

/// An open index.
pub enum Index {
    Whole(Vec<u8>),
    File {
        file: File,
        size: usize,
        buf: Vec<u8>,
    },
}

impl Source for Index {
    fn size(&self) -> usize {
        match self {
            Index::Whole(v) => v.len(),
            Index::File { size, .. } => *size,
        }
    }

    fn bytes(&mut self, off: usize, len: usize) -> Option<&[u8]> {
        match self {
            Index::Whole(v) => v.get(off..off.checked_add(len)?),
            Index::File { file, size, buf } => {
                if off.checked_add(len)? > *size {
                    return None;
                }
                buf.resize(len, 0);
                // kvnetd replaces the file (rename), never rewrites it: this inode does
                // not change under us. One rewritten in place by someone else reads
                // short (an error here: not found) or as other bytes (a miss).
                file.read_exact_at(buf, off as u64).ok()?;
                Some(buf)
            }
        }
    }
}

/// The index at `path`, or None when it is missing, not a regular file or too large.
pub fn open_index(path: &Path) -> Option<Index> {
    // O_NONBLOCK: a FIFO put at the path would block open() until a writer came.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_INDEX as u64 {
        return None;
    }
    let size = meta.len() as usize;
    if size > READ_WHOLE {
        return Some(Index::File {
            file,
            size,
            buf: Vec::new(),
        });
    }
    // One byte past the size tells a file that grew since fstat.
    let mut buf = Vec::with_capacity(size + 1);
    (&mut file)
        .take(size as u64 + 1)
        .read_to_end(&mut buf)
        .ok()?;
    (buf.len() == size).then_some(Index::Whole(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Builder, Family, lookup_in};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn odd_files_open_as_nothing() {
        let d = std::env::temp_dir().join(format!("kvnet-nss-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        assert!(open_index(&d.join("missing")).is_none());
        assert!(open_index(&d).is_none(), "a directory");
        let big = d.join("big");
        std::fs::write(&big, vec![b'a'; MAX_INDEX + 1]).unwrap();
        assert!(open_index(&big).is_none());
        let fifo = d.join("fifo");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status();
        if ok.is_ok_and(|s| s.success()) {
            let t0 = std::time::Instant::now();
            assert!(open_index(&fifo).is_none());
            assert!(t0.elapsed() < std::time::Duration::from_secs(1), "no hang");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn small_and_large_files_answer_alike() {
        let d = std::env::temp_dir().join(format!("kvnet-nss-sizes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for n in [0u32, 3, 1000, 20_000] {
            let mut b = Builder::default();
            for i in 0..n {
                let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
                b.add(&format!("g{i}"), ip, Some("x.test"));
            }
            let bytes = b.build().0;
            let p = d.join(format!("idx{n}"));
            std::fs::write(&p, &bytes).unwrap();
            let whole = matches!(open_index(&p), Some(Index::Whole(_)));
            assert_eq!(whole, bytes.len() <= READ_WHOLE, "{n}");
            for i in (0..n).step_by(97).chain(n.checked_sub(1)) {
                let want = vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))];
                let mut src = open_index(&p).unwrap();
                assert_eq!(
                    lookup_in(&mut src, &format!("g{i}.x.test"), Family::Any),
                    want
                );
            }
            let mut src = open_index(&p).unwrap();
            assert!(lookup_in(&mut src, "nosuch", Family::Any).is_empty());
            // Torn: a large file without its trailer finds nothing either.
            std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
            let mut src = open_index(&p).unwrap();
            assert!(lookup_in(&mut src, "g0", Family::Any).is_empty());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
