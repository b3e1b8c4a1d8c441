//! XML text -> model. Checks syntax, required attributes and unknown elements/attributes here;
//! cross-field rules live in `validate`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use roxmltree::{Document, Node};

use crate::ModelError;
use crate::types::*;

mod dns;
mod forward;
mod ip;
mod network;
mod portgroup;

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
}

fn display_name(n: Node) -> String {
    let t = n.tag_name();
    match t.namespace().and_then(|u| n.lookup_prefix(u)) {
        Some(p) if !p.is_empty() => format!("{p}:{}", t.name()),
        _ => t.name().to_string(),
    }
}
