//! `iface-bridge` / `iface-unbridge`, like virsh's: turn a host NIC into a port of a
//! new bridge that takes over the NIC's MAC, MTU, addresses and routes, and back. The
//! [`plan`] is pure; the executor here runs its steps over netlink and, when a step
//! fails or the host has lost a default route it had, undoes the steps done so far in
//! reverse order.

mod plan;

use anyhow::{Context, Result, anyhow, bail};
use kvnet_api::request::IfaceBridge;
use kvnet_api::{Bridged, Unbridged};
use kvnet_host::{Link, Netlink};
use plan::{BridgeInput, Defaults, Step, UnbridgeInput, check_name, plan_bridge, plan_unbridge};
use tracing::{info, warn};

/// Runs the steps over netlink.
pub struct Executor<'a> {
    pub nl: &'a Netlink,
    /// Test hook: fail instead of running this step (1-based).
    pub fail_at: Option<usize>,
}

impl Executor<'_> {
    async fn index(&self, name: &str) -> Result<u32> {
        Ok(self
            .nl
            .link(name)
            .await?
            .ok_or_else(|| anyhow!("interface {name} vanished"))?
            .index)
    }

    async fn step(&self, s: &Step) -> Result<()> {
        match s {
            Step::CreateBridge(spec) => {
                self.nl.create_bridge(spec).await?;
            }
            Step::DeleteLink(l) => {
                if let Some(link) = self.nl.link(l).await? {
                    self.nl.delete_link(link.index).await?;
                }
            }
            Step::Attach { port, bridge } => {
                let m = self.index(bridge).await?;
                self.nl.set_master(self.index(port).await?, Some(m)).await?;
            }
            Step::Detach { port, .. } => {
                self.nl.set_master(self.index(port).await?, None).await?;
            }
            Step::SetUp { link, up } => self.nl.set_up(self.index(link).await?, *up).await?,
            Step::AddAddr { link, addr } => {
                self.nl
                    .add_link_address(self.index(link).await?, addr)
                    .await?
            }
            Step::DelAddr { link, addr } => {
                self.nl
                    .del_address(self.index(link).await?, addr.addr)
                    .await?
            }
            Step::AddRoute { link, route } => {
                self.nl
                    .add_link_route(self.index(link).await?, route)
                    .await?
            }
            Step::DelRoute { link, route } => {
                self.nl
                    .del_link_route(self.index(link).await?, route)
                    .await?
            }
            Step::CheckDefaults(want) => {
                let now = Defaults::of(&self.nl.routes().await?);
                if (want.v4 && !now.v4) || (want.v6 && !now.v6) {
                    bail!(
                        "the host lost its default route{}",
                        match (want.v4 && !now.v4, want.v6 && !now.v6) {
                            (true, false) => " (IPv4)",
                            (false, true) => " (IPv6)",
                            _ => "s",
                        }
                    );
                }
            }
        }
        Ok(())
    }

    /// Runs every step; on a failure undoes the done ones in reverse and returns the
    /// failure (with the undo steps that failed too, if any).
    pub async fn run(&self, steps: &[Step]) -> Result<()> {
        let mut done: Vec<&Step> = Vec::new();
        for (n, s) in steps.iter().enumerate() {
            let res = if self.fail_at == Some(n + 1) {
                Err(anyhow!("injected failure (test hook, step {})", n + 1))
            } else {
                self.step(s).await
            };
            match res {
                Ok(()) => {
                    info!("iface: {s}");
                    done.push(s);
                }
                Err(e) => {
                    warn!("iface: {s} failed: {e:#}; rolling back");
                    let mut failed = Vec::new();
                    for d in done.iter().rev() {
                        if let Some(u) = d.undo()
                            && let Err(ue) = self.step(&u).await
                        {
                            warn!("iface: rollback: {u} failed: {ue:#}");
                            failed.push(format!("{u}: {ue:#}"));
                        }
                    }
                    let mut msg = format!("cannot {s}: {e:#}; rolled back");
                    if !failed.is_empty() {
                        msg += &format!(" except: {}", failed.join("; "));
                    }
                    bail!(msg);
                }
            }
        }
        Ok(())
    }
}

