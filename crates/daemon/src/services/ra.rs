//! The router advertisement service of a started network: the I/O shell around the
//! sans-IO engine in `kvnet_ra` (socket, clock, the bridge's addresses). See
//! crates/ra/src/lib.rs for what is advertised and when, and `kvnet_host::icmp6` for
//! the socket (solicitations in, advertisements out from the bridge's link-local
//! address, on the bridge only). While there is no usable link-local address (the
//! bridge has no port with carrier, or DAD is running) a send fails and the engine
//! retries after 1 s, backing off to 16 s; a guest's solicitation restarts at 1 s.

use super::{Ctx, NetService, lock};
use anyhow::{Context, Result};
use kvnet_host::icmp6::{self, RouterSocket};
use kvnet_model::{MacAddr, Network};
use kvnet_ra::{Config, Engine};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::debug;

/// Solicitations read per wakeup, so a flood cannot keep the task from its timer.
const DRAIN_MAX: usize = 64;

fn config(net: &Network) -> Option<Config> {
    Config::from_network(net, net.profile().guests)
}

struct Shell {
    name: String,
    bridge: String,
    sock: RouterSocket,
    engine: Mutex<Engine>,
    /// A reconfiguration moved the engine's deadline.
    wake: Notify,
}

/// A running RA service; dropping it stops advertising silently (kvnetd exits, the
/// network stays up). Stopping it also withdraws the router.
pub struct Ra {
    shell: Arc<Shell>,
    task: JoinHandle<()>,
}

impl Drop for Ra {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bridge's MAC, re-read because a bridge without a fixed one takes a port's.
fn bridge_mac(bridge: &str) -> Option<MacAddr> {
    kvnet_host::link::mac(bridge).map(MacAddr)
}

impl NetService for Ra {
    fn what() -> &'static str {
        "router advertisements"
    }

    fn wanted_for(net: &Network) -> bool {
        config(net).is_some()
    }

    /// Open the socket on the bridge and spawn the task.
    fn start(ctx: &Ctx) -> Result<Ra> {
        let bridge = ctx.bridge;
        let cfg = config(ctx.net).context("the network has no IPv6 address")?;
        let sock = RouterSocket::open(bridge)?;
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let engine = Engine::new(
            cfg.with_source_mac(bridge_mac(bridge)),
            seed,
            Instant::now(),
        );
        let shell = Arc::new(Shell {
            name: ctx.net.name.clone(),
            bridge: bridge.to_string(),
            sock,
            engine: Mutex::new(engine),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(shell.clone()));
        Ok(Ra { shell, task })
    }

    /// A live change of the definition; a changed advertisement goes out at once.
    fn reconfigure(&self, ctx: &Ctx) -> Result<()> {
        let cfg = config(ctx.net).context("the network no longer advertises")?;
        let mut e = lock(&self.shell.engine);
        let mac = e.config().source_mac;
        e.set_config(cfg.with_source_mac(mac), Instant::now());
        drop(e);
        self.shell.wake.notify_one();
        Ok(())
    }

    /// Stop, after the final RA (router lifetime 0, RFC 4861 §6.2.5) so that guests
    /// drop their default route through the network at once instead of after 30 min.
    fn stop(self: Box<Self>) {
        self.task.abort();
        let e = lock(&self.shell.engine);
        if !e.has_advertised() {
            return;
        }
        match self.shell.send(&e.final_ra()) {
            Ok(()) => debug!(network = %self.shell.name, "final router advertisement sent"),
            Err(err) => debug!(network = %self.shell.name, "final router advertisement: {err:#}"),
        }
    }

    fn status(&self) -> String {
        format!("router advertisements on {}", self.shell.bridge)
    }
}

impl Shell {
    /// Send one message to all nodes from the bridge's link-local address.
    fn send(&self, msg: &[u8]) -> Result<()> {
        let src = icmp6::link_local(&self.bridge).context("no usable link-local address yet")?;
        self.sock
            .send_all_nodes(msg, src)
            .with_context(|| format!("send from {src}"))
    }

    /// Hand the engine what arrived, at most DRAIN_MAX messages.
    fn drain(&self, buf: &mut [u8]) {
        for _ in 0..DRAIN_MAX {
            let m = match self.sock.recv(buf) {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    debug!(network = %self.name, "RA socket receive: {e}");
                    return;
                }
            };
            let res =
                lock(&self.engine).on_solicit(Instant::now(), m.from, m.hop_limit, &buf[..m.len]);
            match res {
                Ok(_) => debug!(network = %self.name, "router solicitation from {}", m.from),
                Err(e) => debug!(network = %self.name, "ignored ICMPv6 from {}: {e}", m.from),
            }
        }
    }

    /// Send what the engine has due.
    fn send_due(&self) {
        let now = Instant::now();
        let mut e = lock(&self.engine);
        if e.next_deadline() > now {
            return;
        }
        e.set_source_mac(bridge_mac(&self.bridge));
        while let Some(ra) = e.poll(now) {
            match self.send(&ra) {
                Ok(()) => {
                    e.on_sent();
                    debug!(network = %self.name, "router advertisement sent on {}", self.bridge);
                }
                Err(err) => {
                    // Expected until the bridge has a port and its link-local address
                    // passed DAD; the engine retries.
                    e.on_send_failed(now);
                    debug!(network = %self.name, "router advertisement on {} not sent: {err:#}", self.bridge);
                    return;
                }
            }
        }
    }
}

async fn run(shell: Arc<Shell>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let deadline = lock(&shell.engine).next_deadline();
        tokio::select! {
            r = shell.sock.readable() => match r {
                // Readiness is cleared by the socket once a read finds it empty; a drain
                // cut short by its bound wakes us again.
                Ok(()) => shell.drain(&mut buf),
                Err(e) => {
                    debug!(network = %shell.name, "RA socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shell.wake.notified() => {}
        }
        shell.send_due();
    }
}
