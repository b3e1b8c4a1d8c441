//! The net-forward-* verbs: port forwards into a NAT network's guests.

use crate::client::Client;
use crate::output::{Json, print_json};
use crate::table;
use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use kvnet_api::ForwardEntry;
use kvnet_api::request as req;
use kvnet_model::{FwdProto, PortForward, PortRange, parse_target};
use std::net::IpAddr;

/// A forward's host side: what it takes on the host.
#[derive(Args)]
pub struct HostPorts {
    /// tcp or udp.
    #[arg(long)]
    proto: FwdProto,
    /// Host port or range (P or P-Q).
    #[arg(long)]
    port: PortRange,
    /// Only this host address (default: every address of the host).
    #[arg(long)]
    address: Option<IpAddr>,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
pub enum ForwardCmd {
    /// Forward host ports to a guest of a NAT network, from outside, from the host and
    /// from the network's other guests. A guest given by name or MAC is followed when
    /// its address changes. Kept in the network's definition (kvnet metadata).
    NetForwardAdd {
        network: String,
        #[command(flatten)]
        host: HostPorts,
        /// The guest: NAME, MAC or ADDRESS, then optionally :PORT or :PORT-PORT
        /// (default: the host ports); an IPv6 address with ports as [ADDRESS]:PORT.
        #[arg(long, value_name = "GUEST[:PORT[-PORT]]")]
        to: String,
    },
    /// Remove the forward of these host ports.
    NetForwardRemove {
        network: String,
        /// The forward's host side, as given when it was added.
        #[command(flatten)]
        host: HostPorts,
    },
    /// A network's port forwards and where each goes now.
    NetForwardList {
        network: String,
        #[command(flatten)]
        json: Json,
    },
}

pub fn run(c: &Client, cmd: ForwardCmd) -> Result<()> {
    match cmd {
        ForwardCmd::NetForwardAdd {
            network,
            host:
                HostPorts {
                    proto,
                    port,
                    address,
                },
            to,
        } => {
            let network = c.resolve(&network)?;
            let (to, to_ports) = parse_target(&to).map_err(|e| anyhow!("--to: {e}"))?;
            let forward = PortForward {
                proto,
                address,
                ports: port,
                to,
                to_ports: to_ports.unwrap_or(port),
            };
            let what = forward.to_string();
            let e: ForwardEntry = c.call(req::ForwardAdd {
                network: network.clone(),
                forward,
            })?;
            match e.guest_address {
                Some(a) => println!("Forward {what} added to network {network} (guest at {a})"),
                None => println!("Forward {what} added to network {network}"),
            }
        }
        ForwardCmd::NetForwardRemove {
            network,
            host:
                HostPorts {
                    proto,
                    port,
                    address,
                },
        } => {
            let network = c.resolve(&network)?;
            let host = address.map_or("*".into(), |a| a.to_string());
            c.act(
                req::ForwardRemove {
                    network: network.clone(),
                    proto,
                    address,
                    ports: port,
                },
                format!("failed to remove forward {proto} {host}:{port}"),
                format!("Forward {proto} {host}:{port} removed from network {network}"),
            )?;
        }
        ForwardCmd::NetForwardList { network, json } => {
            let network = c.resolve(&network)?;
            let list: Vec<ForwardEntry> = c.call(req::ForwardList { network })?;
            if json.json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|e| {
                    let f = &e.forward;
                    vec![
                        f.proto.to_string(),
                        f.address.map_or("*".into(), |a| a.to_string()),
                        f.ports.to_string(),
                        f.to.to_string(),
                        f.to_ports.to_string(),
                        e.guest_address.map_or("-".into(), |a| a.to_string()),
                        if e.active { "active" } else { "waiting" }.into(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "Proto",
                        "Address",
                        "Port",
                        "Guest",
                        "Guest Port",
                        "Guest Address",
                        "State"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}
