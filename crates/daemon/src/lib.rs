//! kvnetd's command line. The daemon itself is the `kvnetd` binary; this library holds
//! what the man page generator (kvnet-docgen) needs to reach the same clap definition.

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// What kvnet does about other firewalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForeignFirewalls {
    /// Add and remove the narrow rules and zone bindings kvnet's networks need.
    Fix,
    /// Change nothing; warn at start and report with `kvnet doctor`.
    Report,
}

/// The sections of `kvnetd --help` (and kvnetd(8)) the options do not cover.
const AFTER_HELP: &str = "\
Files:
  /etc/kvnet/networks/NAME.xml
          Persistent network definitions (root only); networks/autostart/NAME.xml
          marks one to start at boot.
  /etc/kvnet/fabric.toml
          The EVPN fabric this host belongs to (kvnet fabric-config); when it exists,
          kvnet doctor asks FRR (vtysh, or $KVNET_VTYSH) about its sessions and VNIs.
  /etc/kvnet/bridge.conf
          kvnet-bridge-helper's ACL; kvnetd keeps /etc/kvnet readable for it.
  /var/lib/kvnet/leases/, /var/lib/kvnet/ports/
          DHCP lease journals and guest ports, kept across restarts.
  /run/kvnet/kvnetd.sock
          The API socket (root only unless --socket-group).
  /run/kvnet/networks/NAME.json, /run/kvnet/kvnetd.pid
          The state of active networks, adopted by the next kvnetd; the lock that
          allows one kvnetd per run dir.

Systemd:
  kvnetd.service, kvnetd.socket
          Type=notify: READY=1 once the running networks are adopted and the autostart
          ones started, STATUS= lines, watchdog keep-alives (NOTIFY_SOCKET,
          WATCHDOG_USEC); the API socket may be passed in (LISTEN_FDS, LISTEN_PID).

Signals:
  SIGTERM, SIGINT
          Stop: answer the requests already accepted and exit. Active networks stay up.

Exit status:
  0       Stopped by a signal.
  1       Could not start (another kvnetd uses the run dir, netlink or a directory
          is unusable, a bad passed socket).
  2       A usage error.

See also:
  kvnet(1), kvnet-bridge-helper(8), kvnet-ifup(8), kvnet-ifdown(8)";

/// kvnetd's command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "kvnetd",
    version,
    about = "kvnet daemon: virtual networks for KVM/QEMU guests",
    long_about = "kvnet daemon: virtual networks for KVM/QEMU guests.\n\n\
        kvnetd serves every kvnet network from one process: bridges, addresses, routes, \
        nftables rules, DHCPv4/DHCPv6, DNS and router advertisements, and guests' TAP \
        ports. Networks are libvirt network XML, managed with kvnet(1). Networks stay up \
        when kvnetd stops; the next kvnetd adopts them.",
    after_long_help = AFTER_HELP
)]
pub struct Args {
    /// Network definitions (NAME.xml) and autostart links.
    #[arg(long, default_value = "/etc/kvnet", env = "KVNET_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// Durable state (leases, first-start marker).
    #[arg(long, default_value = "/var/lib/kvnet", env = "KVNET_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Runtime state: API socket and status of active networks (a tmpfs in production).
    #[arg(long, default_value = "/run/kvnet", env = "KVNET_RUN_DIR")]
    pub run_dir: PathBuf,
    /// API socket path (default RUN_DIR/kvnetd.sock).
    #[arg(long, env = "KVNET_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Group allowed to use the API socket (default: root only).
    #[arg(long)]
    pub socket_group: Option<String>,
    /// nftables table kvnet owns (family inet).
    #[arg(long, default_value = "kvnet")]
    pub nft_table: String,
    /// Other firewalls (Docker, ufw, firewalld): add the narrow rules and zone
    /// bindings kvnet's networks need (fix), or only warn and report (report).
    #[arg(
        long,
        value_enum,
        default_value = "fix",
        env = "KVNET_FOREIGN_FIREWALLS"
    )]
    pub foreign_firewalls: ForeignFirewalls,
    /// Log filter, e.g. "info" or "kvnetd=debug".
    #[arg(long, default_value = "info", env = "KVNET_LOG")]
    pub log: String,
    /// Serve Prometheus metrics (GET /metrics) on ADDR: a loopback address and port
    /// (127.0.0.1:9125, [::1]:9125) or a Unix socket (unix:/run/kvnet/metrics.sock).
    /// Off unless given.
    #[arg(long, value_name = "ADDR", env = "KVNET_METRICS")]
    pub metrics: Option<String>,
}
