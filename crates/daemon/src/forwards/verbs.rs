//! `net-forward-add`, `net-forward-remove` and `net-forward-list`: a forward is part of
//! the network's definition (kvnet's metadata), so each change goes to the persistent
//! definition and, when the network is active, to the live one, whose forwards are
//! installed before the change is recorded. A refused change leaves both as they were.

use crate::events;
use crate::lifecycle::Lifecycle;
use crate::paths::Paths;
use crate::registry::{Registry, UpdatePlan};
use crate::store::{self, status};
use anyhow::{Result, anyhow, bail};
use kvnet_api::request::{ForwardAdd, ForwardRemove};
use kvnet_api::{EventKind, ForwardEntry};
use kvnet_model::{FwdProto, GuestRef, Network, PortForward};
use tracing::info;

/// Whether two forwards would take the same host port.
fn clash(a: &PortForward, b: &PortForward) -> bool {
    a.proto == b.proto
        && a.address == b.address
        && a.ports.start <= b.ports.end
        && b.ports.start <= a.ports.end
}

/// `n` with its forwards changed by `edit`, checked as a define would check them (the
/// rest of the definition is unchanged, and valid).
fn edited(n: &Network, edit: &dyn Fn(&mut Vec<PortForward>) -> Result<()>) -> Result<Network> {
    let mut ext = n.kvnet_ext().map_err(|e| anyhow!("{e}"))?;
    edit(&mut ext.forwards)?;
    n.check_kvnet_ext(&ext)
        .map_err(|e| anyhow!("network '{}': {e}", n.name))?;
    let mut out = n.clone();
    out.set_kvnet_ext(&ext);
    Ok(out)
}

/// Persist `plan`'s definition, install its live forwards, then record it; the
/// definition on disk goes back if the forwards cannot be installed.
fn apply(
    reg: &mut Registry,
    paths: &Paths,
    life: &Lifecycle,
    name: &str,
    plan: UpdatePlan,
) -> Result<()> {
    if let Some(d) = &plan.def {
        store::save_definition(paths, name, &d.to_xml())?;
    }
    if let Some((_, live)) = &plan.live
        && let Err(e) = life.sync_forwards(live)
    {
        if let (Some(d), Some(_)) = (&reg.get(name)?.def, &plan.def) {
            store::save_definition(paths, name, &d.to_xml())?;
        }
        if let Some(old) = &reg.get(name)?.live {
            let _ = life.sync_forwards(old);
        }
        return Err(e.context(format!("network '{name}': forwards not changed")));
    }
    if let Some(st) = reg.commit_update(name, plan)? {
        status::save(paths, name, &st)?;
    }
    Ok(())
}

fn plan(
    reg: &Registry,
    name: &str,
    edit: &dyn Fn(&mut Vec<PortForward>) -> Result<()>,
) -> Result<UpdatePlan> {
    let o = reg.get(name)?;
    Ok(UpdatePlan {
        def: o.def.as_ref().map(|d| edited(d, edit)).transpose()?,
        live: o
            .live
            .as_ref()
            .map(|l| Ok::<_, anyhow::Error>((l.clone(), edited(l, edit)?)))
            .transpose()?,
    })
}

pub fn add(
    reg: &mut Registry,
    paths: &Paths,
    life: &Lifecycle,
    r: ForwardAdd,
) -> Result<(ForwardEntry, Vec<String>)> {
    let name = r.network.as_str();
    let f = r.forward;
    let plan = plan(reg, name, &|fwds| {
        if let Some(o) = fwds.iter().find(|o| clash(o, &f)) {
            bail!("host port {} is already forwarded ({o})", f.ports);
        }
        fwds.push(f.clone());
        Ok(())
    })?;
    // A host port is one forward's, whichever network it belongs to.
    for other in reg.active().into_iter().filter(|n| n.name != name) {
        let fwds = other.kvnet_ext().map(|e| e.forwards).unwrap_or_default();
        if let Some(o) = fwds.iter().find(|o| clash(o, &f)) {
            bail!(
                "host port {} is already forwarded by network '{}' ({o})",
                f.ports,
                other.name
            );
        }
    }
    let mut warnings = Vec::new();
    let guest = match &plan.live {
        Some((_, live)) => {
            let guest = life.forward_guest(live, &f);
            if guest.is_none() {
                let how = match &f.to {
                    GuestRef::Name(_) => "no lease or static host has that name",
                    GuestRef::Mac(_) => "no lease or static host has that MAC address",
                    GuestRef::Addr(_) => "unreachable",
                };
                bail!("no guest '{}' on network '{name}': {how}", f.to);
            }
            guest
        }
        None => {
            warnings.push(format!(
                "network '{name}' is not active: the forward is installed when it starts"
            ));
            None
        }
    };
    let tcp = f.proto == FwdProto::Tcp;
    let proto = if tcp { "tcp" } else { "udp" };
    if let Some(p) =
        kvnet_host::portprobe::first_taken(tcp, f.address, (f.ports.start, f.ports.end))
    {
        warnings.push(format!(
            "a host process listens on {proto} port {p}: connections from outside go to the guest instead"
        ));
    }
    let active = plan.live.is_some();
    apply(reg, paths, life, name, plan)?;
    info!(network = %name, event = "forward", "forward {f} added");
    events::emit(
        name,
        EventKind::Forward,
        "added",
        &[("forward", f.to_string())],
    );
    Ok((
        ForwardEntry {
            forward: f,
            guest_address: guest,
            active,
        },
        warnings,
    ))
}

pub fn remove(
    reg: &mut Registry,
    paths: &Paths,
    life: &Lifecycle,
    r: &ForwardRemove,
) -> Result<()> {
    let name = r.network.as_str();
    let matches =
        |f: &PortForward| f.proto == r.proto && f.address == r.address && f.ports == r.ports;
    let plan = plan(reg, name, &|fwds| {
        fwds.retain(|f| !matches(f));
        Ok(())
    })?;
    let current = reg.get(name)?.current();
    let had = current.kvnet_ext().map(|e| e.forwards).unwrap_or_default();
    let Some(gone) = had.iter().find(|f| matches(f)) else {
        let addr = r.address.map_or("*".into(), |a| a.to_string());
        bail!(
            "network '{name}' has no forward of {} {addr}:{}",
            match r.proto {
                FwdProto::Tcp => "tcp",
                FwdProto::Udp => "udp",
            },
            r.ports
        );
    };
    let gone = gone.to_string();
    apply(reg, paths, life, name, plan)?;
    info!(network = %name, event = "forward", "forward {gone} removed");
    events::emit(name, EventKind::Forward, "removed", &[("forward", gone)]);
    Ok(())
}

pub fn list(reg: &Registry, life: &Lifecycle, name: &str) -> Result<Vec<ForwardEntry>> {
    let o = reg.get(name)?;
    if o.live.is_some() {
        return Ok(life
            .resolved_forwards(name)
            .into_iter()
            .map(|r| ForwardEntry {
                active: r.guest.is_some(),
                guest_address: r.guest,
                forward: r.forward,
            })
            .collect());
    }
    let fwds = o
        .current()
        .kvnet_ext()
        .map_err(|e| anyhow!("{e}"))?
        .forwards;
    Ok(fwds
        .into_iter()
        .map(|forward| ForwardEntry {
            forward,
            guest_address: None,
            active: false,
        })
        .collect())
}
