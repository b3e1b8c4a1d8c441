//! `kvnet doctor`: what on this host stops guest traffic, by culprit and fix. This is
//! the thin shell that gathers the facts (the ruleset, sysctls, routes, sockets,
//! links, kernel modules, FRR); [`checks`] and [`frr`] judge them.

pub mod checks;
pub mod frr;

use crate::dataplane::Dataplane;
use crate::dataplane::checks::forwarding_sysctls;
use crate::dataplane::foreign::{self, Mode};
use crate::paths::Paths;
use crate::registry::Registry;
use anyhow::Result;
use checks::{Feature, Mtu};
use kvnet_api::{Check, Finding, Report};
use kvnet_firewall::FwNetwork;
use kvnet_foreign::{Context, analyse};
use kvnet_host::{procroutes, sysctl};
use kvnet_model::Network;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// The report for every active network, or only `only` (which must be active).
pub async fn run(
    reg: &Registry,
    dp: &Dataplane,
    paths: &Paths,
    only: Option<&str>,
) -> Result<Report> {
    let nets: Vec<&Network> = match only {
        Some(name) => vec![reg.live(name)?],
        None => reg.active(),
    };
    let mut findings = Vec::new();
    let brnf = foreign::bridge_nf();
    findings.extend(foreign_drops(dp, &nets, brnf));
    findings.extend(checks::br_netfilter(brnf));
    let routes = procroutes::read().unwrap_or_default();
    let sockets = sockets();
    for net in &nets {
        for key in forwarding_sysctls(net) {
            if let Ok(v) = sysctl::read(key) {
                findings.extend(checks::ip_forward(&net.name, key, &v));
            }
        }
        let Some(br) = net.bridge_name() else {
            continue;
        };
        let rp = |dev: &str| {
            sysctl::read(&format!("net/ipv4/conf/{dev}/rp_filter"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let mut sources: Vec<_> = net.ips.iter().map(|ip| ip.network()).collect();
        sources.extend(net.routes.iter().map(|r| r.destination()));
        findings.extend(checks::rp_filter(
            &net.name,
            br,
            rp("all"),
            rp(br),
            &sources,
            &routes,
        ));
        let addrs: Vec<IpAddr> = net.ips.iter().map(|ip| ip.address).collect();
        findings.extend(checks::listeners(
            &net.name,
            br,
            &addrs,
            &sockets,
            std::process::id(),
        ));
        findings.extend(mtu(dp, net, br).await);
    }
    findings.extend(checks::modules(present));
    findings.extend(evpn(&paths.fabric(), &nets).await);
    Ok(Report {
        findings,
        kvnet_changes: dp.foreign().changes().await,
    })
}

fn foreign_drops(dp: &Dataplane, nets: &[&Network], brnf: kvnet_foreign::BridgeNf) -> Vec<Finding> {
    let fws: Vec<FwNetwork> = nets
        .iter()
        .filter_map(|n| FwNetwork::from_network(n))
        .collect();
    let own = dp.foreign().own_tables().to_vec();
    match foreign::read_ruleset(&own) {
        Ok(rs) => {
            let cx = Context {
                own_tables: own,
                bridge_nf: brnf,
                ..Context::default()
            };
            checks::foreign_drops(&analyse(&rs, &fws, &cx), dp.foreign().mode() == Mode::Fix)
        }
        Err(e) => vec![Finding {
            check: Check::ForeignDrop,
            problem: true,
            network: None,
            culprit: "nftables".into(),
            detail: format!("{e:#}"),
            fix: "check that nft works ('nft list tables')".into(),
        }],
    }
}

/// The UDP and TCP listeners with their processes (`ss`, from iproute2).
fn sockets() -> Vec<checks::Listener> {
    let ss = |args: &str, tcp: bool| {
        std::process::Command::new("ss")
            .arg(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| checks::parse_ss(&String::from_utf8_lossy(&o.stdout), tcp))
            .unwrap_or_default()
    };
    let mut all = ss("-Hlnup", false);
    all.extend(ss("-Hlntp", true));
    all
}

async fn mtu(dp: &Dataplane, net: &Network, br: &str) -> Vec<Finding> {
    let Ok(Some(bridge)) = dp.nl().link(br).await else {
        return Vec::new();
    };
    let ports: Vec<Mtu> = dp
        .nl()
        .links()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.master == Some(bridge.index))
        .map(|l| Mtu {
            name: l.name,
            mtu: l.mtu,
        })
        .collect();
    let wanted = if net.profile().owns_bridge() {
        net.mtu
    } else {
        None
    };
    let bridge = Mtu {
        name: bridge.name,
        mtu: bridge.mtu,
    };
    checks::mtu(&net.name, &bridge, wanted, &ports)
}

/// How long vtysh and `ip` may take: FRR answers in milliseconds; a hung daemon must
/// not hang the doctor.
const TOOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The vtysh binary: `$KVNET_VTYSH` if set (tests point it at a namespace's FRR),
/// else `vtysh` from `PATH`.
fn vtysh() -> String {
    std::env::var("KVNET_VTYSH").unwrap_or_else(|_| "vtysh".to_string())
}

/// The EVPN findings, when this host is in a fabric (its file exists) or a network
/// has a VXLAN port only EVPN can serve: FRR's sessions and the VNIs of the VXLAN
/// ports on `nets`' bridges.
async fn evpn(path: &Path, nets: &[&Network]) -> Vec<Finding> {
    let shown = path.display().to_string();
    let fabric = match std::fs::read_to_string(path) {
        Ok(text) => match kvnet_model::Fabric::parse(&text) {
            Ok(f) => Some(f),
            Err(e) => return vec![frr::bad_fabric(&shown, &e.to_string())],
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return vec![frr::bad_fabric(&shown, &e.to_string())],
    };
    let links = match tool("ip", &["-j", "-d", "link", "show", "type", "vxlan"]).await {
        Ok(Ok(out)) => frr::parse_vxlan_links(&out).unwrap_or_default(),
        _ => Vec::new(),
    };
    let expected: Vec<frr::OverlayVni> = links
        .into_iter()
        // With a fabric every VXLAN port counts; without, only EVPN's (no remote, no
        // group): a static VXLAN needs no FRR.
        .filter(|l| fabric.is_some() || l.evpn)
        .filter_map(|l| {
            let net = nets.iter().find(|n| {
                n.bridge_name()
                    .is_some_and(|b| l.master.as_deref() == Some(b))
            })?;
            Some(frr::OverlayVni {
                vni: l.vni,
                network: net.name.clone(),
                device: l.name,
            })
        })
        .collect();
    if fabric.is_none() && expected.is_empty() {
        return Vec::new();
    }
    let vtysh = vtysh();
    let state = match (
        tool(&vtysh, &["-c", "show bgp l2vpn evpn summary json"]).await,
        tool(&vtysh, &["-c", "show evpn vni json"]).await,
    ) {
        (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => frr::Frr::NoVtysh,
        (Err(e), _) | (_, Err(e)) => frr::Frr::Failed(format!("{vtysh}: {e}")),
        (Ok(Err(msg)), _) | (_, Ok(Err(msg))) => frr::Frr::Failed(msg),
        (Ok(Ok(summary)), Ok(Ok(vnis))) => frr::Frr::Answered { summary, vnis },
    };
    frr::judge(fabric.as_ref(), &state, &expected)
}

/// Runs `program` for at most [`TOOL_TIMEOUT`]: its stdout when it succeeds, else
/// what it said (stderr, else stdout) or how it failed.
async fn tool(program: &str, args: &[&str]) -> std::io::Result<Result<String, String>> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let Ok(out) = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output()).await else {
        return Ok(Err(format!(
            "{program} did not answer within {TOOL_TIMEOUT:?}"
        )));
    };
    let out = out?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        return Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let said = [text(&out.stderr), text(&out.stdout)]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or_else(|| format!("{program} failed ({})", out.status));
    Ok(Err(said))
}

/// A kernel feature is there: one of its files exists, or its module is loaded or
/// built in.
fn present(f: &Feature) -> bool {
    if f.probes.iter().any(|p| Path::new(p).exists()) {
        return true;
    }
    let listed = |path: &str, pat: &dyn Fn(&str) -> bool| {
        std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(pat))
    };
    let loaded = |l: &str| l.split_whitespace().next() == Some(f.module);
    let ko = format!("/{}.ko", f.module);
    let builtin = |l: &str| l.ends_with(&ko);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    listed("/proc/modules", &loaded)
        || listed(
            &format!("/lib/modules/{}/modules.builtin", release.trim()),
            &builtin,
        )
}
