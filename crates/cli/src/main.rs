//! kvnet: the virsh net-* verbs against kvnetd.

#![forbid(unsafe_code)]

mod table;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use kvnet_api::request::{self as req, Call};
use kvnet_api::{ClientError, Lease, NetSummary};
use kvnet_model::{Network, UpdateCommand, UpdateSection};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "kvnet",
    version,
    about = "Manage kvnet virtual networks (virsh net-* compatible)"
)]
struct Cli {
    /// kvnetd API socket.
    #[arg(long, global = true, env = "KVNET_SOCKET", default_value = kvnet_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
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
    /// Change part of a network: COMMAND add|add-first|add-last|delete|modify,
    /// SECTION ip-dhcp-host|ip-dhcp-range|dns-host|dns-txt|dns-srv|forward-interface|portgroup,
    /// XML an element (starting with '<') or a file holding one.
    NetUpdate {
        network: String,
        command: String,
        section: String,
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
    /// Check the host for what stops guest traffic (other firewalls' drops,
    /// br_netfilter, forwarding, rp_filter, other DHCP/DNS servers, MTUs, kernel
    /// modules), naming the culprit and the fix. Exits with 2 when a problem is found.
    Doctor {
        /// Only this (active) network.
        network: Option<String>,
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
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

struct Client {
    socket: PathBuf,
}

impl Client {
    /// One request; its warnings are printed, on success or not.
    fn call<C: Call>(&self, req: C) -> Result<C::Reply> {
        let res = kvnet_api::call(&self.socket, req);
        let warnings = match &res {
            Ok(a) => a.warnings.as_slice(),
            Err(ClientError::Refused { warnings, .. }) => warnings.as_slice(),
            Err(_) => &[],
        };
        for w in warnings {
            eprintln!("warning: {w}");
        }
        Ok(res?.data)
    }

    /// A verb that changes something: virsh-style context on failure, its message on success.
    fn act<C: Call>(&self, req: C, failed: String, done: String) -> Result<()> {
        self.call(req).context(failed)?;
        println!("{done}");
        Ok(())
    }

    fn list(&self) -> Result<Vec<NetSummary>> {
        self.call(req::List {})
    }

    /// virsh accepts a name or a UUID wherever it takes a network.
    fn resolve(&self, network: &str) -> Result<String> {
        if uuid_like(network) {
            let nets = self.list()?;
            if !nets.iter().any(|n| n.name == network)
                && let Some(n) = nets.iter().find(|n| n.uuid.eq_ignore_ascii_case(network))
            {
                return Ok(n.name.clone());
            }
        }
        Ok(network.to_string())
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parse locally first so errors name the file and line.
fn parse_file(path: &Path) -> Result<(String, Network)> {
    let text = read_file(path)?;
    let net = Network::from_xml(&text)
        .and_then(|n| n.validate_for_define().map(|()| n))
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok((text, net))
}

/// Unix seconds as local time, the way virsh prints lease expiry; 0 is an infinite lease.
/// The zone is the system's as the C library finds it: `TZ`, else /etc/localtime.
fn local_time(t: u64) -> String {
    local_time_in(t, &jiff::tz::TimeZone::system())
}

/// Unix seconds in `tz` as `YYYY-MM-DD HH:MM:SS`; the seconds themselves past year 9999.
fn local_time_in(t: u64, tz: &jiff::tz::TimeZone) -> String {
    if t == 0 {
        return "never".to_string();
    }
    let Some(dt) = i64::try_from(t)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|ts| tz.to_datetime(ts))
    else {
        return t.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let c = Client { socket: cli.socket };
    match cli.cmd {
        Cmd::NetDefine { file, validate: _ } => {
            let (text, net) = parse_file(&file)?;
            let f = file.display();
            c.act(
                req::Define { xml: text },
                format!("failed to define network from {f}"),
                format!("Network {} defined from {f}", net.name),
            )?;
        }
        Cmd::NetCreate { file, validate: _ } => {
            let (text, net) = parse_file(&file)?;
            let f = file.display();
            c.act(
                req::Create { xml: text },
                format!("failed to create network from {f}"),
                format!("Network {} created from {f}", net.name),
            )?;
        }
        Cmd::NetUndefine { network } => {
            let n = c.resolve(&network)?;
            c.act(
                req::Undefine { network: n.clone() },
                format!("failed to undefine network '{n}'"),
                format!("Network {n} has been undefined"),
            )?;
        }
        Cmd::NetStart { network } => {
            let n = c.resolve(&network)?;
            c.act(
                req::Start { network: n.clone() },
                format!("failed to start network '{n}'"),
                format!("Network {n} started"),
            )?;
        }
        Cmd::NetDestroy { network, wait } => {
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
        Cmd::NetAutostart { network, disable } => {
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
        Cmd::NetList {
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
        Cmd::NetInfo { network, json } => {
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
        Cmd::NetDumpxml {
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
        Cmd::NetDhcpLeases { network, mac, json } => {
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
        Cmd::NetEdit { network } => edit(&c, &c.resolve(&network)?)?,
        Cmd::NetUuid { network, json } => {
            let network = c.resolve(&network)?;
            let n = c.call(req::Info { network })?;
            if json.json {
                return print_json(&serde_json::json!({ "name": n.name, "uuid": n.uuid }));
            }
            println!("{}", n.uuid);
        }
        Cmd::NetName { uuid, json } => {
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
        Cmd::NetUpdate {
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
        Cmd::PortCreate {
            network,
            ifname,
            mac,
            owner,
            group,
            queues,
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
                })
                .with_context(|| format!("failed to create a port on network '{network}'"))?;
            if json.json {
                return print_json(&created);
            }
            let p = &created.port;
            println!(
                "Port {} created on network {} (MAC {}, {} queue{})",
                p.ifname,
                p.network,
                p.mac.as_deref().unwrap_or("-"),
                p.queues,
                if p.queues == 1 { "" } else { "s" }
            );
            println!("{}", created.qemu_args.join(" "));
        }
        Cmd::PortList { network, json } => {
            let network = c.resolve(&network)?;
            let ports = c.call(req::PortList { network })?;
            if json.json {
                return print_json(&ports);
            }
            let rows = ports
                .iter()
                .map(|p| {
                    vec![
                        p.ifname.clone(),
                        p.mac.clone().unwrap_or_else(|| "-".into()),
                        p.kind.as_str().to_string(),
                        p.queues.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            let header = ["Interface", "MAC address", "Kind", "Queues"];
            print!("{}", table::render(&header, &rows));
        }
        Cmd::PortDelete { ifname, network } => {
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
        Cmd::IfaceBridge {
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
        Cmd::IfaceUnbridge { bridge } => {
            let done = c
                .call(req::IfaceUnbridge {
                    bridge: bridge.clone(),
                })
                .with_context(|| format!("failed to unbridge {bridge}"))?;
            println!("Device {} un-attached from bridge {bridge}", done.iface);
            println!("Interface {bridge} destroyed");
        }
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
        Cmd::Doctor { network, json } => {
            let network = network.map(|n| c.resolve(&n)).transpose()?;
            let report = c.call(req::Doctor { network })?;
            if json.json {
                print_json(&report)?;
            } else {
                print!("{}", doctor_text(&report));
            }
            if report.problems() > 0 {
                std::process::exit(2);
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kvnet", &mut std::io::stdout());
        }
    }
    Ok(())
}

/// The doctor's report for people: problems, then notes, then what kvnet keeps in
/// other firewalls.
fn doctor_text(r: &kvnet_api::Report) -> String {
    let mut out = String::new();
    for f in r
        .findings
        .iter()
        .filter(|f| f.problem)
        .chain(r.findings.iter().filter(|f| !f.problem))
    {
        let kind = if f.problem { "PROBLEM" } else { "note" };
        let net = f
            .network
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{kind} {}{net}: {}
",
            f.check.as_str(),
            f.culprit
        ));
        out.push_str(&format!(
            "    {}
    fix: {}
",
            f.detail, f.fix
        ));
    }
    if !r.kvnet_changes.is_empty() {
        out.push_str(
            "kvnet keeps in other firewalls:
",
        );
        for c in &r.kvnet_changes {
            out.push_str(&format!(
                "    {c}
"
            ));
        }
    }
    let n = r.problems();
    out.push_str(&match n {
        0 => "no problem found\n".to_string(),
        1 => "1 problem found\n".to_string(),
        n => format!("{n} problems found\n"),
    });
    out
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

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    #[test]
    fn lease_expiry_prints_as_virsh_does() {
        // 2024-03-31 00:59:59 UTC, a second before Central Europe moves its clocks.
        let t = 1_711_846_799;
        assert_eq!(local_time_in(t, &TimeZone::UTC), "2024-03-31 00:59:59");
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(local_time_in(t, &cet), "2024-03-31 01:59:59");
        assert_eq!(local_time_in(t + 1, &cet), "2024-03-31 03:00:00");
        assert_eq!(local_time_in(1, &TimeZone::UTC), "1970-01-01 00:00:01");
        assert_eq!(local_time_in(0, &cet), "never", "an infinite lease");
        // Past what a calendar date is printed for, the seconds themselves.
        assert_eq!(
            local_time_in(u64::MAX, &TimeZone::UTC),
            u64::MAX.to_string()
        );
        assert_eq!(
            local_time_in(300_000_000_000, &TimeZone::UTC),
            "300000000000"
        );
    }
}
