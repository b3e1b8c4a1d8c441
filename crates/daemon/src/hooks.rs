//! Test hooks. `KVNET_TEST_KILL_AT=POINT` makes kvnetd kill itself (SIGKILL, as `kill -9`
//! does) when it reaches the named [`kill_point`], so that a test stops a verb at an
//! exact instant instead of a timed one (crates/daemon/tests/crash_points.rs).
//! `KVNET_TEST_HANG_AT=POINT` blocks the thread that reaches the named [`hang_point`]
//! for good: the event loop hangs, as for the watchdog's test (tests/systemd.rs).
//! Unset, a point costs one comparison.

use std::sync::OnceLock;
use tracing::warn;

fn named(var: &'static str, cell: &'static OnceLock<Option<String>>, point: &str) -> bool {
    cell.get_or_init(|| std::env::var(var).ok()).as_deref() == Some(point)
}

/// Hangs here, for good, if `KVNET_TEST_HANG_AT` names `point`.
pub fn hang_point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if named("KVNET_TEST_HANG_AT", &AT, point) {
        warn!("{point}: hanging kvnetd's event loop (test hook)");
        loop {
            std::thread::park();
        }
    }
}

/// Dies here if `KVNET_TEST_KILL_AT` names `point`.
pub fn kill_point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if named("KVNET_TEST_KILL_AT", &AT, point) {
        warn!("{point}: killing kvnetd (test hook)");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
