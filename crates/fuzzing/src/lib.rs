//! kvnet-fuzzing: one function per fuzz target, `fn(&[u8])`, shared by the coverage-guided
//! targets in `fuzz/` (cargo-fuzz, libFuzzer) and by `tests/replay.rs`, which replays the
//! checked-in seeds and a few thousand mutations of them on stable in `cargo test`.
//!
//! Each target feeds what an untrusted peer controls to the code that receives it in
//! kvnetd (a guest's packet to an engine's handle function, an API line to the request
//! decoder, a definition to the XML model and what is derived from it) and panics on a
//! broken property as well as on a crash: a panic is a finding.
//!
//! The engine targets read their input as steps, `[control byte][u16 BE length][payload]`
//! ([`frame`]); the control byte picks the call and moves the clock, so one input is a
//! whole exchange (DISCOVER, REQUEST, time passing, expiry, a failed journal write).

#![forbid(unsafe_code)]

pub mod acl;
pub mod api;
pub mod dhcp4;
pub mod dhcp6;
pub mod dns;
pub mod nss;
pub mod ra;
pub mod xml;

/// A target's body: panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/NAME.rs` and seed directory have.
pub const TARGETS: &[(&str, Target)] = &[
    ("xml", xml::run),
    ("acl", acl::run),
    ("api", api::run),
    ("dhcp4", dhcp4::run),
    ("dhcp6", dhcp6::run),
    ("dns", dns::run),
    ("ra", ra::run),
    ("nss", nss::run),
];

/// One step of an engine target's input: `payload` is cut at 65,535 bytes.
pub fn frame(ctrl: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(usize::from(u16::MAX));
    let mut out = vec![ctrl];
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&payload[..len]);
    out
}

/// Reads the steps [`frame`] writes; a truncated input yields what is there.
struct Steps<'a>(&'a [u8]);

impl<'a> Iterator for Steps<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&ctrl, rest) = self.0.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or_default();
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        self.0 = rest;
        Some((ctrl, payload))
    }
}

/// How far a control byte moves the clock, in units: its top five bits squared, so
/// small steps (retries) and large ones (lease expiry) are both a byte away.
fn advance(ctrl: u8) -> u64 {
    let k = u64::from(ctrl >> 3);
    k * k
}

/// Every record of the journal text `table` (one line a record, as `compact` writes)
/// is in `held`: the DHCP targets' check that the engine's table holds nothing its
/// journal lacks, and (both ways) that compaction keeps a table.
fn within(table: &str, held: &str) {
    let held: std::collections::HashSet<&str> = held.lines().collect();
    for line in table.lines() {
        assert!(held.contains(line), "a record the journal lacks: {line}");
    }
}

/// A journal `text` replayed and compacted again holds the same records.
fn compaction_keeps(text: &str, again: impl Fn(&str) -> String) {
    let again = again(text);
    within(text, &again);
    within(&again, text);
}
