//! Comparing a live table with the one kvnet would render: the daemon
//! adopts a table left by a previous kvnetd only if the two normalise to the
//! same text.

use crate::model::FwNetwork;
use crate::render::render_full;

/// What [`normalize_listing`] gives for the table that [`render_full`]`(table,
/// nets)` creates. A table that does not match it, e.g. one left by a kvnet
/// with an older layout, must be replaced rather than adopted: the fast
/// start path relies on the skeleton being exactly this one.
///
/// # Panics
/// Like [`render_full`]; call [`validate_all`](crate::validate_all) first.
pub fn expected_listing(table: &str, nets: &[FwNetwork]) -> String {
    let script = render_full(table, nets);
    let body = script
        .split_once(&format!("delete table inet {table}\n"))
        .map_or("", |(_, body)| body);
    normalize_listing(body)
}

/// `nft list table` output (or a [`render_full`] table body) in a form that
/// compares equal exactly when two tables hold the same rules and elements:
/// counters dropped (they change with traffic), each line and each set
/// element prefixed with its set or chain, and all sorted (the kernel lists
/// chains in creation order and hash-set elements in no stable order, which
/// differ between a full render and a sequence of adds).
pub fn normalize_listing(listing: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut scope = String::new();
    let mut elements: Option<String> = None;
    for line in listing.lines() {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        while let Some(i) = words
            .windows(5)
            .position(|w| w[0] == "counter" && w[1] == "packets" && w[3] == "bytes")
        {
            // In an element list the comma after the last element's counter stays.
            let comma = words[i + 4].ends_with(',');
            words.drain(i + 1..i + 5);
            if comma {
                words[i] = "counter,";
            }
        }
        let l = words.join(" ");
        if let Some(acc) = &mut elements {
            acc.push(' ');
            acc.push_str(&l);
        } else if let Some(rest) = l.strip_prefix("elements = {") {
            elements = Some(rest.to_string());
        } else if l.is_empty() || l == "}" || l.starts_with('#') {
            continue;
        } else if let Some(head) = l.strip_suffix(" {") {
            scope = head.to_string();
            out.push(l);
            continue;
        } else {
            out.push(format!("{scope}: {l}"));
            continue;
        }
        if let Some(list) = elements.as_ref().and_then(|e| e.strip_suffix('}')) {
            for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                // A counted set's elements list their counter; rendered ones do not.
                let e = e.strip_suffix(" counter").unwrap_or(e);
                out.push(format!("{scope}: element {e}"));
            }
            elements = None;
        }
    }
    out.sort();
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_listings_ignore_counters_and_element_order() {
        let a = "table inet t {\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 3 bytes 120 accept\n\t}\n\tchain a {\n\t}\n}";
        let b = "table inet t {\n\tchain a {\n\t}\n\tchain b {\n\t\tip saddr 10.0.0.0/8 counter packets 0 bytes 0 accept\n\t}\n}";
        assert_eq!(normalize_listing(a), normalize_listing(b));
        let c = b.replace("10.0.0.0/8", "10.0.0.0/16");
        assert_ne!(normalize_listing(a), normalize_listing(&c));
        let s1 = "table inet t {\n\tset s {\n\t\telements = { \"a\",\n\t\t\t     \"b\" }\n\t}\n\tset r {\n\t}\n}";
        let s2 =
            "table inet t {\n\tset r {\n\t}\n\tset s {\n\t\telements = { \"b\", \"a\" }\n\t}\n}";
        assert_eq!(normalize_listing(s1), normalize_listing(s2));
        // A counted set's elements list their counters live.
        let live = "table inet t {\n\tset s {\n\t\tcounter\n\t\telements = { \"a\" counter packets 3 bytes 9, \"b\" counter packets 0 bytes 0 }\n\t}\n}";
        let rendered =
            "table inet t {\n\tset s {\n\t\tcounter\n\t\telements = { \"a\", \"b\" }\n\t}\n}";
        assert_eq!(normalize_listing(live), normalize_listing(rendered));
        // An element belongs to its set.
        let s3 = s2.replace("set r {\n\t}\n\tset s", "set s {\n\t}\n\tset r");
        assert_ne!(normalize_listing(s1), normalize_listing(&s3));
    }
}
