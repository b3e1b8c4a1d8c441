//! One connection's worth of kvnetd: a request, its warnings printed, its data back.

use anyhow::{Context, Result};
use kvnet_api::request::{self as req, Call};
use kvnet_api::{ClientError, NetSummary};
use std::path::PathBuf;

pub struct Client {
    pub socket: PathBuf,
}

impl Client {
    /// One request; its warnings are printed, on success or not.
    pub fn call<C: Call>(&self, req: C) -> Result<C::Reply> {
        let res = kvnet_api::call(&self.socket, req);
        let warnings = match &res {
            Ok(a) => a.warnings.as_slice(),
            Err(ClientError::Refused { warnings, .. }) => warnings.as_slice(),
            Err(_) => &[],
        };
        for w in warnings {
            eprintln!("warning: {w}");
        }
        Ok(res?.data)
    }

    /// A verb that changes something: virsh-style context on failure, its message on success.
    pub fn act<C: Call>(&self, req: C, failed: String, done: String) -> Result<()> {
        self.call(req).context(failed)?;
        println!("{done}");
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<NetSummary>> {
        self.call(req::List {})
    }

    /// virsh accepts a name or a UUID wherever it takes a network.
    pub fn resolve(&self, network: &str) -> Result<String> {
        if uuid_like(network) {
            let nets = self.list()?;
            if !nets.iter().any(|n| n.name == network)
                && let Some(n) = nets.iter().find(|n| n.uuid.eq_ignore_ascii_case(network))
            {
                return Ok(n.name.clone());
            }
        }
        Ok(network.to_string())
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
