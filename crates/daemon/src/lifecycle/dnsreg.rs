//! `<domain name=… register='yes'>`: when systemd-resolved runs, the network's DNS
//! server and domain are registered for its bridge (resolved's SetLinkDNS and
//! SetLinkDomains with `~domain`), so `vm1.<domain>` resolves on the host, as libvirt
//! does; reverted at destroy. Without resolved (or a system bus) nothing happens.

use kvnet_host::Netlink;
use kvnet_host::resolved::Resolved;
use kvnet_model::Network;
use std::net::IpAddr;
use tracing::{debug, info};

/// The domain to register for `net`, if it asks for it and kvnet serves its DNS.
fn wanted(net: &Network) -> Option<&str> {
    let d = net.domain.as_ref()?;
    let dns_on = net.dns.as_ref().and_then(|d| d.enable) != Some(false);
    (d.register == Some(true) && dns_on).then_some(d.name.as_str())
}

/// Registers `net`'s DNS for its domain with resolved; a warning when that fails.
pub async fn register(nl: &Netlink, net: &Network) -> Option<String> {
    let domain = wanted(net)?;
    let br = net.bridge_name()?;
    let Some(resolved) = Resolved::connect().await else {
        debug!(network = %net.name, "systemd-resolved is not running: {domain} not registered");
        return None;
    };
    let link = match nl.link(br).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Some(format!(
                "cannot register {domain} with systemd-resolved: no bridge {br}"
            ));
        }
        Err(e) => {
            return Some(format!(
                "cannot register {domain} with systemd-resolved: {e}"
            ));
        }
    };
    let servers: Vec<IpAddr> = net.ips.iter().map(|ip| ip.address).collect();
    match resolved.register(link.index, &servers, domain).await {
        Ok(()) => {
            info!(network = %net.name, "{domain} registered with systemd-resolved on {br}");
            None
        }
        Err(e) => Some(format!(
            "cannot register {domain} with systemd-resolved: {e}"
        )),
    }
}

/// Undoes [`register`] while the bridge still exists.
pub async fn revert(nl: &Netlink, net: &Network) -> Option<String> {
    wanted(net)?;
    let br = net.bridge_name()?;
    let resolved = Resolved::connect().await?;
    let link = nl.link(br).await.ok()??;
    resolved
        .revert(link.index)
        .await
        .err()
        .map(|e| format!("cannot revert {br} in systemd-resolved: {e}"))
}
