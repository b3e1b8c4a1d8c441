//! kvnet-bridge-helper as it is meant to be installed, run by an unprivileged user:
//! with the file capability it still ignores the test overrides (a user must not pick
//! their own ACL), and installed setuid root it refuses to run. Root only (setcap,
//! chown); everything runs in a namespace of its own and is denied before any TAP exists.

use kvnet_host::testns::{TestNs, require_root};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private copy of the helper in a directory everyone may traverse.
struct Install(PathBuf);

impl Install {
    fn new(tag: &str) -> Install {
        let dir = std::env::temp_dir().join(format!("kvnet-bh-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::copy(
            env!("CARGO_BIN_EXE_kvnet-bridge-helper"),
            dir.join("helper"),
        )
        .expect("copy the helper");
        Install(dir)
    }

    fn helper(&self) -> PathBuf {
        self.0.join("helper")
    }

    /// An ACL that allows every bridge, readable by everyone.
    fn allow_all(&self) -> PathBuf {
        let acl = self.0.join("bridge.conf");
        std::fs::write(&acl, "allow all\n").expect("acl");
        std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        acl
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `helper` as nobody in `ns`, as qemu would: `--br=kvbh0 --fd=N` with N a Unix
/// socket; `acl` offered through KVNET_BRIDGE_CONF. Returns success and stderr.
fn run_as_nobody(ns: &TestNs, helper: &Path, acl: &Path) -> (bool, String) {
    let (_ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let raw = theirs.as_raw_fd();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .arg(helper)
        .arg("--br=kvbh0")
        .arg(format!("--fd={raw}"))
        .env("KVNET_BRIDGE_CONF", acl);
    kvnet_host::testns::raw::pass_fd(&mut cmd, raw);
    let out = cmd.output().expect("run the helper");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root"]
fn with_the_capability_a_user_cannot_choose_the_acl() {
    require_root("setcap");
    let inst = Install::new("cap");
    let acl = inst.allow_all();
    let st = Command::new("setcap")
        .arg("cap_net_admin+ep")
        .arg(inst.helper())
        .status()
        .expect("setcap (scripts/deps.sh installs libcap2-bin)");
    assert!(st.success(), "setcap failed");
    let ns = TestNs::with_prefix("kvbhcap").expect("namespace");
    let (ok, err) = run_as_nobody(&ns, &inst.helper(), &acl);
    assert!(!ok, "a user's own ACL was honoured:\n{err}");
    assert!(
        err.contains("/etc/kvnet/bridge.conf") && !err.contains(&acl.display().to_string()),
        "{err}"
    );
}

#[test]
#[ignore = "needs root"]
fn installed_setuid_root_it_refuses_to_run() {
    require_root("chown to root");
    let inst = Install::new("suid");
    let acl = inst.allow_all();
    nix::unistd::chown(&inst.helper(), Some(0.into()), Some(0.into())).expect("chown");
    std::fs::set_permissions(inst.helper(), std::fs::Permissions::from_mode(0o4755))
        .expect("chmod u+s");
    let ns = TestNs::with_prefix("kvbhsuid").expect("namespace");
    let (ok, err) = run_as_nobody(&ns, &inst.helper(), &acl);
    assert!(!ok && err.contains("refusing to run setuid root"), "{err}");
}
