//! An overlay network's place in the fabric (`fabric.toml`, kvnet_model::Fabric): this
//! host's slice of the DHCPv4 ranges, from the position of its VTEP among the fabric's
//! hosts, so that no two hosts ever hand out the same new address (docs/architecture.md,
//! "Overlay networks").

use crate::dataplane::overlay;
use crate::paths::Paths;
use anyhow::{Result, anyhow};
use kvnet_host::Netlink;
use kvnet_model::{Fabric, Network};

/// (index, count) of this host for `net`'s DHCP, None when it is no overlay; and a
/// warning when there is no fabric description (every host then hands out the whole
/// ranges). Fails when the fabric cannot be read or does not list this host's VTEP.
pub async fn dhcp_slice(
    nl: &Netlink,
    paths: &Paths,
    net: &Network,
) -> Result<(Option<(usize, usize)>, Option<String>)> {
    let Some(o) = overlay::of(net) else {
        return Ok((None, None));
    };
    let path = paths.fabric();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((
                None,
                Some(format!(
                    "network '{}': no fabric description ({}): every host hands out addresses from the whole DHCP ranges, and two hosts may give out the same one",
                    net.name,
                    path.display()
                )),
            ));
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let fabric = Fabric::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let vtep = overlay::underlay(nl, &o).await?.vtep;
    let (index, _) = fabric.by_vtep(vtep).ok_or_else(|| {
        anyhow!(
            "this host's VTEP {vtep} is not a host of the fabric in {}",
            path.display()
        )
    })?;
    Ok((Some((index, fabric.hosts.len())), None))
}
