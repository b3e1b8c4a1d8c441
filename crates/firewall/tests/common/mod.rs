//! Fixtures and helpers shared by the integration tests. The fixtures are
//! the network definitions of the golden plans, tests/plans/*.xml, read the
//! way the daemon reads them ([`FwNetwork::from_network`]).
#![allow(dead_code)]

pub mod batch;

use std::path::{Path, PathBuf};

use kvnet_firewall::FwNetwork;
use kvnet_model::Network;

pub fn plans_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plans")
}

/// The name of every plan, tests/plans/NAME.xml, sorted.
pub fn plan_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(plans_dir())
        .expect("tests/plans")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".xml").map(str::to_string))
        .collect();
    names.sort();
    names
}

pub fn definition(name: &str) -> Network {
    let path = plans_dir().join(format!("{name}.xml"));
    let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Network::from_xml(&xml).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The firewall input of plan `name`, which must have rules.
pub fn plan(name: &str) -> FwNetwork {
    FwNetwork::from_network(&definition(name)).unwrap_or_else(|| panic!("{name} has no rules"))
}

/// libvirt's `default` network.
pub fn nat_default() -> FwNetwork {
    plan("nat_default")
}

/// `<nat><address start end/><port start end/></nat>`, no DHCP.
pub fn nat_address_port() -> FwNetwork {
    plan("nat_address_port")
}

/// NAT network with `<nat ipv6='yes'>` and a port range (bridge virbr4).
pub fn nat_ipv6_masq() -> FwNetwork {
    plan("nat_ipv6_port_range")
}

/// libvirt-live's `routed` network: forward dev wan0, v4 + v6.
pub fn route_v4v6() -> FwNetwork {
    plan("route_v4v6")
}

/// Isolated, with TFTP.
pub fn isolated() -> FwNetwork {
    plan("isolated")
}

/// Every plan that has rules, by name, sorted; all fit in one table.
pub fn all() -> Vec<(&'static str, FwNetwork)> {
    plan_names()
        .into_iter()
        .filter_map(|name| {
            let net = FwNetwork::from_network(&definition(&name))?;
            // Callers mix these names with literal ones.
            Some((&*name.leak(), net))
        })
        .collect()
}

/// A NAT network number `i` (for scale tests): bridge kvs<i>, 10.<100 + i/256>.<i%256>.0/24.
pub fn numbered(i: u32) -> FwNetwork {
    let ip = format!("10.{}.{}", 100 + i / 256, i % 256);
    let xml = format!(
        "<network><name>net{i}</name><forward mode='nat'/><bridge name='kvs{i}'/>\
         <ip address='{ip}.1' prefix='24'><dhcp><range start='{ip}.2' end='{ip}.254'/></dhcp>\
         </ip></network>"
    );
    FwNetwork::from_network(&Network::from_xml(&xml).unwrap()).unwrap()
}

/// Compares `actual` with the golden file at `path`, or rewrites the file
/// when UPDATE_SNAPSHOTS=1.
pub fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert!(
        expected == actual,
        "{} differs (UPDATE_SNAPSHOTS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// `nft -f -` with `script` inside the named network namespace; nft's stderr on failure.
pub fn nft_script_in(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
