//! qemu's bridge helper protocol, for guests of an unprivileged qemu:
//!
//! ```text
//! qemu ... -netdev bridge,id=n0,br=virbr0,helper=/usr/libexec/kvnet-bridge-helper
//! ```
//!
//! qemu runs `HELPER [--use-vnet] --br=BRIDGE --fd=N` with N one end of a Unix
//! socket pair. If the ACL (default /etc/kvnet/bridge.conf, see kvnet_attach::acl)
//! allows BRIDGE, the helper creates a TAP (with a virtio-net header for
//! --use-vnet), gives it the bridge's MTU, attaches it and brings it up, then sends
//! the TAP's file back over fd N (SCM_RIGHTS, one byte of payload, as
//! qemu-bridge-helper does). The TAP is not persistent: it goes when qemu closes it.
//! Finally it registers the port with kvnetd, if kvnetd answers.
//!
//! It needs CAP_NET_ADMIN: install it with `setcap cap_net_admin+ep`, never setuid
//! root (a setuid helper refuses to run). `KVNET_BRIDGE_CONF` and `KVNET_SOCKET`
//! are honoured only for a real uid of 0, so a user cannot point it at an ACL of
//! their own.

#![forbid(unsafe_code)]

use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request as req;
use kvnet_attach::acl;
use kvnet_attach::cli::{BridgeHelper as Args, parse};
use kvnet_host::{Netlink, tap};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockaddrLike, SockaddrStorage, getsockname, sendmsg,
};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

const DEFAULT_ACL: &str = "/etc/kvnet/bridge.conf";
/// The fd qemu handed us must be a Unix socket: anything else would receive a TAP
/// (or fail in ways that hide the mistake).
fn check_unix_socket(fd: RawFd) -> Result<()> {
    // getsockname fails on anything but a socket; an unnamed one (socketpair) still
    // reports its family.
    let family = getsockname::<SockaddrStorage>(fd)
        .ok()
        .and_then(|a| a.family());
    if family != Some(AddressFamily::Unix) {
        bail!("--fd={fd} is not a Unix socket");
    }
    Ok(())
}

/// Privileged env overrides only for root; anyone else gets the defaults.
fn env_override(name: &str) -> Option<PathBuf> {
    if nix::unistd::getuid().is_root() {
        std::env::var_os(name).map(PathBuf::from)
    } else {
        None
    }
}

fn check_acl(bridge: &str) -> Result<()> {
    let path = env_override("KVNET_BRIDGE_CONF").unwrap_or_else(|| PathBuf::from(DEFAULT_ACL));
    let rules = acl::load(&path, &mut |p| std::fs::read_to_string(p))
        .with_context(|| format!("access to bridge {bridge} denied: ACL unusable"))?;
    if !acl::allowed(&rules, bridge) {
        bail!(
            "access to bridge {bridge} denied by {} (add `allow {bridge}`)",
            path.display()
        );
    }
    Ok(())
}

/// Attach the new TAP like qemu-bridge-helper: the bridge's MTU, a MAC starting with
/// 0xFE so the bridge never adopts it, then master and up.
async fn plug(ifname: &str, bridge: &str) -> Result<()> {
    let nl = Netlink::connect().await?;
    let br = nl
        .link(bridge)
        .await?
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .ok_or_else(|| anyhow!("bridge {bridge} does not exist"))?;
    let t = nl
        .link(ifname)
        .await?
        .ok_or_else(|| anyhow!("TAP {ifname} vanished"))?;
    nl.set_mtu(t.index, br.mtu).await?;
    if let Some(mut mac) = t.mac {
        mac[0] = 0xfe;
        nl.set_mac(t.index, mac).await?;
    }
    nl.set_master(t.index, Some(br.index)).await?;
    nl.set_up(t.index, true).await?;
    Ok(())
}

fn run() -> Result<()> {
    // File capabilities keep the real and effective uid equal; setuid root does not,
    // and would hand a user root's other powers.
    if nix::unistd::geteuid().is_root() && !nix::unistd::getuid().is_root() {
        bail!(
            "refusing to run setuid root: remove the setuid bit and grant the capability instead (setcap cap_net_admin+ep)"
        );
    }
    let args: Args = parse()?;
    check_unix_socket(args.fd)?;
    check_acl(&args.bridge)?;
    let t = tap::create(&tap::TapConfig {
        name: "tap%d".into(),
        vnet_hdr: args.use_vnet,
        queues: 1,
        owner: None,
        group: None,
        persist: false,
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start tokio runtime")?;
    rt.block_on(plug(&t.name, &args.bridge))
        .with_context(|| format!("cannot attach {} to bridge {}", t.name, args.bridge))?;
    let fds = [t.fds[0].as_raw_fd()];
    sendmsg::<()>(
        args.fd,
        &[IoSlice::new(&[0u8])],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("cannot send {}'s file over --fd={}", t.name, args.fd))?;
    // Best effort: without kvnetd (or access to its socket) the guest still works,
    // kvnet just does not list the port.
    let socket =
        env_override("KVNET_SOCKET").unwrap_or_else(|| PathBuf::from(kvnet_api::DEFAULT_SOCKET));
    let _ = kvnet_attach::call(
        &socket,
        req::PortAttach {
            network: None,
            bridge: Some(args.bridge.clone()),
            ifname: t.name.clone(),
            mac: None,
        },
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("kvnet-bridge-helper: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(a: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kvnet-bridge-helper").chain(a.iter().copied()))
    }

    #[test]
    fn arguments_as_qemu_passes_them() {
        let a = parse(&["--use-vnet", "--br=virbr0", "--fd=5"]).unwrap();
        assert!(a.use_vnet && a.bridge == "virbr0" && a.fd == 5);
        let a = parse(&["--br=br0", "--fd=7"]).unwrap();
        assert!(!a.use_vnet);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (args, want) in [
            (&["--br=virbr0"][..], "required"),
            (&["--fd=3"][..], "required"),
            (&["--br=a/b", "--fd=3"][..], "not a valid bridge name"),
            (&["--br=", "--fd=3"][..], "not a valid bridge name"),
            (&["--br=br0", "--fd=-1"][..], "not a file descriptor"),
            (&["--br=br0", "--fd=x"][..], "not a file descriptor"),
            (
                &["--br=br0", "--fd=3", "--bogus"][..],
                "unexpected argument",
            ),
        ] {
            let e = parse(args).expect_err("refused").to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn fd_must_be_a_unix_socket() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let e = check_unix_socket(f.as_raw_fd()).unwrap_err().to_string();
        assert!(e.contains("not a Unix socket"), "{e}");
        // A socket of another family, bound or not.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(check_unix_socket(udp.as_raw_fd()).is_err());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check_unix_socket(a.as_raw_fd()).is_ok());
        let d = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert!(check_unix_socket(d.as_raw_fd()).is_ok());
        assert!(check_unix_socket(9999).is_err(), "not open");
    }
}
