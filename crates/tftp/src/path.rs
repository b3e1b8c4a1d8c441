//! The requested filename as a path relative to the TFTP root. A leading `/` names the
//! root (as tftpd-hpa's `--secure` and iPXE's `tftp://host/file` URLs mean it), `.` and
//! empty components are dropped, and a `..` component anywhere is refused: the name
//! never leaves the root by itself. Symbolic links inside the root are the shell's to
//! confine (openat2 with RESOLVE_BENEATH: a link pointing outside fails to open).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("'..' in the file name")]
    DotDot,
    #[error("the file name names the root directory")]
    Empty,
}

/// `name` relative to the root: components joined by `/`, none of them `..`, `.` or
/// empty, never starting with `/`.
pub fn relative(name: &str) -> Result<String, PathError> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::DotDot),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_become_root_relative() {
        assert_eq!(relative("boot.ipxe").unwrap(), "boot.ipxe");
        assert_eq!(relative("/boot.ipxe").unwrap(), "boot.ipxe");
        assert_eq!(relative("//a/./b//c").unwrap(), "a/b/c");
        assert_eq!(relative("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(relative("a..b/..c").unwrap(), "a..b/..c");
    }

    #[test]
    fn dotdot_and_the_root_itself_are_refused() {
        for n in ["..", "../etc/passwd", "a/../../b", "a/..", "/..", "./../x"] {
            assert_eq!(relative(n), Err(PathError::DotDot), "{n}");
        }
        for n in ["/", ".", "//./"] {
            assert_eq!(relative(n), Err(PathError::Empty), "{n}");
        }
    }

    proptest! {
        #[test]
        fn never_absolute_never_dotdot(name in "[a-z./]{0,24}") {
            if let Ok(rel) = relative(&name) {
                prop_assert!(!rel.starts_with('/'));
                prop_assert!(!rel.is_empty());
                prop_assert!(rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
            }
        }
    }
}
