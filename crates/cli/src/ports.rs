//! The port-* verbs: guest TAPs on a network.

use crate::client::Client;
use crate::output::{Json, print_json};
use crate::table;
use anyhow::{Context, Result};
use clap::Subcommand;
use kvnet_api::request as req;

/// The port-* verbs.
#[derive(Subcommand)]
// The variants are virsh's verbs, whose names share their prefix.
#[allow(clippy::enum_variant_names)]
pub enum PortCmd {
    /// Create a persistent TAP for a guest on an active network; prints the qemu
    /// arguments that use it.
    PortCreate {
        network: String,
        /// TAP name (default: the lowest free vnetN).
        #[arg(long)]
        ifname: Option<String>,
        /// Guest MAC address (default: a random unused 52:54:00:xx:xx:xx).
        #[arg(long)]
        mac: Option<String>,
        /// User (name or uid) allowed to open the TAP, e.g. the one qemu runs as.
        #[arg(long)]
        owner: Option<String>,
        /// Group (name or gid) allowed to open the TAP.
        #[arg(long)]
        group: Option<String>,
        /// Queues of a multi-queue TAP.
        #[arg(long)]
        queues: Option<u16>,
        /// Isolate the port from the network's other isolated ports (it still reaches
        /// the host and the uplink); default: the network's `<port isolated>`.
        #[arg(long, value_parser = ["yes", "no"])]
        isolated: Option<String>,
        /// Traffic filter: `clean-traffic` lets the guest send only from its MAC and
        /// addresses, never as a DHCP server or router; default: the network's
        /// `<kvnet:filterref>`.
        #[arg(long, value_parser = ["clean-traffic", "none"])]
        filter: Option<String>,
        /// An address the guest may send from besides its DHCP leases and static hosts
        /// (repeat for more).
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<std::net::IpAddr>,
        /// Take the bandwidth of this `<portgroup>` of the network (default: its
        /// `default='yes'` portgroup, if any).
        #[arg(long)]
        portgroup: Option<String>,
        /// Shape traffic to the guest: average, peak (kB/s), burst (kB), floor (kB/s,
        /// guaranteed under the network's inbound average), e.g. `1000,2000,64`.
        #[arg(long, value_name = "AVG[,PEAK[,BURST[,FLOOR]]]", value_parser = inbound)]
        inbound: Option<Box<kvnet_model::BandwidthRate>>,
        /// Shape traffic from the guest: average, peak (kB/s), burst (kB).
        #[arg(long, value_name = "AVG[,PEAK[,BURST]]", value_parser = outbound)]
        outbound: Option<Box<kvnet_model::BandwidthRate>>,
        #[command(flatten)]
        json: Json,
    },
    /// List a network's guest ports.
    PortList {
        network: String,
        #[command(flatten)]
        json: Json,
    },
    /// Detach and unregister a guest port (a TAP port-create made is deleted).
    PortDelete {
        ifname: String,
        /// The port's network (default: whichever has it).
        #[arg(long)]
        network: Option<String>,
    },
}

fn inbound(s: &str) -> Result<Box<kvnet_model::BandwidthRate>, String> {
    kvnet_model::BandwidthRate::parse_cli(s, true).map(Box::new)
}

fn outbound(s: &str) -> Result<Box<kvnet_model::BandwidthRate>, String> {
    kvnet_model::BandwidthRate::parse_cli(s, false).map(Box::new)
}

/// `average 1000 kB/s, peak 2000 kB/s, burst 64 kB, floor 500 kB/s`.
fn rate_text(r: &kvnet_model::BandwidthRate) -> String {
    [
        ("average", r.average, "kB/s"),
        ("peak", r.peak, "kB/s"),
        ("burst", r.burst, "kB"),
        ("floor", r.floor, "kB/s"),
    ]
    .iter()
    .filter_map(|(n, v, u)| v.map(|v| format!("{n} {v} {u}")))
    .collect::<Vec<_>>()
    .join(", ")
}

