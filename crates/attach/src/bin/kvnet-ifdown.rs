//! qemu `downscript=`: take the TAP off its kvnet network and unregister the port.
//! The TAP itself goes when qemu closes it. Same environment as kvnet-ifup; without
//! `KVNET_NETWORK` the port is found on whichever network has it.

#![forbid(unsafe_code)]

use kvnet_api::request as req;
use kvnet_attach::cli::{Ifdown, parse};
use kvnet_attach::{call, socket_from_env};

fn main() {
    let network = std::env::var("KVNET_NETWORK").ok();
    let res = parse::<Ifdown>().and_then(|Ifdown { tap }| {
        let ifname = tap.ifname;
        let req = req::PortDelete {
            network,
            ifname: ifname.clone(),
        };
        call(&socket_from_env(), req).map_err(|e| e.context(format!("cannot detach {ifname}")))
    });
    if let Err(e) = res {
        eprintln!("kvnet-ifdown: {e:#}");
        std::process::exit(1);
    }
}
