//! The one error type of the crate: every failure names the operation and the object.

use std::io;

/// What went wrong underneath a [`HostError`].
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// A system call or file operation failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The kernel answered a netlink request with an error; `ext_ack` is the
    /// kernel's extended-ack text when it gave one.
    #[error("{}{}", io::Error::from_raw_os_error(*errno), ext_ack.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Netlink { errno: i32, ext_ack: Option<String> },
    /// An external command (nft) exited unsuccessfully.
    #[error("{status}: {stderr}")]
    Command {
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// The kernel or the caller handed us something we cannot use.
    #[error("{0}")]
    Invalid(String),
    /// A D-Bus call failed or was refused (firewalld).
    #[error("{0}")]
    DBus(String),
}

impl From<nix::Error> for ErrorKind {
    fn from(e: nix::Error) -> Self {
        ErrorKind::Io(e.into())
    }
}

/// A failed host operation, e.g. `create bridge virbr3: File exists (os error 17)`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {kind}")]
pub struct HostError {
    context: String,
    #[source]
    kind: ErrorKind,
}

impl HostError {
    pub fn new(context: impl Into<String>, kind: impl Into<ErrorKind>) -> Self {
        HostError {
            context: context.into(),
            kind: kind.into(),
        }
    }

    pub(crate) fn netlink(context: impl Into<String>, errno: i32, ext_ack: Option<String>) -> Self {
        Self::new(context, ErrorKind::Netlink { errno, ext_ack })
    }

    pub(crate) fn invalid(context: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::new(context, ErrorKind::Invalid(msg.into()))
    }

    /// The operation and object, e.g. `create bridge virbr3`.
    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The positive errno behind the failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match &self.kind {
            ErrorKind::Io(e) => e.raw_os_error(),
            ErrorKind::Netlink { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_and_errno() {
        let e = HostError::netlink("create bridge virbr3", libc::EEXIST, None);
        assert_eq!(
            e.to_string(),
            "create bridge virbr3: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let e = HostError::netlink("create link tap0", libc::EOPNOTSUPP, Some("no tun".into()));
        assert!(e.to_string().ends_with("(os error 95) (no tun)"), "{e}");
    }
}
