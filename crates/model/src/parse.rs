//! XML text -> model. Checks syntax, required attributes and unknown elements/attributes here;
//! cross-field rules live in `validate`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use roxmltree::{Document, Node};
use uuid::Uuid;

use crate::types::*;
use crate::xmltree::XmlElement;
use crate::{DNSMASQ_NS, KVNET_NS, ModelError};

/// Element path -> line, so errors found after parsing can still point into the file.
#[derive(Debug, Default)]
pub(crate) struct Lines(HashMap<String, u32>);

impl Lines {
    pub(crate) fn locate(&self, mut e: ModelError) -> ModelError {
        if e.line.is_none() {
            let mut p = e.element.as_str();
            loop {
                if let Some(l) = self.0.get(p) {
                    e.line = Some(*l);
                    break;
                }
                match p.rfind('/') {
                    Some(i) => p = &p[..i],
                    None => break,
                }
            }
        }
        e
    }
}

pub(crate) struct Parser<'a, 'i> {
    doc: &'a Document<'i>,
    pub(crate) lines: Lines,
}

type R<T> = Result<T, ModelError>;

pub(crate) fn parse_document(text: &str) -> R<Document<'_>> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        ModelError {
            line: Some(pos.row),
            element: "document".into(),
            message: format!("malformed XML: {e}"),
        }
    })?;
    check_depth(&doc)?;
    Ok(doc)
}

/// Elements nested deeper than this are refused, as libxml2 (and so libvirt) refuses
/// them: no network definition comes near it, and the model's own walks (metadata is
/// kept as a tree) then never recurse on an untrusted depth.
pub(crate) const MAX_DEPTH: usize = 256;

/// Refuse a document nested deeper than [`MAX_DEPTH`]; one pass in document order,
/// without recursion.
fn check_depth(doc: &Document) -> R<()> {
    let mut depth = vec![0u32; doc.descendants().count() + 1];
    for n in doc.descendants() {
        let d = n.parent().map_or(0, |p| depth[p.id().get_usize()] + 1);
        depth[n.id().get_usize()] = d;
        if n.is_element() && d as usize > MAX_DEPTH {
            return Err(ModelError {
                line: Some(doc.text_pos_at(n.range().start).row),
                element: "document".into(),
                message: format!("elements nested deeper than {MAX_DEPTH} levels"),
            });
        }
    }
    Ok(())
}

pub(crate) fn parse_network(text: &str) -> R<(Network, Lines)> {
    let doc = parse_document(text)?;
    let mut p = Parser::new(&doc);
    let net = p.network(doc.root_element())?;
    Ok((net, p.lines))
}

const TOP_LEVEL: [&str; 18] = [
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "forward",
    "bridge",
    "mtu",
    "mac",
    "domain",
    "dns",
    "vlan",
    "bandwidth",
    "port",
    "ip",
    "route",
    "virtualport",
    "portgroup",
];

fn ns_ok(n: Node) -> bool {
    n.tag_name().namespace().is_none()
}

impl<'a, 'i> Parser<'a, 'i> {
    pub(crate) fn new(doc: &'a Document<'i>) -> Self {
        Parser {
            doc,
            lines: Lines::default(),
        }
    }

    fn line(&self, n: Node) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    pub(crate) fn err(&self, n: Node, path: &str, msg: impl Into<String>) -> ModelError {
        ModelError {
            line: Some(self.line(n)),
            element: path.to_string(),
            message: msg.into(),
        }
    }

    fn mark(&mut self, n: Node, path: &str) {
        let l = self.line(n);
        self.lines.0.insert(path.to_string(), l);
    }

