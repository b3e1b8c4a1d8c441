use super::*;
use kvnet_api::request::Update;
use kvnet_model::{UpdateCommand, UpdateSection};

fn entropy() -> impl FnMut() -> u64 {
    let mut n = 0u64;
    move || {
        n += 0x0101_0101_0101;
        n
    }
}

const NAT: &str = "<network><name>lab</name><forward mode='nat'/>\
    <ip address='192.168.50.1' prefix='24'><dhcp><range start='192.168.50.2' end='192.168.50.9'/></dhcp></ip></network>";

fn prepared(r: &Registry, xml: &str) -> Network {
    r.prepare(xml, Vec::<String>::new(), &mut entropy())
        .unwrap()
}

fn defined(xml: &str) -> Registry {
    let mut r = Registry::default();
    let net = prepared(&r, xml);
    assert_eq!(r.define(net, false), None);
    r
}

#[test]
fn prepare_completes_like_libvirt_and_keeps_what_it_generated() {
    let r = defined(NAT);
    let first = r.get("lab").unwrap().def.clone().unwrap();
    assert!(first.uuid.is_some() && first.mac.is_some());
    assert_eq!(first.bridge_name(), Some("virbr0"));
    // A redefine without UUID, MAC or bridge name keeps the generated ones.
    let again = prepared(&r, NAT);
    assert_eq!((again.uuid, again.mac), (first.uuid, first.mac));
    assert_eq!(again.bridge_name(), Some("virbr0"));
    // A second network gets the next free bridge name; host links are avoided too.
    let other = NAT.replace("lab", "other").replace(".50.", ".51.");
    let o = r
        .prepare(&other, ["virbr1".to_string()], &mut entropy())
        .unwrap();
    assert_eq!(o.bridge_name(), Some("virbr2"));
}

#[test]
fn prepare_refuses_conflicts_with_the_reason() {
    let r = defined(NAT);
    let uuid = r.get("lab").unwrap().def.as_ref().unwrap().uuid.unwrap();
    let err = |xml: &str| {
        r.prepare(xml, Vec::<String>::new(), &mut entropy())
            .unwrap_err()
            .to_string()
    };
    let e = err(&NAT.replace(
        "<name>lab</name>",
        "<name>lab</name><uuid>11111111-2222-3333-4444-555555555555</uuid>",
    ));
    assert_eq!(e, format!("network 'lab' already exists with uuid {uuid}"));
    let e = err(&NAT.replace(
        "<name>lab</name>",
        &format!("<name>twin</name><uuid>{uuid}</uuid>"),
    ));
    assert_eq!(e, format!("uuid {uuid} is already used by network 'lab'"));
    let e = err(&NAT
        .replace("<name>lab</name>", "<name>b</name><bridge name='virbr0'/>")
        .replace(".50.", ".52."));
    assert_eq!(
        e,
        "bridge name 'virbr0' is already in use by another network"
    );
    assert!(err("<network><name>x</name><bogus/></network>").starts_with("invalid network XML"));
}

#[test]
fn start_stop_and_the_status_record() {
    let mut r = defined(NAT);
    let net = r.startable("lab").unwrap();
    let st = r.starting_status(&net, 7);
    assert!(!st.transient && st.owns_bridge && !st.stopping);
    r.started(net.clone(), 7).unwrap();
    assert_eq!(r.status("lab"), Some(st.clone()));
    assert_eq!(r.active().len(), 1);
    assert_eq!(r.by_bridge("virbr0").map(|n| n.name.as_str()), Some("lab"));
    assert!(
        r.startable("lab")
            .unwrap_err()
            .to_string()
            .contains("already active")
    );
    let (stopping, gone) = r.stopped("lab").unwrap();
    assert!(stopping.stopping && !gone);
    assert_eq!(r.status("lab"), None);
    assert!(
        r.live("lab")
            .unwrap_err()
            .to_string()
            .contains("not active")
    );
}

#[test]
fn a_transient_network_goes_with_its_stop_or_a_failed_start() {
    let mut r = Registry::default();
    let net = prepared(&r, NAT);
    r.create(&net).unwrap();
    assert!(r.create(&net).is_err(), "already exists");
    assert!(r.starting_status(&net, 1).transient);
    r.forget("lab");
    assert!(r.get("lab").is_err());
    r.create(&net).unwrap();
    r.started(net, 1).unwrap();
    assert!(r.check_undefine("lab", &[]).is_err());
    assert!(r.check_autostart("lab").is_err());
    let (_, gone) = r.stopped("lab").unwrap();
    assert!(gone && r.get("lab").is_err());
}

#[test]
fn undefine_and_define_while_running_flip_persistence() {
    let mut r = defined(NAT);
    let net = r.startable("lab").unwrap();
    r.started(net, 3).unwrap();
    let e = r
        .check_undefine("lab", &["vnet0".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("it has ports vnet0"), "{e}");
    r.check_undefine("lab", &[]).unwrap();
    let st = r.undefine("lab").unwrap().expect("still running");
    assert!(st.transient && st.started == 3);
    // Defining it again makes it persistent; the status says so.
    let net = prepared(&r, NAT);
    let st = r.define(net, false).expect("status rewritten");
    assert!(!st.transient);
    // An inactive network undefined is gone.
    let mut r = defined(NAT);
    assert_eq!(r.undefine("lab").unwrap(), None);
    assert!(r.get("lab").is_err());
}

fn update(section: UpdateSection, xml: &str) -> Update {
    Update {
        network: "lab".into(),
        command: UpdateCommand::AddLast,
        section,
        xml: xml.into(),
        parent_index: None,
        live: false,
        config: false,
    }
}

#[test]
fn update_targets_follow_virsh() {
    let host = update(
        UpdateSection::IpDhcpHost,
        "<host mac='52:54:00:00:00:07' ip='192.168.50.7'/>",
    );
    let current = UpdateTarget {
        live: false,
        config: false,
    };
    let live = UpdateTarget {
        live: true,
        config: false,
    };
    let both = UpdateTarget {
        live: true,
        config: true,
    };
    let mut r = defined(NAT);
    // Inactive: --current is the definition; --live is refused.
    let p = r.plan_update("lab", &host, current).unwrap();
    assert!(p.def.is_some() && p.live.is_none());
    let e = r.plan_update("lab", &host, live).unwrap_err().to_string();
    assert_eq!(e, "network 'lab' is not active, cannot update it live");
    // Active: --current is the live network; both change both.
    let net = r.startable("lab").unwrap();
    r.started(net, 1).unwrap();
    let p = r.plan_update("lab", &host, current).unwrap();
    assert!(p.def.is_none() && p.live.is_some());
    let p = r.plan_update("lab", &host, both).unwrap();
    let st = r.commit_update("lab", p).unwrap().expect("live changed");
    assert!(st.live_xml.contains("52:54:00:00:00:07"));
    let o = r.get("lab").unwrap();
    assert_eq!(
        o.def.as_ref().unwrap().ips[0]
            .dhcp
            .as_ref()
            .unwrap()
            .hosts
            .len(),
        1
    );
    // Planning changes nothing; a bad fragment is refused whole.
    let bad = update(UpdateSection::IpDhcpHost, "<host mac='zz'/>");
    assert!(r.plan_update("lab", &bad, both).is_err());
    assert_eq!(r.get("lab").unwrap(), o);
}
