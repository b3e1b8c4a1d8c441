//! kvnet's own network extension, kept in `<metadata>` under kvnet's namespace so that the
//! same definition still loads in libvirt (which keeps, and ignores, foreign metadata):
//!
//! ```xml
//! <metadata>
//!   <kvnet:network xmlns:kvnet="http://kvnet.org/xmlns/network/1.0">
//!     <kvnet:filterref filter="clean-traffic"/>
//!     <kvnet:forward proto="tcp" address="192.0.2.7" port="8080-8081" to="vm1" toPort="80-81"/>
//!   </kvnet:network>
//! </metadata>
//! ```
//!
//! The format is ours, so it is read strictly: an unknown element or attribute is an error
//! rather than something silently dropped on the next write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::types::{ForwardMode, Network};
use crate::xmltree::{XmlElement, XmlNode};

mod forward;
mod overlay;
use forward::parse_forward;
pub use forward::{FwdProto, GuestRef, PortForward, PortRange, parse_target};
pub use overlay::{MAX_VNI, Overlay, VXLAN_OVERHEAD, VXLAN_PORT};

/// The namespace of `<kvnet:network>` in a network's `<metadata>`.
pub const KVNET_NS: &str = "http://kvnet.org/xmlns/network/1.0";

/// The most port forwards one network may have: each is a firewall rule per packet path,
/// and a definition is read whole on every start.
pub const MAX_FORWARDS: usize = 10_000;

/// The most ports one forward may span: a typo like `1-65535` would otherwise take over
/// every port of the host's address.
pub const MAX_FORWARD_PORTS: u32 = 4096;

/// Error paths use the `kvnet` prefix whatever prefix the file binds to [`KVNET_NS`];
/// the parser records the lines of these paths so errors still point into the file.
pub(crate) const ROOT_PATH: &str = "network/metadata/kvnet:network";

pub(crate) fn forward_path(i: usize) -> String {
    format!("{ROOT_PATH}/kvnet:forward[{}]", i + 1)
}

/// The prefix kvnet writes its elements with.
const PREFIX: &str = "kvnet";

/// The traffic filter of guest ports (libvirt's nwfilter names): `clean-traffic` lets a
/// guest send only from its own MAC and addresses and never as a DHCP server or router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficFilter {
    #[default]
    None,
    CleanTraffic,
}

impl TrafficFilter {
    pub fn is_none(&self) -> bool {
        *self == TrafficFilter::None
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficFilter::None => "none",
            TrafficFilter::CleanTraffic => "clean-traffic",
        }
    }
}

impl fmt::Display for TrafficFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrafficFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clean-traffic" => Ok(TrafficFilter::CleanTraffic),
            "none" => Ok(TrafficFilter::None),
            _ => Err(format!(
                "unknown traffic filter '{s}' (expected 'clean-traffic' or 'none')"
            )),
        }
    }
}

/// Everything kvnet keeps in its `<metadata>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KvnetExt {
    /// `<kvnet:filterref filter='…'/>`: the filter of every guest port of the network
    /// (a port may choose its own); none when absent.
    #[serde(default, skip_serializing_if = "TrafficFilter::is_none")]
    pub filter: TrafficFilter,
    #[serde(default)]
    pub forwards: Vec<PortForward>,
    /// `<kvnet:overlay>`: the network spans hosts (VXLAN, BGP EVPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<Overlay>,
}

impl KvnetExt {
    pub fn is_empty(&self) -> bool {
        self.forwards.is_empty() && self.filter == TrafficFilter::None && self.overlay.is_none()
    }

    fn to_element(&self) -> XmlElement {
        let filter = (self.filter != TrafficFilter::None).then(|| {
            XmlNode::Element(XmlElement {
                name: format!("{PREFIX}:filterref"),
                namespaces: Vec::new(),
                attributes: vec![("filter".into(), self.filter.to_string())],
                children: Vec::new(),
            })
        });
        XmlElement {
            name: format!("{PREFIX}:network"),
            namespaces: vec![(PREFIX.to_string(), KVNET_NS.to_string())],
            attributes: Vec::new(),
            children: filter
                .into_iter()
                .chain(
                    self.overlay
                        .iter()
                        .map(|o| XmlNode::Element(o.to_element())),
                )
                .chain(
                    self.forwards
                        .iter()
                        .map(|f| XmlNode::Element(f.to_element())),
                )
                .collect(),
        }
    }
}

fn is_kvnet(e: &XmlElement) -> bool {
    e.own_namespace() == Some(KVNET_NS)
}

