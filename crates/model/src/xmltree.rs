//! A small owned XML tree for `<metadata>` content, printed the way libvirt (libxml2) does.

use serde::{Deserialize, Serialize};

/// One element with its qualified name, namespace declarations made on it, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XmlElement {
    /// Qualified name as written (`prefix:local` or `local`).
    pub name: String,
    /// `(prefix, uri)` declared on this element; an empty prefix is the default namespace.
    pub namespaces: Vec<(String, String)>,
    /// `(qualified name, value)` in document order.
    pub attributes: Vec<(String, String)>,
    pub children: Vec<XmlNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum XmlNode {
    Element(XmlElement),
    Text(String),
    Comment(String),
}

impl XmlElement {
    /// The namespace URI this element's prefix maps to, if declared on the element itself.
    pub fn own_namespace(&self) -> Option<&str> {
        let prefix = self.name.split_once(':').map(|(p, _)| p).unwrap_or("");
        self.namespaces
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    }

    /// Build from a roxmltree element; `inherited` are the namespaces already declared above.
    pub(crate) fn from_node(node: roxmltree::Node, inherited: &[(String, String)]) -> XmlElement {
        let mut in_scope: Vec<(String, String)> = Vec::new();
        for ns in node.namespaces() {
            in_scope.push((ns.name().unwrap_or("").to_string(), ns.uri().to_string()));
        }
        let namespaces: Vec<(String, String)> = in_scope
            .iter()
            .filter(|d| !inherited.contains(d) && d.0 != "xml")
            .cloned()
            .collect();
        let tag = node.tag_name();
        let name = qualify(node, tag.namespace(), tag.name(), true);
        let mut attributes = Vec::new();
        for a in node.attributes() {
            attributes.push((
                qualify(node, a.namespace(), a.name(), false),
                a.value().to_string(),
            ));
        }
        // libvirt parses with XML_PARSE_NOBLANKS: blank text between child elements is dropped.
        let has_elem = node.children().any(|c| c.is_element());
        let has_text = node
            .children()
            .any(|c| c.is_text() && !c.text().unwrap_or("").trim().is_empty());
        let mut children = Vec::new();
        for c in node.children() {
            if c.is_element() {
                children.push(XmlNode::Element(XmlElement::from_node(c, &in_scope)));
            } else if c.is_text() {
                let t = c.text().unwrap_or("");
                if has_elem && !has_text && t.trim().is_empty() {
                    continue;
                }
                // Text around a processing instruction (not kept) is one text, as printed.
                match children.last_mut() {
                    Some(XmlNode::Text(prev)) => prev.push_str(t),
                    _ => children.push(XmlNode::Text(t.to_string())),
                }
            } else if c.is_comment() {
                children.push(XmlNode::Comment(c.text().unwrap_or("").to_string()));
            }
        }
        XmlElement {
            name,
            namespaces,
            attributes,
            children,
        }
    }

    /// Serialise at `level` (2 spaces per level) without the first line's indent, like xmlNodeDump.
    pub(crate) fn write(&self, out: &mut String, level: usize) {
        out.push('<');
        out.push_str(&self.name);
        for (p, u) in &self.namespaces {
            if p.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(p);
                out.push_str("=\"");
            }
            escape_attr(out, u);
            out.push('"');
        }
        for (n, v) in &self.attributes {
            out.push(' ');
            out.push_str(n);
            out.push_str("=\"");
            escape_attr(out, v);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        // libxml2 only indents children when none of them is text.
        let format = !self.children.iter().any(|c| matches!(c, XmlNode::Text(_)));
        for c in &self.children {
            if format {
                out.push('\n');
                out.push_str(&"  ".repeat(level + 1));
            }
            match c {
                XmlNode::Element(e) => e.write(out, if format { level + 1 } else { 0 }),
                XmlNode::Text(t) => escape_text(out, t),
                XmlNode::Comment(t) => {
                    out.push_str("<!--");
                    out.push_str(t);
                    out.push_str("-->");
                }
            }
        }
        if format {
            out.push('\n');
            out.push_str(&"  ".repeat(level));
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// The prefix:name as it should be printed; roxmltree resolves prefixes, so look one up again.
fn qualify(node: roxmltree::Node, ns: Option<&str>, local: &str, is_elem: bool) -> String {
    match ns {
        None => local.to_string(),
        Some("http://www.w3.org/XML/1998/namespace") => format!("xml:{local}"),
        Some(uri) => {
            // An element in the default namespace keeps no prefix; attributes never use the default one.
            let default_here = node
                .namespaces()
                .any(|n| n.name().is_none() && n.uri() == uri);
            if is_elem && default_here {
                return local.to_string();
            }
            match node
                .namespaces()
                .find(|n| n.uri() == uri && n.name().is_some())
                .and_then(|n| n.name())
            {
                Some(p) => format!("{p}:{local}"),
                None => local.to_string(),
            }
        }
    }
}

fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            _ => out.push(c),
        }
    }
}
