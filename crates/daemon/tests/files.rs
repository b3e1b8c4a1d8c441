//! kvnetd's files on a host that has been through things: bad files planted before a
//! `kill -9` and restart, an older kvnetd's layout, names its files cannot hold, a full
//! disk. Root only: each runs the lab's kvnetd in namespaces of its own.

mod lab;

use kvnet_api::request as req;
use lab::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn summary(lab: &Lab, name: &str) -> Option<kvnet_api::NetSummary> {
    list(lab).into_iter().find(|n| n.name == name)
}

/// The files of `dir` set aside as `FILE.bad-TIME`, by the FILE they were.
fn quarantined(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let n = e.expect("entry").file_name().to_string_lossy().into_owned();
            n.split_once(".bad-").map(|(f, _)| f.to_string())
        })
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

/// With kvnetd running three networks (one with a port), bad files are planted — a
/// hidden definition, a torn ports file, a definition that is not UTF-8, one whose name
/// is too long, a torn status record — next to a good definition with a 64-character
/// name of 3-byte characters; then `kill -9` and a restart. kvnetd starts, every bad
/// file is kept aside (renamed, not deleted), every good network is adopted untouched,
/// the network whose status was torn is stopped from its definition (no orphan bridge,
/// no rules left), and a second restart finds nothing more to set aside.
#[test]
#[ignore = "needs root"]
fn restart_with_bad_files() {
    let mut lab = Lab::new();
    lab.define_and_start(&net_xml("lana", "kvla0", 181, "<forward mode='nat'/>"));
    lab.define_and_start(&net_xml("lanb", "kvlb0", 182, "<forward mode='route'/>"));
    lab.define_and_start(&net_xml("torn", "kvlt0", 183, "<forward mode='nat'/>"));
    let (ok, out) = lab.cli(&["port-create", "lana"]);
    assert!(ok, "{out}");
    let d = lab.daemon.dir.clone();
    let nets = d.join("etc/networks");
    let long = "網".repeat(64);
    let too_long = "網".repeat(65);
    std::fs::write(
        nets.join(format!("{long}.xml")),
        net_xml(&long, "kvlu0", 184, ""),
    )
    .unwrap();
    std::fs::write(
        nets.join(format!("{too_long}.xml")),
        net_xml(&too_long, "kvlv0", 185, ""),
    )
    .unwrap();
    std::fs::write(nets.join(".x.xml"), net_xml(".x", "kvlx0", 186, "")).unwrap();
    let mut latin1 = net_xml("latin", "kvll0", 187, "").into_bytes();
    latin1.extend_from_slice(b"<!-- caf\xe9 -->");
    std::fs::write(nets.join("latin.xml"), latin1).unwrap();
    let ports = d.join("lib/ports/lana.json");
    let text = std::fs::read(&ports).expect("lana's ports file");
    std::fs::write(&ports, &text[..text.len() / 2]).unwrap();
    let status = d.join("run/networks/torn.json");
    let text = std::fs::read(&status).expect("torn's status");
    std::fs::write(&status, &text[..text.len() / 2]).unwrap();
    let before = ip(&lab.host, "-o link show kvla0");

    lab.crash_daemon();
    let log = lab.daemon.log();

    // Kept aside, each where it was.
    assert_eq!(
        quarantined(&nets),
        [
            ".x.xml".to_string(),
            "latin.xml".into(),
            format!("{too_long}.xml")
        ],
        "{log}"
    );
    assert_eq!(quarantined(&d.join("lib/ports")), ["lana.json"]);
    assert_eq!(quarantined(&d.join("run/networks")), ["torn.json"]);
    for f in [".x.xml", "latin.xml"] {
        assert!(!nets.join(f).exists(), "{f} still in place");
    }
    assert!(
        log.contains("ERROR") && log.contains("moved aside"),
        "{log}"
    );
    // Every good network adopted as it was, the long-named one loaded.
    for n in ["default", "lana", "lanb"] {
        let s = summary(&lab, n).unwrap_or_else(|| panic!("{n} missing:\n{log}"));
        assert!(s.active, "{n} not active:\n{log}");
        assert!(
            log.contains(&format!("adopted running network network={n}")),
            "{n}:\n{log}"
        );
    }
    assert_eq!(
        ip(&lab.host, "-o link show kvla0").split(':').next(),
        before.split(':').next(),
        "lana's bridge is the same"
    );
    let u = summary(&lab, &long).expect("the 64-character name is loaded");
    assert!(!u.active);
    for n in [".x", "latin", too_long.as_str()] {
        assert!(summary(&lab, n).is_none(), "{n} loaded");
    }
    // The network whose record was torn: stopped from its definition, nothing left.
    assert!(!summary(&lab, "torn").expect("torn still defined").active);
    assert!(!lab.links().contains("kvlt0"), "{}", lab.links());
    let table = lab.nft_table();
    assert!(
        !table.contains("kvlt0") && !table.contains("192.168.183."),
        "{table}"
    );
    assert!(
        table.contains("kvla0") && table.contains("kvlb0"),
        "{table}"
    );
    // It starts again, and so does the one with the long name.
    lab.ok(req::Start {
        network: "torn".into(),
    });
    lab.ok(req::Start { network: long });

    // Nothing more to set aside.
    lab.crash_daemon();
    assert_eq!(quarantined(&nets).len(), 3);
    assert_eq!(quarantined(&d.join("lib/ports")).len(), 1);
    assert_eq!(quarantined(&d.join("run/networks")).len(), 1);
    assert!(list(&lab).iter().filter(|n| n.active).count() == 5);
}

