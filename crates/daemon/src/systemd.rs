//! kvnetd as a systemd service (sd_notify(3)): READY=1 once the running networks are
//! adopted and the autostart ones started, STATUS= lines, the keep-alives `WatchdogSec=`
//! asks for and STOPPING=1. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! The keep-alives come from a task on the daemon's one event loop, the thread that
//! serves every request and every guest service: a loop that hangs stops them, and
//! systemd restarts kvnetd, whose successor adopts the networks.

use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::warn;

use sd_notify::NotifyState;

/// How often the STATUS= line is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The STATUS= line: what `systemctl status kvnetd` shows.
pub fn status_line(defined: usize, active: usize, leases: usize) -> String {
    format!("{active} of {defined} networks active, {leases} leases")
}

/// How often to send a keep-alive for a watchdog of `timeout`: half of it, as
/// sd_watchdog_enabled(3) advises, and never more than once per 10 ms.
pub fn keepalive_every(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify the service manager: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping; active networks stay up"),
    ]);
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to its
/// device and inode (systemd.exec(5)), and a child that redirected stderr keeps the
/// variable but not the stream.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr())
        .is_ok_and(|st| journal_stream_matches(&stream, st.st_dev, st.st_ino))
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE`, decimal, against a stream's device and inode.
pub fn journal_stream_matches(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// Sends keep-alives from the current (the daemon's) runtime, if systemd asked for them.
pub fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let every = keepalive_every(sd_notify::watchdog_enabled()?);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_what_runs() {
        assert_eq!(status_line(3, 2, 17), "2 of 3 networks active, 17 leases");
    }

    #[test]
    fn journal_stream_is_device_and_inode() {
        assert!(journal_stream_matches("2049:123456", 2049, 123456));
        assert!(!journal_stream_matches("2049:123456", 2049, 123457));
        assert!(!journal_stream_matches("2049", 2049, 0));
        assert!(!journal_stream_matches("", 0, 0));
    }

    #[test]
    fn keepalives_come_twice_per_timeout() {
        assert_eq!(
            keepalive_every(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            keepalive_every(Duration::from_micros(1)),
            Duration::from_millis(10)
        );
    }
}
