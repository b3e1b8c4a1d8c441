//! libvirt's own network-XML test data, when `../shared` sits beside the checkout: every
//! `networkxml2xmlin` file must format to its `networkxml2xmlout` twin or, without a twin, be
//! rejected; every `networkxml2confdata` input must be accepted.

use std::fs;
use std::path::{Path, PathBuf};

use kvnet_model::Network;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/libvirt");
    p.is_dir().then_some(p)
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn libvirt_xml2xml_corpus() {
    let Some(root) = corpus() else {
        println!("skip: libvirt corpus not found beside the checkout (../shared/corpus/libvirt)");
        return;
    };
    let mut failures = Vec::new();
    let inputs = xml_files(&root.join("networkxml2xmlin"));
    assert!(!inputs.is_empty());
    for input in &inputs {
        let name = input.file_name().unwrap_or_default();
        let text = fs::read_to_string(input).unwrap_or_default();
        let twin = root.join("networkxml2xmlout").join(name);
        let res = Network::from_xml(&text);
        match (fs::read_to_string(&twin).ok(), res) {
            (Some(want), Ok(net)) => {
                let got = net.to_xml();
                if got != want {
                    failures.push(format!(
                        "{name:?}: output differs\n--- want\n{want}--- got\n{got}"
                    ));
                    continue;
                }
                // The canonical form must be a fixed point.
                match Network::from_xml(&got) {
                    Ok(again) if again.to_xml() == got => {}
                    Ok(_) => failures.push(format!("{name:?}: canonical output is not stable")),
                    Err(e) => failures.push(format!("{name:?}: canonical output rejected: {e}")),
                }
            }
            (Some(_), Err(e)) => failures.push(format!("{name:?}: rejected: {e}")),
            (None, Ok(_)) => failures.push(format!("{name:?}: accepted, libvirt rejects it")),
            (None, Err(e)) => println!("{name:?}: rejected as expected: {e}"),
        }
    }
    let conf = xml_files(&root.join("networkxml2confdata"));
    for input in &conf {
        let text = fs::read_to_string(input).unwrap_or_default();
        if let Err(e) = Network::from_xml(&text) {
            failures.push(format!(
                "{:?}: confdata input rejected: {e}",
                input.file_name().unwrap_or_default()
            ));
        }
    }
    let total = inputs.len() + conf.len();
    println!(
        "corpus: {} passed / {} failed",
        total - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
