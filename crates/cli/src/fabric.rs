//! `kvnet fabric-config`: the FRR configuration of this host in the EVPN fabric, from
//! the fabric file alone (no daemon).

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kvnet_model::{DEFAULT_FABRIC_PATH, Fabric, FabricHost};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The options of `fabric-config`.
#[derive(Args)]
pub struct FabricConfigArgs {
    /// The fabric file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_FABRIC_PATH, env = "KVNET_FABRIC")]
    fabric: PathBuf,
    /// The host to configure (default: the host whose VTEP is an address of this machine).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
}

/// How to put the printed configuration in place, on stderr so that stdout stays
/// the file.
const HOW_TO_LOAD: &str = "\
# To load it (FRR's bgpd must be enabled in /etc/frr/daemons):
#   kvnet fabric-config > frr.conf
#   install -m 640 -o frr -g frr frr.conf /etc/frr/frr.conf
#   /usr/lib/frr/frr-reload.py --reload /etc/frr/frr.conf    (or: systemctl restart frr)";

pub fn run(a: FabricConfigArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.fabric)
        .with_context(|| format!("cannot read the fabric file {}", a.fabric.display()))?;
    let fabric = Fabric::parse(&text).map_err(|e| anyhow!("{}: {e}", a.fabric.display()))?;
    let locals = match a.host {
        Some(_) => Vec::new(),
        None => local_ipv4()?,
    };
    let host = pick_host(&fabric, a.host.as_deref(), &locals)?;
    print!("{}", fabric.frr_config(&host.name)?);
    eprintln!("# host {} (VTEP {})", host.name, host.vtep);
    eprintln!("{HOW_TO_LOAD}");
    Ok(())
}

/// `--host`, else the one host whose VTEP is one of `locals`.
fn pick_host<'f>(
    fabric: &'f Fabric,
    name: Option<&str>,
    locals: &[Ipv4Addr],
) -> Result<&'f FabricHost> {
    let list = || {
        fabric
            .hosts
            .iter()
            .map(|h| format!("{} ({})", h.name, h.vtep))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(n) = name {
        return fabric
            .host(n)
            .ok_or_else(|| anyhow!("no host {n} in the fabric; hosts: {}", list()));
    }
    let mine: Vec<&FabricHost> = fabric
        .hosts
        .iter()
        .filter(|h| locals.contains(&h.vtep))
        .collect();
    match mine[..] {
        [h] => Ok(h),
        [] => bail!(
            "no VTEP of the fabric is an address of this machine; name the host with --host \
             (hosts: {})",
            list()
        ),
        _ => bail!(
            "several VTEPs of the fabric are addresses of this machine ({}); name the host with --host",
            mine.iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// This machine's IPv4 addresses, from `ip -j -4 addr show`.
fn local_ipv4() -> Result<Vec<Ipv4Addr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .context("cannot run 'ip -j -4 addr show' to find this host's VTEP (or use --host)")?;
    if !out.status.success() {
        bail!(
            "'ip -j -4 addr show' failed: {} (or use --host)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ip_addr(&String::from_utf8_lossy(&out.stdout))
}

/// The IPv4 addresses in `ip -j addr` output.
fn parse_ip_addr(json: &str) -> Result<Vec<Ipv4Addr>> {
    let links: Vec<serde_json::Value> =
        serde_json::from_str(json).context("cannot parse the output of 'ip -j addr'")?;
    Ok(links
        .iter()
        .filter_map(|l| l.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FABRIC: &str = "asn = 65000\n\
        [[host]]\nname = \"host1\"\nvtep = \"10.255.0.1\"\n\
        [[host]]\nname = \"host2\"\nvtep = \"10.255.0.2\"\n";

    #[test]
    fn ip_addr_json_gives_the_ipv4_addresses() {
        // Shape of `ip -j -4 addr show` (iproute2 6.1).
        let json = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet","local":"10.255.0.2","prefixlen":32,"scope":"global"}]},{"ifindex":2,"ifname":"eth0","addr_info":[]},{"ifindex":3,"ifname":"eth1"}]"#;
        assert_eq!(
            parse_ip_addr(json).unwrap(),
            [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(10, 255, 0, 2)]
        );
        assert!(parse_ip_addr("not json").is_err());
    }

    #[test]
    fn the_host_is_named_or_found_by_its_vtep() {
        let f = Fabric::parse(FABRIC).unwrap();
        let v2 = Ipv4Addr::new(10, 255, 0, 2);
        assert_eq!(pick_host(&f, Some("host1"), &[]).unwrap().name, "host1");
        assert_eq!(pick_host(&f, None, &[v2]).unwrap().name, "host2");
        let e = pick_host(&f, Some("host9"), &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "no host host9 in the fabric; hosts: host1 (10.255.0.1), host2 (10.255.0.2)"
        );
        let e = pick_host(&f, None, &[Ipv4Addr::new(192, 0, 2, 1)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--host") && e.contains("host2 (10.255.0.2)"),
            "{e}"
        );
        let e = pick_host(&f, None, &[Ipv4Addr::new(10, 255, 0, 1), v2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("(host1, host2)"), "{e}");
    }
}
