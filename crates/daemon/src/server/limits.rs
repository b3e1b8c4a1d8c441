//! What an API connection may cost and how the server reacts when it cannot accept:
//! pure decisions, unit-tested; [`super`] applies them.

use std::time::Duration;

/// The server's limits. [`Limits::for_fd_limit`] is what kvnetd uses; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests are small; a longer line (newline not counted) closes the connection.
    pub max_request: usize,
    /// Connections open at once; at the cap the oldest idle one is closed for a new one.
    pub max_connections: usize,
    /// A connection that sends no complete request for this long is closed.
    pub idle: Duration,
    /// A reply the client does not take within this is dropped with the connection:
    /// a client that never reads must not keep its task, buffers and slot.
    pub write: Duration,
    /// At shutdown, how long an idle connection may still deliver a request: a client
    /// that just connected sends its request at once.
    pub grace: Duration,
    /// At shutdown, how long requests in progress are waited for.
    pub drain: Duration,
}

impl Limits {
    /// The limits for a process that may open `nofile` descriptors: a quarter of them for
    /// API connections (each costs one), the rest for networks (8–13 each) and the
    /// daemon, and at most 1024 connections: a request holds the daemon for
    /// milliseconds, and the CLI and hooks use one connection per request.
    pub fn for_fd_limit(nofile: u64) -> Limits {
        Limits {
            max_request: 4 << 20,
            max_connections: usize::try_from(nofile / 4)
                .unwrap_or(usize::MAX)
                .clamp(8, 1024),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(5),
            grace: Duration::from_millis(200),
            drain: Duration::from_secs(30),
        }
    }
}

/// The soft open-file limit to set at start: the hard one, as systemd advises for
/// programs that use no select(2) (each network holds 8–13 descriptors, so the usual
/// soft 1024 ends at about 100 networks). `None` when nothing is to change. An
/// unlimited hard limit is out of reach (the kernel's nr_open, 1 Mi by default, caps
/// it): aim at 1 Mi then.
pub fn fd_soft_target(soft: u64, hard: u64) -> Option<u64> {
    let target = hard.min(1 << 20);
    (target > soft).then_some(target)
}

/// Pauses of the accept loop after failures (EMFILE at the open-file limit, ENOMEM):
/// without them the listener stays readable and the loop spins on the error.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
}

/// What to do after a failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct Pause {
    pub delay: Duration,
    /// Log this failure: the first, then the 2nd, 4th, 8th… so a lasting fault logs a
    /// line per doubling, not one per try.
    pub log: bool,
    /// Failed accepts in a row, this one included.
    pub failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_millis(500);

    pub fn failed(&mut self) -> Pause {
        self.failures = self.failures.saturating_add(1);
        let delay = Self::FIRST
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(Self::MAX);
        Pause {
            delay,
            log: self.failures.is_power_of_two(),
            failures: self.failures,
        }
    }

    /// An accept worked: the failures in a row before it, if any (to log the recovery).
    pub fn succeeded(&mut self) -> Option<u32> {
        let n = std::mem::take(&mut self.failures);
        (n > 0).then_some(n)
    }
}

/// How many sockets systemd passed to this process (socket activation), from
/// `LISTEN_PID` and `LISTEN_FDS` as sd_listen_fds(3) reads them: none unless
/// `LISTEN_PID` is this process (the variables may be left over for a parent); an
/// unparsable value is an error. The sockets are descriptors 3, 4, ….
pub fn passed_sockets(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<u32, String> {
    let Some(listen_pid) = listen_pid else {
        return Ok(0);
    };
    let for_pid: u32 = listen_pid
        .parse()
        .map_err(|_| format!("LISTEN_PID={listen_pid} is not a process id"))?;
    if for_pid != pid {
        return Ok(0);
    }
    let fds = listen_fds.unwrap_or("0");
    fds.parse()
        .map_err(|_| format!("LISTEN_FDS={fds} is not a number of sockets"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_a_quarter_of_the_descriptors_within_bounds() {
        assert_eq!(Limits::for_fd_limit(1024).max_connections, 256);
        assert_eq!(Limits::for_fd_limit(524_288).max_connections, 1024);
        assert_eq!(Limits::for_fd_limit(20).max_connections, 8);
        assert_eq!(Limits::for_fd_limit(u64::MAX).max_connections, 1024);
    }

    #[test]
    fn the_soft_fd_limit_is_raised_to_the_hard_one() {
        assert_eq!(fd_soft_target(1024, 524_288), Some(524_288));
        assert_eq!(fd_soft_target(1024, 1024), None);
        assert_eq!(fd_soft_target(4096, 1024), None, "never lowered");
        assert_eq!(fd_soft_target(1024, u64::MAX), Some(1 << 20));
    }

    #[test]
    fn accept_failures_back_off_and_log_once_per_doubling() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<Pause> = (0..12).map(|_| b.failed()).collect();
        let ms: Vec<u128> = pauses.iter().map(|p| p.delay.as_millis()).collect();
        assert_eq!(ms, [5, 10, 20, 40, 80, 160, 320, 500, 500, 500, 500, 500]);
        let logged: Vec<u32> = pauses
            .iter()
            .filter(|p| p.log)
            .map(|p| p.failures)
            .collect();
        assert_eq!(logged, [1, 2, 4, 8]);
        // A minute of EMFILE logs about 8 lines, not one per try.
        let mut b = AcceptBackoff::default();
        let (mut t, mut lines, mut n) = (Duration::ZERO, 0, 0);
        while t < Duration::from_secs(60) {
            let p = b.failed();
            t += p.delay;
            lines += u32::from(p.log);
            n += 1;
        }
        assert!(lines <= 8, "{lines}");
        assert_eq!(b.succeeded(), Some(n));
        assert_eq!(b.succeeded(), None);
        assert_eq!(b.failed().delay, Duration::from_millis(5), "starts over");
    }

    #[test]
    fn passed_sockets_follow_sd_listen_fds() {
        assert_eq!(passed_sockets(None, Some("1"), 42), Ok(0), "no LISTEN_PID");
        assert_eq!(
            passed_sockets(Some("41"), Some("1"), 42),
            Ok(0),
            "a parent's"
        );
        assert_eq!(passed_sockets(Some("42"), Some("1"), 42), Ok(1));
        assert_eq!(passed_sockets(Some("42"), Some("2"), 42), Ok(2));
        assert_eq!(passed_sockets(Some("42"), None, 42), Ok(0));
        assert!(passed_sockets(Some("x"), Some("1"), 42).is_err());
        assert!(passed_sockets(Some("42"), Some("-1"), 42).is_err());
    }
}
