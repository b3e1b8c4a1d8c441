//! The bridge helper's ACL, in qemu's bridge.conf syntax:
//!
//! ```text
//! # comment
//! allow virbr0        # or: allow all
//! deny br-lan         # or: deny all
//! include /etc/kvnet/bridge.d/lab.conf
//! ```
//!
//! As in qemu, a bridge is allowed when some rule allows it and no rule denies it,
//! whatever their order: deny wins, and no matching rule means deny. Unlike qemu,
//! which ignores an include it cannot read, every problem (a missing or unreadable
//! file, an unknown command, an invalid bridge name, an include cycle) fails
//! closed: an unread file could have held the deny that mattered. A relative include
//! is taken from the including file's directory.
//!
//! Parsing is pure: files are read through a caller-supplied function.

use anyhow::{Result, anyhow, bail};
use std::io;
use std::path::{Path, PathBuf};

/// How deep includes may nest, a backstop to the cycle check.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Bridge(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Allow(Target),
    Deny(Target),
}

/// The rules of `path` and everything it includes, in order.
pub fn load(path: &Path, read: &mut dyn FnMut(&Path) -> io::Result<String>) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    load_into(path, read, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn load_into(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Rule>,
) -> Result<()> {
    let text = read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    stack.push(path.to_path_buf());
    for (i, raw) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, arg) = line
            .split_once(char::is_whitespace)
            .map(|(c, a)| (c, a.trim()))
            .ok_or_else(|| anyhow!("{}: `{line}` needs an argument", at()))?;
        let target = || -> Result<Target> {
            if arg == "all" {
                Ok(Target::All)
            } else if kvnet_model::ifname::is_valid(arg) {
                Ok(Target::Bridge(arg.to_string()))
            } else {
                bail!("{}: '{arg}' is not a bridge name", at())
            }
        };
        match cmd {
            "allow" => out.push(Rule::Allow(target()?)),
            "deny" => out.push(Rule::Deny(target()?)),
            "include" => {
                let inc = match path.parent() {
                    Some(dir) if Path::new(arg).is_relative() => dir.join(arg),
                    _ => PathBuf::from(arg),
                };
                if stack.contains(&inc) {
                    let chain: Vec<String> = stack
                        .iter()
                        .chain([&inc])
                        .map(|p| p.display().to_string())
                        .collect();
                    bail!("{}: include cycle: {}", at(), chain.join(" -> "));
                }
                if stack.len() >= MAX_DEPTH {
                    bail!("{}: includes nest deeper than {MAX_DEPTH}", at());
                }
                load_into(&inc, read, stack, out)?;
            }
            _ => bail!("{}: unknown command `{cmd}`", at()),
        }
    }
    stack.pop();
    Ok(())
}

/// Whether `bridge` may be used: some rule allows it and none denies it.
pub fn allowed(rules: &[Rule], bridge: &str) -> bool {
    let hits = |t: &Target| match t {
        Target::All => true,
        Target::Bridge(b) => b == bridge,
    };
    let allow = rules.iter().any(|r| matches!(r, Rule::Allow(t) if hits(t)));
    let deny = rules.iter().any(|r| matches!(r, Rule::Deny(t) if hits(t)));
    allow && !deny
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(list: &[(&str, &str)]) -> impl FnMut(&Path) -> io::Result<String> + use<> {
        let m: HashMap<PathBuf, String> = list
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p: &Path| {
            m.get(p)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    fn check(list: &[(&str, &str)], bridge: &str) -> Result<bool> {
        let mut read = files(list);
        load(Path::new("/etc/kvnet/bridge.conf"), &mut read).map(|r| allowed(&r, bridge))
    }

    #[test]
    fn syntax_comments_and_whitespace() {
        let conf = "# kvnet\n\n  allow\tvirbr0  \n#allow br1\nallow   br2\n";
        let mut read = files(&[("/etc/kvnet/bridge.conf", conf)]);
        assert_eq!(
            load(Path::new("/etc/kvnet/bridge.conf"), &mut read).unwrap(),
            vec![
                Rule::Allow(Target::Bridge("virbr0".into())),
                Rule::Allow(Target::Bridge("br2".into()))
            ]
        );
    }

    #[test]
    fn deny_wins_in_any_order_and_default_is_deny() {
        let f = "/etc/kvnet/bridge.conf";
        assert!(check(&[(f, "allow virbr0")], "virbr0").unwrap());
        assert!(!check(&[(f, "allow virbr0")], "br0").unwrap());
        assert!(!check(&[(f, "")], "virbr0").unwrap());
        assert!(!check(&[(f, "allow all\ndeny virbr0")], "virbr0").unwrap());
        assert!(!check(&[(f, "deny virbr0\nallow all")], "virbr0").unwrap());
        assert!(check(&[(f, "deny virbr0\nallow all")], "virbr1").unwrap());
        assert!(!check(&[(f, "allow virbr0\ndeny all")], "virbr0").unwrap());
        assert!(!check(&[(f, "deny all\nallow virbr0")], "virbr0").unwrap());
    }

    #[test]
    fn includes_relative_absolute_and_their_denies() {
        let list = [
            (
                "/etc/kvnet/bridge.conf",
                "allow all\ninclude bridge.d/lab.conf",
            ),
            ("/etc/kvnet/bridge.d/lab.conf", "include /srv/deny.conf"),
            ("/srv/deny.conf", "deny br-lan"),
        ];
        assert!(check(&list, "virbr0").unwrap());
        assert!(!check(&list, "br-lan").unwrap());
    }

    #[test]
    fn missing_files_fail_closed() {
        let e = check(&[], "virbr0").unwrap_err().to_string();
        assert!(e.contains("cannot read /etc/kvnet/bridge.conf"), "{e}");
        let e = check(
            &[("/etc/kvnet/bridge.conf", "allow all\ninclude /nope.conf")],
            "virbr0",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nope.conf"), "{e}");
    }

    #[test]
    fn include_cycles_are_errors() {
        let e = check(
            &[
                ("/etc/kvnet/bridge.conf", "include a.conf"),
                (
                    "/etc/kvnet/a.conf",
                    "allow all\ninclude /etc/kvnet/bridge.conf",
                ),
            ],
            "virbr0",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("include cycle: /etc/kvnet/bridge.conf -> /etc/kvnet/a.conf -> /etc/kvnet/bridge.conf"),
            "{e}"
        );
        let e = check(&[("/etc/kvnet/bridge.conf", "include bridge.conf")], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("include cycle"), "{e}");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let f = "/etc/kvnet/bridge.conf";
        for (conf, want) in [
            ("allow virbr0\npermit br0", ":2: unknown command `permit`"),
            ("allow", ":1: `allow` needs an argument"),
            ("deny br0 br1", ":1: 'br0 br1' is not a bridge name"),
            ("allow ../x", ":1: '../x' is not a bridge name"),
        ] {
            let e = check(&[(f, conf)], "br0").unwrap_err().to_string();
            assert!(e.starts_with(f) && e.contains(want), "{conf}: {e}");
        }
    }
}
