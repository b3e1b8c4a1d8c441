//! Every network kvnetd knows — defined, active, transient — and the pure decisions
//! about them, like libvirt's network object list: what a define or create makes of an
//! XML, whether a verb may proceed, what an update changes, what a network's status
//! record says. No I/O and no clock: callers pass in what they read (host links, the
//! time), then persist and apply what comes back.

use crate::store::status::Status;
use anyhow::{Result, anyhow, bail};
use kvnet_api::NetSummary;
use kvnet_model::{MacAddr, Network, apply_update};
use std::collections::{BTreeMap, HashSet};

mod index;
use index::ActiveIndex;

/// One network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetObj {
    /// The persistent definition; None for a transient network.
    pub def: Option<Network>,
    /// The definition it runs with; Some while active.
    pub live: Option<Network>,
    /// kvnet created the bridge and deletes it at destroy.
    pub owns_bridge: bool,
    pub autostart: bool,
    /// Unix time of the start, while active.
    pub started: u64,
}

impl NetObj {
    fn new(autostart: bool) -> NetObj {
        NetObj {
            def: None,
            live: None,
            owns_bridge: false,
            autostart,
            started: 0,
        }
    }

    /// The definition shown by default: the live one while active.
    pub fn current(&self) -> &Network {
        self.live
            .as_ref()
            .or(self.def.as_ref())
            .expect("a network has a live or persistent definition")
    }

    fn uuid(&self) -> Option<uuid::Uuid> {
        self.current().uuid
    }

    /// The status record of an active network.
    fn status(&self) -> Option<Status> {
        let live = self.live.as_ref()?;
        Some(Status {
            live_xml: live.to_xml(),
            transient: self.def.is_none(),
            owns_bridge: self.owns_bridge,
            started: self.started,
            stopping: false,
        })
    }
}

/// Which definitions a net-update changes (neither = virsh's --current).
#[derive(Debug, Clone, Copy)]
pub struct UpdateTarget {
    pub live: bool,
    pub config: bool,
}

/// What a net-update makes of a network: the new definitions to persist and apply.
#[derive(Debug)]
pub struct UpdatePlan {
    pub def: Option<Network>,
    /// (running definition, its replacement).
    pub live: Option<(Network, Network)>,
}

#[derive(Default)]
pub struct Registry {
    nets: BTreeMap<String, NetObj>,
    /// The live definitions' subnets and bridges.
    active: ActiveIndex,
}

