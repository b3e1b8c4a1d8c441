//! Where kvnetd keeps things. Every path is configurable so that many daemons can run
//! side by side (tests run one per network namespace).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    /// Configuration, readable by everyone (0755): the bridge helper's `bridge.conf`,
    /// which unprivileged users' qemu reads, and the private `networks/` directory.
    pub config_dir: PathBuf,
    /// Durable state that is not configuration (lease journals, first-start marker).
    pub state_dir: PathBuf,
    /// Runtime state that must not survive a reboot: socket, status of active networks.
    pub run_dir: PathBuf,
    pub socket: PathBuf,
}

impl Paths {
    pub fn new(
        config_dir: PathBuf,
        state_dir: PathBuf,
        run_dir: PathBuf,
        socket: Option<PathBuf>,
    ) -> Paths {
        let socket = socket.unwrap_or_else(|| run_dir.join("kvnetd.sock"));
        Paths {
            config_dir,
            state_dir,
            run_dir,
            socket,
        }
    }

    /// Persistent definitions (`NAME.xml`) and `autostart/`: root only (0700).
    pub fn networks_dir(&self) -> PathBuf {
        self.config_dir.join("networks")
    }

    pub fn definition(&self, name: &str) -> PathBuf {
        self.networks_dir().join(format!("{name}.xml"))
    }

    pub fn autostart_dir(&self) -> PathBuf {
        self.networks_dir().join("autostart")
    }

    pub fn autostart_link(&self, name: &str) -> PathBuf {
        self.autostart_dir().join(format!("{name}.xml"))
    }

    pub fn status_dir(&self) -> PathBuf {
        self.run_dir.join("networks")
    }

    pub fn status(&self, name: &str) -> PathBuf {
        self.status_dir().join(format!("{name}.json"))
    }

    /// Original values of host-wide sysctls kvnet changed, restored when no network needs them.
    pub fn sysctl_orig(&self) -> PathBuf {
        self.run_dir.join("sysctl-orig.json")
    }

    /// kvnet's table as kvnetd left it at shutdown: lets the next kvnetd see that
    /// nothing changed and leave the rules alone.
    pub fn firewall_snapshot(&self) -> PathBuf {
        self.run_dir.join("firewall-snapshot.json")
    }

    /// Present once autostart ran since boot (the run dir is a tmpfs), like libvirt's marker.
    pub fn autostarted_marker(&self) -> PathBuf {
        self.run_dir.join("autostarted")
    }

    /// Present once the built-in `default` network was defined, so that undefining it sticks.
    pub fn default_defined_marker(&self) -> PathBuf {
        self.state_dir.join("default-network-defined")
    }

    pub fn leases_dir(&self) -> PathBuf {
        self.state_dir.join("leases")
    }

    /// The DHCP lease journal of a network, kept across stops like libvirt's leases.
    pub fn lease_journal(&self, name: &str) -> PathBuf {
        self.leases_dir().join(format!("{name}.jsonl"))
    }

    /// The DHCPv6 lease journal: the v4 one's design, in a file of its own (which is
    /// why a network name may not end in `.v6`).
    pub fn lease_journal6(&self, name: &str) -> PathBuf {
        self.leases_dir().join(format!("{name}.v6.jsonl"))
    }

    /// The guest ports registered per network (durable: persistent TAPs are re-created
    /// after a reboot).
    pub fn ports_dir(&self) -> PathBuf {
        self.state_dir.join("ports")
    }

    pub fn ports(&self, name: &str) -> PathBuf {
        self.ports_dir().join(format!("{name}.json"))
    }

    /// The `iface-bridge`/`-unbridge` in progress: its plan and how far it got, so that
    /// the next kvnetd undoes (or finishes) one a kill interrupted.
    pub fn iface_journal(&self) -> PathBuf {
        self.run_dir.join("iface-change.json")
    }

    /// Guest names for the NSS module (crates/nss), which reads it at its default path
    /// /run/kvnet/nss-hosts: readable by everyone.
    pub fn nss_index(&self) -> PathBuf {
        self.run_dir.join("nss-hosts")
    }

    /// The EVPN fabric this host belongs to (kvnet-model's `fabric`), if it exists:
    /// overlay networks take their DHCP slices from it, and `kvnet doctor` checks FRR.
    pub fn fabric(&self) -> PathBuf {
        self.config_dir.join("fabric.toml")
    }

    pub fn lock(&self) -> PathBuf {
        self.run_dir.join("kvnetd.pid")
    }

    pub fn dirs(&self) -> [&Path; 3] {
        [&self.config_dir, &self.state_dir, &self.run_dir]
    }
}