/// `(prefix, local name)` of a qualified name; the prefix is empty when there is none.
fn split_name(name: &str) -> (&str, &str) {
    name.split_once(':').unwrap_or(("", name))
}

/// The namespace a prefix maps to in nested scopes, innermost last.
fn lookup<'a>(prefix: &str, scopes: &[&'a [(String, String)]]) -> Option<&'a str> {
    scopes
        .iter()
        .rev()
        .find_map(|s| s.iter().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str()))
}

/// The local name of an element in kvnet's namespace, `None` for any other element.
fn kvnet_local<'a>(e: &'a XmlElement, scopes: &[&[(String, String)]]) -> Option<&'a str> {
    let (prefix, local) = split_name(&e.name);
    (lookup(prefix, scopes) == Some(KVNET_NS)).then_some(local)
}

fn no_text(path: &str, children: &[XmlNode]) -> Result<(), ModelError> {
    if children
        .iter()
        .any(|c| matches!(c, XmlNode::Text(t) if !t.trim().is_empty()))
    {
        return Err(ModelError::new(path, "unexpected text content"));
    }
    Ok(())
}

fn parse_root(root: &XmlElement) -> Result<KvnetExt, ModelError> {
    if kvnet_local(root, &[&root.namespaces]) != Some("network") {
        return Err(ModelError::new(
            "network/metadata",
            format!(
                "unknown element <{}> in kvnet's namespace {KVNET_NS} (expected <network>)",
                root.name
            ),
        ));
    }
    if let Some((a, _)) = root.attributes.first() {
        return Err(ModelError::new(
            ROOT_PATH,
            format!("unknown attribute '{a}'"),
        ));
    }
    no_text(ROOT_PATH, &root.children)?;
    let elements = || {
        root.children.iter().filter_map(|c| match c {
            XmlNode::Element(e) => Some(e),
            _ => None,
        })
    };
    // Counted before any is parsed, so a huge file costs little.
    let count = elements()
        .filter(|e| !e.name.ends_with("filterref") && !e.name.ends_with("overlay"))
        .count();
    if count > MAX_FORWARDS {
        return Err(ModelError::new(
            ROOT_PATH,
            format!("{count} port forwards, more than the {MAX_FORWARDS} a network may have"),
        ));
    }
    let mut ext = KvnetExt::default();
    let mut filters = 0;
    for e in elements() {
        match kvnet_local(e, &[&root.namespaces, &e.namespaces]) {
            Some("forward") => {
                let p = forward_path(ext.forwards.len());
                ext.forwards.push(parse_forward(&p, e)?);
            }
            Some("overlay") => {
                let p = format!("{ROOT_PATH}/kvnet:overlay");
                if ext.overlay.is_some() {
                    return Err(ModelError::new(p, "a network has one <overlay>"));
                }
                ext.overlay = Some(overlay::parse_overlay(&p, e)?);
            }
            Some("filterref") => {
                filters += 1;
                let p = format!("{ROOT_PATH}/kvnet:filterref[{filters}]");
                if filters > 1 {
                    return Err(ModelError::new(p, "a network has one <filterref>"));
                }
                ext.filter = parse_filterref(&p, e)?;
            }
            _ => {
                return Err(ModelError::new(
                    ROOT_PATH,
                    format!("unknown element <{}>", e.name),
                ));
            }
        }
    }
    Ok(ext)
}

fn parse_filterref(p: &str, e: &XmlElement) -> Result<TrafficFilter, ModelError> {
    let err = |m: String| ModelError::new(p, m);
    let mut filter = None;
    for (n, v) in &e.attributes {
        match n.as_str() {
            "filter" => filter = Some(v.as_str()),
            _ => return Err(err(format!("unknown attribute '{n}'"))),
        }
    }
    no_text(p, &e.children)?;
    if let Some(c) = e.children.iter().find_map(|c| match c {
        XmlNode::Element(c) => Some(c),
        _ => None,
    }) {
        return Err(err(format!(
            "unknown element <{}> (kvnet's filters take no parameters)",
            c.name
        )));
    }
    required(p, filter, "filter")?
        .parse()
        .map_err(|e| err(format!("attribute 'filter': {e}")))
}

fn required<'v>(p: &str, v: Option<&'v str>, name: &str) -> Result<&'v str, ModelError> {
    v.ok_or_else(|| ModelError::new(p, format!("missing required attribute '{name}'")))
}

