//! iptables-legacy: its tables live in x_tables, invisible to `nft`, but hook the same
//! places and drop the same way. `iptables-legacy-save -t filter` is read into the same
//! model as nft's JSON (each rule as the expressions iptables-nft would have made of
//! it), as table `ip`/`ip6` [`LEGACY_FILTER`], so the analysis and kvnet's rules work
//! alike. Rules have no handles there: a rule's "handle" is its position in its chain.

use crate::ruleset::{Chain, Hook, Rule, Table, TableId};
use serde_json::{Value, json};

/// The name legacy's filter table gets in the model.
pub const LEGACY_FILTER: &str = "filter (iptables-legacy)";

pub fn table_id(v6: bool) -> TableId {
    TableId::new(if v6 { "ip6" } else { "ip" }, LEGACY_FILTER)
}

/// Splits a save line into words, as the shell would (`"kvnet: a out"` is one).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => cur.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn eq(left: Value, right: Value, negate: bool) -> Value {
    json!({"match": {"op": if negate { "!=" } else { "==" }, "left": left, "right": right}})
}

fn addr(v: &str) -> Value {
    match v.split_once('/') {
        Some((a, len)) => match len.parse::<u8>() {
            Ok(l) if (l == 32 && !a.contains(':')) || l == 128 => json!(a),
            Ok(l) => json!({"prefix": {"addr": a, "len": l}}),
            Err(_) => json!(v),
        },
        None => json!(v),
    }
}

fn port(v: &str) -> Value {
    match v.split_once(':') {
        Some((a, b)) => {
            json!({"range": [a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(65535)]})
        }
        None => json!(v.parse::<u64>().unwrap_or(0)),
    }
}

/// Options that are not a match module's.
fn top_level(w: &str) -> bool {
    matches!(
        w,
        "-i" | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-s"
            | "--source"
            | "-d"
            | "--destination"
            | "-p"
            | "--protocol"
            | "-m"
            | "--match"
            | "-j"
            | "--jump"
            | "-g"
            | "--goto"
            | "!"
    )
}

/// One `-A CHAIN …` rule's expressions.
fn rule_expr(w: &[String], v6: bool) -> Vec<Value> {
    let mut expr = Vec::new();
    let mut proto: Option<String> = None;
    let mut negate = false;
    let mut i = 0;
    let next = |i: &mut usize| {
        *i += 1;
        w.get(*i).cloned().unwrap_or_default()
    };
    while i < w.len() {
        let word = w[i].as_str();
        match word {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let key = if word.starts_with("-i") || word == "--in-interface" {
                    "iifname"
                } else {
                    "oifname"
                };
                let name = next(&mut i).replace('+', "*");
                expr.push(eq(json!({"meta": {"key": key}}), json!(name), negate));
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let field = if word.starts_with("-s") || word == "--source" {
                    "saddr"
                } else {
                    "daddr"
                };
                let a = next(&mut i);
                let proto = if v6 { "ip6" } else { "ip" };
                expr.push(eq(
                    json!({"payload": {"protocol": proto, "field": field}}),
                    addr(&a),
                    negate,
                ));
            }
            "-p" | "--protocol" => {
                let p = next(&mut i);
                // With a port, the port match implies the protocol (as nft shows it).
                let has_port = w.iter().any(|x| {
                    matches!(
                        x.as_str(),
                        "--dport" | "--sport" | "--destination-port" | "--source-port"
                    )
                });
                if !has_port || negate {
                    expr.push(eq(json!({"meta": {"key": "l4proto"}}), json!(p), negate));
                }
                proto = Some(p);
            }
            "--dport" | "--destination-port" | "--sport" | "--source-port" => {
                let field = if word.contains('d') && word != "--source-port" {
                    "dport"
                } else {
                    "sport"
                };
                let p = next(&mut i);
                let pr = proto.clone().unwrap_or_else(|| "th".into());
                expr.push(eq(
                    json!({"payload": {"protocol": pr, "field": field}}),
                    port(&p),
                    negate,
                ));
            }
            "-m" | "--match" => {
                let module = next(&mut i);
                // Its options: up to the next top-level option.
                let mut opts: Vec<String> = Vec::new();
                while i + 1 < w.len()
                    && !top_level(&w[i + 1])
                    && !matches!(
                        w[i + 1].as_str(),
                        "--dport" | "--sport" | "--destination-port" | "--source-port"
                    )
                {
                    i += 1;
                    opts.push(w[i].clone());
                }
                match module.as_str() {
                    "tcp" | "udp" => {}
                    "conntrack" | "state"
                        if opts.len() == 2
                            && matches!(opts[0].as_str(), "--ctstate" | "--state") =>
                    {
                        let states: Vec<String> =
                            opts[1].split(',').map(|s| s.to_lowercase()).collect();
                        expr.push(json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}}));
                    }
                    m => expr.push(json!({"xt": {"type": "match", "name": m}})),
                }
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let target = next(&mut i);
                let goto = word == "-g" || word == "--goto";
                expr.push(match target.as_str() {
                    "ACCEPT" => json!({"accept": null}),
                    "DROP" => json!({"drop": null}),
                    "REJECT" => json!({"reject": null}),
                    "RETURN" => json!({"return": null}),
                    t if t.chars().all(|c| c.is_ascii_uppercase()) && !goto => {
                        json!({"xt": {"type": "target", "name": t}})
                    }
                    t if goto => json!({"goto": {"target": t}}),
                    t => json!({"jump": {"target": t}}),
                });
                // The target's own options are not needed.
                break;
            }
            _ => {}
        }
        negate = false;
        i += 1;
    }
    expr
}

