//! The journal line format shared by the DHCPv4 and DHCPv6 lease journals: one JSON
//! record per line, each starting with its `ip-address` field.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How every record's line starts, so a record appended to a torn line can be found.
const RECORD_START: &str = "{\"ip-address\":";

/// One journal line, newline included, so appending it is the whole write.
pub(crate) fn encode<R: Serialize>(rec: &R) -> String {
    // Serializing plain strings, numbers and addresses cannot fail.
    let mut s = serde_json::to_string(rec).unwrap_or_default();
    s.push('\n');
    s
}

/// The records of a journal's text, in order. Lines that do not parse (a write torn by a
/// crash) are skipped; when a torn line was followed by an append without a newline in
/// between, the record glued to its end is still recovered.
pub(crate) fn records<R: DeserializeOwned>(text: &str) -> impl Iterator<Item = R> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            serde_json::from_str::<R>(line).ok().or_else(|| {
                line.rfind(RECORD_START)
                    .filter(|&i| i > 0)
                    .and_then(|i| serde_json::from_str(&line[i..]).ok())
            })
        })
}
