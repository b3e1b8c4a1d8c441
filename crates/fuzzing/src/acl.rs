//! The bridge helper's ACL (`bridge.conf` and what it includes), which the setuid-like
//! helper reads on a user's behalf. The input is up to four files split at NUL bytes:
//! `/etc/kvnet/bridge.conf`, then `a.conf`, `b.conf`, `c.conf` beside it (seeds include
//! them by relative and absolute paths, and in cycles); any other path does not exist.

use std::io;
use std::path::Path;

use kvnet_attach::acl::{self, Rule, Target};

const MAIN: &str = "/etc/kvnet/bridge.conf";
const OTHERS: [&str; 3] = [
    "/etc/kvnet/a.conf",
    "/etc/kvnet/b.conf",
    "/etc/kvnet/c.conf",
];

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<&str> = text.splitn(4, '\0').collect();
    let mut read = |p: &Path| {
        let i = std::iter::once(MAIN)
            .chain(OTHERS)
            .position(|f| Path::new(f) == p);
        match i.and_then(|i| files.get(i)) {
            Some(t) => Ok(t.to_string()),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    };
    let Ok(rules) = acl::load(Path::new(MAIN), &mut read) else {
        return;
    };
    // Deny wins whatever the order, so the rules reversed allow exactly the same bridges.
    let reversed: Vec<Rule> = rules.iter().rev().cloned().collect();
    let mut names: Vec<&str> = vec!["virbr0", "all"];
    for r in &rules {
        let (Rule::Allow(t) | Rule::Deny(t)) = r;
        if let Target::Bridge(b) = t {
            assert!(
                kvnet_model::ifname::is_valid(b),
                "invalid bridge name {b:?} accepted"
            );
            names.push(b);
        }
    }
    for n in names {
        assert_eq!(
            acl::allowed(&rules, n),
            acl::allowed(&reversed, n),
            "{n}: order matters"
        );
    }
}
