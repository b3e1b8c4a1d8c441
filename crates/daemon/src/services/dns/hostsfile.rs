//! The host's /etc/hosts for every network's DNS: read once for all of them, and again
//! when its size, inode or mtime changes (checked at most every [`CHECK`]).

use kvnet_dns::HostsFile;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

const CHECK: Duration = Duration::from_secs(2);
/// Read no more than this: the rest of a larger file is ignored (and said so).
const MAX_BYTES: u64 = 32 << 20;

/// What tells a changed file: replaced (inode), rewritten (size, mtime).
type Stamp = Option<(u64, u64, SystemTime)>;

struct Cache {
    checked: Instant,
    stamp: Stamp,
    parsed: Arc<HostsFile>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// The file served; tests point it elsewhere.
fn path() -> PathBuf {
    std::env::var_os("KVNET_HOSTS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/hosts"))
}

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

/// A missing or unreadable file serves no names, as an empty one would.
fn read(path: &std::path::Path) -> HostsFile {
    let mut text = String::new();
    let res = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES).read_to_string(&mut text).map(|_| ()));
    if let Err(e) = res {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!("host names from {}: {e}", path.display());
        }
        return HostsFile::default();
    }
    if text.len() as u64 >= MAX_BYTES {
        warn!(
            "{} is larger than {MAX_BYTES} bytes: the rest is not served",
            path.display()
        );
    }
    let h = HostsFile::parse(&text);
    info!(
        "host names from {}: {} names, {} lines skipped",
        path.display(),
        h.len(),
        h.skipped()
    );
    h
}

/// The host file as it is now (re-read if it changed since it was last checked).
pub(super) fn current() -> Arc<HostsFile> {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_ref()
        && c.checked.elapsed() < CHECK
    {
        return c.parsed.clone();
    }
    let path = path();
    let now = stamp(&path);
    match cache.as_mut() {
        Some(c) if c.stamp == now => c.checked = Instant::now(),
        _ => {
            *cache = Some(Cache {
                checked: Instant::now(),
                stamp: now,
                parsed: Arc::new(read(&path)),
            })
        }
    }
    cache.as_ref().map(|c| c.parsed.clone()).unwrap_or_default()
}
