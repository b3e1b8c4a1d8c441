//! Root-only: TAP devices, each test in its own throw-away network namespace.

use kvnet_host::testns::TestNs;
use kvnet_host::{BridgeSpec, Netlink, tap};

fn cfg(name: &str) -> tap::TapConfig {
    tap::TapConfig {
        name: name.to_string(),
        vnet_hdr: true,
        queues: 1,
        owner: Some(4242),
        group: Some(4343),
        persist: true,
    }
}

#[test]
#[ignore = "needs root"]
fn persistent_tap_create_inspect_delete() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let t = tap::create(&cfg("vnet0")).unwrap();
        assert_eq!(t.name, "vnet0");
        assert_eq!(t.fds.len(), 1);
        drop(t);
        // Persistent: still there with its files closed.
        let info = nl.tun_info("vnet0").await.unwrap().expect("a tun device");
        assert!(info.tap && info.persist && info.vnet_hdr && !info.multi_queue);
        assert_eq!((info.owner, info.group), (Some(4242), Some(4343)));
        let link = nl.link("vnet0").await.unwrap().unwrap();
        assert_eq!(link.kind.as_deref(), Some("tun"));
        assert_eq!(nl.tun_info("lo").await.unwrap(), None);
        assert_eq!(nl.tun_info("nosuch0").await.unwrap(), None);
        tap::delete("vnet0").unwrap();
        assert_eq!(nl.link("vnet0").await.unwrap(), None);
        tap::delete("vnet0").unwrap();
        assert_eq!(
            nl.link("vnet0").await.unwrap(),
            None,
            "delete creates nothing"
        );
    });
}

#[test]
#[ignore = "needs root"]
fn multi_queue_and_pattern_names() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let mut c = cfg("vnet%d");
        c.queues = 4;
        let t = tap::create(&c).unwrap();
        assert_eq!(t.name, "vnet0");
        assert_eq!(t.fds.len(), 4);
        let info = nl.tun_info("vnet0").await.unwrap().unwrap();
        assert!(info.multi_queue && info.persist);
        assert_eq!(info.queues, 4);
        // Deleting while its files are open drops persist; it goes with the files.
        tap::delete("vnet0").unwrap();
        assert!(!nl.tun_info("vnet0").await.unwrap().unwrap().persist);
        drop(t);
        assert_eq!(nl.link("vnet0").await.unwrap(), None);

        // Not persistent: gone with its file.
        let mut c = cfg("tap%d");
        c.persist = false;
        let t = tap::create(&c).unwrap();
        assert!(nl.link(&t.name).await.unwrap().is_some());
        let name = t.name.clone();
        drop(t);
        assert_eq!(nl.link(&name).await.unwrap(), None);
    });
}

#[test]
#[ignore = "needs root"]
fn busy_tap_and_non_tap_are_refused() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let t = tap::create(&cfg("vnet1")).unwrap();
        let err = tap::delete("vnet1").unwrap_err().to_string();
        assert!(err.contains("vnet1") && err.contains("in use"), "{err}");
        drop(t);
        tap::delete("vnet1").unwrap();
        nl.create_bridge(&BridgeSpec {
            name: "br0".into(),
            mac: None,
            mtu: None,
            stp: false,
            forward_delay_cs: 0,
        })
        .await
        .unwrap();
        assert!(tap::delete("br0").is_err());
        assert!(nl.link("br0").await.unwrap().is_some());
    });
}

#[test]
#[ignore = "needs root"]
fn tap_on_bridge_and_fdb() {
    let ns = TestNs::new().unwrap();
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let br = nl
            .create_bridge(&BridgeSpec {
                name: "br0".into(),
                mac: None,
                mtu: Some(1400),
                stp: false,
                forward_delay_cs: 0,
            })
            .await
            .unwrap();
        let t = tap::create(&cfg("vnet0")).unwrap();
        let l = nl.link(&t.name).await.unwrap().unwrap();
        let mac = [0xfe, 0x54, 0, 1, 2, 3];
        nl.set_mac(l.index, mac).await.unwrap();
        nl.set_mtu(l.index, 1400).await.unwrap();
        nl.set_master(l.index, Some(br)).await.unwrap();
        nl.set_up(l.index, true).await.unwrap();
        let l = nl.link("vnet0").await.unwrap().unwrap();
        assert_eq!((l.mac, l.mtu, l.master), (Some(mac), 1400, Some(br)));
        // The TAP's own address is local: not a guest behind the port.
        assert!(nl.bridge_fdb(br).await.unwrap().is_empty());
        let out = std::process::Command::new("bridge")
            .args([
                "fdb",
                "add",
                "52:54:00:aa:bb:cc",
                "dev",
                "vnet0",
                "master",
                "static",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            nl.bridge_fdb(br).await.unwrap(),
            vec![kvnet_host::FdbEntry {
                mac: [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc],
                port: l.index
            }]
        );
    });
}
