//! The root element: `<network>`, its attributes, the top-level children and
//! `<dnsmasq:options>`, and the `<metadata>` kept as a tree (with kvnet's lines marked).

use std::collections::HashMap;

use roxmltree::Node;
use uuid::Uuid;

use super::{Parser, R, TOP_LEVEL, display_name, ns_ok};
use crate::types::*;
use crate::xmltree::XmlElement;
use crate::{DNSMASQ_NS, KVNET_NS};

impl<'a, 'i> Parser<'a, 'i> {
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
}
