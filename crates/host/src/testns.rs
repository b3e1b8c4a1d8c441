//! Throw-away network namespaces for tests (this crate's and other crates').
//!
//! Namespace membership is per thread: [`TestNs::run`] and [`TestNs::block_on`]
//! run the closure on a fresh thread that has `setns`'d into the namespace, so
//! netlink sockets, `/proc/sys/net` files and child processes (nft) opened
//! there belong to it, while the test's own thread stays in the host
//! namespace. The namespace is deleted when the [`TestNs`] is dropped, also
//! when the test panics.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Prefixes whose leftovers this process has already looked for.
static REAPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Fails the calling test unless it runs as root. Root-only tests are marked
/// `#[ignore = "needs root"]`, so a user's `cargo test` lists them as ignored; this makes
/// one that is run anyway (`--include-ignored`) fail loudly instead of passing untested.
#[track_caller]
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: {what}; run as root (./test.sh runs the root tests with --include-ignored)"
    );
}

/// A named network namespace (`/run/netns/NAME`), removed on drop.
#[derive(Debug)]
pub struct TestNs {
    name: String,
}

impl TestNs {
    /// Creates `kvh-<pid>-<n>`.
    #[track_caller]
    pub fn new() -> io::Result<TestNs> {
        Self::with_prefix("kvh")
    }

    /// Creates `<prefix>-<pid>-<n>`; other crates pass their own prefix. Panics unless
    /// root (at the caller's line): every test that makes a namespace fails loudly
    /// without root.
    #[track_caller]
    pub fn with_prefix(prefix: &str) -> io::Result<TestNs> {
        require_root("network namespaces");
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        reap_leftovers(prefix);
        // A leftover of the same name belongs to a dead process that reused our pid.
        if PathBuf::from("/run/netns").join(&name).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
        let out = ip(&["netns", "add", &name])?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(TestNs { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread inside the namespace and returns its result;
    /// a panic in `f` is re-raised here.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let ns = File::open(self.path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path().display()));
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns into {}: {e}", self.name));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Like [`TestNs::run`], with a current-thread tokio runtime inside the namespace.
    pub fn block_on<F>(&self, f: impl FnOnce() -> F + Send) -> F::Output
    where
        F: Future,
        F::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build tokio runtime")
                .block_on(f())
        })
    }

    /// Links this namespace to `peer` with a veth pair, `here` on this side and `there`
    /// on the other, both up.
    pub fn veth_to(&self, here: &str, peer: &TestNs, there: &str) -> io::Result<()> {
        let netns = peer.name();
        self.exec_ok(
            "ip",
            &[
                "link", "add", here, "type", "veth", "peer", "name", there, "netns", netns,
            ],
        )?;
        self.exec_ok("ip", &["link", "set", here, "up"])?;
        peer.exec_ok("ip", &["link", "set", there, "up"])?;
        Ok(())
    }

    /// Runs `program args...` inside the namespace via `ip netns exec`.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Like [`TestNs::exec`], but fails unless the command succeeds; returns stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let out = self.exec(program, args)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{program} {args:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        match ip(&["netns", "del", &self.name]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("ip netns del {}: {e}", self.name),
        }
    }
}

/// Once per process and prefix: delete the `<prefix>-<pid>-<n>` namespaces of test
/// processes that are gone. A test killed outright (SIGKILL, a CI timeout) never runs
/// its drops; its namespaces are removed by the next run instead of piling up.
fn reap_leftovers(prefix: &str) {
    {
        let mut done = REAPED.lock().unwrap_or_else(|e| e.into_inner());
        if done.iter().any(|p| p == prefix) {
            return;
        }
        done.push(prefix.to_string());
    }
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for name in dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
    {
        if let Some(pid) = leftover_pid(&name, prefix)
            && pid != std::process::id()
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The creator's pid when `name` is `<prefix>-<pid>-<n>`.
fn leftover_pid(name: &str, prefix: &str) -> Option<u32> {
    let (pid, n) = name
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn ip(args: &[&str]) -> io::Result<Output> {
    Command::new("ip").args(args).output()
}

/// Test-only descriptor handling that needs `unsafe`, kept here so that no other crate
/// of the workspace has any.
pub mod raw {
    use nix::sys::socket::{
        self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    };
    use std::io::{self, IoSliceMut};
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    const ETH_P_ALL: u16 = 0x0003;

    /// A blocking packet socket that sees every frame of `ifname` (in the calling
    /// thread's namespace) and may send raw frames there.
    pub fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)?;
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        let ifindex = i32::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
        socket::bind(fd.as_raw_fd(), &crate::sys::packet_addr(ifindex, ETH_P_ALL))?;
        Ok(fd)
    }

    /// Let `fd` survive into `cmd`'s child: its close-on-exec flag is cleared between
    /// fork and exec, so no other child spawned meanwhile inherits it.
    pub fn pass_fd(cmd: &mut Command, fd: RawFd) {
        // SAFETY: only fcntl(2), which is async-signal-safe, runs between fork and exec;
        // `fd` stays open in the parent until the child has been spawned.
        unsafe {
            cmd.pre_exec(move || {
                nix::fcntl::fcntl(
                    BorrowedFd::borrow_raw(fd),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
                Ok(())
            });
        }
    }

    /// One message from a Unix socket into `buf`, with the first descriptor it passed
    /// (SCM_RIGHTS), received close-on-exec.
    pub fn recv_fd(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(RawFd);
        let msg = socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut got = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: SCM_RIGHTS installed these descriptors in this process for
                // us; nothing else owns them.
                got.extend(fds.iter().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) }));
            }
        }
        Ok((msg.bytes, got.into_iter().next()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_are_recognised_by_prefix_pid_and_counter() {
        assert_eq!(leftover_pid("kvt-h-29963-0", "kvt-h"), Some(29963));
        assert_eq!(leftover_pid("kvt-h-29963-0", "kvt"), None);
        assert_eq!(leftover_pid("kvt-h-29963", "kvt-h"), None);
        assert_eq!(leftover_pid("kvt-hx-1-2", "kvt-h"), None);
        assert_eq!(leftover_pid("kvt-h-1-x", "kvt-h"), None);
    }

    #[test]
    #[ignore = "needs root"]
    fn namespaces_of_dead_test_processes_are_reaped() {
        require_root("network namespaces");
        let prefix = format!("kvt-reap-{}", std::process::id());
        // pid 0 is never a process: this one's creator is gone.
        let stale = format!("{prefix}-0-7");
        let live = format!("{prefix}-{}-99", std::process::id());
        for n in [&stale, &live] {
            assert!(ip(&["netns", "add", n]).unwrap().status.success());
        }
        let ns = TestNs::with_prefix(&prefix).unwrap();
        let exists = |n: &str| PathBuf::from("/run/netns").join(n).exists();
        let (stale_left, live_left) = (exists(&stale), exists(&live));
        let _ = ip(&["netns", "del", &live]);
        let _ = ip(&["netns", "del", &stale]);
        drop(ns);
        assert!(!stale_left, "a dead process's namespace is reaped");
        assert!(live_left, "a live process's namespace is kept");
    }
}