impl Registry {
    pub fn get(&self, name: &str) -> Result<&NetObj> {
        self.nets
            .get(name)
            .ok_or_else(|| anyhow!("network '{name}' not found"))
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut NetObj> {
        obj_mut(&mut self.nets, name)
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// The running definitions of the active networks.
    pub fn active(&self) -> Vec<&Network> {
        self.nets.values().filter_map(|o| o.live.as_ref()).collect()
    }

    /// The active networks whose subnets overlap `net`'s or that use its bridge name:
    /// what a start must check it against.
    pub fn active_conflicts(&self, net: &Network) -> Vec<&Network> {
        self.active
            .conflicts(net)
            .into_iter()
            .filter_map(|n| self.nets.get(n)?.live.as_ref())
            .collect()
    }

    /// The active network `name`'s running definition.
    pub fn live(&self, name: &str) -> Result<&Network> {
        self.get(name)?
            .live
            .as_ref()
            .ok_or_else(|| anyhow!("network '{name}' is not active"))
    }

    /// The active network whose bridge is `bridge`.
    pub fn by_bridge(&self, bridge: &str) -> Option<&Network> {
        self.active()
            .into_iter()
            .find(|n| n.bridge_name() == Some(bridge))
    }

    /// Inactive networks marked autostart.
    pub fn autostart_pending(&self) -> Vec<String> {
        self.nets
            .iter()
            .filter(|(_, o)| o.autostart && o.live.is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The persistent definitions (for choosing the `default` network's subnet).
    pub fn definitions(&self) -> Vec<&Network> {
        self.nets.values().filter_map(|o| o.def.as_ref()).collect()
    }

    /// A definition read from the config dir at daemon start.
    pub fn load(&mut self, net: Network, autostart: bool) {
        let obj = NetObj {
            def: Some(net),
            ..NetObj::new(autostart)
        };
        self.nets.insert(obj.current().name.clone(), obj);
    }

    /// A network a previous kvnetd left running, from its status record.
    pub fn adopt(&mut self, live: Network, st: &Status) {
        let obj = self
            .nets
            .entry(live.name.clone())
            .or_insert_with(|| NetObj::new(false));
        if st.transient {
            obj.def = None;
        }
        self.active.insert(&live);
        obj.live = Some(live);
        obj.owns_bridge = st.owns_bridge;
        obj.started = st.started;
    }

    pub fn summaries(&self) -> Vec<NetSummary> {
        self.nets.iter().map(|(n, o)| summary(n, o)).collect()
    }

    pub fn summary(&self, name: &str) -> Result<NetSummary> {
        Ok(summary(name, self.get(name)?))
    }

    pub fn dump_xml(&self, name: &str, inactive: bool) -> Result<String> {
        let o = self.get(name)?;
        let n = if inactive {
            o.def.as_ref().unwrap_or(o.current())
        } else {
            o.current()
        };
        Ok(n.to_xml())
    }

    /// The status record of active network `name` as it stands.
    #[cfg(test)]
    pub fn status(&self, name: &str) -> Option<Status> {
        self.nets.get(name)?.status()
    }

    /// Parse, complete and check a definition against the others, like
    /// virNetworkDefineXML. `host_links` are the names of the host's links (a generated
    /// bridge name must not collide with one); `entropy` feeds generated UUIDs and MACs.
    pub fn prepare(
        &self,
        xml: &str,
        host_links: impl IntoIterator<Item = String>,
        entropy: &mut dyn FnMut() -> u64,
    ) -> Result<Network> {
        let mut net = Network::from_xml(xml)
            .and_then(|n| n.validate_for_define().map(|()| n))
            .map_err(|e| anyhow!("invalid network XML: {e}"))?;
        let owns_bridge = net.profile().owns_bridge();
        if let Some(obj) = self.nets.get(&net.name) {
            match (net.uuid, obj.uuid()) {
                (Some(new), Some(cur)) if new != cur => {
                    bail!("network '{}' already exists with uuid {cur}", net.name)
                }
                (None, Some(cur)) => net.uuid = Some(cur),
                _ => {}
            }
            // Keep what was generated at the first define unless the new XML says otherwise.
            let old = obj.def.as_ref().unwrap_or(obj.current());
            if owns_bridge && net.mac.is_none() {
                net.mac = old.mac;
            }
            if owns_bridge
                && net.bridge_name().is_none()
                && let Some(mut b) = old.bridge.clone()
            {
                let new = net.bridge.as_ref();
                b.stp = new.and_then(|n| n.stp).or(b.stp);
                b.delay = new.and_then(|n| n.delay).or(b.delay);
                net.bridge = Some(b);
            }
        }
        if let Some(u) = net.uuid
            && let Some((other, _)) = self
                .nets
                .iter()
                .find(|(n, o)| *n != &net.name && o.uuid() == Some(u))
        {
            bail!("uuid {u} is already used by network '{other}'");
        }
        let others = || {
            self.nets
                .iter()
                .filter(|(n, _)| *n != &net.name)
                .flat_map(|(_, o)| [o.def.as_ref(), o.live.as_ref()])
                .flatten()
        };
        let mut used_bridges: HashSet<String> = others()
            .filter(|n| n.profile().owns_bridge())
            .filter_map(|n| n.bridge_name().map(str::to_string))
            .collect();
        if owns_bridge
            && let Some(br) = net.bridge_name()
            && used_bridges.contains(br)
        {
            bail!("bridge name '{br}' is already in use by another network");
        }
        used_bridges.extend(host_links);
        let used_macs: HashSet<MacAddr> = others().filter_map(|n| n.mac).collect();
        net.complete_for_define(&used_bridges, &used_macs, entropy);
        Ok(net)
    }

    /// Record a prepared definition (already saved). Returns whether a running
    /// transient network became persistent, and then its new status record.
    pub fn define(&mut self, net: Network, autostart: bool) -> Option<Status> {
        let obj = self
            .nets
            .entry(net.name.clone())
            .or_insert_with(|| NetObj::new(autostart));
        let was_transient_active = obj.def.is_none() && obj.live.is_some();
        obj.def = Some(net);
        was_transient_active.then(|| obj.status()).flatten()
    }

    /// Register a prepared transient network about to start (net-create).
    pub fn create(&mut self, net: &Network) -> Result<()> {
        if self.nets.contains_key(&net.name) {
            bail!("network '{}' already exists", net.name);
        }
        self.nets.insert(net.name.clone(), NetObj::new(false));
        Ok(())
    }

    /// Forget a transient network whose start failed.
    pub fn forget(&mut self, name: &str) {
        if self
            .nets
            .get(name)
            .is_some_and(|o| o.def.is_none() && o.live.is_none())
        {
            self.nets.remove(name);
        }
    }

    /// The definition to start for net-start.
    pub fn startable(&self, name: &str) -> Result<Network> {
        let obj = self.get(name)?;
        if obj.live.is_some() {
            bail!("network '{name}' is already active");
        }
        obj.def
            .clone()
            .ok_or_else(|| anyhow!("network '{name}' has no definition"))
    }

    /// The status record a start writes ahead, before the kernel is touched.
    pub fn starting_status(&self, net: &Network, started: u64) -> Status {
        Status {
            live_xml: net.to_xml(),
            transient: self.nets.get(&net.name).is_none_or(|o| o.def.is_none()),
            owns_bridge: net.profile().owns_bridge(),
            started,
            stopping: false,
        }
    }

    /// `net` is running now.
    pub fn started(&mut self, net: Network, started: u64) -> Result<()> {
        let obj = obj_mut(&mut self.nets, &net.name)?;
        obj.owns_bridge = net.profile().owns_bridge();
        obj.started = started;
        self.active.insert(&net);
        obj.live = Some(net);
        Ok(())
    }

    /// `name` stopped: its status record as the stop leaves it (marked stopping until
    /// the teardown is done), and whether the network is gone (it was transient).
    pub fn stopped(&mut self, name: &str) -> Result<(Status, bool)> {
        let obj = obj_mut(&mut self.nets, name)?;
        let mut st = obj
            .status()
            .ok_or_else(|| anyhow!("network '{name}' is not active"))?;
        st.stopping = true;
        if let Some(live) = obj.live.take() {
            self.active.remove(&live);
        }
        let gone = obj.def.is_none();
        if gone {
            self.nets.remove(name);
        }
        Ok((st, gone))
    }

    /// Checks of net-undefine; `ports` are the network's registered ports.
    pub fn check_undefine(&self, name: &str, ports: &[String]) -> Result<()> {
        if self.get(name)?.def.is_none() {
            bail!("cannot undefine transient network '{name}'");
        }
        // A port's guest would lose its network without being told: make it explicit.
        if !ports.is_empty() {
            bail!(
                "cannot undefine network '{name}': it has ports {}; delete them first (kvnet port-delete)",
                ports.join(", ")
            );
        }
        Ok(())
    }

    /// Drop the definition (files already removed). A running network becomes
    /// transient, as in libvirt: its new status record is returned.
    pub fn undefine(&mut self, name: &str) -> Result<Option<Status>> {
        let obj = self.get_mut(name)?;
        obj.def = None;
        obj.autostart = false;
        let st = obj.status();
        if st.is_none() {
            self.nets.remove(name);
        }
        Ok(st)
    }

    pub fn check_autostart(&self, name: &str) -> Result<()> {
        if self.get(name)?.def.is_none() {
            bail!("cannot set autostart for transient network '{name}'");
        }
        Ok(())
    }

    pub fn set_autostart(&mut self, name: &str, enable: bool) -> Result<()> {
        self.get_mut(name)?.autostart = enable;
        Ok(())
    }

    /// What a net-update changes, without changing anything.
    pub fn plan_update(
        &self,
        name: &str,
        u: &kvnet_api::request::Update,
        target: UpdateTarget,
    ) -> Result<UpdatePlan> {
        let o = self.get(name)?;
        // --current (neither flag): the live network if active, else the definition.
        let (live, config) = if !target.live && !target.config {
            (o.live.is_some(), o.live.is_none())
        } else {
            (target.live, target.config)
        };
        if live && o.live.is_none() {
            bail!("network '{name}' is not active, cannot update it live");
        }
        if config && o.def.is_none() {
            bail!("cannot update the persistent definition of transient network '{name}'");
        }
        let apply = |n: &Network| apply_update(n, u.command, u.section, &u.xml, u.parent_index);
        Ok(UpdatePlan {
            def: match (&o.def, config) {
                (Some(d), true) => Some(apply(d)?),
                _ => None,
            },
            live: match (&o.live, live) {
                (Some(l), true) => Some((l.clone(), apply(l)?)),
                _ => None,
            },
        })
    }

    /// Record an applied update; the new status record when the live network changed.
    pub fn commit_update(&mut self, name: &str, plan: UpdatePlan) -> Result<Option<Status>> {
        let o = obj_mut(&mut self.nets, name)?;
        if let Some(d) = plan.def {
            o.def = Some(d);
        }
        Ok(match plan.live {
            Some((_, l)) => {
                if let Some(old) = o.live.replace(l) {
                    self.active.remove(&old);
                }
                self.active.insert(o.live.as_ref().expect("just set"));
                o.status()
            }
            None => None,
        })
    }
}

fn obj_mut<'a>(nets: &'a mut BTreeMap<String, NetObj>, name: &str) -> Result<&'a mut NetObj> {
    nets.get_mut(name)
        .ok_or_else(|| anyhow!("network '{name}' not found"))
}

fn summary(name: &str, o: &NetObj) -> NetSummary {
    let n = o.current();
    NetSummary {
        name: name.to_string(),
        uuid: n.uuid.map(|u| u.to_string()).unwrap_or_default(),
        active: o.live.is_some(),
        persistent: o.def.is_some(),
        autostart: o.autostart,
        bridge: n.bridge_name().map(str::to_string),
        forward: n.forward_mode().to_string(),
        title: n.title.clone(),
    }
}

#[cfg(test)]
mod tests;
