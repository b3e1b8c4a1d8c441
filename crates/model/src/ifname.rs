//! Interface names: the one check every crate uses, the kernel's `dev_valid_name`
//! (non-empty, at most 15 bytes, not `.` or `..`, no `/`, `:` or blank), plus what
//! kvnet needs to handle a name safely everywhere it goes: no control characters,
//! no `%` (a `%d` in TUNSETIFF or RTM_NEWLINK asks the kernel to pick a number) and,
//! because names are quoted in nft scripts, ASCII only and no `"` or `*` (a trailing
//! `*` is an nft wildcard). Callers add their own stricter rules on top (the model
//! holds bridges kvnet creates to letters, digits and `_.-`).

use std::fmt;

/// The kernel's `IFNAMSIZ` less the terminating NUL.
pub const MAX_LEN: usize = 15;

/// Why a name is not a usable interface name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfnameError {
    Empty,
    TooLong,
    Dots,
    BadChar(char),
}

impl fmt::Display for IfnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfnameError::Empty => write!(f, "is empty"),
            IfnameError::TooLong => write!(f, "is longer than {MAX_LEN} characters"),
            IfnameError::Dots => write!(f, "is not allowed"),
            IfnameError::BadChar(c) => write!(f, "contains the invalid character {c:?}"),
        }
    }
}

impl std::error::Error for IfnameError {}

/// Check `name` (see the module docs).
pub fn check(name: &str) -> Result<(), IfnameError> {
    if name.is_empty() {
        return Err(IfnameError::Empty);
    }
    if name.len() > MAX_LEN {
        return Err(IfnameError::TooLong);
    }
    if name == "." || name == ".." {
        return Err(IfnameError::Dots);
    }
    match name
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '%' | '"' | '*'))
    {
        Some(c) => Err(IfnameError::BadChar(c)),
        None => Ok(()),
    }
}

/// Whether `name` passes [`check`].
pub fn is_valid(name: &str) -> bool {
    check(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rules_and_safe_quoting() {
        for ok in [
            "virbr0",
            "br-lan.10",
            "vnet0",
            "a",
            "fifteen-chars-x",
            "tap_1",
            "x@y",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(check(""), Err(IfnameError::Empty));
        assert_eq!(check("sixteen-chars-xx"), Err(IfnameError::TooLong));
        assert_eq!(check("."), Err(IfnameError::Dots));
        assert_eq!(check(".."), Err(IfnameError::Dots));
        for (bad, c) in [
            ("a/b", '/'),
            ("br:0", ':'),
            ("br 0", ' '),
            ("br\t0", '\t'),
            ("br\n", '\n'),
            ("vnet%d", '%'),
            ("a\"b", '"'),
            ("virbr*", '*'),
            ("brü", 'ü'),
        ] {
            assert_eq!(check(bad), Err(IfnameError::BadChar(c)), "{bad:?}");
        }
        assert_eq!(
            check("a/b").unwrap_err().to_string(),
            "contains the invalid character '/'"
        );
    }
}
