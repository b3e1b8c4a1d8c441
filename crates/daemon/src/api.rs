//! The API's dispatch: each typed request to its verb on the [`Daemon`], each verb's
//! result to the reply envelope (docs/api.md). The socket is the `server` module's.

use crate::daemon::Daemon;
use anyhow::Result;
use kvnet_api::request::Call;
use kvnet_api::{Reply, Request, Version};

/// A verb's result as the reply of request `C`: the reply type is checked here, so
/// the daemon cannot send what the client would not decode.
fn reply<C: Call>(res: Result<C::Reply>) -> Reply {
    reply_warned::<C>(res.map(|data| (data, Vec::new())))
}

fn reply_warned<C: Call>(res: Result<(C::Reply, Vec<String>)>) -> Reply {
    match res {
        Ok((data, warnings)) => Reply::ok(&data, warnings),
        Err(e) => Reply::err(format!("{e:#}")),
    }
}

/// Serve one API request.
pub async fn handle(d: &mut Daemon, req: Request) -> Reply {
    use kvnet_api::request::*;
    match req {
        Request::Ping(_) => reply::<Ping>(Ok(Version {
            version: env!("CARGO_PKG_VERSION").to_string(),
        })),
        Request::Define(r) => reply::<Define>(d.define(&r.xml).await),
        Request::Create(r) => reply_warned::<Create>(d.create(&r.xml).await),
        Request::Undefine(r) => reply::<Undefine>(d.undefine(&r.network)),
        Request::Start(r) => reply_warned::<Start>(d.start(&r.network).await.map(|w| ((), w))),
        Request::Destroy(r) => reply::<Destroy>(d.destroy(&r.network, r.wait).await),
        Request::Autostart(r) => reply::<Autostart>(d.set_autostart(&r.network, r.enable)),
        Request::List(_) => {
            crate::hooks::hang_point("list");
            reply::<List>(Ok(d.registry().summaries()))
        }
        Request::Info(r) => reply::<Info>(d.registry().summary(&r.network)),
        Request::DumpXml(r) => reply::<DumpXml>(d.dump_xml(&r.network, r.inactive)),
        Request::DhcpLeases(r) => reply::<DhcpLeases>(d.dhcp_leases(&r.network, r.mac.as_deref())),
        Request::Update(r) => reply::<Update>(d.update(&r).await),
        Request::PortCreate(r) => reply::<PortCreate>(d.port_create(r).await),
        Request::PortAttach(r) => reply::<PortAttach>(d.port_attach(&r).await),
        Request::PortDelete(r) => {
            reply::<PortDelete>(d.port_delete(r.network.as_deref(), &r.ifname).await)
        }
        Request::PortList(r) => reply::<PortList>(d.port_list(&r.network).await),
        Request::Stats(r) => reply::<Stats>(d.net_stats(&r.network).await),
        Request::IfaceBridge(r) => reply::<IfaceBridge>(d.iface_bridge(&r).await),
        Request::IfaceUnbridge(r) => reply::<IfaceUnbridge>(d.iface_unbridge(&r.bridge).await),
        Request::Doctor(r) => reply::<Doctor>(d.doctor(r.network.as_deref()).await),
        Request::ForwardAdd(r) => reply_warned::<ForwardAdd>(d.forward_add(r)),
        Request::ForwardRemove(r) => reply::<ForwardRemove>(d.forward_remove(&r)),
        Request::ForwardList(r) => reply::<ForwardList>(d.forward_list(&r.network)),
        // The connection itself streams events (server::conn); nothing gets here.
        Request::Events(_) => Reply::err("events: a stream, served by the connection"),
    }
}
