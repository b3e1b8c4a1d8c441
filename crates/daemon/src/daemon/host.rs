//! The host's side, passed through: iface-bridge/-unbridge (`ifbridge`) and
//! `kvnet doctor` (`doctor`).

use super::Daemon;
use crate::ifbridge;
use anyhow::Result;
use kvnet_api::request as req;
use kvnet_api::{Bridged, Report, Unbridged};

impl Daemon {
    /// iface-bridge: the host NIC onto a new bridge, undone if any step fails.
    pub async fn iface_bridge(&self, r: &req::IfaceBridge) -> Result<Bridged> {
        ifbridge::bridge(self.life.nl(), &self.paths, r).await
    }

    /// iface-unbridge: the NIC back as it was.
    pub async fn iface_unbridge(&self, bridge: &str) -> Result<Unbridged> {
        let used_by = self.registry.by_bridge(bridge).map(|n| n.name.clone());
        ifbridge::unbridge(self.life.nl(), &self.paths, bridge, used_by).await
    }

    /// What on this host stops guest traffic (`kvnet doctor`).
    pub async fn doctor(&self, network: Option<&str>) -> Result<Report> {
        crate::doctor::run(&self.registry, self.life.dp(), &self.paths, network).await
    }
}
