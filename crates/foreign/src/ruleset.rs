//! `nft -j list ruleset` as data: tables, chains (base chains with their hook,
//! priority and policy) and rules, whose expressions stay JSON for [`crate::eval`].

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Why a ruleset could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read the nftables ruleset: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// A table by family and name, e.g. `ip filter`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub family: String,
    pub name: String,
}

impl TableId {
    pub fn new(family: &str, name: &str) -> TableId {
        TableId {
            family: family.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// Where a base chain is hooked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub hook: String,
    pub prio: i64,
    /// The policy is drop.
    pub drops: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub handle: u64,
    pub expr: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub name: String,
    pub handle: u64,
    /// Set for base chains.
    pub hook: Option<Hook>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// By name.
    pub chains: BTreeMap<String, Chain>,
}

/// A whole ruleset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    pub tables: BTreeMap<TableId, Table>,
}

fn str_field<'a>(o: &'a Value, key: &str) -> Result<&'a str, ParseError> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError(format!("an object without {key:?}: {o}")))
}

fn table_id(o: &Value) -> Result<TableId, ParseError> {
    Ok(TableId::new(
        str_field(o, "family")?,
        str_field(o, "table")?,
    ))
}

impl Ruleset {
    /// Reads the output of `nft -j list ruleset`.
    pub fn parse(json: &str) -> Result<Ruleset, ParseError> {
        let v: Value = serde_json::from_str(json).map_err(|e| ParseError(e.to_string()))?;
        let items = v
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError("no \"nftables\" array".into()))?;
        let mut rs = Ruleset::default();
        for item in items {
            if let Some(t) = item.get("table") {
                let id = TableId::new(str_field(t, "family")?, str_field(t, "name")?);
                rs.tables.entry(id).or_default();
            } else if let Some(c) = item.get("chain") {
                let hook = c.get("hook").and_then(Value::as_str).map(|h| Hook {
                    hook: h.to_string(),
                    prio: c.get("prio").and_then(Value::as_i64).unwrap_or(0),
                    drops: c.get("policy").and_then(Value::as_str) == Some("drop"),
                });
                let name = str_field(c, "name")?.to_string();
                let chain = Chain {
                    handle: c.get("handle").and_then(Value::as_u64).unwrap_or(0),
                    name: name.clone(),
                    hook,
                    rules: Vec::new(),
                };
                rs.tables
                    .entry(table_id(c)?)
                    .or_default()
                    .chains
                    .insert(name, chain);
            } else if let Some(r) = item.get("rule") {
                let id = table_id(r)?;
                let chain = str_field(r, "chain")?;
                let rule = Rule {
                    handle: r.get("handle").and_then(Value::as_u64).unwrap_or(0),
                    expr: r
                        .get("expr")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                };
                rs.tables
                    .get_mut(&id)
                    .and_then(|t| t.chains.get_mut(chain))
                    .ok_or_else(|| ParseError(format!("rule of unknown chain {id} {chain}")))?
                    .rules
                    .push(rule);
            }
        }
        Ok(rs)
    }

    pub fn table(&self, family: &str, name: &str) -> Option<&Table> {
        self.tables.get(&TableId::new(family, name))
    }

    pub fn has_chain(&self, family: &str, table: &str, chain: &str) -> bool {
        self.table(family, table)
            .is_some_and(|t| t.chains.contains_key(chain))
    }
}

/// The tables of `nft list tables` (text: `table inet kvnet` per line).
pub fn parse_table_list(text: &str) -> Vec<TableId> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("table"), Some(family), Some(name)) => Some(TableId::new(family, name)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_list_is_read_from_text() {
        assert_eq!(
            parse_table_list("table inet kvnet\ntable ip filter\n# comment\n"),
            [TableId::new("inet", "kvnet"), TableId::new("ip", "filter")]
        );
    }

    #[test]
    fn dockers_ruleset_has_its_chains_and_rules() {
        let rs = Ruleset::parse(include_str!("../tests/rulesets/docker.json")).unwrap();
        let filter = rs.table("ip", "filter").unwrap();
        let fwd = &filter.chains["FORWARD"];
        assert_eq!(
            fwd.hook,
            Some(Hook {
                hook: "forward".into(),
                prio: 0,
                drops: true
            })
        );
        assert_eq!(fwd.rules.len(), 2);
        assert!(filter.chains["DOCKER-USER"].hook.is_none());
        assert!(rs.has_chain("ip", "nat", "POSTROUTING"));
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        let e = Ruleset::parse("{}").unwrap_err().to_string();
        assert!(e.contains("no \"nftables\" array"), "{e}");
        assert!(Ruleset::parse("not json").is_err());
        let e =
            Ruleset::parse(r#"{"nftables":[{"rule":{"family":"ip","table":"t","chain":"c"}}]}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown chain ip t c"), "{e}");
    }
}
