//! iface-bridge / iface-unbridge, as virsh's.

use crate::client::Client;
use anyhow::{Context, Result};
use clap::Subcommand;
use kvnet_api::request as req;

/// The iface-* verbs.
#[derive(Subcommand)]
pub enum IfaceCmd {
    /// Make a host bridge from a NIC: BRIDGE takes IFACE's MAC, MTU, addresses and
    /// routes, IFACE becomes its port; everything is rolled back if a step fails or
    /// the host loses its default route.
    IfaceBridge {
        iface: String,
        bridge: String,
        /// Turn off STP on the bridge.
        #[arg(long)]
        no_stp: bool,
        /// Forward delay in seconds.
        #[arg(long, default_value_t = 0)]
        delay: u32,
        /// Leave the bridge down (refused when IFACE has routes to move).
        #[arg(long)]
        no_start: bool,
    },
    /// Undo iface-bridge: move the addresses and routes back onto the bridge's NIC
    /// and delete the bridge.
    IfaceUnbridge { bridge: String },
}

pub fn run(c: &Client, cmd: IfaceCmd) -> Result<()> {
    match cmd {
        IfaceCmd::IfaceBridge {
            iface,
            bridge,
            no_stp,
            delay,
            no_start,
        } => {
            c.call(req::IfaceBridge {
                iface: iface.clone(),
                bridge: bridge.clone(),
                stp: !no_stp,
                delay,
                start: !no_start,
            })
            .with_context(|| format!("failed to bridge interface {iface} into {bridge}"))?;
            println!("Created bridge {bridge} with attached device {iface}");
            if !no_start {
                println!("Bridge {bridge} started");
            }
        }
        IfaceCmd::IfaceUnbridge { bridge } => {
            let done = c
                .call(req::IfaceUnbridge {
                    bridge: bridge.clone(),
                })
                .with_context(|| format!("failed to unbridge {bridge}"))?;
            println!("Device {} un-attached from bridge {bridge}", done.iface);
            println!("Interface {bridge} destroyed");
        }
    }
    Ok(())
}
