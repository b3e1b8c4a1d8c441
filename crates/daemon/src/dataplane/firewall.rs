//! kvnet's nftables table: one network's rules added or removed, the whole table rebuilt
//! in one transaction, and its state compared with what a previous kvnetd left
//! (`RUN_DIR/firewall-snapshot.json`), so a restart that finds it unchanged touches
//! nothing. The rules themselves are rendered by the pure `kvnet_firewall` crate.

use crate::paths::Paths;
use crate::store::{self, Durability};
use anyhow::{Context, Result, anyhow};
use kvnet_firewall::{FwNetwork, encode_add_new, render_add, render_full, render_remove};
use kvnet_host::nft;
use kvnet_model::Network;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32};
use tracing::{debug, error, info, warn};

fn inputs<'a>(active: impl IntoIterator<Item = &'a Network>) -> Vec<FwNetwork> {
    active
        .into_iter()
        .filter_map(FwNetwork::from_network)
        .collect()
}

/// The table as one kvnetd left it at shutdown.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    networks: Vec<String>,
    listing: String,
}

pub struct Firewall {
    table: String,
    /// kvnet's table has its sets and base chains, so a new network's rules can go in
    /// with additions only (no RCU grace period, see render_add_new).
    skeleton: AtomicBool,
    /// Sequence numbers of native nf_tables batches.
    nl_seq: AtomicU32,
}

impl Firewall {
    pub fn new(table: String) -> Firewall {
        Firewall {
            table,
            skeleton: AtomicBool::new(false),
            nl_seq: AtomicU32::new(1),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Install a starting network's rules; returns what was installed, for a rollback.
    /// When the skeleton is known to be there, the additions go straight to the kernel
    /// as one netlink batch: no nft process, and no dump of the whole table into nft's
    /// cache, which would make the 200th start slower than the 1st. Otherwise (or if
    /// that assumption fails: the batch is atomic, a failure changes nothing) the
    /// idempotent full add through nft.
    pub fn add(&self, net: &Network) -> Result<Option<FwNetwork>> {
        let Some(fw) = FwNetwork::from_network(net) else {
            return Ok(None);
        };
        // The renderer refuses names that could escape nft's quoting; check first.
        fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
        if self.skeleton.load(Relaxed) {
            let seq = self.nl_seq.fetch_add(1024, Relaxed);
            match nft::apply_batch(&encode_add_new(&self.table, &fw, seq)) {
                Ok(()) => return Ok(Some(fw)),
                Err(e) => debug!(network = %fw.name, "fast firewall add failed, using nft: {e}"),
            }
        }
        nft::apply(&render_add(&self.table, &fw)).context("apply firewall rules")?;
        self.skeleton.store(true, Relaxed);
        Ok(Some(fw))
    }

    /// Remove one network's rules now.
    pub fn remove(&self, fw: &FwNetwork) -> Result<()> {
        Ok(nft::apply(&render_remove(&self.table, fw))?)
    }

    /// Re-apply one running network's rules after a live update (e.g. forward-interface).
    pub fn refresh(&self, old: &Network, new: &Network) -> Result<()> {
        let new = FwNetwork::from_network(new);
        if let Some(fw) = &new {
            fw.validate().map_err(|e| anyhow!("firewall: {e}"))?;
        }
        if let Some(fw) = FwNetwork::from_network(old) {
            self.remove(&fw)?;
        }
        if let Some(fw) = &new {
            nft::apply(&render_add(&self.table, fw))?;
        }
        Ok(())
    }

    /// Make kvnet's table exactly the desired state for all active networks, in one
    /// atomic transaction.
    pub fn reconcile(&self, active: &[&Network]) -> Result<()> {
        let fws = inputs(active.iter().copied());
        kvnet_firewall::validate_all(&fws).map_err(|e| anyhow!("firewall: {e}"))?;
        nft::apply(&render_full(&self.table, &fws)).context("apply firewall ruleset")?;
        // render_full drops the table when no network needs it.
        self.skeleton.store(!fws.is_empty(), Relaxed);
        Ok(())
    }

    /// The comparable form of the table `reconcile` would leave for `active`; None when
    /// they cannot be rendered.
    fn expected_listing(&self, active: &[&Network]) -> Option<String> {
        let fws = inputs(active.iter().copied());
        kvnet_firewall::validate_all(&fws).ok()?;
        Some(kvnet_firewall::expected_listing(&self.table, &fws))
    }

    /// kvnet's table in comparable form, None when it does not exist.
    fn listing(&self) -> Result<Option<String>> {
        Ok(nft::list_table("inet", &self.table)?.map(|l| kvnet_firewall::normalize_listing(&l)))
    }

    /// At daemon start: leave the rules alone when they are exactly what the previous
    /// kvnetd left for these networks (so a restart changes nothing in the kernel);
    /// otherwise one transaction brings the table to the active networks' rules,
    /// repairing anything changed meanwhile.
    pub fn reconcile_at_start(&self, paths: &Paths, active: &[&Network]) {
        let snapshot: Option<Snapshot> = std::fs::read(paths.firewall_snapshot())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = store::remove_if_exists(&paths.firewall_snapshot());
        let names: Vec<String> = active.iter().map(|n| n.name.clone()).collect();
        let current = self.listing().unwrap_or_else(|e| {
            error!("cannot read the firewall: {e:#}");
            None
        });
        let unchanged = match (&snapshot, &current) {
            (_, None) => names.is_empty(),
            // Also exactly the table this kvnetd renders: one left by a kvnet with
            // another layout would break the fast start path.
            (Some(s), Some(c)) => {
                s.networks == names
                    && &s.listing == c
                    && self.expected_listing(active).as_ref() == Some(c)
            }
            (None, Some(_)) => false,
        };
        if unchanged {
            self.skeleton.store(current.is_some(), Relaxed);
            return;
        }
        match self.reconcile(active) {
            Ok(()) => info!("firewall rules rebuilt for {} active networks", names.len()),
            Err(e) => error!("firewall rules could not be applied, guests may be cut off: {e:#}"),
        }
    }

    /// At daemon shutdown: record the table as this kvnetd leaves it, for the next one.
    pub fn save_snapshot(&self, paths: &Paths, active: &[&Network]) {
        let networks = active.iter().map(|n| n.name.clone()).collect();
        let res = self.listing().and_then(|listing| {
            let snap = Snapshot {
                networks,
                listing: listing.unwrap_or_default(),
            };
            store::write_atomic(
                &paths.firewall_snapshot(),
                &serde_json::to_vec(&snap)?,
                0o600,
                Durability::Runtime,
            )
        });
        if let Err(e) = res {
            warn!(
                "cannot save the firewall snapshot (the next kvnetd will rebuild the rules): {e:#}"
            );
        }
    }
}