/// An older kvnetd's layout — definitions and autostart/ directly in the config dir,
/// which it kept 0700 — is moved into networks/ at the next start: the networks are
/// adopted, autostart marks kept, the config dir becomes 0755 and networks/ 0700.
#[test]
#[ignore = "needs root"]
fn an_older_layout_is_migrated() {
    let mut lab = Lab::new();
    lab.define_and_start(&net_xml("lana", "kvla0", 181, "<forward mode='nat'/>"));
    lab.ok(req::Define {
        xml: net_xml("lanb", "kvlb0", 182, ""),
    });
    lab.ok(req::Autostart {
        network: "lana".into(),
        enable: true,
    });
    lab.daemon.stop();
    let etc = lab.daemon.dir.join("etc");
    let nets = etc.join("networks");
    std::fs::create_dir(etc.join("autostart")).unwrap();
    let mut names = Vec::new();
    for e in std::fs::read_dir(&nets).unwrap() {
        let p = e.unwrap().path();
        if let Some(f) = p.file_name().and_then(|f| f.to_str())
            && f.ends_with(".xml")
        {
            std::fs::rename(&p, etc.join(f)).unwrap();
            names.push(f.to_string());
        }
    }
    for e in std::fs::read_dir(nets.join("autostart")).unwrap() {
        let f = e.unwrap().file_name();
        let f = f.to_str().unwrap();
        std::os::unix::fs::symlink(format!("../{f}"), etc.join("autostart").join(f)).unwrap();
    }
    std::fs::remove_dir_all(&nets).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
    names.sort();
    assert_eq!(names, ["default.xml", "lana.xml", "lanb.xml"]);

    lab.restart_daemon();
    let log = lab.daemon.log();
    assert!(
        log.contains("moved 5 definitions and autostart links"),
        "{log}"
    );
    assert_eq!((mode(&etc), mode(&nets)), (0o755, 0o700));
    assert!(!etc.join("autostart").exists() && !etc.join("lana.xml").exists());
    let s = list(&lab);
    let row = |n: &str| {
        s.iter()
            .find(|x| x.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert!(row("default").active && row("default").autostart);
    assert!(row("lana").active && row("lana").autostart);
    assert!(!row("lanb").active && !row("lanb").autostart);
    for f in names {
        assert!(nets.join(&f).exists(), "{f}");
    }
}

/// Names that define/create refuse, with the reason, through the CLI; nothing is written.
#[test]
#[ignore = "needs root"]
fn names_kvnet_cannot_file_are_refused() {
    let lab = Lab::new();
    for (name, why) in [
        (".hidden".to_string(), "must not start with '.'"),
        ("lan.v6".into(), "must not end in '.v6'"),
        (
            "🦀".repeat(60),
            "240 bytes long in UTF-8, more than kvnet's 200",
        ),
    ] {
        let file = lab.daemon.dir.join("bad.xml");
        std::fs::write(&file, net_xml(&name, "kvbad0", 190, "")).unwrap();
        for verb in ["net-define", "net-create"] {
            let (ok, out) = lab.cli(&[verb, file.to_str().unwrap()]);
            assert!(
                !ok && out.contains(why) && out.contains("libvirt would accept it"),
                "{verb} {name}: {out}"
            );
        }
        // The daemon refuses it too (the CLI checks first).
        let r = lab.call(req::Define {
            xml: net_xml(&name, "kvbad0", 190, ""),
        });
        assert!(!r.ok && r.error.unwrap_or_default().contains(why));
    }
    let files: Vec<PathBuf> = std::fs::read_dir(lab.daemon.dir.join("etc/networks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(!lab.links().contains("kvbad0"));
}

/// The config dir on a full disk (a 16 KiB tmpfs in kvnetd's mount namespace): a
/// define that does not fit fails naming the cause, leaves no temp file and no network,
/// and kvnetd goes on.
#[test]
#[ignore = "needs root"]
fn a_full_disk_leaves_no_temp_file() {
    let lab = Lab::with_setup(
        &[],
        &Setup {
            shell: vec![
                "mkdir -p $D/etc && mount -t tmpfs -o size=16k,mode=0755 kvnet-test $D/etc".into(),
            ],
            ..Setup::default()
        },
    );
    // kvnetd's view of its config dir: the tmpfs is in its mount namespace only.
    let pid = lab.daemon.child.as_ref().expect("kvnetd").id();
    let nets = PathBuf::from(format!("/proc/{pid}/root"))
        .join(lab.daemon.dir.strip_prefix("/").unwrap())
        .join("etc/networks");
    let before: Vec<_> = std::fs::read_dir(&nets)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let big = net_xml("big", "kvbig0", 191, "").replace(
        "<bridge",
        &format!(
            "<description>{}</description><bridge",
            "x".repeat(64 * 1024)
        ),
    );
    let r = lab.call(req::Define { xml: big });
    let e = r.error.unwrap_or_default();
    assert!(!r.ok && e.contains("No space left on device"), "{e}");
    let after: Vec<_> = std::fs::read_dir(&nets)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(after, before, "a temp file was left behind");
    assert!(summary(&lab, "big").is_none());
    lab.ok(req::Define {
        xml: net_xml("small", "kvsm0", 192, ""),
    });
}
