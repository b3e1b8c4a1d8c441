//! Test hooks. `KVNET_TEST_KILL_AT=POINT` makes kvnetd kill itself (SIGKILL, as `kill -9`
//! does) when it reaches the named [`kill_point`], so that a test stops a verb at an
//! exact instant instead of a timed one (crates/daemon/tests/crash_points.rs). Unset,
//! a kill point costs one comparison.

use std::sync::OnceLock;
use tracing::warn;

/// Dies here if `KVNET_TEST_KILL_AT` names `point`.
pub fn kill_point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("KVNET_TEST_KILL_AT").ok())
        .as_deref()
        == Some(point)
    {
        warn!("{point}: killing kvnetd (test hook)");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
