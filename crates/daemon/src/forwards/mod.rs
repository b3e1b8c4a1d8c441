//! Port forwards into NAT guests (`net-forward-add`): defined in the network's kvnet
//! metadata, installed as nftables map elements by the firewall, and kept pointing at
//! their guests. [`Forwarder`] resolves each active network's forwards (`resolve`)
//! and installs them through [`Firewall::set_forwards`] — synchronously for a verb, so
//! its error reaches the caller, and from a task of its own when a DHCPv4 service
//! records a lease, so a forward follows a guest whose address changes with no command.

pub mod resolve;
pub mod verbs;

use crate::dataplane::firewall::Firewall;
use crate::services::{LeaseNames, any_recorded};
use anyhow::Result;
use kvnet_model::{Network, PortForward};
use resolve::{GuestLease, Resolved, fw_forwards, resolve};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// A burst of lease changes within this time is resolved once.
const COALESCE: Duration = Duration::from_millis(20);
/// Also resolved this often, so that an expired lease stops being forwarded to.
const REFRESH: Duration = Duration::from_secs(5);

/// One active network with forwards.
struct NetForwards {
    net: Network,
    leases: Option<LeaseNames>,
}

enum Msg {
    Set(Box<NetForwards>),
    Remove(String),
}

/// The lifecycle's handle on the forwards; dropping it ends the follow task.
pub struct Forwarder {
    fw: Firewall,
    tx: mpsc::UnboundedSender<Msg>,
    /// Each active network's forwards as last resolved, for `net-forward-list`.
    resolved: Arc<Mutex<BTreeMap<String, Vec<Resolved>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current DHCPv4 leases of a network, as forwards see them.
pub fn guests(leases: Option<&LeaseNames>) -> Vec<GuestLease> {
    leases
        .map(|l| {
            l.guests()
                .into_iter()
                .map(|(hostname, mac, ip)| GuestLease {
                    hostname,
                    mac,
                    ip: IpAddr::V4(ip),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves `net`'s forwards and installs them; returns what was resolved.
fn sync_one(
    fw: &Firewall,
    resolved: &Mutex<BTreeMap<String, Vec<Resolved>>>,
    net: &Network,
    leases: Option<&LeaseNames>,
) -> Result<Vec<Resolved>> {
    let forwards = net.kvnet_ext().map(|e| e.forwards).unwrap_or_default();
    let now = resolve(net, &forwards, &guests(leases));
    fw.set_forwards(&net.name, fw_forwards(&now))?;
    let mut all = lock(resolved);
    let before: HashMap<&PortForward, Option<IpAddr>> = all
        .get(&net.name)
        .iter()
        .flat_map(|b| b.iter().map(|r| (&r.forward, r.guest)))
        .collect();
    for r in &now {
        let was = before.get(&r.forward).copied().flatten();
        if was.is_some() && was != r.guest {
            let to = r
                .guest
                .map_or("nowhere (no lease)".into(), |a| a.to_string());
            info!(network = %net.name, event = "forward", "forward {} now goes to {to}", r.forward);
            crate::events::emit(
                &net.name,
                kvnet_api::EventKind::Forward,
                "moved",
                &[("forward", r.forward.to_string()), ("to", to)],
            );
        }
    }
    drop(before);
    all.insert(net.name.clone(), now.clone());
    Ok(now)
}

impl Forwarder {
    /// Start the follow task. Needs a tokio runtime.
    pub fn spawn(fw: Firewall) -> Forwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        let resolved = Arc::new(Mutex::new(BTreeMap::new()));
        tokio::spawn(run(fw.clone(), resolved.clone(), rx));
        Forwarder { fw, tx, resolved }
    }

    /// `net` is active (started, adopted or updated) with these leases: its forwards
    /// are resolved and installed now, then followed.
    pub fn set(&self, net: &Network, leases: Option<LeaseNames>) -> Result<Vec<Resolved>> {
        let res = sync_one(&self.fw, &self.resolved, net, leases.as_ref());
        // Only networks with forwards are followed.
        let msg = match &res {
            Ok(r) if r.is_empty() => Msg::Remove(net.name.clone()),
            _ => Msg::Set(Box::new(NetForwards {
                net: net.clone(),
                leases,
            })),
        };
        let _ = self.tx.send(msg);
        res
    }

    /// Network `name` stopped: its forwards went with its rules.
    pub fn remove(&self, name: &str) {
        lock(&self.resolved).remove(name);
        let _ = self.tx.send(Msg::Remove(name.to_string()));
    }

    /// Network `name`'s forwards as last resolved (empty when it is not active).
    pub fn resolved(&self, name: &str) -> Vec<Resolved> {
        lock(&self.resolved).get(name).cloned().unwrap_or_default()
    }
}

/// Resolves when any followed network's DHCP service records a lease.
async fn lease_recorded(nets: &mut BTreeMap<String, NetForwards>) {
    any_recorded(nets.values_mut().filter_map(|n| n.leases.as_mut())).await
}

async fn run(
    fw: Firewall,
    resolved: Arc<Mutex<BTreeMap<String, Vec<Resolved>>>>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut nets: BTreeMap<String, NetForwards> = BTreeMap::new();
    let apply = |nets: &mut BTreeMap<String, NetForwards>, m: Msg| match m {
        Msg::Set(n) => {
            nets.insert(n.net.name.clone(), *n);
        }
        Msg::Remove(name) => {
            nets.remove(&name);
        }
    };
    let start = tokio::time::Instant::now() + REFRESH;
    let mut tick = tokio::time::interval_at(start, REFRESH);
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                // A verb resolved it already.
                Some(m) => { apply(&mut nets, m); continue; }
                None => return,
            },
            () = lease_recorded(&mut nets) => {}
            _ = tick.tick() => {}
        }
        tokio::time::sleep(COALESCE).await;
        while let Ok(m) = rx.try_recv() {
            apply(&mut nets, m);
        }
        for n in nets.values_mut() {
            if let Some(l) = n.leases.as_mut() {
                l.changed();
            }
            if let Err(e) = sync_one(&fw, &resolved, &n.net, n.leases.as_ref()) {
                warn!(network = %n.net.name, "port forwards not updated: {e:#}");
            }
        }
    }
}
