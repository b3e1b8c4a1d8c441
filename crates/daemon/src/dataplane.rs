//! The thin shell that makes a started network real: bridge, addresses, routes, sysctls
//! and firewall, each step recorded so that a failure undoes exactly what was done.

use crate::plan;
use anyhow::{Context, Result, anyhow};
use kvnet_firewall::{FwNetwork, encode_add_new, render_add, render_full, render_remove};
use kvnet_host::{Netlink, Route, nft, sysctl};
use kvnet_model::Network;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32};
use tracing::{debug, info, warn};

/// Main routing table and the "static" route protocol, as `ip route add` uses.
const RT_TABLE_MAIN: u32 = 254;
const RTPROT_STATIC: u8 = 4;

pub struct Dataplane {
    pub nl: Netlink,
    /// The host's routes for the start checks, without a table read per start.
    pub routes: kvnet_host::routewatch::RouteWatcher,
    pub table: String,
    /// kvnet's table has its maps and base chains, so a new network's rules can go in
    /// with additions only (no RCU grace period, see render_add_new).
    pub skeleton: AtomicBool,
    /// Sequence numbers of native nf_tables batches.
    pub nl_seq: AtomicU32,
}

enum Undo {
    DeleteLink(u32, String),
    Firewall(FwNetwork),
    Sysctl(String, String),
}

fn static_route(r: &kvnet_model::RouteDef, oif: u32) -> Route {
    Route {
        dest: r.destination(),
        gateway: Some(r.gateway),
        oif: Some(oif),
        metric: r.metric,
        table: RT_TABLE_MAIN,
        proto: RTPROT_STATIC,
    }
}

impl Dataplane {
    /// Start `net`. `orig` records the first value kvnet overwrote for each host-wide
    /// sysctl, so that the last network needing it can restore it.
    pub async fn start(&self, net: &Network, orig: &mut BTreeMap<String, String>) -> Result<()> {
        let mut undo = Vec::new();
        match self.start_steps(net, orig, &mut undo).await {
            Ok(()) => Ok(()),
            Err(e) => {
                for u in undo.into_iter().rev() {
                    if let Err(ue) = self.run_undo(u, orig).await {
                        warn!(network = %net.name, "rollback step failed: {ue:#}");
                    }
                }
                Err(e)
            }
        }
    }

