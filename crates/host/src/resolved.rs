//! systemd-resolved over D-Bus (`org.freedesktop.resolve1`, resolved's
//! `org.freedesktop.resolve1(5)`): a network's DNS server registered for its bridge with
//! the network's domain as a routing domain (`~domain`), so the host resolves
//! `vm1.<domain>` through kvnet's DNS (`<domain register='yes'>`, as libvirt does), and
//! the link reverted at destroy. The bus is found as for firewalld.

use crate::{ErrorKind, HostError};
use std::net::IpAddr;

const NAME: &str = "org.freedesktop.resolve1";
const PATH: &str = "/org/freedesktop/resolve1";
const IFACE: &str = "org.freedesktop.resolve1.Manager";

/// A connection to the system bus on which resolved runs.
pub struct Resolved {
    conn: zbus::Connection,
}

/// resolved's address form: the family (AF_INET, AF_INET6) and the bytes.
fn address(a: IpAddr) -> (i32, Vec<u8>) {
    match a {
        IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
    }
}

impl Resolved {
    /// None when there is no system bus or resolved is not on it.
    pub async fn connect() -> Option<Resolved> {
        let conn = crate::firewalld::system_bus().await?;
        let proxy = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
        let name = zbus::names::BusName::try_from(NAME).ok()?;
        proxy
            .name_has_owner(name)
            .await
            .unwrap_or(false)
            .then_some(Resolved { conn })
    }

    async fn call<B>(&self, method: &str, body: &B) -> Result<(), HostError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(NAME), PATH, Some(IFACE), method, body)
            .await
            .map(|_| ())
            .map_err(|e| {
                HostError::new(format!("resolved {method}"), ErrorKind::DBus(e.to_string()))
            })
    }

    /// Link `ifindex` answers for `domain` (a routing domain only: no search domain, not
    /// the default route) through the DNS servers `servers`.
    pub async fn register(
        &self,
        ifindex: u32,
        servers: &[IpAddr],
        domain: &str,
    ) -> Result<(), HostError> {
        let link = ifindex as i32;
        let dns: Vec<(i32, Vec<u8>)> = servers.iter().copied().map(address).collect();
        self.call("SetLinkDNS", &(link, dns)).await?;
        self.call("SetLinkDomains", &(link, vec![(domain.to_string(), true)]))
            .await?;
        self.call("SetLinkDefaultRoute", &(link, false)).await
    }

    /// Everything set on link `ifindex` goes.
    pub async fn revert(&self, ifindex: u32) -> Result<(), HostError> {
        self.call("RevertLink", &(ifindex as i32)).await
    }
}
