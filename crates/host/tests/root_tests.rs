//! The rule for root-only tests, checked by reading the workspace's test code: a test
//! that reaches a root helper (a [`TestNs`](kvnet_host::testns::TestNs), and through it
//! the daemon's lab and the QEMU guests, or `require_root`) is `#[ignore = "needs root"]`,
//! so a user's `cargo test` lists it as ignored instead of passing it untested; test.sh
//! runs it as root with `--include-ignored`. For the same reason nothing else is ignored,
//! doc tests (```` ```ignore ````) included: test.sh would run it.
//!
//! Textual and per function, which is enough for this code base: comments and literals
//! are blanked, then a function reaches a helper when its body names one of [`SEEDS`] or
//! calls a function of the same test target (the file and the `mod x;` files it declares)
//! that does — `name(`, `Type::name(`, `Self::name(`; method calls (`x.name(`) act on
//! something already made and are not followed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MARK: &str = "#[ignore = \"needs root\"]";

/// Calls that need root from any crate: [`TestNs`](kvnet_host::testns::TestNs)'s
/// constructors and the check itself.
const SEEDS: &[&str] = &["TestNs::new(", "TestNs::with_prefix(", "require_root("];

#[test]
fn every_root_test_is_ignored_as_needing_root() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("workspace root");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let krate = krate.expect("crates/ entry").path();
        for dir in ["src", "tests"] {
            rust_files(&krate.join(dir), &mut files);
        }
    }
    assert!(files.len() > 20, "found only {files:?}");
    let sources: BTreeMap<PathBuf, String> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            (
                f.strip_prefix(&root).expect("under the root").to_path_buf(),
                text,
            )
        })
        .collect();
    let problems = check(&sources);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_an_unmarked_root_test() {
    let src = r#"
        /// FENCE
        fn helper() -> TestNs {
            TestNs::with_prefix("x").unwrap() // "{" in a comment
        }
        struct Lab;
        impl Lab {
            fn new() -> Lab { let _ = helper(); Lab }
        }
        #[test]
        fn direct() { let _ = TestNs::new(); }
        #[test]
        fn through_a_helper_and_a_type() { let _ = Lab::new(); }
        #[test]
        #[ignore = "needs root"]
        fn marked() { let c = '}'; let _ = helper(); }
        #[test]
        #[ignore = "needs root"]
        fn marked_but_pure() { assert_eq!("require_root(", "x"); }
        #[test]
        #[ignore]
        fn ignored_otherwise() {}
        #[test]
        fn pure() { let lab = Lab; let _ = lab.new_ish(); }
    "#;
    // Spelled out here, this file would hold an ignored doc test itself.
    let src = src.replace("FENCE", "```ignore");
    let sources = BTreeMap::from([(PathBuf::from("t.rs"), src)]);
    let found = check(&sources).join("\n");
    for name in [
        "direct",
        "through_a_helper_and_a_type",
        "marked_but_pure",
        "ignored_otherwise",
    ] {
        assert!(
            found.contains(&format!("t.rs: {name}:")),
            "{name}:\n{found}"
        );
    }
    assert!(found.contains("t.rs:2: an ignored doc test"), "{found}");
    for name in ["marked", "pure"] {
        assert!(
            !found.contains(&format!("t.rs: {name}:")),
            "{name}:\n{found}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

struct Func {
    name: String,
    /// The type of the `impl` block it is in.
    owner: Option<String>,
    /// Its attributes, from the original text.
    attrs: Vec<String>,
    body: std::ops::Range<usize>,
}

/// One problem per line, `file: test: what is wrong`.
fn check(sources: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let parsed: BTreeMap<&PathBuf, (Vec<u8>, Vec<Func>)> = sources
        .iter()
        .map(|(p, text)| {
            let code = blank(text);
            let funcs = functions(text, &code);
            (p, (code, funcs))
        })
        .collect();
    // A test reaches root when it does in any target it is part of.
    let mut reaches: BTreeMap<(&PathBuf, usize), bool> = BTreeMap::new();
    for file in parsed.keys() {
        let mut target = vec![*file];
        let mut i = 0;
        while i < target.len() {
            for m in declared_modules(target[i], &parsed[target[i]].0) {
                if let Some((k, _)) = parsed.get_key_value(&m)
                    && !target.contains(k)
                {
                    target.push(k);
                }
            }
            i += 1;
        }
        let all: Vec<(&PathBuf, &Vec<u8>, &Func, usize)> = target
            .iter()
            .flat_map(|f| {
                let (code, funcs) = &parsed[f];
                funcs.iter().enumerate().map(move |(n, g)| (*f, code, g, n))
            })
            .collect();
        let body =
            |code: &[u8], g: &Func| String::from_utf8_lossy(&code[g.body.clone()]).into_owned();
        let mut root: Vec<bool> = all
            .iter()
            .map(|(_, code, g, _)| SEEDS.iter().any(|s| body(code, g).contains(s)))
            .collect();
        loop {
            let before = root.clone();
            for (a, (_, code, f, _)) in all.iter().enumerate() {
                if root[a] {
                    continue;
                }
                let text = body(code, f);
                root[a] = all
                    .iter()
                    .zip(&before)
                    .any(|((_, _, g, _), &r)| r && calls(&text, f, g));
            }
            if root == before {
                break;
            }
        }
        for ((f, _, _, n), r) in all.iter().zip(root) {
            *reaches.entry((*f, *n)).or_default() |= r;
        }
    }
    let mut problems = Vec::new();
    for (file, text) in sources {
        for (n, line) in text.lines().enumerate() {
            let doc = line
                .trim_start()
                .trim_start_matches("///")
                .trim_start_matches("//!");
            if doc.trim_start().starts_with("```ignore") {
                problems.push(format!(
                    "{}:{}: an ignored doc test, which test.sh would run",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    for ((file, n), root) in reaches {
        let f = &parsed[file].1[n];
        let is_test = f
            .attrs
            .iter()
            .any(|a| a == "#[test]" || a.starts_with("#[tokio::test"));
        let marked = f.attrs.iter().any(|a| a == MARK);
        let ignored = f.attrs.iter().any(|a| a.starts_with("#[ignore"));
        let what = if !is_test {
            continue;
        } else if root && !marked {
            format!("needs root (reaches a root helper) but is not {MARK}")
        } else if marked && !root {
            "is marked as needing root but reaches no root helper (call require_root if it \
             needs root another way)"
                .to_string()
        } else if ignored && !marked {
            format!("is ignored, but test.sh runs ignored tests: only {MARK} is allowed")
        } else {
            continue;
        };
        problems.push(format!("{}: {}: {what}", file.display(), f.name));
    }
    problems
}

/// Whether `text`, the body of `f`, calls `g`.
fn calls(text: &str, f: &Func, g: &Func) -> bool {
    let name = &g.name;
    match &g.owner {
        Some(t) => {
            text.contains(&format!("{t}::{name}("))
                || (f.owner == g.owner && text.contains(&format!("Self::{name}(")))
        }
        None => text.match_indices(&format!("{name}(")).any(|(i, _)| {
            let before = text[..i].bytes().next_back();
            !before.is_some_and(|b| b == b'.' || ident(b))
        }),
    }
}

fn ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The files `mod x;` in `file` names.
fn declared_modules(file: &Path, code: &[u8]) -> Vec<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let stem = file.file_stem().unwrap_or_default();
    let mut out = Vec::new();
    for at in words(code, "mod") {
        let rest = &code[at + 3..];
        let name: String = skip_ws(rest)
            .iter()
            .take_while(|b| ident(**b))
            .map(|&b| b as char)
            .collect();
        let after = skip_ws(&skip_ws(rest)[name.len()..]);
        if name.is_empty() || after.first() != Some(&b';') {
            continue;
        }
        for base in [dir.to_path_buf(), dir.join(stem)] {
            for cand in [
                base.join(format!("{name}.rs")),
                base.join(&name).join("mod.rs"),
            ] {
                out.push(cand);
            }
        }
    }
    out
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// Offsets of the keyword `word` in `code`.
fn words<'a>(code: &'a [u8], word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let w = word.as_bytes();
    (0..code.len().saturating_sub(w.len())).filter(move |&i| {
        code[i..].starts_with(w)
            && (i == 0 || !ident(code[i - 1]))
            && code.get(i + w.len()).is_none_or(|&b| !ident(b))
    })
}

/// The end (exclusive) of the `open`..`close` group starting at `at`.
fn group_end(code: &[u8], at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    for (i, &b) in code.iter().enumerate().skip(at) {
        if b == open {
            depth += 1;
        } else if b == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    code.len()
}

fn functions(text: &str, code: &[u8]) -> Vec<Func> {
    // `impl` blocks (item position only: `x: impl Fn()` is a type).
    let impls: Vec<(std::ops::Range<usize>, String)> = words(code, "impl")
        .filter(|&i| {
            let before = code[..i].trim_ascii_end();
            before.is_empty()
                || matches!(before.last(), Some(b'}' | b';' | b'{' | b']'))
                || before.ends_with(b"unsafe")
        })
        .filter_map(|i| {
            let open = i + code[i..].iter().position(|&b| b == b'{')?;
            let mut header = String::from_utf8_lossy(&code[i + 4..open]).into_owned();
            if header.trim_start().starts_with('<') {
                let h = header.trim_start().as_bytes();
                header = String::from_utf8_lossy(&h[group_end(h, 0, b'<', b'>')..]).into_owned();
            }
            let ty = header.rsplit(" for ").next().unwrap_or_default();
            let ty: String = ty
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some((open..group_end(code, open, b'{', b'}'), ty))
        })
        .collect();
    let mut out = Vec::new();
    for at in words(code, "fn") {
        let rest = skip_ws(&code[at + 2..]);
        let name: String = rest
            .iter()
            .take_while(|b| ident(**b))
            .map(|&b| b as char)
            .collect();
        if name.is_empty() {
            continue; // a `fn(..)` pointer type
        }
        // The body: the first `{` outside the signature's brackets; `;` ends a declaration.
        let (mut round, mut square, mut open) = (0i32, 0i32, None);
        for (i, &b) in code.iter().enumerate().skip(at) {
            match b {
                b'(' => round += 1,
                b')' => round -= 1,
                b'[' => square += 1,
                b']' => square -= 1,
                b';' if round == 0 && square == 0 => break,
                b'{' if round == 0 && square == 0 => {
                    open = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let item_start = code[..at]
            .iter()
            .rposition(|b| matches!(b, b'}' | b';' | b'{'))
            .map_or(0, |i| i + 1);
        let mut attrs = Vec::new();
        let mut i = item_start;
        while let Some(p) = code[i..at].iter().position(|&b| b == b'#') {
            let start = i + p;
            let end = group_end(code, start, b'[', b']').min(at);
            attrs.push(
                text[start..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            i = end;
        }
        let owner = impls
            .iter()
            .filter(|(r, _)| r.contains(&at))
            .min_by_key(|(r, _)| r.len())
            .map(|(_, t)| t.clone());
        out.push(Func {
            name,
            owner,
            attrs,
            body: open..group_end(code, open, b'{', b'}'),
        });
    }
    out
}

/// `text` as bytes with comments and the insides of string and char literals replaced by
/// spaces (newlines kept), so offsets match and braces or calls in them do not count.
fn blank(text: &str) -> Vec<u8> {
    let src = text.as_bytes();
    let mut out = src.to_vec();
    let wipe = |from: usize, to: usize, out: &mut Vec<u8>| {
        for b in &mut out[from..to.min(src.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        let prev_ident = i > 0 && ident(src[i - 1]);
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(src.len(), |n| i + n);
            wipe(i, end, &mut out);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0, i);
            while j < src.len() {
                if src[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if src[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            wipe(i, j, &mut out);
            i = j;
        } else if !prev_ident
            && (rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br"))
        {
            // A raw string: r#"..."# with any number of #.
            let r = if rest[0] == b'b' { i + 1 } else { i };
            let hashes = src[r + 1..].iter().take_while(|&&b| b == b'#').count();
            if src.get(r + 1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let body = r + 2 + hashes;
            let mut close = b"\"".to_vec();
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = (body..src.len())
                .find(|&j| src[j..].starts_with(&close))
                .unwrap_or(src.len());
            wipe(body, end, &mut out);
            i = end + close.len();
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < src.len() && src[j] != b'"' {
                j += if src[j] == b'\\' { 2 } else { 1 };
            }
            wipe(i + 1, j, &mut out);
            i = j + 1;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', 'é'), else a lifetime or label.
            let len = if rest.get(1) == Some(&b'\\') {
                rest.get(3..)
                    .and_then(|r| r.iter().position(|&b| b == b'\''))
                    .map(|n| n + 3)
            } else {
                let c = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + c) == Some(&b'\'')).then_some(1 + c)
            };
            match len {
                Some(n) => {
                    wipe(i + 1, i + n, &mut out);
                    i += n + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}