/// The filter table of `iptables-legacy-save -t filter` output (None when there is no
/// `*filter` section).
pub fn parse_save(text: &str, v6: bool) -> Option<Table> {
    let mut table: Option<Table> = None;
    let mut in_filter = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            in_filter = name == "filter";
            if in_filter {
                table = Some(Table::default());
            }
            continue;
        }
        let Some(t) = table.as_mut().filter(|_| in_filter) else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(policy)) = (parts.next(), parts.next()) else {
                continue;
            };
            let hook = match name {
                "INPUT" | "FORWARD" | "OUTPUT" => Some(Hook {
                    hook: name.to_lowercase(),
                    prio: 0,
                    drops: policy == "DROP",
                }),
                _ => None,
            };
            t.chains.insert(
                name.to_string(),
                Chain {
                    name: name.to_string(),
                    handle: 0,
                    hook,
                    rules: Vec::new(),
                },
            );
        } else if line.starts_with("-A ") {
            let w = words(line);
            let Some(chain) = w.get(1).and_then(|c| t.chains.get_mut(c)) else {
                continue;
            };
            let handle = chain.rules.len() as u64 + 1;
            chain.rules.push(Rule {
                handle,
                expr: rule_expr(&w[2..], v6),
            });
        } else if line == "COMMIT" {
            in_filter = false;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j DOCKER
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-USER -s 192.168.150.0/24 -i kvbr0 -m comment --comment "kvnet: default out" -j ACCEPT
-A INPUT -i kvbr0 -p udp -m udp --dport 67 -m comment --comment "kvnet: default dhcp" -j ACCEPT
-A INPUT ! -i lo -m addrtype --dst-type LOCAL -j REJECT --reject-with icmp-port-unreachable
COMMIT
"#;

    #[test]
    fn a_save_file_reads_as_nft_would_show_it() {
        let t = parse_save(SAVE, false).unwrap();
        let fwd = &t.chains["FORWARD"];
        assert!(fwd.hook.as_ref().unwrap().drops);
        assert_eq!(
            fwd.rules[0].expr,
            [json!({"jump": {"target": "DOCKER-USER"}})]
        );
        assert_eq!(
            fwd.rules[1].expr[1],
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["related", "established"]}})
        );
        let user = &t.chains["DOCKER-USER"].rules[0];
        assert_eq!(
            user.expr,
            [
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "192.168.150.0", "len": 24}}}}),
                json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "kvbr0"}}),
                json!({"xt": {"type": "match", "name": "comment"}}),
                json!({"accept": null}),
            ]
        );
        let input = &t.chains["INPUT"].rules;
        assert_eq!(
            input[0].expr[1],
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 67}})
        );
        assert_eq!(
            input[1].expr[0],
            json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}})
        );
        assert_eq!(input[1].expr[2], json!({"reject": null}));
        assert!(parse_save("*nat\nCOMMIT\n", false).is_none());
    }

    #[test]
    fn quoted_words_stay_whole() {
        assert_eq!(
            words(r#"-A X -m comment --comment "a \"b\" c" -j ACCEPT"#),
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a \"b\" c",
                "-j",
                "ACCEPT"
            ]
        );
    }
}
