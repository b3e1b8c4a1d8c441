//! The overlay networks' DHCP fence (`kvnet_firewall::fence`) on this host: which VXLAN
//! devices it holds, one element per start or stop sent natively, the whole table
//! rendered only when it is made, deleted (with the last overlay), rebuilt after
//! someone else changed it ([`crate::lifecycle::fwrepair`]) or found different at
//! daemon start. A cheap handle: clones share the state.

use anyhow::{Context, Result, anyhow};
use kvnet_firewall::fence::{
    expected_fence_listing, fence_table, render_fence, validate_fence_dev,
};
use kvnet_firewall::{encode_fence, normalize_listing};
use kvnet_host::nft;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{debug, info};

#[derive(Clone)]
pub struct Fence {
    /// kvnet's inet table, whose name the fence table's derives from.
    table: String,
    state: Arc<Mutex<State>>,
    seq: Arc<AtomicU32>,
}

#[derive(Default)]
struct State {
    /// The devices that belong in the fence.
    devs: BTreeSet<String>,
    /// The table is believed to hold exactly `devs` (an element can be sent alone).
    live: bool,
}

impl Fence {
    pub fn new(table: &str) -> Fence {
        Fence {
            table: table.to_string(),
            state: Arc::default(),
            seq: Arc::new(AtomicU32::new(1)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any device belongs in the fence.
    pub fn wanted(&self) -> bool {
        !self.state().devs.is_empty()
    }

    /// Keeps DHCP off network `network`'s VXLAN port `dev` (`on`), or no longer; the
    /// table is made with the first device and deleted with the last. On error nothing
    /// changed.
    pub fn set(&self, network: &str, dev: &str, on: bool) -> Result<()> {
        validate_fence_dev(network, dev).map_err(|e| anyhow!("DHCP fence: {e}"))?;
        let mut st = self.state();
        let changed = if on {
            st.devs.insert(dev.to_string())
        } else {
            st.devs.remove(dev)
        };
        if !changed {
            return Ok(());
        }
        if st.live && !st.devs.is_empty() {
            let seq = self.seq.fetch_add(16, Relaxed);
            match nft::apply_batch(&encode_fence(&self.table, dev, on, seq)) {
                Ok(()) => return Ok(()),
                Err(e) => debug!("DHCP fence element for {dev} failed, rendering it whole: {e}"),
            }
        }
        if let Err(e) = self.apply(&mut st) {
            if on {
                st.devs.remove(dev);
            } else {
                st.devs.insert(dev.to_string());
            }
            return Err(e.context(format!("keep DHCP off {dev}")));
        }
        Ok(())
    }

    /// Renders the whole table for the devices wanted, in one transaction.
    fn apply(&self, st: &mut State) -> Result<()> {
        st.live = false;
        nft::apply(&render_fence(&self.table, &st.devs))
            .with_context(|| format!("apply table bridge {}", fence_table(&self.table)))?;
        st.live = !st.devs.is_empty();
        Ok(())
    }

    /// After someone else changed nftables: the whole table again, if any device (or
    /// an old table) calls for it.
    pub fn rebuild(&self) -> Result<()> {
        let mut st = self.state();
        if st.devs.is_empty() && !st.live {
            return Ok(());
        }
        self.apply(&mut st)
    }

    /// The next element change must not trust the table.
    pub fn invalidate(&self) {
        self.state().live = false;
    }

    /// Whether the live table is exactly the one wanted (none when nothing is).
    pub fn is_intact(&self) -> Result<bool> {
        let want = expected_fence_listing(&self.table, &self.state().devs);
        Ok(self.listing()? == want)
    }

    /// The live table in comparable form, "" when it does not exist.
    fn listing(&self) -> Result<String> {
        Ok(nft::list_table("bridge", &fence_table(&self.table))?
            .map(|l| normalize_listing(&l))
            .unwrap_or_default())
    }

    /// At daemon start: `devs` (the running overlays') belong in the fence. A table
    /// that already fences exactly those is left as it is; any other is replaced, or
    /// deleted when none does.
    pub fn reconcile_at_start(&self, devs: BTreeSet<String>) -> Result<()> {
        let mut st = self.state();
        st.devs = devs;
        let want = expected_fence_listing(&self.table, &st.devs);
        if self.listing().ok().as_ref() == Some(&want) {
            st.live = !st.devs.is_empty();
            return Ok(());
        }
        // Also deletes a table a previous kvnetd left when no overlay runs any more.
        st.live = true;
        self.apply(&mut st)?;
        info!(
            "DHCP fence of the overlay networks reconciled: {}",
            if st.devs.is_empty() {
                "none runs, table deleted".to_string()
            } else {
                st.devs.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        );
        Ok(())
    }
}