    async fn start_steps(
        &self,
        net: &Network,
        orig: &mut BTreeMap<String, String>,
        undo: &mut Vec<Undo>,
    ) -> Result<()> {
        if !net.profile().owns_bridge() {
            // bridge mode uses the host's bridge as it is; plan::check_start verified it.
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let spec = plan::bridge_spec(net)
            .ok_or_else(|| anyhow!("network '{}' has no bridge name", net.name))?;
        let idx = self
            .nl
            .create_bridge(&spec)
            .await
            .with_context(|| format!("create bridge {}", spec.name))?;
        undo.push(Undo::DeleteLink(idx, spec.name.clone()));
        for (key, value) in plan::bridge_sysctls(net, &spec.name) {
            sysctl::write(&key, value)?;
        }
        for addr in plan::bridge_addresses(net) {
            self.nl
                .add_address(idx, addr)
                .await
                .with_context(|| format!("add address {addr} to {}", spec.name))?;
        }
        self.nl
            .set_up(idx, true)
            .await
            .with_context(|| format!("set {} up", spec.name))?;
        for r in &net.routes {
            let route = static_route(r, idx);
            self.nl.add_route(&route).await.with_context(|| {
                format!(
                    "add route {} via {} dev {}",
                    route.dest, r.gateway, spec.name
                )
            })?;
        }
        for key in plan::global_sysctls(net) {
            let old = sysctl::read(key)?;
            if old.trim() != "1" {
                sysctl::write(key, "1")?;
                if !orig.contains_key(key) {
                    orig.insert(key.to_string(), old.trim().to_string());
                    undo.push(Undo::Sysctl(key.to_string(), old.trim().to_string()));
                }
            }
        }
        let t_kernel = t0.elapsed();
        if let Some(fw) = plan::fw_network(net) {
            // The renderer refuses names that could escape nft's quoting; check first.
            fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
            self.add_firewall(&fw)?;
            undo.push(Undo::Firewall(fw));
        }
        debug!(network = %net.name, "links, addresses, routes, sysctls: {t_kernel:?}; firewall: {:?}", t0.elapsed() - t_kernel);
        Ok(())
    }

    async fn run_undo(&self, u: Undo, orig: &mut BTreeMap<String, String>) -> Result<()> {
        match u {
            Undo::DeleteLink(idx, name) => self
                .nl
                .delete_link(idx)
                .await
                .with_context(|| format!("delete {name}"))?,
            Undo::Firewall(fw) => nft::apply(&render_remove(&self.table, &fw))?,
            Undo::Sysctl(key, old) => {
                sysctl::write(&key, &old)?;
                orig.remove(&key);
            }
        }
        Ok(())
    }

    /// Remove everything `net` added, now. Keeps going past failures and reports them
    /// all, so one stuck step never leaves the rest behind. `still_needed` are the
    /// host-wide sysctls other active networks rely on.
    pub async fn stop(
        &self,
        net: &Network,
        owns_bridge: bool,
        still_needed: &[&str],
        orig: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(fw) = plan::fw_network(net)
            && let Err(e) = nft::apply(&render_remove(&self.table, &fw))
        {
            errors.push(format!("remove firewall rules: {e}"));
        }
        if owns_bridge && let Some(br) = plan::bridge_name(net) {
            match self.nl.link(br).await {
                Ok(Some(l)) => {
                    if let Err(e) = self.nl.delete_link(l.index).await {
                        errors.push(format!("delete bridge {br}: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("look up bridge {br}: {e}")),
            }
        }
        errors.extend(release_sysctls(net, still_needed, orig));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(errors.join("; ")))
        }
    }

    /// The part of a stop that traffic notices, done at once: the bridge goes down
    /// (its routes with it) and forwarding sysctls nobody needs are restored. The
    /// rest is returned as a job for the background teardown.
    pub async fn quiesce(
        &self,
        net: &Network,
        owns_bridge: bool,
        still_needed: &[&str],
        orig: &mut BTreeMap<String, String>,
    ) -> (Option<FwNetwork>, Option<String>, Vec<String>) {
        let mut errors = Vec::new();
        let bridge = if owns_bridge {
            plan::bridge_name(net).map(str::to_string)
        } else {
            None
        };
        if let Some(br) = &bridge {
            match self.nl.link(br).await {
                Ok(Some(l)) => {
                    if let Err(e) = self.nl.set_up(l.index, false).await {
                        errors.push(format!("set {br} down: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("look up bridge {br}: {e}")),
            }
        }
        errors.extend(release_sysctls(net, still_needed, orig));
        (plan::fw_network(net), bridge, errors)
    }

    /// A restarted daemon takes over a network it started before. Returns false when the
    /// bridge is gone (the network cannot be adopted and must be cleaned up). Everything
    /// that differs from the definition is corrected; what matches is left untouched so
    /// guest traffic is not disturbed.
    pub async fn adopt(&self, net: &Network, owns_bridge: bool) -> Result<bool> {
        if !owns_bridge || !net.profile().owns_bridge() {
            return Ok(true);
        }
        let Some(spec) = plan::bridge_spec(net) else {
            return Ok(false);
        };
        let Some(link) = self.nl.link(&spec.name).await? else {
            return Ok(false);
        };
        if link.kind.as_deref() != Some("bridge") {
            return Ok(false);
        }
        let mut fixed = self.nl.reconcile_bridge(&spec).await?;
        for (key, value) in plan::bridge_sysctls(net, &spec.name) {
            if sysctl::read(&key)?.trim() != value {
                sysctl::write(&key, value)?;
                fixed.push(format!("{key}={value}"));
            }
        }
        let have = self.nl.addresses(link.index).await?;
        for addr in plan::bridge_addresses(net) {
            if !have.contains(&addr) {
                self.nl.add_address(link.index, addr).await?;
                fixed.push(format!("address {addr}"));
            }
        }
        if !link.up {
            self.nl.set_up(link.index, true).await?;
            fixed.push("link up".into());
        }
        let routes = self.nl.routes().await?;
        for r in &net.routes {
            let want = static_route(r, link.index);
            if !routes
                .iter()
                .any(|h| h.dest == want.dest && h.oif == want.oif && h.gateway == want.gateway)
            {
                self.nl.add_route(&want).await?;
                fixed.push(format!("route {}", want.dest));
            }
        }
        for key in plan::global_sysctls(net) {
            if sysctl::read(key)?.trim() != "1" {
                sysctl::write(key, "1")?;
                fixed.push(format!("{key}=1"));
            }
        }
        if !fixed.is_empty() {
            info!(network = %net.name, "adopted with corrections: {}", fixed.join(", "));
        }
        Ok(true)
    }

    /// Make kvnet's table exactly the desired state for all active networks, in one
    /// atomic transaction.
    pub fn reconcile_firewall(&self, active: &[&Network]) -> Result<()> {
        let fws: Vec<FwNetwork> = active.iter().filter_map(|n| plan::fw_network(n)).collect();
        kvnet_firewall::validate_all(&fws).map_err(|e| anyhow!("firewall: {e}"))?;
        nft::apply(&render_full(&self.table, &fws)).context("apply firewall ruleset")?;
        // render_full drops the table when no network needs it.
        self.skeleton.store(!fws.is_empty(), Relaxed);
        Ok(())
    }

    /// Install a starting network's rules. When the skeleton is known to be there, the
    /// additions go straight to the kernel as one netlink batch: no nft process, and no
    /// dump of the whole table into nft's cache, which would make the 200th start slower
    /// than the 1st. Otherwise (or if that assumption fails: the batch is atomic, a
    /// failure changes nothing) the idempotent full add through nft.
    fn add_firewall(&self, fw: &FwNetwork) -> Result<()> {
        if self.skeleton.load(Relaxed) {
            let seq = self.nl_seq.fetch_add(1024, Relaxed);
            match nft::apply_batch(&encode_add_new(&self.table, fw, seq)) {
                Ok(()) => return Ok(()),
                Err(e) => debug!(network = %fw.name, "fast firewall add failed, using nft: {e}"),
            }
        }
        nft::apply(&render_add(&self.table, fw)).context("apply firewall rules")?;
        self.skeleton.store(true, Relaxed);
        Ok(())
    }

    /// The comparable form of the table `reconcile_firewall` would leave for `active`;
    /// None when they cannot be rendered.
    pub fn expected_firewall_listing(&self, active: &[&Network]) -> Option<String> {
        let fws: Vec<FwNetwork> = active.iter().filter_map(|n| plan::fw_network(n)).collect();
        kvnet_firewall::validate_all(&fws).ok()?;
        Some(kvnet_firewall::expected_listing(&self.table, &fws))
    }

    /// kvnet's table in comparable form, None when it does not exist.
    pub fn firewall_listing(&self) -> Result<Option<String>> {
        Ok(nft::list_table("inet", &self.table)?.map(|l| kvnet_firewall::normalize_listing(&l)))
    }

    /// Re-apply one running network's firewall after a live update (e.g. forward-interface).
    pub fn refresh_firewall(&self, old: &Network, new: &Network) -> Result<()> {
        let new = plan::fw_network(new);
        if let Some(fw) = &new {
            fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
        }
        if let Some(fw) = plan::fw_network(old) {
            nft::apply(&render_remove(&self.table, &fw))?;
        }
        if let Some(fw) = &new {
            nft::apply(&render_add(&self.table, fw))?;
        }
        Ok(())
    }
}

pub fn release_sysctls(
    net: &Network,
    still_needed: &[&str],
    orig: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for key in plan::global_sysctls(net) {
        if still_needed.contains(&key) {
            continue;
        }
        if let Some(old) = orig.remove(key)
            && let Err(e) = sysctl::write(key, &old)
        {
            errors.push(format!("restore {key}: {e}"));
        }
    }
    errors
}
