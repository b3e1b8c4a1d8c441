//! The project's own round-trip fixtures: `NAME.in.xml` must format to `NAME.out.xml`, and
//! every canonical file (`*.out.xml` and plain `NAME.xml`) must be a fixed point.

use std::fs;
use std::path::{Path, PathBuf};

use kvnet_model::Network;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn inputs_format_to_their_expected_output() {
    let mut n = 0;
    for p in fixtures() {
        let name = p
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let Some(stem) = name.strip_suffix(".in.xml") else {
            continue;
        };
        let want = read(&p.with_file_name(format!("{stem}.out.xml")));
        let net = Network::from_xml(&read(&p)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(net.to_xml(), want, "{name}");
        n += 1;
    }
    assert!(n >= 4, "expected the .in.xml fixtures, found {n}");
}

#[test]
fn canonical_fixtures_are_fixed_points() {
    for p in fixtures() {
        let name = p
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".in.xml") {
            continue;
        }
        let text = read(&p);
        let net = Network::from_xml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(net.to_xml(), text, "{name}");
        // JSON is a faithful second encoding of the model.
        let json = serde_json::to_string(&net).expect("serialize");
        let back: Network = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, net, "{name}");
    }
}
