//! qemu `script=`: put the TAP qemu created on a kvnet network and register it as a
//! port. qemu runs it as root with the TAP's name as $1; the network is
//! `KVNET_NETWORK` (default `default`), kvnetd's socket `KVNET_SOCKET`.

#![forbid(unsafe_code)]

use kvnet_api::request as req;
use kvnet_attach::cli::{Ifup, parse};
use kvnet_attach::{DEFAULT_NETWORK, call, socket_from_env};

fn main() {
    let network = std::env::var("KVNET_NETWORK").unwrap_or_else(|_| DEFAULT_NETWORK.into());
    let res = parse::<Ifup>().and_then(|Ifup { tap }| {
        let ifname = tap.ifname;
        let req = req::PortAttach {
            network: Some(network.clone()),
            bridge: None,
            ifname: ifname.clone(),
            mac: None,
        };
        call(&socket_from_env(), req)
            .map_err(|e| e.context(format!("cannot attach {ifname} to network '{network}'")))
    });
    if let Err(e) = res {
        eprintln!("kvnet-ifup: {e:#}");
        std::process::exit(1);
    }
}