impl Network {
    /// kvnet's extension, read from the `<metadata>` element in [`KVNET_NS`] (any prefix);
    /// empty when there is none.
    pub fn kvnet_ext(&self) -> Result<KvnetExt, ModelError> {
        match self.metadata.iter().flatten().find(|e| is_kvnet(e)) {
            None => Ok(KvnetExt::default()),
            Some(e) => parse_root(e),
        }
    }

    /// Store `ext` as `<kvnet:network>`: in place of the current kvnet element (other
    /// metadata keeps its order), appended when there is none, removed when `ext` is empty;
    /// a `<metadata>` left empty by the removal goes too.
    pub fn set_kvnet_ext(&mut self, ext: &KvnetExt) {
        let new = (!ext.is_empty()).then(|| ext.to_element());
        let Some(meta) = self.metadata.as_mut() else {
            self.metadata = new.map(|e| vec![e]);
            return;
        };
        let Some(first) = meta.iter().position(is_kvnet) else {
            meta.extend(new);
            return;
        };
        // One element per namespace, as libvirt keeps it: later ones (only possible in a
        // hand-built model) go too.
        let mut i = 0;
        meta.retain(|e| {
            let keep = !is_kvnet(e) || i == first;
            i += 1;
            keep
        });
        match new {
            Some(e) => meta[first] = e,
            None => {
                meta.remove(first);
                if meta.is_empty() {
                    self.metadata = None;
                }
            }
        }
    }

    /// Whether `ext` may go with this network: [`Network::validate`] checks the network's
    /// own extension with it; a client can check a changed one before storing it.
    pub fn check_kvnet_ext(&self, ext: &KvnetExt) -> Result<(), ModelError> {
        if ext.filter != TrafficFilter::None
            && crate::Profile::of(self).bridge == crate::BridgeRole::None
        {
            return Err(ModelError::new(
                format!("{ROOT_PATH}/kvnet:filterref"),
                format!(
                    "filter '{}' needs a network with a bridge; forward mode '{}' gives guests host NICs",
                    ext.filter,
                    self.forward_mode()
                ),
            ));
        }
        if ext.overlay.is_some() && crate::Profile::of(self).bridge != crate::BridgeRole::Managed {
            return Err(ModelError::new(
                format!("{ROOT_PATH}/kvnet:overlay"),
                format!(
                    "an overlay needs a bridge kvnet makes (forward mode nat, route, open or none); forward mode '{}' {}",
                    self.forward_mode(),
                    if crate::Profile::of(self).bridge == crate::BridgeRole::None {
                        "gives guests host NICs"
                    } else {
                        "uses a host bridge as it is"
                    }
                ),
            ));
        }
        let fw = &ext.forwards;
        if fw.is_empty() {
            return Ok(());
        }
        if fw.len() > MAX_FORWARDS {
            return Err(ModelError::new(
                ROOT_PATH,
                format!(
                    "{} port forwards, more than the {MAX_FORWARDS} a network may have",
                    fw.len()
                ),
            ));
        }
        let mode = self.forward_mode();
        for (i, f) in fw.iter().enumerate() {
            let err =
                |m: String| ModelError::new(forward_path(i), format!("forward {}: {m}", f.label()));
            if mode != ForwardMode::Nat {
                return Err(err(format!(
                    "port forwards need a NAT network (forward mode 'nat'), this one is '{mode}'"
                )));
            }
            f.check(&self.ips).map_err(err)?;
        }
        // Overlaps: sorted by (proto, address, start), each forward is compared with the one
        // reaching furthest before it in its group.
        let mut order: Vec<usize> = (0..fw.len()).collect();
        order.sort_by_key(|&i| (fw[i].proto, fw[i].address, fw[i].ports.start, i));
        let mut reach: Option<usize> = None;
        for &i in &order {
            let same = |j: usize| fw[j].proto == fw[i].proto && fw[j].address == fw[i].address;
            match reach {
                Some(j) if same(j) && fw[i].ports.start <= fw[j].ports.end => {
                    let (a, b) = (i.min(j), i.max(j));
                    return Err(ModelError::new(
                        forward_path(b),
                        format!(
                            "forward {}: its host ports overlap those of forward {} (same protocol and host address)",
                            fw[b].label(),
                            fw[a].label()
                        ),
                    ));
                }
                Some(j) if same(j) && fw[i].ports.end <= fw[j].ports.end => {}
                _ => reach = Some(i),
            }
        }
        Ok(())
    }

    /// The network's own extension, checked ([`Network::validate`] calls it).
    pub(crate) fn check_kvnet(&self) -> Result<(), ModelError> {
        self.check_kvnet_ext(&self.kvnet_ext()?)
    }
}

#[cfg(test)]
mod tests;
