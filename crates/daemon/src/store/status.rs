//! Status records of active networks (RUN_DIR/networks/NAME.json): what a restarted
//! kvnetd needs to adopt them. Runtime files: a reboot clears them with the networks.

use super::{Durability, remove_if_exists, write_atomic};
use crate::paths::Paths;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fs;

/// What kvnetd knows about an active network, so that a restarted daemon can adopt it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The definition the network was started with.
    pub live_xml: String,
    /// Started by net-create, or undefined while running: gone once stopped.
    pub transient: bool,
    /// kvnet created the bridge and must delete it at destroy.
    pub owns_bridge: bool,
    /// Unix time of the start.
    pub started: u64,
    /// Destroyed; the background teardown has not finished yet.
    #[serde(default)]
    pub stopping: bool,
}

pub fn save(paths: &Paths, name: &str, st: &Status) -> Result<()> {
    write_atomic(
        &paths.status(name),
        &serde_json::to_vec_pretty(st)?,
        0o600,
        Durability::Runtime,
    )
}

pub fn remove(paths: &Paths, name: &str) -> Result<()> {
    remove_if_exists(&paths.status(name))
}

/// Every status record, by network name; an unreadable one as its error. Temp files end
/// in `.tmp`; a name starting with '.' is a network an older kvnetd started, adopted so
/// that its bridge is not orphaned.
pub fn load_all(paths: &Paths) -> Result<Vec<(String, Result<Status>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(paths.status_dir())? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let st = fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from));
        out.push((stem.to_string(), st));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdir;

    #[test]
    fn records_round_trip_and_go() {
        let (_d, p) = testdir::paths();
        let st = Status {
            live_xml: "<network/>".into(),
            transient: true,
            owns_bridge: true,
            started: 5,
            stopping: false,
        };
        save(&p, "x", &st).unwrap();
        let all = load_all(&p).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref().unwrap(), &st);
        std::fs::write(p.status("torn"), b"{\"live_xml\":").unwrap();
        std::fs::write(p.status("bytes"), b"\xff\xfe").unwrap();
        std::fs::write(p.status_dir().join(".torn.json.tmp"), b"{").unwrap();
        let all = load_all(&p).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bytes", "torn", "x"]);
        assert!(
            all[0].1.is_err() && all[1].1.is_err(),
            "reported, not fatal"
        );
        remove(&p, "x").unwrap();
        remove(&p, "x").unwrap();
        assert_eq!(load_all(&p).unwrap().len(), 2);
    }
}
