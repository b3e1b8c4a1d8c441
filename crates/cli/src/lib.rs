//! kvnet: the virsh net-* verbs against kvnetd. A library so that the man page and
//! completion generator (kvnet-docgen) reaches the same clap definition as `kvnet`.

#![forbid(unsafe_code)]

mod client;
mod doctor;
mod events;
mod fabric;
mod forwards;
mod iface;
mod net;
mod output;
mod ports;
mod stats;
mod table;

use anyhow::{Result, anyhow};
use clap::{CommandFactory, Parser, Subcommand};
use client::Client;
use kvnet_model::Network;
use net::{parse_file, read_file};
use output::Json;
use std::io::Write;
use std::path::PathBuf;

/// The sections of `kvnet --help` (and kvnet(1)) the options do not cover.
const AFTER_HELP: &str = "\
Files:
  /run/kvnet/kvnetd.sock
          kvnetd's API socket (root only unless kvnetd runs with --socket-group).
  /etc/kvnet/fabric.toml
          The EVPN fabric (hosts, VTEPs, BGP AS) that fabric-config reads.

Exit status:
  0       Success.
  1       An error: kvnetd refused the request or cannot be reached, a file is invalid.
  2       A usage error, or `kvnet doctor` found a problem.

See also:
  kvnetd(8), kvnet-ifup(8), kvnet-ifdown(8), kvnet-bridge-helper(8)";

/// The command line of `kvnet`.
#[derive(Parser)]
#[command(
    name = "kvnet",
    version,
    about = "Manage kvnet virtual networks (virsh net-* compatible)",
    long_about = "Manage kvnet virtual networks (virsh net-* compatible).\n\n\
        kvnet talks to kvnetd(8) over its API socket. Networks are libvirt network XML; \
        the verbs and their options are virsh's (net-define, net-start, net-list, \
        net-dhcp-leases...), plus kvnet's guest ports, host bridges and checks.",
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// kvnetd API socket.
    #[arg(long, global = true, env = "KVNET_SOCKET", default_value = kvnet_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Net(net::NetCmd),
    #[command(flatten)]
    Port(ports::PortCmd),
    #[command(flatten)]
    Iface(iface::IfaceCmd),
    #[command(flatten)]
    Forward(forwards::ForwardCmd),
    /// Check the host for what stops guest traffic (other firewalls' drops,
    /// br_netfilter, forwarding, rp_filter, other DHCP/DNS servers, MTUs, kernel
    /// modules, and FRR's EVPN sessions and VNIs when the host is in a fabric), naming
    /// the culprit and the fix. Exits with 2 when a problem is found.
    Doctor {
        /// Only this (active) network.
        network: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Print kvnetd's events as they happen (virsh net-event): lifecycle, and kvnet's
    /// lease, port and forward events. Exits after the first unless --loop.
    NetEvent(events::NetEventArgs),
    /// A network's DHCP and DNS counters, leases with the time they have left, and its
    /// ports' traffic (what kvnetd --metrics gives a scraper).
    NetStats {
        network: String,
        #[command(flatten)]
        json: Json,
    },
    /// Check a network XML file offline (no daemon needed).
    NetValidate {
        file: PathBuf,
        /// Print the canonical XML, as libvirt formats it.
        #[arg(long)]
        canonical: bool,
    },
    /// Print this host's FRR configuration (frr.conf) for the EVPN fabric that
    /// networks spanning hosts use, from the fabric file alone (no daemon needed); on
    /// stderr, how to load it.
    FabricConfig(fabric::FabricConfigArgs),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn run(cli: Cli) -> Result<()> {
    let c = Client { socket: cli.socket };
    match cli.cmd {
        Cmd::Net(cmd) => net::run(&c, cmd)?,
        Cmd::Port(cmd) => ports::run(&c, cmd)?,
        Cmd::Iface(cmd) => iface::run(&c, cmd)?,
        Cmd::Forward(cmd) => forwards::run(&c, cmd)?,
        Cmd::NetEvent(a) => events::run(&c.socket, a)?,
        Cmd::NetStats { network, json } => stats::run(&c, &network, json.json)?,
        Cmd::NetValidate { file, canonical } => {
            // --canonical is libvirt's parse-and-format round trip, which also accepts
            // definitions a define would refuse (e.g. <ip> on a passthrough network).
            let net = if canonical {
                let text = read_file(&file)?;
                Network::from_xml(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?
            } else {
                parse_file(&file)?.1
            };
            if canonical {
                print!("{}", net.to_xml());
            } else {
                println!("{} validates", file.display());
                for u in net.not_applied() {
                    println!("note: {u} is accepted but not applied by kvnet yet");
                }
            }
        }
        Cmd::Doctor { network, json } => doctor::run(&c, network, json.json)?,
        Cmd::FabricConfig(a) => fabric::run(a)?,
        Cmd::Completions { shell } => completions(shell, &mut std::io::stdout()),
    }
    Ok(())
}

/// `kvnet completions SHELL`'s output.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "kvnet", out);
}

/// `kvnet`'s main.
pub fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
