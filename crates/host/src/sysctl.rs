//! Reading and writing `/proc/sys`.
//!
//! `/proc/sys/net` is resolved against the network namespace of the *thread*
//! that opens the file (the kernel looks up `current->nsproxy->net_ns` on
//! open), so a thread that has `setns`'d into a namespace reads and writes that
//! namespace's values while the rest of the process keeps the host's. The
//! crate's tests check this (`sysctl_is_per_thread_netns`).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::HostError;

/// Maps `net.ipv4.ip_forward` or `net/ipv4/ip_forward` to its `/proc/sys` path.
///
/// A key containing `/` is taken as a path, so interface names with dots
/// (`eth0.100`) must use the slash form (or [`iface_key`]).
pub fn path(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel)
}

/// The slash-form key of a per-interface setting, e.g.
/// `iface_key("ipv6", "virbr0", "disable_ipv6")` = `net/ipv6/conf/virbr0/disable_ipv6`.
pub fn iface_key(proto: &str, iface: &str, name: &str) -> String {
    format!("net/{proto}/conf/{iface}/{name}")
}

/// The value with its trailing newline removed.
pub fn read(key: &str) -> Result<String, HostError> {
    fs::read_to_string(path(key))
        .map(|s| s.trim_end_matches('\n').to_string())
        .map_err(|e| HostError::new(format!("read sysctl {key}"), e))
}

/// Writes `value` with a single write(2), as the kernel parses one write per value.
pub fn write(key: &str, value: &str) -> Result<(), HostError> {
    let ctx = || format!("write sysctl {key}={value}");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path(key))
        .map_err(|e| HostError::new(ctx(), e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| HostError::new(ctx(), e))
}

/// Writes only when the current value differs; returns whether it wrote.
pub fn ensure(key: &str, value: &str) -> Result<bool, HostError> {
    if read(key)? == value {
        return Ok(false);
    }
    write(key, value)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms() {
        assert_eq!(
            path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path("net/ipv4/ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path(&iface_key("ipv4", "eth0.100", "forwarding")),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn error_names_key() {
        let e = read("net.kvnet.does_not_exist").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("read sysctl net.kvnet.does_not_exist: "),
            "{e}"
        );
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}
