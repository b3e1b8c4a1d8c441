//! firewalld over D-Bus (`org.fedoraproject.FirewallD1`, firewalld's
//! `doc/xml/firewalld.dbus.xml`): which zones and policies exist, creating kvnet's
//! (permanent, through the config interface, then a reload), binding an interface
//! to a zone at runtime, and the signals that undo runtime bindings (`Reloaded`, and
//! firewalld stopping or starting). The system bus is `DBUS_SYSTEM_BUS_ADDRESS`
//! when set (tests run a private bus), else `/run/dbus/system_bus_socket`.

use crate::{ErrorKind, HostError};
use futures::StreamExt;
use std::collections::HashMap;
use zbus::zvariant::Value;

pub const NAME: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const CONFIG_PATH: &str = "/org/fedoraproject/FirewallD1/config";
const ZONE_IFACE: &str = "org.fedoraproject.FirewallD1.zone";
const CONFIG_IFACE: &str = "org.fedoraproject.FirewallD1.config";

/// A setting of a zone or policy (firewalld's `a{sv}`).
#[derive(Debug, Clone, Copy)]
pub enum Setting<'a> {
    Str(&'a str),
    Strs(&'a [&'a str]),
    Int(i32),
}

/// What happened to firewalld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A reload: runtime interface bindings are gone (`FlushAllOnReload=yes`).
    Reloaded,
    /// firewalld (re)started on the bus.
    Started,
    Stopped,
}

/// A connection to the system bus, for firewalld.
#[derive(Clone)]
pub struct Firewalld {
    conn: zbus::Connection,
}

fn err(context: impl Into<String>, e: zbus::Error) -> HostError {
    let msg = match &e {
        // firewalld's errors carry its own text, e.g. "INVALID_ZONE: nope".
        zbus::Error::MethodError(name, Some(text), _) => format!("{text} ({name})"),
        _ => e.to_string(),
    };
    HostError::new(context, ErrorKind::DBus(msg))
}

/// The system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set, else the usual socket); None
/// when there is none. A missing socket is seen without trying to connect.
pub(crate) async fn system_bus() -> Option<zbus::Connection> {
    let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
    if let Some(path) = addr
        .strip_prefix("unix:path=")
        .map(|p| p.split(',').next().unwrap_or(p))
        && !std::path::Path::new(path).exists()
    {
        return None;
    }
    zbus::Connection::system().await.ok()
}

impl Firewalld {
    /// Connects to the system bus; None when there is none (then firewalld cannot run).
    /// A missing socket is seen without trying: network starts ask this each time.
    pub async fn connect() -> Option<Firewalld> {
        system_bus().await.map(|conn| Firewalld { conn })
    }

    /// Whether firewalld is on the bus now.
    pub async fn running(&self) -> bool {
        let Ok(proxy) = zbus::fdo::DBusProxy::new(&self.conn).await else {
            return false;
        };
        match zbus::names::BusName::try_from(NAME) {
            Ok(name) => proxy.name_has_owner(name).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn call<B, R>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<R, HostError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let context = format!("firewalld {method}");
        let reply = self
            .conn
            .call_method(Some(NAME), path, Some(iface), method, body)
            .await
            .map_err(|e| err(&context, e))?;
        reply.body().deserialize().map_err(|e| err(context, e))
    }

    /// The permanent zones.
    pub async fn zone_names(&self) -> Result<Vec<String>, HostError> {
        self.call(CONFIG_PATH, CONFIG_IFACE, "getZoneNames", &())
            .await
    }

    /// The permanent policies.
    pub async fn policy_names(&self) -> Result<Vec<String>, HostError> {
        self.call(CONFIG_PATH, CONFIG_IFACE, "getPolicyNames", &())
            .await
    }

    /// Creates permanent zone `name` (it is live after [`Firewalld::reload`]).
    pub async fn add_zone(
        &self,
        name: &str,
        settings: &[(&str, Setting<'_>)],
    ) -> Result<(), HostError> {
        self.add("addZone2", name, settings).await
    }

    /// Creates permanent policy `name`.
    pub async fn add_policy(
        &self,
        name: &str,
        settings: &[(&str, Setting<'_>)],
    ) -> Result<(), HostError> {
        self.add("addPolicy", name, settings).await
    }

    /// A config call that creates object `name` and returns its path.
    async fn add(
        &self,
        method: &str,
        name: &str,
        settings: &[(&str, Setting<'_>)],
    ) -> Result<(), HostError> {
        let body = (name, dict(settings));
        let _: zbus::zvariant::OwnedObjectPath =
            self.call(CONFIG_PATH, CONFIG_IFACE, method, &body).await?;
        Ok(())
    }

    /// Applies the permanent configuration; drops runtime bindings.
    pub async fn reload(&self) -> Result<(), HostError> {
        self.call(PATH, NAME, "reload", &()).await
    }

    /// Puts `iface` in `zone` at runtime, wherever it was; returns the zone.
    pub async fn change_zone_of_interface(
        &self,
        zone: &str,
        iface: &str,
    ) -> Result<String, HostError> {
        self.call(PATH, ZONE_IFACE, "changeZoneOfInterface", &(zone, iface))
            .await
    }

    /// The runtime zone of `iface`, empty when it is in none.
    pub async fn zone_of_interface(&self, iface: &str) -> Result<String, HostError> {
        self.call(PATH, ZONE_IFACE, "getZoneOfInterface", &(iface,))
            .await
    }

    /// Takes `iface` out of `zone` at runtime.
    pub async fn remove_interface(&self, zone: &str, iface: &str) -> Result<(), HostError> {
        let _: String = self
            .call(PATH, ZONE_IFACE, "removeInterface", &(zone, iface))
            .await?;
        Ok(())
    }

    /// firewalld's reloads, starts and stops, as they come.
    pub async fn events(
        &self,
    ) -> Result<impl futures::Stream<Item = Event> + Unpin + use<>, HostError> {
        let reloaded = format!("type='signal',interface='{NAME}',member='Reloaded'");
        let owner = format!(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',\
             member='NameOwnerChanged',arg0='{NAME}'"
        );
        let subscribe = |rule: String| async move {
            zbus::MessageStream::for_match_rule(rule.as_str(), &self.conn, None)
                .await
                .map_err(|e| err("firewalld: subscribe to signals", e))
        };
        let reloads = subscribe(reloaded).await?.map(|_| Event::Reloaded);
        let owners = subscribe(owner).await?.map(|m| {
            let new_owner = m
                .ok()
                .and_then(|m| m.body().deserialize::<(String, String, String)>().ok())
                .map(|(_, _, new)| new);
            match new_owner {
                Some(o) if !o.is_empty() => Event::Started,
                _ => Event::Stopped,
            }
        });
        Ok(futures::stream::select(reloads, owners))
    }
}

fn dict<'a>(settings: &'a [(&'a str, Setting<'a>)]) -> HashMap<&'a str, Value<'a>> {
    settings
        .iter()
        .map(|(k, v)| {
            let v = match *v {
                Setting::Str(s) => Value::from(s),
                Setting::Strs(a) => Value::from(a.to_vec()),
                Setting::Int(i) => Value::from(i),
            };
            (*k, v)
        })
        .collect()
}
