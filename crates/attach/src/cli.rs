//! The three binaries' command lines, here rather than in each binary so that the man
//! page generator (kvnet-docgen) reaches the same clap definitions.

use clap::{Args, Parser};
use std::os::fd::RawFd;

/// Parses the command line; a usage error becomes an error like any other (the binary
/// prints it with its name and exits 1, as before clap), `--help` and `--version` print
/// and exit 0.
pub fn parse<T: Parser>() -> anyhow::Result<T> {
    T::try_parse().map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => e.exit(),
        _ => anyhow::anyhow!(e.render().to_string().trim_end().to_string()),
    })
}

fn ifname(s: &str) -> Result<String, String> {
    if kvnet_model::ifname::is_valid(s) {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a valid interface name"))
    }
}

fn fd(s: &str) -> Result<RawFd, String> {
    s.parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("'{s}' is not a file descriptor number"))
}

/// The environment and exit status the two qemu scripts share.
const HOOK_HELP: &str = "\
Environment:
  KVNET_NETWORK
          The network (kvnet-ifup: default `default`; kvnet-ifdown: default whichever
          network has the port).
  KVNET_SOCKET
          kvnetd's API socket (default /run/kvnet/kvnetd.sock).

Exit status:
  0       Done.
  1       A bad argument, or kvnetd refused the request or could not be reached
          (qemu then fails to start the guest's network).

See also:
  kvnet(1), kvnetd(8), kvnet-bridge-helper(8), qemu(1) -netdev tap";

/// The TAP qemu passes to its scripts.
#[derive(Args, Debug)]
pub struct Tap {
    /// The TAP interface qemu created.
    #[arg(value_parser = ifname)]
    pub ifname: String,
}

/// `kvnet-ifup`.
#[derive(Parser, Debug)]
#[command(
    name = "kvnet-ifup",
    version,
    about = "qemu script=: put a guest's TAP on a kvnet network",
    long_about = "qemu script=: put a guest's TAP on a kvnet network.\n\n\
        qemu, running as root with -netdev tap,script=kvnet-ifup, runs it with the TAP's \
        name. It asks kvnetd to attach the TAP to the network's bridge and register it as \
        a port (kind `script`), as libvirt's qemu-ifup does.",
    after_long_help = HOOK_HELP
)]
pub struct Ifup {
    #[command(flatten)]
    pub tap: Tap,
}

/// `kvnet-ifdown`.
#[derive(Parser, Debug)]
#[command(
    name = "kvnet-ifdown",
    version,
    about = "qemu downscript=: take a guest's TAP off its kvnet network",
    long_about = "qemu downscript=: take a guest's TAP off its kvnet network.\n\n\
        qemu runs it with the TAP's name when the guest's network goes away; kvnetd \
        detaches the TAP and forgets the port. The TAP itself goes when qemu closes it.",
    after_long_help = HOOK_HELP
)]
pub struct Ifdown {
    #[command(flatten)]
    pub tap: Tap,
}

/// `kvnet-bridge-helper`: the arguments qemu passes, `[--use-vnet] --br=BRIDGE --fd=N`.
#[derive(Parser, Debug)]
#[command(
    name = "kvnet-bridge-helper",
    version,
    about = "qemu's bridge helper for unprivileged guests on kvnet bridges",
    long_about = "qemu's bridge helper for unprivileged guests on kvnet bridges.\n\n\
        qemu -netdev bridge,br=BRIDGE,helper=kvnet-bridge-helper runs it as the user \
        running qemu. If the ACL allows BRIDGE, it creates a TAP with the bridge's MTU, \
        attaches it, sends its file back over the Unix socket --fd (as \
        qemu-bridge-helper does) and registers the port with kvnetd if kvnetd answers. \
        The TAP goes when qemu closes it.\n\n\
        It needs CAP_NET_ADMIN as a file capability (setcap cap_net_admin+ep); it \
        refuses to run setuid root.",
    after_long_help = "\
Files:
  /etc/kvnet/bridge.conf
          The ACL, in qemu's bridge.conf syntax: `allow BRIDGE|all`, `deny BRIDGE|all`,
          `include FILE`, `#` comments. Deny wins; nothing allowed means denied; a
          missing or unreadable file or include denies everything.

Environment:
  KVNET_BRIDGE_CONF, KVNET_SOCKET
          Another ACL, another kvnetd socket: honoured only for a real uid of 0.

Exit status:
  0       The TAP was handed to qemu.
  1       Denied by the ACL, a bad argument, or the TAP could not be made or attached.

See also:
  kvnet(1), kvnetd(8), kvnet-ifup(8), qemu(1) -netdev bridge"
)]
pub struct BridgeHelper {
    /// Give the TAP a virtio-net header (IFF_VNET_HDR).
    #[arg(long)]
    pub use_vnet: bool,
    /// The bridge to attach the TAP to.
    #[arg(long = "br", value_name = "BRIDGE", value_parser = bridge)]
    pub bridge: String,
    /// The Unix socket to send the TAP's file over.
    #[arg(long, value_name = "UNIXFD", value_parser = fd)]
    pub fd: RawFd,
}

fn bridge(s: &str) -> Result<String, String> {
    ifname(s).map_err(|_| format!("'{s}' is not a valid bridge name"))
}