/// The test hook: `KVNET_TEST_IFACE_FAIL_AT=OP:N` (OP `bridge` or `unbridge`) makes
/// step N (1-based) of that operation's plans fail.
fn fail_at(op: &str) -> Option<usize> {
    let v = std::env::var("KVNET_TEST_IFACE_FAIL_AT").ok()?;
    let (o, n) = v.split_once(':')?;
    (o == op).then(|| n.parse().ok()).flatten()
}

/// `iface-bridge` (see docs/api.md).
pub async fn bridge(nl: &Netlink, req: &IfaceBridge) -> Result<Bridged> {
    let IfaceBridge {
        iface,
        bridge,
        stp,
        delay,
        start,
    } = req;
    let (iface, bridge, stp, delay, start) =
        (iface.as_str(), bridge.as_str(), *stp, *delay, *start);
    let link = nl
        .link(iface)
        .await?
        .ok_or_else(|| anyhow!("no such interface '{iface}'"))?;
    let iface_master = match link.master {
        Some(m) => Some(
            nl.link_by_index(m)
                .await?
                .map_or_else(|| format!("#{m}"), |l| l.name),
        ),
        None => None,
    };
    let bridge_taken = check_name(bridge).is_ok() && nl.link(bridge).await?.is_some();
    let input = BridgeInput {
        addrs: nl.link_addresses(link.index).await?,
        routes: nl.link_routes(link.index).await?,
        unmovable: nl.other_link_routes(link.index).await?,
        iface: link,
        iface_master,
        bridge: bridge.to_string(),
        bridge_taken,
        stp,
        delay,
        start,
        defaults: Defaults::of(&nl.routes().await?),
    };
    let steps = plan_bridge(&input)?;
    Executor {
        nl,
        fail_at: fail_at("bridge"),
    }
    .run(&steps)
    .await
    .with_context(|| format!("cannot bridge {iface} into {bridge}"))?;
    info!(iface, bridge, "bridged");
    Ok(Bridged {
        bridge: bridge.into(),
        iface: iface.into(),
        started: start,
    })
}

/// `iface-unbridge`; `used_by` is the active network on `bridge`, if any.
pub async fn unbridge(nl: &Netlink, bridge: &str, used_by: Option<String>) -> Result<Unbridged> {
    let br = nl
        .link(bridge)
        .await?
        .ok_or_else(|| anyhow!("no such interface '{bridge}'"))?;
    let ports: Vec<Link> = nl
        .links()
        .await?
        .into_iter()
        .filter(|l| l.master == Some(br.index))
        .collect();
    let mut taps = Vec::new();
    for p in &ports {
        if nl.tun_info(&p.name).await?.is_some() {
            taps.push(p.name.clone());
        }
    }
    let input = UnbridgeInput {
        addrs: nl.link_addresses(br.index).await?,
        routes: nl.link_routes(br.index).await?,
        unmovable: nl.other_link_routes(br.index).await?,
        bridge: br,
        ports,
        taps,
        used_by,
        defaults: Defaults::of(&nl.routes().await?),
    };
    let steps = plan_unbridge(&input)?;
    let iface = steps
        .iter()
        .find_map(|s| match s {
            Step::Detach { port, .. } => Some(port.clone()),
            _ => None,
        })
        .expect("an unbridge plan detaches the NIC");
    Executor {
        nl,
        fail_at: fail_at("unbridge"),
    }
    .run(&steps)
    .await
    .with_context(|| format!("cannot unbridge {bridge}"))?;
    info!(bridge, iface, "unbridged");
    Ok(Unbridged {
        bridge: bridge.into(),
        iface,
    })
}
