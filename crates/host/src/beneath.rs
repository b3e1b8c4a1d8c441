//! Opening a file confined to a directory, for files served to guests (TFTP): the
//! kernel resolves the path with openat2(2)'s RESOLVE_BENEATH, so no `..`, absolute
//! path or symbolic link — at any depth, however crafted — leads outside the directory,
//! and RESOLVE_NO_MAGICLINKS keeps /proc-style links out. Links that stay inside are
//! followed. Needs Linux 5.6.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};
use std::fs::File;
use std::io;
use std::path::Path;

/// Why a file was not opened.
#[derive(Debug)]
pub enum Refused {
    /// No such file (ENOENT, ENOTDIR).
    NotFound,
    /// The path leaves the directory (EXDEV), loops (ELOOP) or crosses a magic link,
    /// or the file is no regular file, or not readable by everyone.
    Denied(&'static str),
    /// Anything else the kernel said, e.g. EACCES or EMFILE.
    Io(io::Error),
}

/// Open `rel` beneath directory `root` read-only, for a regular file that everyone
/// may read (as a server dropping its privileges to nobody would serve it), with its
/// size. FIFOs and devices are refused without blocking on them.
pub fn open_file(root: &Path, rel: &str) -> Result<(File, u64), Refused> {
    let dir = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Refused::Io(e.into()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&dir, rel, how).map_err(|e| match e {
        Errno::ENOENT | Errno::ENOTDIR => Refused::NotFound,
        Errno::EXDEV => Refused::Denied("the path leaves the root"),
        Errno::ELOOP => Refused::Denied("too many symbolic links, or a magic link"),
        e => Refused::Io(e.into()),
    })?;
    let st = fstat(&fd).map_err(|e| Refused::Io(e.into()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(Refused::Denied("not a regular file"));
    }
    if st.st_mode & 0o004 == 0 {
        return Err(Refused::Denied("not readable by everyone"));
    }
    Ok((File::from(fd), u64::try_from(st.st_size).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn confined_to_the_root() {
        let base = std::env::temp_dir().join(format!("kvnet-beneath-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "outside").unwrap();
        std::fs::write(root.join("sub/file"), "inside").unwrap();
        std::fs::set_permissions(root.join("sub/file"), PermissionsExt::from_mode(0o644)).unwrap();
        std::fs::write(root.join("private"), "x").unwrap();
        std::fs::set_permissions(root.join("private"), PermissionsExt::from_mode(0o600)).unwrap();
        symlink("sub/file", root.join("inner")).unwrap();
        symlink("../secret", root.join("outer")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();

        let ok = |rel: &str| {
            let (mut f, size) = open_file(&root, rel).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
            let mut s = String::new();
            io::Read::read_to_string(&mut f, &mut s).unwrap();
            assert_eq!(size, s.len() as u64);
            s
        };
        assert_eq!(ok("sub/file"), "inside");
        assert_eq!(ok("inner"), "inside", "links inside are followed");
        for rel in [
            "outer",
            "passwd",
            "magic",
            "../secret",
            "/etc/passwd",
            "sub/../../secret",
        ] {
            assert!(
                matches!(open_file(&root, rel), Err(Refused::Denied(_))),
                "{rel}: {:?}",
                open_file(&root, rel)
            );
        }
        assert!(matches!(open_file(&root, "sub"), Err(Refused::Denied(_))));
        // Not opened for reading and blocked on: refused at once.
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(matches!(open_file(&root, "fifo"), Err(Refused::Denied(_))));
        assert!(matches!(
            open_file(&root, "private"),
            Err(Refused::Denied(_))
        ));
        assert!(matches!(open_file(&root, "nope"), Err(Refused::NotFound)));
        assert!(matches!(
            open_file(&root, "sub/file/x"),
            Err(Refused::NotFound)
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