pub fn run(c: &Client, cmd: PortCmd) -> Result<()> {
    match cmd {
        PortCmd::PortCreate {
            network,
            ifname,
            mac,
            owner,
            group,
            queues,
            isolated,
            filter,
            ips,
            portgroup,
            inbound,
            outbound,
            json,
        } => {
            let network = c.resolve(&network)?;
            let created = c
                .call(req::PortCreate {
                    network: network.clone(),
                    ifname,
                    mac,
                    owner,
                    group,
                    queues,
                    isolated: isolated.map(|v| v == "yes"),
                    filter: filter
                        .map(|f| f.parse())
                        .transpose()
                        .map_err(anyhow::Error::msg)?,
                    ips,
                    portgroup,
                    inbound,
                    outbound,
                })
                .with_context(|| format!("failed to create a port on network '{network}'"))?;
            if json.json {
                return print_json(&created);
            }
            let p = &created.port;
            println!(
                "Port {} created on network {} (MAC {}, {} queue{}{})",
                p.ifname,
                p.network,
                p.mac.as_deref().unwrap_or("-"),
                p.queues,
                if p.queues == 1 { "" } else { "s" },
                if p.isolated { ", isolated" } else { "" }
            );
            if p.filter != kvnet_model::TrafficFilter::None {
                println!("Filter: {}", p.filter);
            }
            for (dir, r) in [("Inbound", &p.inbound), ("Outbound", &p.outbound)] {
                if let Some(r) = r {
                    println!("{dir}: {}", rate_text(r));
                }
            }
            if let Some(g) = &p.portgroup {
                println!("Portgroup: {g}");
            }
            if let Some(dev) = &p.parent {
                println!(
                    "A macvtap on {dev}: qemu gets it by descriptor, opened by the shell redirections that end the line below"
                );
            }
            if let Some(why) = &created.vhost_off {
                println!("vhost-net off: {why}");
            }
            // A shell line: qemu's arguments, then the descriptors it must inherit.
            let mut line = created.qemu_args.clone();
            line.extend(created.fds.iter().cloned());
            println!("{}", line.join(" "));
        }
        PortCmd::PortList { network, json } => {
            let network = c.resolve(&network)?;
            let ports = c.call(req::PortList { network })?;
            if json.json {
                return print_json(&ports);
            }
            // Direct (macvtap) networks say which device each port is on.
            let direct = ports.iter().any(|p| p.parent.is_some());
            let rows = ports
                .iter()
                .map(|p| {
                    let mac = match (&p.mac, &p.learned_mac) {
                        (Some(m), _) => m.clone(),
                        (None, Some(m)) => format!("{m} (learned)"),
                        (None, None) => "-".into(),
                    };
                    let mut row = vec![
                        p.ifname.clone(),
                        mac,
                        p.kind.as_str().to_string(),
                        p.queues.to_string(),
                        if p.isolated { "yes" } else { "no" }.to_string(),
                        p.filter.to_string(),
                        p.dropped.map_or_else(|| "-".into(), |d| d.to_string()),
                    ];
                    if direct {
                        row.push(p.parent.clone().unwrap_or_else(|| "-".into()));
                    }
                    row
                })
                .collect::<Vec<_>>();
            let mut header = vec![
                "Interface",
                "MAC address",
                "Kind",
                "Queues",
                "Isolated",
                "Filter",
                "Dropped",
            ];
            if direct {
                header.push("Device");
            }
            print!("{}", table::render(&header, &rows));
        }
        PortCmd::PortDelete { ifname, network } => {
            let network = network.map(|n| c.resolve(&n)).transpose()?;
            c.act(
                req::PortDelete {
                    network,
                    ifname: ifname.clone(),
                },
                format!("failed to delete port {ifname}"),
                format!("Port {ifname} deleted"),
            )?;
        }
    }
    Ok(())
}
