//! Root only, in a throw-away namespace: kvnet's traffic control over netlink against
//! iproute2's `tc` given the same configuration. Device `qa` is set up by `tc`, `qb` by
//! [`Netlink::tc_apply`]; `tc -d` shows both the same, and [`Netlink::tc_shape`] reads
//! both back the same.

use kvnet_host::testns::TestNs;
use kvnet_host::{HtbClass, MacFilter, Netlink, TcChange};

fn sh(ns: &TestNs, cmd: &str) -> String {
    let out = ns.exec("sh", &["-c", cmd]).expect("exec");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tc -d` of a device, its name and the actions' counters taken out.
fn shown(ns: &TestNs, dev: &str) -> String {
    let text = sh(
        ns,
        &format!(
            "tc -d qdisc show dev {dev}; tc -d class show dev {dev}; \
             tc filter show dev {dev}; tc filter show dev {dev} ingress"
        ),
    );
    text.replace(&format!("dev {dev} "), "dev X ")
        .lines()
        .filter(|l| !l.contains("installed") && !l.contains("index "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs root"]
fn htb_u32_and_the_redirect_are_what_tc_makes() {
    let ns = TestNs::new().unwrap();
    for d in ["qa", "qb"] {
        sh(&ns, &format!("ip link add {d} type veth peer name {d}p"));
    }
    sh(&ns, "ip link add ifbx type ifb");
    // 1000 kB/s up to 2000, a 64 KiB burst; a class per MAC; ingress to the IFB.
    sh(
        &ns,
        "tc qdisc add dev qa root handle 1: htb default 2 && \
         tc class add dev qa parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps \
            burst 64kb cburst 64kb quantum 100000 && \
         tc class add dev qa parent 1:1 classid 1:3 htb rate 600kbps ceil 2000kbps \
            burst 64kb cburst 64kb quantum 60000 && \
         tc filter add dev qa parent 1: protocol all prio 3 u32 \
            match ether dst 52:54:00:12:34:56 flowid 1:3 && \
         tc qdisc add dev qa ingress && \
         tc filter add dev qa parent ffff: protocol all prio 1 u32 match u32 0 0 \
            action mirred egress redirect dev ifbx",
    );
    let (from_tc, ours) = ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let b = nl.link("qb").await.unwrap().unwrap().index;
        let a = nl.link("qa").await.unwrap().unwrap().index;
        let ifb = nl.link("ifbx").await.unwrap().unwrap().index;
        let class = |minor, parent, rate| HtbClass {
            minor,
            parent,
            rate,
            ceil: 2_000_000,
            // 64 KiB at the rate and at the ceiling, in 64 ns ticks, as tc computes.
            buffer: ((65_536u64 * 1_000_000 / rate) * 125 / 8) as u32,
            cbuffer: 512_000,
            quantum: (rate / 10) as u32,
        };
        nl.tc_apply(
            b,
            &[
                TcChange::AddRoot(2),
                TcChange::PutClass(class(1, 0, 1_000_000)),
                TcChange::PutClass(class(3, 1, 600_000)),
                TcChange::AddFilter(MacFilter {
                    prio: 3,
                    mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                    class: 3,
                }),
                TcChange::AddRedirect(ifb),
            ],
        )
        .await
        .unwrap();
        let (sa, sb) = (nl.tc_shape(a).await.unwrap(), nl.tc_shape(b).await.unwrap());
        assert_eq!(sb.redirect, Some(ifb));
        assert_eq!(sb.filters.len(), 1);
        // Deleting a filter, a class, the ingress and the root leaves nothing.
        nl.tc_apply(
            b,
            &[
                TcChange::DelFilter(3),
                TcChange::DelClass(3),
                TcChange::DelIngress,
                TcChange::DelRoot,
            ],
        )
        .await
        .unwrap();
        assert_eq!(nl.tc_shape(b).await.unwrap(), Default::default());
        nl.ensure_ifb("ifb-q").await.unwrap();
        nl.delete_ifb("ifb-q").await.unwrap();
        assert!(nl.link("ifb-q").await.unwrap().is_none());
        (sa, sb)
    });
    assert_eq!(from_tc, ours);
    // And what tc shows, now that b is bare again, matches a made once more the same way.
    let tc_view = shown(&ns, "qa");
    assert!(tc_view.contains("rate 8Mbit ceil 16Mbit"), "{tc_view}");
    ns.block_on(|| async {
        let nl = Netlink::connect().await.unwrap();
        let b = nl.link("qb").await.unwrap().unwrap().index;
        let changes = [
            TcChange::AddRoot(2),
            TcChange::PutClass(from_tc.classes[0].clone()),
            TcChange::PutClass(from_tc.classes[1].clone()),
            TcChange::AddFilter(from_tc.filters[0].clone()),
            TcChange::AddRedirect(from_tc.redirect.unwrap()),
        ];
        nl.tc_apply(b, &changes).await.unwrap();
    });
    assert_eq!(shown(&ns, "qb"), tc_view);
}