    /// Reject attributes other than `allowed` (the RNG grammar would).
    fn attrs(&self, n: Node, path: &str, allowed: &[&str]) -> R<()> {
        for a in n.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                return Err(self.err(n, path, format!("unknown attribute '{}'", a.name())));
            }
        }
        Ok(())
    }

    /// Element children, rejecting unknown ones, stray text and repeated singletons; records
    /// each child's path. A trailing `*` in `allowed` marks a repeatable element (path gets `[n]`).
    fn children<'b, 'j>(
        &mut self,
        n: Node<'b, 'j>,
        path: &str,
        allowed: &[&str],
    ) -> R<Vec<(Node<'b, 'j>, String)>> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for c in n.children() {
            if c.is_text() {
                if !c.text().unwrap_or("").trim().is_empty() {
                    return Err(self.err(c, path, "unexpected text content"));
                }
                continue;
            }
            if !c.is_element() {
                continue;
            }
            let name = c.tag_name().name();
            let spec = allowed.iter().find(|a| a.trim_end_matches('*') == name);
            let Some(spec) = spec.filter(|_| ns_ok(c)) else {
                return Err(self.err(c, path, format!("unknown element <{}>", display_name(c))));
            };
            let k = counts.entry(name).or_insert(0);
            *k += 1;
            let cpath = if spec.ends_with('*') {
                format!("{path}/{name}[{k}]")
            } else if *k > 1 {
                return Err(self.err(c, path, format!("element <{name}> may appear only once")));
            } else {
                format!("{path}/{name}")
            };
            self.mark(c, &cpath);
            out.push((c, cpath));
        }
        Ok(out)
    }

    fn once<'b, 'j>(
        &self,
        kids: &[(Node<'b, 'j>, String)],
        name: &str,
        parent: &str,
    ) -> R<Option<(Node<'b, 'j>, String)>> {
        let mut it = kids.iter().filter(|(c, _)| c.tag_name().name() == name);
        let first = it.next().cloned();
        if let Some((dup, _)) = it.next() {
            return Err(self.err(
                *dup,
                parent,
                format!("element <{name}> may appear only once"),
            ));
        }
        Ok(first)
    }

    fn many<'b, 'j>(kids: &[(Node<'b, 'j>, String)], name: &str) -> Vec<(Node<'b, 'j>, String)> {
        kids.iter()
            .filter(|(c, _)| c.tag_name().name() == name)
            .cloned()
            .collect()
    }

    fn text(&self, n: Node, path: &str) -> R<String> {
        let mut s = String::new();
        for c in n.children() {
            if c.is_element() {
                return Err(self.err(c, path, format!("unknown element <{}>", display_name(c))));
            }
            if c.is_text() {
                s.push_str(c.text().unwrap_or(""));
            }
        }
        Ok(s)
    }

    fn req<'b>(&self, n: Node<'b, '_>, path: &str, attr: &str) -> R<&'b str> {
        n.attribute(attr)
            .ok_or_else(|| self.err(n, path, format!("missing required attribute '{attr}'")))
    }

    fn yes_no(&self, n: Node, path: &str, attr: &str) -> R<Option<bool>> {
        match n.attribute(attr) {
            None => Ok(None),
            Some("yes") => Ok(Some(true)),
            Some("no") => Ok(Some(false)),
            Some(v) => Err(self.err(
                n,
                path,
                format!("invalid {attr}='{v}', expected 'yes' or 'no'"),
            )),
        }
    }

    fn num<T: FromStr>(&self, n: Node, path: &str, attr: &str) -> R<Option<T>> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
                self.err(
                    n,
                    path,
                    format!("invalid {attr}='{v}': not a valid number in range"),
                )
            }),
        }
    }

    fn ip(&self, n: Node, path: &str, attr: &str) -> R<Option<IpAddr>> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(v) => v
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| self.err(n, path, format!("{attr} '{v}' is not a valid IP address"))),
        }
    }

    fn ipv4(&self, n: Node, path: &str, attr: &str) -> R<Option<Ipv4Addr>> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(v) => v.parse::<Ipv4Addr>().map(Some).map_err(|_| {
                self.err(n, path, format!("{attr} '{v}' is not a valid IPv4 address"))
            }),
        }
    }

    fn mac(&self, n: Node, path: &str, attr: &str) -> R<Option<MacAddr>> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(v) => v
                .parse::<MacAddr>()
                .map(Some)
                .map_err(|e| self.err(n, path, e)),
        }
    }

    fn string(n: Node, attr: &str) -> Option<String> {
        n.attribute(attr).map(str::to_string)
    }

    pub(crate) fn network(&mut self, root: Node) -> R<Network> {
        let path = "network";
        if root.tag_name().name() != "network" || !ns_ok(root) {
            return Err(self.err(
                root,
                path,
                format!(
                    "expected root element <network>, found <{}>",
                    display_name(root)
                ),
            ));
        }
        self.mark(root, path);
        self.attrs(root, path, &["ipv6", "trustGuestRxFilters", "connections"])?;
        let mut net = Network {
            ipv6: self.yes_no(root, path, "ipv6")?.filter(|v| *v),
            trust_guest_rx_filters: self.yes_no(root, path, "trustGuestRxFilters")?,
            connections: self.num(root, path, "connections")?.filter(|c| *c > 0),
            ..Default::default()
        };

        // dnsmasq:options live in their own namespace; everything else must be un-namespaced.
        let mut seen_name = false;
        let mut opt_count = 0;
        let mut idx: HashMap<&str, usize> = HashMap::new();
        let mut kids = Vec::new();
        for c in root.children() {
            if c.is_text() {
                if !c.text().unwrap_or("").trim().is_empty() {
                    return Err(self.err(c, path, "unexpected text content"));
                }
                continue;
            }
            if !c.is_element() {
                continue;
            }
            if c.tag_name().namespace() == Some(DNSMASQ_NS) {
                let opath = "network/dnsmasq:options";
                if c.tag_name().name() != "options" {
                    return Err(self.err(
                        c,
                        path,
                        format!("unknown element <{}>", display_name(c)),
                    ));
                }
                self.mark(c, opath);
                self.attrs(c, opath, &[])?;
                for o in c.children() {
                    if o.is_text() && !o.text().unwrap_or("").trim().is_empty() {
                        return Err(self.err(o, opath, "unexpected text content"));
                    }
                    if !o.is_element() {
                        continue;
                    }
                    if o.tag_name().namespace() != Some(DNSMASQ_NS)
                        || o.tag_name().name() != "option"
                    {
                        return Err(self.err(
                            o,
                            opath,
                            format!("unknown element <{}>", display_name(o)),
                        ));
                    }
                    opt_count += 1;
                    let p = format!("{opath}/dnsmasq:option[{opt_count}]");
                    self.mark(o, &p);
                    self.attrs(o, &p, &["value"])?;
                    net.dnsmasq_options
                        .push(self.req(o, &p, "value")?.to_string());
                }
                continue;
            }
            let name = c.tag_name().name();
            if !ns_ok(c) || !TOP_LEVEL.contains(&name) {
                return Err(self.err(c, path, format!("unknown element <{}>", display_name(c))));
            }
            let k = idx.entry(name).or_insert(0);
            *k += 1;
            let repeatable = matches!(name, "ip" | "route" | "portgroup");
            if !repeatable && *k > 1 {
                return Err(self.err(c, path, format!("element <{name}> may appear only once")));
            }
            let cpath = if repeatable {
                format!("{path}/{name}[{k}]")
            } else {
                format!("{path}/{name}")
            };
            self.mark(c, &cpath);
            kids.push((c, cpath));
        }

        for (c, cp) in &kids {
            let c = *c;
            let cp = cp.as_str();
            match c.tag_name().name() {
                "name" => {
                    self.attrs(c, cp, &[])?;
                    net.name = self.text(c, cp)?;
                    seen_name = true;
                }
                "uuid" => {
                    self.attrs(c, cp, &[])?;
                    let t = self.text(c, cp)?;
                    let u = Uuid::parse_str(t.trim())
                        .map_err(|_| self.err(c, cp, format!("malformed uuid '{}'", t.trim())))?;
                    net.uuid = Some(u);
                }
                "title" => {
                    self.attrs(c, cp, &[])?;
                    net.title = Some(self.text(c, cp)?);
                }
                "description" => {
                    self.attrs(c, cp, &[])?;
                    net.description = Some(self.text(c, cp)?);
                }
                "metadata" => {
                    self.attrs(c, cp, &[])?;
                    net.metadata = Some(self.metadata(c));
                }
                "forward" => net.forward = Some(self.forward(c, cp)?),
                "bridge" => net.bridge = Some(self.bridge(c, cp)?),
                "mtu" => {
                    self.attrs(c, cp, &["size"])?;
                    self.req(c, cp, "size")?;
                    net.mtu = self.num(c, cp, "size")?;
                }
                "mac" => {
                    self.attrs(c, cp, &["address"])?;
                    self.req(c, cp, "address")?;
                    net.mac = self.mac(c, cp, "address")?;
                }
                "domain" => {
                    self.attrs(c, cp, &["name", "localOnly", "register"])?;
                    net.domain = Some(Domain {
                        name: self.req(c, cp, "name")?.to_string(),
                        local_only: self.yes_no(c, cp, "localOnly")?,
                        register: self.yes_no(c, cp, "register")?,
                    });
                }
                "dns" => {
                    let d = self.dns(c, cp)?;
                    net.dns = if d.is_empty() { None } else { Some(d) };
                }
                "vlan" => net.vlan = Some(self.vlan(c, cp)?),
                "bandwidth" => net.bandwidth = self.bandwidth(c, cp)?,
                "port" => {
                    self.attrs(c, cp, &["isolated"])?;
                    net.isolated_port = self.yes_no(c, cp, "isolated")?;
                }
                "ip" => net.ips.push(self.ip_def(c, cp)?),
                "route" => net.routes.push(self.route(c, cp)?),
                "virtualport" => net.virtualport = self.virtualport(c, cp)?,
                "portgroup" => net.portgroups.push(self.portgroup(c, cp)?),
                _ => unreachable!("filtered by the allowed list"),
            }
        }
        if !seen_name {
            return Err(self.err(root, path, "missing required element <name>"));
        }
        // libvirt always echoes stp/delay for the networks it builds a bridge for.
        if net.forward_mode().is_l3() {
            let b = net.bridge.get_or_insert_with(Bridge::default);
            b.stp.get_or_insert(true);
            b.delay.get_or_insert(0);
        }
        Ok(net)
    }

    fn metadata(&mut self, n: Node) -> Vec<XmlElement> {
        let scope: Vec<(String, String)> = n
            .namespaces()
            .map(|ns| (ns.name().unwrap_or("").to_string(), ns.uri().to_string()))
            .collect();
        let mut seen_ns: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for c in n.children().filter(|c| c.is_element()) {
            // libvirt keeps only namespaced elements, the first one per namespace.
            let Some(uri) = c.tag_name().namespace() else {
                continue;
            };
            if seen_ns.iter().any(|u| u == uri) {
                continue;
            }
            seen_ns.push(uri.to_string());
            if uri == KVNET_NS {
                self.mark_kvnet(c);
            }
            let mut e = XmlElement::from_node(c, &scope);
            if e.own_namespace().is_none() {
                let prefix = e
                    .name
                    .split_once(':')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                e.namespaces.insert(0, (prefix, uri.to_string()));
            }
            out.push(e);
        }
        out
    }

    /// Lines of kvnet's element and its forwards, under the paths the extension's errors use.
    /// Counted on from one forward to the next: `line` scans from the top each time, which
    /// thousands of forwards would make quadratic.
    fn mark_kvnet(&mut self, n: Node) {
        self.mark(n, crate::extension::ROOT_PATH);
        let text = self.doc.input_text();
        let (mut pos, mut line) = (n.range().start, self.line(n));
        let forwards = n
            .children()
            .filter(|c| {
                c.tag_name().namespace() == Some(KVNET_NS) && c.tag_name().name() == "forward"
            })
            .take(crate::extension::MAX_FORWARDS);
        for (i, c) in forwards.enumerate() {
            let start = c.range().start;
            line += text[pos..start].bytes().filter(|&b| b == b'\n').count() as u32;
            pos = start;
            self.lines.0.insert(crate::extension::forward_path(i), line);
        }
    }

    fn forward(&mut self, n: Node, path: &str) -> R<Forward> {
        self.attrs(n, path, &["mode", "dev", "managed"])?;
        let mode = match n.attribute("mode") {
            None => ForwardMode::Nat,
            Some("none") => return Err(self.err(n, path, "unknown forward mode 'none'")),
            Some(m) => m.parse::<ForwardMode>().map_err(|e| self.err(n, path, e))?,
        };
        let mut f = Forward {
            mode,
            managed: self.yes_no(n, path, "managed")?,
            ..Default::default()
        };
        let dev = Self::string(n, "dev");
        let kids = self.children(n, path, &["interface*", "pf", "address*", "nat", "driver"])?;
        let mut pfs = 0;
        for (c, cp) in &kids {
            let (c, cp) = (*c, cp.as_str());
            match c.tag_name().name() {
                "interface" => {
                    self.attrs(c, cp, &["dev", "connections"])?;
                    f.interfaces.push(ForwardInterface {
                        dev: self.req(c, cp, "dev")?.to_string(),
                        connections: self.num(c, cp, "connections")?.filter(|v| *v > 0),
                    });
                }
                "pf" => {
                    pfs += 1;
                    if pfs > 1 {
                        return Err(self.err(
                            c,
                            path,
                            "only one <pf> element is allowed in <forward>",
                        ));
                    }
                    self.attrs(c, cp, &["dev"])?;
                    f.pf = Some(self.req(c, cp, "dev")?.to_string());
                }
                "address" => f.addresses.push(self.pci_address(c, cp)?),
                "nat" => {
                    if f.nat.is_some() {
                        return Err(self.err(c, path, "element <nat> may appear only once"));
                    }
                    let nat = self.nat(c, cp)?;
                    if nat != Nat::default() {
                        f.nat = Some(nat);
                    } else if mode != ForwardMode::Nat {
                        return Err(self.err(
                            c,
                            cp,
                            "the <nat> element can only be used when <forward> 'mode' is 'nat'",
                        ));
                    }
                }
                "driver" => {
                    if f.driver.is_some() {
                        return Err(self.err(c, path, "element <driver> may appear only once"));
                    }
                    self.attrs(c, cp, &["name", "model"])?;
                    let name = Self::string(c, "name").filter(|v| v != "default");
                    if let Some(nm) = &name
                        && !matches!(nm.as_str(), "kvm" | "vfio" | "xen")
                    {
                        return Err(self.err(c, cp, format!("unknown driver name '{nm}'")));
                    }
                    let d = ForwardDriver {
                        name,
                        model: Self::string(c, "model"),
                    };
                    if d != ForwardDriver::default() {
                        f.driver = Some(d);
                    }
                }
                _ => unreachable!(),
            }
        }
        if !f.interfaces.is_empty() && !f.addresses.is_empty() {
            return Err(self.err(
                n,
                path,
                "<interface> and <address> elements can't be used together in <forward>",
            ));
        }
        if let Some(d) = dev {
            if f.pf.is_some() {
                return Err(self.err(n, path, "forward dev can't be used together with <pf>"));
            }
            if !f.addresses.is_empty() {
                return Err(self.err(
                    n,
                    path,
                    "forward dev can't be used together with <address> elements",
                ));
            }
            match f.interfaces.first() {
                None => f.interfaces.push(ForwardInterface {
                    dev: d.clone(),
                    connections: None,
                }),
                Some(first) if first.dev != d => {
                    return Err(self.err(
                        n,
                        path,
                        format!(
                            "forward dev '{d}' must match first interface element dev '{}'",
                            first.dev
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        // libvirt reports (and prints) the first pool interface as the forward dev.
        if f.pf.is_none() {
            f.dev = f.interfaces.first().map(|i| i.dev.clone());
        }
        Ok(f)
    }

    fn pci_address(&self, n: Node, path: &str) -> R<PciAddress> {
        self.attrs(
            n,
            path,
            &["type", "domain", "bus", "slot", "function", "multifunction"],
        )?;
        let t = self.req(n, path, "type")?;
        if t != "pci" {
            return Err(self.err(
                n,
                path,
                format!("unsupported address type '{t}', only 'pci' is allowed"),
            ));
        }
        let get = |attr: &str, max: u32| -> R<u32> {
            match n.attribute(attr) {
                None => Ok(0),
                Some(v) => {
                    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => v.parse::<u32>().ok(),
                    };
                    match parsed {
                        Some(x) if x <= max => Ok(x),
                        _ => Err(self.err(
                            n,
                            path,
                            format!("invalid PCI address {attr}='{v}' (maximum {max:#x})"),
                        )),
                    }
                }
            }
        };
        Ok(PciAddress {
            domain: get("domain", 0xffff)? as u16,
            bus: get("bus", 0xff)? as u8,
            slot: get("slot", 0x1f)? as u8,
            function: get("function", 7)? as u8,
        })
    }

    fn nat(&mut self, n: Node, path: &str) -> R<Nat> {
        self.attrs(n, path, &["ipv6"])?;
        let mut nat = Nat {
            ipv6: self.yes_no(n, path, "ipv6")?.filter(|v| *v),
            ..Default::default()
        };
        let kids = self.children(n, path, &["address", "port"])?;
        if let Some((c, cp)) = self.once(&kids, "address", path)? {
            self.attrs(c, &cp, &["start", "end"])?;
            self.req(c, &cp, "start")?;
            self.req(c, &cp, "end")?;
            let start = self.ipv4(c, &cp, "start")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let end = self.ipv4(c, &cp, "end")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
            nat.address = Some((start, end));
        }
        if let Some((c, cp)) = self.once(&kids, "port", path)? {
            self.attrs(c, &cp, &["start", "end"])?;
            self.req(c, &cp, "start")?;
            self.req(c, &cp, "end")?;
            let start: u16 = self.num(c, &cp, "start")?.unwrap_or(0);
            let end: u16 = self.num(c, &cp, "end")?.unwrap_or(0);
            nat.port = Some((start, end));
        }
        Ok(nat)
    }

    fn bridge(&mut self, n: Node, path: &str) -> R<Bridge> {
        self.attrs(
            n,
            path,
            &["name", "stp", "delay", "macTableManager", "zone"],
        )?;
        self.children(n, path, &[])?;
        let stp = match n.attribute("stp") {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(v) => {
                return Err(self.err(
                    n,
                    path,
                    format!("invalid stp='{v}', expected 'on' or 'off'"),
                ));
            }
        };
        let mtm = match n.attribute("macTableManager") {
            None => None,
            Some("kernel") => Some(MacTableManager::Kernel),
            Some("libvirt") => Some(MacTableManager::Libvirt),
            Some(v) => {
                return Err(self.err(n, path, format!("invalid macTableManager setting '{v}'")));
            }
        };
        Ok(Bridge {
            name: Self::string(n, "name"),
            stp,
            delay: self.num(n, path, "delay")?,
            mac_table_manager: mtm,
            zone: Self::string(n, "zone"),
        })
    }

    fn dns(&mut self, n: Node, path: &str) -> R<Dns> {
        self.attrs(n, path, &["enable", "forwardPlainNames"])?;
        let mut d = Dns {
            enable: self.yes_no(n, path, "enable")?,
            forward_plain_names: self.yes_no(n, path, "forwardPlainNames")?,
            ..Default::default()
        };
        let kids = self.children(n, path, &["forwarder*", "txt*", "srv*", "host*"])?;
        for (c, cp) in &kids {
            let (c, cp) = (*c, cp.as_str());
            match c.tag_name().name() {
                "forwarder" => {
                    self.attrs(c, cp, &["addr", "domain", "port"])?;
                    let fw = DnsForwarder {
                        addr: self.ip(c, cp, "addr")?,
                        domain: Self::string(c, "domain"),
                        port: self.num(c, cp, "port")?,
                    };
                    if fw.addr.is_none() && fw.domain.is_none() {
                        return Err(self.err(c, cp, "invalid forwarder element, must contain at least one of addr or domain"));
                    }
                    d.forwarders.push(fw);
                }
                "txt" => d.txts.push(self.dns_txt(c, cp, false)?),
                "srv" => {
                    let s = self.dns_srv(c, cp, false)?;
                    d.srvs.push(DnsSrv {
                        service: s.service.unwrap_or_default(),
                        protocol: s.protocol.unwrap_or_default(),
                        domain: s.domain,
                        target: s.target,
                        port: s.port,
                        priority: s.priority,
                        weight: s.weight,
                    });
                }
                "host" => d.hosts.push(self.dns_host(c, cp, false)?),
                _ => unreachable!(),
            }
        }
        Ok(d)
    }

    pub(crate) fn dns_txt(&mut self, n: Node, path: &str, partial: bool) -> R<DnsTxt> {
        self.attrs(n, path, &["name", "value"])?;
        self.children(n, path, &[])?;
        let name = self.req(n, path, "name")?.to_string();
        let value = match n.attribute("value") {
            Some(v) => v.to_string(),
            None if partial => String::new(),
            None => {
                return Err(self.err(
                    n,
                    path,
                    format!("missing required attribute 'value' in DNS TXT record '{name}'"),
                ));
            }
        };
        Ok(DnsTxt { name, value })
    }

    pub(crate) fn dns_srv(&mut self, n: Node, path: &str, partial: bool) -> R<SrvSpec> {
        self.attrs(
            n,
            path,
            &[
                "service", "protocol", "domain", "target", "port", "priority", "weight",
            ],
        )?;
        self.children(n, path, &[])?;
        let s = SrvSpec {
            service: Self::string(n, "service"),
            protocol: Self::string(n, "protocol"),
            domain: Self::string(n, "domain"),
            target: Self::string(n, "target"),
            port: self.num(n, path, "port")?,
            priority: self.num(n, path, "priority")?,
            weight: self.num(n, path, "weight")?,
        };
        if !partial {
            if s.service.is_none() {
                return Err(self.err(
                    n,
                    path,
                    "missing required attribute 'service' in DNS SRV record",
                ));
            }
            if s.protocol.is_none() {
                return Err(self.err(
                    n,
                    path,
                    "missing required attribute 'protocol' in DNS SRV record",
                ));
            }
        }
        Ok(s)
    }

    pub(crate) fn dns_host(&mut self, n: Node, path: &str, partial: bool) -> R<DnsHost> {
        self.attrs(n, path, &["ip"])?;
        let ip = self.ip(n, path, "ip")?;
        if ip.is_none() && !partial {
            return Err(self.err(
                n,
                path,
                "missing required attribute 'ip' in DNS host record",
            ));
        }
        let mut h = DnsHost {
            ip,
            hostnames: Vec::new(),
        };
        for (c, cp) in self.children(n, path, &["hostname*"])? {
            self.attrs(c, &cp, &[])?;
            h.hostnames.push(self.text(c, &cp)?);
        }
        if h.hostnames.is_empty() && !partial {
            return Err(self.err(n, path, "DNS host record needs at least one <hostname>"));
        }
        Ok(h)
    }

    fn vlan(&mut self, n: Node, path: &str) -> R<Vlan> {
        self.attrs(n, path, &["trunk"])?;
        let mut v = Vlan {
            trunk: self.yes_no(n, path, "trunk")?,
            tags: Vec::new(),
        };
        for (c, cp) in self.children(n, path, &["tag*"])? {
            self.attrs(c, &cp, &["id", "nativeMode"])?;
            self.req(c, &cp, "id")?;
            let id: u16 = self.num(c, &cp, "id")?.unwrap_or(0);
            let native_mode = match c.attribute("nativeMode") {
                None => None,
                Some("tagged") => Some(NativeMode::Tagged),
                Some("untagged") => Some(NativeMode::Untagged),
                Some(m) => return Err(self.err(c, &cp, format!("invalid nativeMode='{m}'"))),
            };
            v.tags.push(VlanTag { id, native_mode });
        }
        Ok(v)
    }

    /// `None` for an empty `<bandwidth/>`, which libvirt does not keep either.
    fn bandwidth(&mut self, n: Node, path: &str) -> R<Option<Bandwidth>> {
        self.attrs(n, path, &[])?;
        let kids = self.children(n, path, &["inbound", "outbound"])?;
        let mut b = Bandwidth::default();
        // A direction whose average and floor are 0 limits nothing, and libvirt drops it
        // (virNetDevBandwidthParse). Kept, it would format without either (zeros are not
        // printed) and the saved definition would not parse again.
        let limits = |r: &BandwidthRate| r.average.unwrap_or(0) > 0 || r.floor.unwrap_or(0) > 0;
        if let Some((c, cp)) = self.once(&kids, "inbound", path)? {
            b.inbound = Some(self.rate(c, &cp, true)?).filter(limits);
        }
        if let Some((c, cp)) = self.once(&kids, "outbound", path)? {
            b.outbound = Some(self.rate(c, &cp, false)?).filter(limits);
        }
        Ok((b != Bandwidth::default()).then_some(b))
    }

    fn rate(&mut self, n: Node, path: &str, inbound: bool) -> R<BandwidthRate> {
        self.attrs(n, path, &["average", "peak", "burst", "floor"])?;
        self.children(n, path, &[])?;
        let r = BandwidthRate {
            average: self.num(n, path, "average")?,
            peak: self.num(n, path, "peak")?,
            burst: self.num(n, path, "burst")?,
            floor: self.num(n, path, "floor")?,
        };
        if r.floor.is_some() && !inbound {
            return Err(self.err(n, path, "floor is only supported for inbound traffic"));
        }
        if r.average.is_none() && r.floor.is_none() {
            return Err(self.err(n, path, "missing mandatory average or floor attribute"));
        }
        Ok(r)
    }

    fn ip_def(&mut self, n: Node, path: &str) -> R<IpDef> {
        self.attrs(
            n,
            path,
            &["address", "netmask", "prefix", "family", "localPtr"],
        )?;
        self.req(n, path, "address")?;
        let address = self
            .ip(n, path, "address")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut ip = IpDef {
            address,
            prefix: self.num(n, path, "prefix")?,
            netmask: self.ipv4(n, path, "netmask")?,
            family: Self::string(n, "family"),
            local_ptr: self.yes_no(n, path, "localPtr")?,
            tftp_root: None,
            dhcp: None,
        };
        let kids = self.children(n, path, &["tftp", "dhcp"])?;
        if let Some((c, cp)) = self.once(&kids, "tftp", path)? {
            self.attrs(c, &cp, &["root"])?;
            self.children(c, &cp, &[])?;
            ip.tftp_root = Some(self.req(c, &cp, "root")?.to_string());
        }
        if let Some((c, cp)) = self.once(&kids, "dhcp", path)? {
            self.attrs(c, &cp, &[])?;
            let mut d = Dhcp::default();
            let dk = self.children(c, &cp, &["range*", "host*", "bootp"])?;
            for (r, rp) in Self::many(&dk, "range") {
                d.ranges.push(self.dhcp_range(r, &rp)?);
            }
            for (h, hp) in Self::many(&dk, "host") {
                d.hosts.push(self.dhcp_host(h, &hp)?);
            }
            if let Some((b, bp)) = self.once(&dk, "bootp", &cp)? {
                self.attrs(b, &bp, &["file", "server"])?;
                self.children(b, &bp, &[])?;
                d.bootp = Some(Bootp {
                    file: self.req(b, &bp, "file")?.to_string(),
                    server: self.ip(b, &bp, "server")?,
                });
            }
            // An empty <dhcp/> is dropped by libvirt's formatter.
            if !d.is_empty() {
                ip.dhcp = Some(d);
            }
        }
        Ok(ip)
    }

    pub(crate) fn dhcp_range(&mut self, n: Node, path: &str) -> R<DhcpRange> {
        self.attrs(n, path, &["start", "end"])?;
        self.req(n, path, "start")?;
        self.req(n, path, "end")?;
        let start = self
            .ip(n, path, "start")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let end = self
            .ip(n, path, "end")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let lease = self.lease_child(n, path)?;
        Ok(DhcpRange { start, end, lease })
    }

    pub(crate) fn dhcp_host(&mut self, n: Node, path: &str) -> R<DhcpHost> {
        self.attrs(n, path, &["mac", "id", "name", "ip"])?;
        Ok(DhcpHost {
            mac: self.mac(n, path, "mac")?,
            id: Self::string(n, "id"),
            name: Self::string(n, "name"),
            ip: self.ip(n, path, "ip")?,
            lease: self.lease_child(n, path)?,
        })
    }

    fn lease_child(&mut self, n: Node, path: &str) -> R<Option<Lease>> {
        let kids = self.children(n, path, &["lease"])?;
        let Some((c, cp)) = self.once(&kids, "lease", path)? else {
            return Ok(None);
        };
        self.attrs(c, &cp, &["expiry", "unit"])?;
        self.children(c, &cp, &[])?;
        self.req(c, &cp, "expiry")?;
        let expiry: u64 = self.num(c, &cp, "expiry")?.unwrap_or(0);
        let unit = match c.attribute("unit") {
            None => LeaseUnit::Minutes,
            Some("seconds") => LeaseUnit::Seconds,
            Some("minutes") => LeaseUnit::Minutes,
            Some("hours") => LeaseUnit::Hours,
            Some(u) => {
                return Err(self.err(
                    c,
                    &cp,
                    format!("invalid lease unit '{u}', expected seconds, minutes or hours"),
                ));
            }
        };
        // Normalised like libvirt prints it: no unit for an infinite lease, else an explicit one.
        Ok(Some(Lease {
            expiry,
            unit: if expiry == 0 { None } else { Some(unit) },
        }))
    }

    fn route(&mut self, n: Node, path: &str) -> R<RouteDef> {
        self.attrs(
            n,
            path,
            &[
                "family", "address", "netmask", "prefix", "gateway", "metric",
            ],
        )?;
        self.children(n, path, &[])?;
        self.req(n, path, "address")?;
        self.req(n, path, "gateway")?;
        Ok(RouteDef {
            family: Self::string(n, "family"),
            address: self
                .ip(n, path, "address")?
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            prefix: self.num(n, path, "prefix")?,
            netmask: self.ipv4(n, path, "netmask")?,
            gateway: self
                .ip(n, path, "gateway")?
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            metric: self.num(n, path, "metric")?,
        })
    }

    /// `None` for a bare `<virtualport/>`, which libvirt's formatter drops.
    fn virtualport(&mut self, n: Node, path: &str) -> R<Option<VirtualPort>> {
        self.attrs(n, path, &["type"])?;
        let vp_type = Self::string(n, "type");
        if let Some(t) = &vp_type
            && !matches!(
                t.as_str(),
                "openvswitch" | "802.1Qbg" | "802.1Qbh" | "midonet"
            )
        {
            return Err(self.err(n, path, format!("unknown virtualport type '{t}'")));
        }
        let mut vp = VirtualPort {
            vp_type,
            ..Default::default()
        };
        let kids = self.children(n, path, &["parameters"])?;
        if let Some((c, cp)) = self.once(&kids, "parameters", path)? {
            let cp = cp.as_str();
            self.attrs(
                c,
                cp,
                &[
                    "managerid",
                    "typeid",
                    "typeidversion",
                    "instanceid",
                    "interfaceid",
                    "profileid",
                ],
            )?;
            self.children(c, cp, &[])?;
            vp.managerid = self.num(c, cp, "managerid")?;
            vp.typeid = self.num(c, cp, "typeid")?;
            vp.typeidversion = self.num(c, cp, "typeidversion")?;
            let uuid_attr = |a: &str| -> R<Option<Uuid>> {
                match c.attribute(a) {
                    None => Ok(None),
                    Some(v) => Uuid::parse_str(v)
                        .map(Some)
                        .map_err(|_| self.err(c, cp, format!("invalid {a} '{v}'"))),
                }
            };
            vp.instanceid = uuid_attr("instanceid")?;
            vp.interfaceid = uuid_attr("interfaceid")?;
            vp.profileid = Self::string(c, "profileid");
            if vp.typeid.is_some_and(|t| t > 0xff_ffff) {
                return Err(self.err(c, cp, "typeid must fit in 24 bits"));
            }
            // Each parameter belongs to some types only; libvirt would silently drop the rest.
            let t = vp.vp_type.as_deref();
            let allowed = |types: &[&str]| t.is_none_or(|t| types.contains(&t));
            let checks: [(&str, bool, &[&str]); 6] = [
                ("managerid", vp.managerid.is_some(), &["802.1Qbg"]),
                ("typeid", vp.typeid.is_some(), &["802.1Qbg"]),
                ("typeidversion", vp.typeidversion.is_some(), &["802.1Qbg"]),
                ("instanceid", vp.instanceid.is_some(), &["802.1Qbg"]),
                (
                    "interfaceid",
                    vp.interfaceid.is_some(),
                    &["openvswitch", "midonet"],
                ),
                (
                    "profileid",
                    vp.profileid.is_some(),
                    &["openvswitch", "802.1Qbh"],
                ),
            ];
            for (name, present, types) in checks {
                if present && !allowed(types) {
                    return Err(self.err(
                        c,
                        cp,
                        format!(
                            "parameter '{name}' is not allowed for virtualport type '{}'",
                            t.unwrap_or("")
                        ),
                    ));
                }
            }
        }
        Ok((vp.vp_type.is_some() || vp.has_parameters()).then_some(vp))
    }

    pub(crate) fn portgroup(&mut self, n: Node, path: &str) -> R<PortGroup> {
        self.attrs(n, path, &["name", "default", "trustGuestRxFilters"])?;
        let mut pg = PortGroup {
            name: self.req(n, path, "name")?.to_string(),
            is_default: self.yes_no(n, path, "default")? == Some(true),
            trust_guest_rx_filters: self.yes_no(n, path, "trustGuestRxFilters")?,
            ..Default::default()
        };
        let kids = self.children(n, path, &["vlan", "virtualport", "bandwidth"])?;
        if let Some((c, cp)) = self.once(&kids, "vlan", path)? {
            pg.vlan = Some(self.vlan(c, &cp)?);
        }
        if let Some((c, cp)) = self.once(&kids, "virtualport", path)? {
            pg.virtualport = self.virtualport(c, &cp)?;
        }
        if let Some((c, cp)) = self.once(&kids, "bandwidth", path)? {
            pg.bandwidth = self.bandwidth(c, &cp)?;
        }
        Ok(pg)
    }

    /// Parse a lone `<interface dev=…/>` for net-update.
    pub(crate) fn forward_interface(&mut self, n: Node, path: &str) -> R<ForwardInterface> {
        self.attrs(n, path, &["dev", "connections"])?;
        self.children(n, path, &[])?;
        Ok(ForwardInterface {
            dev: self.req(n, path, "dev")?.to_string(),
            connections: self.num(n, path, "connections")?.filter(|v| *v > 0),
        })
    }
}

/// A DNS SRV record where every field may be missing (net-update delete matches on what is given).
#[derive(Debug, Clone, Default)]
pub(crate) struct SrvSpec {
    pub service: Option<String>,
    pub protocol: Option<String>,
    pub domain: Option<String>,
    pub target: Option<String>,
    pub port: Option<u16>,
    pub priority: Option<u16>,
    pub weight: Option<u16>,
}

fn display_name(n: Node) -> String {
    let t = n.tag_name();
    match t.namespace().and_then(|u| n.lookup_prefix(u)) {
        Some(p) if !p.is_empty() => format!("{p}:{}", t.name()),
        _ => t.name().to_string(),
    }
}
