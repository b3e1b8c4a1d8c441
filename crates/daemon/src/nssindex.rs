//! The guest-name index the NSS module (crates/nss, `libnss_kvnet.so.2`) reads, so the
//! host resolves guests by name without asking kvnetd. One file, RUN_DIR/nss-hosts,
//! rewritten atomically (temp file, rename: a reader sees the old or the new index,
//! never a torn one) from the names of every active network: static DHCP hosts and
//! `<dns><host>` names from the live definitions, and the hostnames of the DHCPv4
//! leases, plain and in the network's domain.
//!
//! A task of its own rebuilds it: when a network starts, stops or is updated (messages
//! from the lifecycle) and when a DHCPv4 service records a lease (its watch channel).
//! Bursts (a network's guests all booting) are coalesced: one write per
//! [`COALESCE`] at most. Expired leases leave at the next periodic rebuild; a rebuild
//! that changes nothing writes nothing.

use crate::services::{LeaseNames, any_recorded};
use crate::store::{self, Durability};
use kvnet_model::Network;
use nss_kvnet::index::Builder;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// A burst of changes within this time costs one write.
const COALESCE: Duration = Duration::from_millis(50);
/// Also rebuilt this often, so expired leases leave the index.
const REFRESH: Duration = Duration::from_secs(30);

/// The names of one active network.
struct NetNames {
    domain: Option<String>,
    /// From the definition: static DHCP hosts and `<dns><host>` names.
    fixed: Vec<(String, IpAddr)>,
    /// The DHCPv4 service's leases, when it runs (a subscription of the index's own).
    leases: Option<LeaseNames>,
}

enum Msg {
    Set(String, NetNames),
    Remove(String),
    /// Every active network is known (after adoption): writes may begin, so a restarted
    /// kvnetd never leaves an index without the networks it has yet to adopt.
    Ready,
}

/// The lifecycle's handle on the index task; dropping it ends the task.
pub struct NssIndex {
    tx: mpsc::UnboundedSender<Msg>,
}

/// The names `net`'s definition gives its guests.
fn fixed_names(net: &Network) -> Vec<(String, IpAddr)> {
    let statics = net
        .ips
        .iter()
        .filter_map(|ip| ip.dhcp.as_ref())
        .flat_map(|d| d.hosts.iter())
        .filter_map(|h| Some((h.name.clone()?, h.ip?)));
    let dns = net
        .dns
        .iter()
        .flat_map(|d| d.hosts.iter())
        .filter_map(|h| Some((h.ip?, &h.hostnames)))
        .flat_map(|(ip, names)| names.iter().map(move |n| (n.clone(), ip)));
    statics.chain(dns).collect()
}

impl NssIndex {
    /// Start the task writing `path`. Needs a tokio runtime.
    pub fn spawn(path: PathBuf) -> NssIndex {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(path, rx));
        NssIndex { tx }
    }

    /// `net` is active (started, adopted or updated) with these leases.
    pub fn set(&self, net: &Network, leases: Option<LeaseNames>) {
        let names = NetNames {
            domain: net.domain.as_ref().map(|d| d.name.clone()),
            fixed: fixed_names(net),
            leases,
        };
        // The task ends only with this handle: a send cannot fail before.
        let _ = self.tx.send(Msg::Set(net.name.clone(), names));
    }

    /// Network `name` stopped.
    pub fn remove(&self, name: &str) {
        let _ = self.tx.send(Msg::Remove(name.to_string()));
    }

    /// The daemon knows every active network: see [`Msg::Ready`].
    pub fn ready(&self) {
        let _ = self.tx.send(Msg::Ready);
    }
}

/// The index file's bytes for these networks.
fn build(nets: &BTreeMap<String, NetNames>) -> Vec<u8> {
    let mut b = Builder::default();
    for n in nets.values() {
        let domain = n.domain.as_deref();
        for (name, ip) in &n.fixed {
            b.add(name, *ip, domain);
        }
        for (host, ip) in n.leases.iter().flat_map(|l| l.names()) {
            b.add_lease(&host, ip, domain);
        }
    }
    if !b.rejected.is_empty() {
        debug!(
            "guest names not usable on the host: {}",
            b.rejected.join(", ")
        );
    }
    let (bytes, left_out) = b.build();
    if left_out > 0 {
        warn!(
            "{left_out} guest names left out of the host's name index: it would pass its size cap"
        );
    }
    bytes
}

/// Resolves when any network's DHCP service records a lease.
async fn lease_recorded(nets: &mut BTreeMap<String, NetNames>) {
    any_recorded(nets.values_mut().filter_map(|n| n.leases.as_mut())).await
}

fn apply(nets: &mut BTreeMap<String, NetNames>, ready: &mut bool, m: Msg) {
    match m {
        Msg::Ready => *ready = true,
        Msg::Set(name, n) => {
            nets.insert(name, n);
        }
        Msg::Remove(name) => {
            nets.remove(&name);
        }
    }
}

async fn run(path: PathBuf, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut nets = BTreeMap::new();
    let mut ready = false;
    let mut written: Option<Vec<u8>> = None;
    let start = tokio::time::Instant::now() + REFRESH;
    let mut tick = tokio::time::interval_at(start, REFRESH);
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => return,
            },
            () = lease_recorded(&mut nets) => None,
            _ = tick.tick() => None,
        };
        if let Some(m) = msg {
            apply(&mut nets, &mut ready, m);
        }
        tokio::time::sleep(COALESCE).await;
        while let Ok(m) = rx.try_recv() {
            apply(&mut nets, &mut ready, m);
        }
        if !ready {
            continue;
        }
        // What the burst recorded is in this build.
        for l in nets.values_mut().filter_map(|n| n.leases.as_mut()) {
            l.changed();
        }
        let bytes = build(&nets);
        if written.as_ref() == Some(&bytes) {
            continue;
        }
        // Readable by every user: it resolves names for every program on the host.
        match store::write_atomic(&path, &bytes, 0o644, Durability::Runtime) {
            Ok(()) => written = Some(bytes),
            Err(e) => warn!("cannot write {}: {e:#}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definitions_names_with_and_without_its_domain() {
        let net = Network::from_xml(
            "<network><name>n</name><bridge name='br9'/><domain name='lab.test'/>\
             <dns><host ip='192.168.9.7'><hostname>db</hostname><hostname>db.other.org</hostname></host>\
             <host ip='fd00::7'><hostname>db</hostname></host></dns>\
             <ip address='192.168.9.1' prefix='24'><dhcp><range start='192.168.9.100' end='192.168.9.200'/>\
             <host mac='52:54:00:00:00:01' name='Web' ip='192.168.9.5'/></dhcp></ip></network>",
        )
        .unwrap();
        let mut nets = BTreeMap::new();
        nets.insert(
            "n".to_string(),
            NetNames {
                domain: Some("lab.test".into()),
                fixed: fixed_names(&net),
                leases: None,
            },
        );
        let all = nss_kvnet::index::parse(&build(&nets)).unwrap();
        let names: Vec<String> = all.iter().map(|(n, ip)| format!("{n} {ip}")).collect();
        assert_eq!(
            names,
            [
                "db 192.168.9.7",
                "db fd00::7",
                "db.lab.test 192.168.9.7",
                "db.lab.test fd00::7",
                "db.other.org 192.168.9.7",
                "web 192.168.9.5",
                "web.lab.test 192.168.9.5",
            ]
        );
    }
}
