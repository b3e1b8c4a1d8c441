//! The net-* verbs that talk to kvnetd: define, start, list, update, leases, edit….

use crate::client::Client;
use crate::output::{Json, local_time, print_json, yes_no};
use crate::table;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use kvnet_api::request as req;
use kvnet_api::{Lease, NetSummary};
use kvnet_model::{Network, UpdateCommand, UpdateSection};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The net-* verbs (virsh's names and options).
#[derive(Subcommand)]
// The variants are virsh's verbs, whose names share their prefix.
#[allow(clippy::enum_variant_names)]
pub enum NetCmd {
    /// Define (but don't start) a persistent network from an XML file.
    NetDefine {
        file: PathBuf,
        /// Validate the XML (kvnet always does; kept for virsh compatibility).
        #[arg(long)]
        validate: bool,
    },
    /// Create and start a transient network from an XML file.
    NetCreate {
        file: PathBuf,
        #[arg(long)]
        validate: bool,
    },
    /// Remove a network's persistent definition (a running network becomes transient).
    NetUndefine { network: String },
    /// Start a defined, inactive network.
    NetStart { network: String },
    /// Stop a network now (a transient one disappears).
    NetDestroy {
        network: String,
        /// Also wait until the kernel has deleted the bridge and the rules (tens of
        /// milliseconds after traffic has stopped).
        #[arg(long)]
        wait: bool,
    },
    /// Start a network when kvnetd starts at boot.
    NetAutostart {
        network: String,
        #[arg(long)]
        disable: bool,
    },
    /// List networks (active ones unless --all or --inactive).
    NetList {
        #[arg(long, conflicts_with = "inactive")]
        all: bool,
        #[arg(long)]
        inactive: bool,
        #[arg(long, conflicts_with = "no_autostart")]
        autostart: bool,
        #[arg(long)]
        no_autostart: bool,
        #[arg(long, conflicts_with = "transient")]
        persistent: bool,
        #[arg(long)]
        transient: bool,
        /// Only names, one per line.
        #[arg(long, conflicts_with = "uuid")]
        name: bool,
        /// Only UUIDs, one per line.
        #[arg(long)]
        uuid: bool,
        /// Add a Title column.
        #[arg(long)]
        title: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Basic facts about a network.
    NetInfo {
        network: String,
        #[command(flatten)]
        json: Json,
    },
    /// A network's XML: live if active, else its definition.
    NetDumpxml {
        network: String,
        /// The definition used at the next start.
        #[arg(long)]
        inactive: bool,
        #[command(flatten)]
        json: Json,
    },
    /// The DHCPv4 and DHCPv6 leases a network's DHCP servers handed out.
    NetDhcpLeases {
        network: String,
        /// Only the leases of this MAC address.
        #[arg(long)]
        mac: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Edit a network's definition in $VISUAL/$EDITOR and redefine it.
    NetEdit { network: String },
    /// A network's UUID.
    NetUuid {
        network: String,
        #[command(flatten)]
        json: Json,
    },
    /// A network's name from its UUID.
    NetName {
        uuid: String,
        #[command(flatten)]
        json: Json,
    },
    /// Change part of a network (a DHCP host or range, a DNS record...).
    NetUpdate {
        network: String,
        /// add, add-first, add-last, delete or modify.
        command: String,
        /// ip-dhcp-host, ip-dhcp-range, dns-host, dns-txt, dns-srv, forward-interface or
        /// portgroup.
        section: String,
        /// An element (starting with '<') or a file holding one.
        xml: String,
        /// Which <ip> element (0-based) for ip-dhcp-* sections.
        #[arg(long)]
        parent_index: Option<usize>,
        /// Change the running network.
        #[arg(long)]
        live: bool,
        /// Change the persistent definition.
        #[arg(long)]
        config: bool,
        /// The running network if active, else the definition (the default).
        #[arg(long, conflicts_with_all = ["live", "config"])]
        current: bool,
    },
}

pub fn run(c: &Client, cmd: NetCmd) -> Result<()> {
    match cmd {
        NetCmd::NetDefine { file, validate: _ } => {
            let (text, net) = parse_file(&file)?;
            let f = file.display();
            c.act(
                req::Define { xml: text },
                format!("failed to define network from {f}"),
                format!("Network {} defined from {f}", net.name),
            )?;
        }
        NetCmd::NetCreate { file, validate: _ } => {
            let (text, net) = parse_file(&file)?;
            let f = file.display();
            c.act(
                req::Create { xml: text },
                format!("failed to create network from {f}"),
                format!("Network {} created from {f}", net.name),
            )?;
        }
        NetCmd::NetUndefine { network } => {
            let n = c.resolve(&network)?;
            c.act(
                req::Undefine { network: n.clone() },
                format!("failed to undefine network '{n}'"),
                format!("Network {n} has been undefined"),
            )?;
        }
        NetCmd::NetStart { network } => {
            let n = c.resolve(&network)?;
            c.act(
                req::Start { network: n.clone() },
                format!("failed to start network '{n}'"),
                format!("Network {n} started"),
            )?;
        }
        NetCmd::NetDestroy { network, wait } => {
            let n = c.resolve(&network)?;
            c.act(
                req::Destroy {
                    network: n.clone(),
                    wait,
                },
                format!("failed to destroy network '{n}'"),
                format!("Network {n} destroyed"),
            )?;
        }
        NetCmd::NetAutostart { network, disable } => {
            let n = c.resolve(&network)?;
            let done = if disable {
                "unmarked as autostarted"
            } else {
                "marked as autostarted"
            };
            c.act(
                req::Autostart {
                    network: n.clone(),
                    enable: !disable,
                },
                format!("failed to change autostart of network '{n}'"),
                format!("Network {n} {done}"),
            )?;
        }
        NetCmd::NetList {
            all,
            inactive,
            autostart,
            no_autostart,
            persistent,
            transient,
            name,
            uuid,
            title,
            json,
        } => {
            let nets: Vec<NetSummary> = c
                .list()?
                .into_iter()
                .filter(|n| {
                    if all {
                        true
                    } else if inactive {
                        !n.active
                    } else {
                        n.active
                    }
                })
                .filter(|n| !autostart || n.autostart)
                .filter(|n| !no_autostart || !n.autostart)
                .filter(|n| !persistent || n.persistent)
                .filter(|n| !transient || !n.persistent)
                .collect();
            if json.json {
                return print_json(&nets);
            }
            if name || uuid {
                for n in &nets {
                    println!("{}", if name { &n.name } else { &n.uuid });
                }
                return Ok(());
            }
            let mut header = vec!["Name", "State", "Autostart", "Persistent"];
            if title {
                header.push("Title");
            }
            let rows = nets
                .iter()
                .map(|n| {
                    let mut r = vec![
                        n.name.clone(),
                        if n.active { "active" } else { "inactive" }.to_string(),
                        yes_no(n.autostart).to_string(),
                        yes_no(n.persistent).to_string(),
                    ];
                    if title {
                        r.push(n.title.clone().unwrap_or_default());
                    }
                    r
                })
                .collect::<Vec<_>>();
            print!("{}", table::render(&header, &rows));
        }
        NetCmd::NetInfo { network, json } => {
            let network = c.resolve(&network)?;
            let n = c.call(req::Info { network })?;
            if json.json {
                return print_json(&n);
            }
            let lines = [
                ("Name:", n.name.clone()),
                ("UUID:", n.uuid.clone()),
                ("Active:", yes_no(n.active).into()),
                ("Persistent:", yes_no(n.persistent).into()),
                ("Autostart:", yes_no(n.autostart).into()),
                ("Bridge:", n.bridge.clone().unwrap_or_default()),
            ];
            for (k, v) in lines {
                println!("{k:<15} {v}");
            }
        }
        NetCmd::NetDumpxml {
            network,
            inactive,
            json,
        } => {
            let network = c.resolve(&network)?;
            let xml = c.call(req::DumpXml { network, inactive })?;
            if json.json {
                return print_json(&serde_json::json!({ "xml": xml }));
            }
            print!("{xml}");
        }
        NetCmd::NetDhcpLeases { network, mac, json } => {
            let network = c.resolve(&network)?;
            let leases: Vec<Lease> = c.call(req::DhcpLeases { network, mac })?;
            if json.json {
                return print_json(&leases);
            }
            let dash = |s: &Option<String>| match s.as_deref() {
                None | Some("") => "-".to_string(),
                Some(s) => s.to_string(),
            };
            let rows = leases
                .iter()
                .map(|l| {
                    vec![
                        local_time(l.expiry_time),
                        dash(&l.mac_address),
                        if l.ip_address.is_ipv6() {
                            "ipv6"
                        } else {
                            "ipv4"
                        }
                        .to_string(),
                        format!("{}/{}", l.ip_address, l.prefix),
                        dash(&l.hostname),
                        dash(&l.client_id),
                    ]
                })
                .collect::<Vec<_>>();
            let header = [
                "Expiry Time",
                "MAC address",
                "Protocol",
                "IP address",
                "Hostname",
                "Client ID or DUID",
            ];
            print!("{}", table::render(&header, &rows));
        }
        NetCmd::NetEdit { network } => edit(c, &c.resolve(&network)?)?,
        NetCmd::NetUuid { network, json } => {
            let network = c.resolve(&network)?;
            let n = c.call(req::Info { network })?;
            if json.json {
                return print_json(&serde_json::json!({ "name": n.name, "uuid": n.uuid }));
            }
            println!("{}", n.uuid);
        }
        NetCmd::NetName { uuid, json } => {
            let n = c
                .list()?
                .into_iter()
                .find(|n| n.uuid.eq_ignore_ascii_case(&uuid))
                .ok_or_else(|| anyhow!("no network with uuid '{uuid}'"))?;
            if json.json {
                return print_json(&serde_json::json!({ "name": n.name, "uuid": n.uuid }));
            }
            println!("{}", n.name);
        }
        NetCmd::NetUpdate {
            network,
            command,
            section,
            xml,
            parent_index,
            live,
            config,
            current: _,
        } => {
            let network = c.resolve(&network)?;
            let xml = if xml.trim_start().starts_with('<') {
                xml
            } else {
                read_file(Path::new(&xml))?
            };
            let command: UpdateCommand = command.parse().map_err(|e: String| anyhow!(e))?;
            let section: UpdateSection = section.parse().map_err(|e: String| anyhow!(e))?;
            c.call(req::Update {
                network: network.clone(),
                command,
                section,
                xml,
                parent_index,
                live,
                config,
            })
            .with_context(|| format!("failed to update network '{network}'"))?;
            let what = match (live, config) {
                (true, true) => "live state and persistent config",
                (true, false) => "live state",
                (false, true) => "persistent config",
                (false, false) => "current state",
            };
            println!("Updated network {network} {what}");
        }
    }
    Ok(())
}

pub fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parse locally first so errors name the file and line.
pub fn parse_file(path: &Path) -> Result<(String, Network)> {
    let text = read_file(path)?;
    let net = Network::from_xml(&text)
        .and_then(|n| n.validate_for_define().map(|()| n))
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok((text, net))
}

/// virsh net-edit: edit the inactive XML, re-validate, offer to retry on error.
fn edit(c: &Client, network: &str) -> Result<()> {
    let orig = c.call(req::DumpXml {
        network: network.to_string(),
        inactive: true,
    })?;
    let dir = std::env::temp_dir().join(format!("kvnet-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{network}.xml"));
    std::fs::write(&path, &orig)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let result = (|| -> Result<()> {
        loop {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("sh")
                .arg(&path)
                .status()
                .with_context(|| format!("cannot run editor '{editor}'"))?;
            if !status.success() {
                bail!("editor '{editor}' failed ({status})");
            }
            let text = read_file(&path)?;
            if text == orig {
                println!("Network {network} XML configuration not changed.");
                return Ok(());
            }
            let res = Network::from_xml(&text).map_err(|e| anyhow!("{e}")).and_then(|n| {
                if n.name != network {
                    bail!("the network name cannot be changed by net-edit (was '{network}', now '{}')", n.name);
                }
                c.call(req::Define { xml: text.clone() }).map(drop)
            });
            match res {
                Ok(_) => {
                    println!("Network {network} XML configuration edited.");
                    return Ok(());
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    if !ask("Failed. Try again? [y/n]: ")? {
                        bail!("network '{network}' not changed");
                    }
                }
            }
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn ask(prompt: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
