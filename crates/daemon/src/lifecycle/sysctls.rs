//! The sysctl ledger: host-wide forwarding sysctls (ip_forward, IPv6 forwarding) that
//! running networks need. The first network that turns one on records the value it
//! found; when the last network needing it stops, that value is put back. The record is
//! written ahead, before the kernel is touched, and kept in RUN_DIR, so a kvnetd killed
//! mid-start or restarted still restores what the host had.

use crate::paths::Paths;
use crate::store::{self, Durability};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Reading and writing sysctls; the host's `/proc/sys` in production, a map in tests.
pub trait Sysctls {
    fn read(&self, key: &str) -> Result<String>;
    fn write(&self, key: &str, value: &str) -> Result<()>;
}

/// The sysctls of the calling thread's network namespace.
pub struct HostSysctls;

impl Sysctls for HostSysctls {
    fn read(&self, key: &str) -> Result<String> {
        Ok(kvnet_host::sysctl::read(key)?)
    }

    fn write(&self, key: &str, value: &str) -> Result<()> {
        Ok(kvnet_host::sysctl::write(key, value)?)
    }
}

pub struct Ledger {
    path: PathBuf,
    /// Key → the value found before kvnet set it to 1.
    orig: BTreeMap<String, String>,
}

impl Ledger {
    /// The ledger a previous kvnetd left, or an empty one.
    pub fn load(paths: &Paths) -> Ledger {
        let path = paths.sysctl_orig();
        let orig = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ledger { path, orig }
    }

    fn save(&self) -> Result<()> {
        if self.orig.is_empty() {
            return store::remove_if_exists(&self.path);
        }
        store::write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&self.orig)?,
            0o600,
            Durability::Runtime,
        )
    }

    /// Before a start: record the current value of each of `keys` that is not on yet
    /// and was not recorded before, and write the record.
    pub fn reserve(&mut self, sys: &impl Sysctls, keys: &[&str]) -> Result<()> {
        let mut changed = false;
        for &key in keys {
            if !self.orig.contains_key(key) {
                let cur = sys.read(key)?;
                if cur.trim() != "1" {
                    self.orig.insert(key.to_string(), cur.trim().to_string());
                    changed = true;
                }
            }
        }
        // Written (and synced) only when it says something new: an adoption of 1,000
        // networks would otherwise write it 1,000 times.
        if changed { self.save() } else { Ok(()) }
    }

    /// After a stop, or a failed start: put back each of `keys` no other running network
    /// needs (`still_needed`), and write the record. Returns what failed.
    pub fn release(
        &mut self,
        sys: &impl Sysctls,
        keys: &[&str],
        still_needed: &[&str],
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for &key in keys.iter().filter(|k| !still_needed.contains(k)) {
            if let Some(old) = self.orig.remove(key)
                && let Err(e) = sys.write(key, &old)
            {
                errors.push(format!("restore {key}: {e:#}"));
            }
        }
        if let Err(e) = self.save() {
            errors.push(format!("{e:#}"));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Fake(RefCell<BTreeMap<String, String>>);

    impl Sysctls for Fake {
        fn read(&self, key: &str) -> Result<String> {
            Ok(self.0.borrow().get(key).cloned().unwrap_or_default())
        }
        fn write(&self, key: &str, value: &str) -> Result<()> {
            self.0.borrow_mut().insert(key.into(), value.into());
            Ok(())
        }
    }

    const FWD: &str = "net/ipv4/ip_forward";
    const FWD6: &str = "net/ipv6/conf/all/forwarding";

    #[test]
    fn the_last_network_puts_back_what_the_first_found() {
        let (_d, paths) = store::testdir::paths();
        let sys = Fake(RefCell::new(
            [
                (FWD.to_string(), "0".to_string()),
                (FWD6.to_string(), "1".to_string()),
            ]
            .into(),
        ));
        let mut l = Ledger::load(&paths);
        l.reserve(&sys, &[FWD, FWD6]).unwrap();
        // Written ahead: a restarted kvnetd knows the original.
        assert_eq!(
            Ledger::load(&paths).orig.get(FWD).map(String::as_str),
            Some("0")
        );
        assert!(!l.orig.contains_key(FWD6), "already on: nothing to restore");
        sys.write(FWD, "1").unwrap();
        // A second network reserves again: the original stays the first one's.
        l.reserve(&sys, &[FWD]).unwrap();
        assert_eq!(l.orig[FWD], "0");
        // The first stops while the second runs: nothing changes.
        assert!(l.release(&sys, &[FWD], &[FWD]).is_empty());
        assert_eq!(sys.read(FWD).unwrap(), "1");
        // The last one stops: the original is back and the record gone.
        assert!(l.release(&sys, &[FWD, FWD6], &[]).is_empty());
        assert_eq!(sys.read(FWD).unwrap(), "0");
        assert_eq!(sys.read(FWD6).unwrap(), "1");
        assert!(!paths.sysctl_orig().exists());
    }
}
