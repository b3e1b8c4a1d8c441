use super::*;
use crate::iptables::{self, DOCKER_USER};
use crate::traffic::tests::nat;

fn rs(name: &str) -> Ruleset {
    let text = match name {
        "docker" => include_str!("../../tests/rulesets/docker.json"),
        "docker-kvnet" => include_str!("../../tests/rulesets/docker-kvnet.json"),
        "firewalld-public" => include_str!("../../tests/rulesets/firewalld-public.json"),
        "firewalld-kvnet" => include_str!("../../tests/rulesets/firewalld-kvnet.json"),
        "ufw" => include_str!("../../tests/rulesets/ufw.json"),
        _ => unreachable!(),
    };
    Ruleset::parse(text).unwrap()
}

fn net() -> FwNetwork {
    nat("default", "kvbr0", &["192.168.150.0/24"])
}

fn brnf() -> Context {
    Context {
        bridge_nf: BridgeNf {
            call_iptables: true,
            call_ip6tables: true,
        },
        ..Context::default()
    }
}

fn kinds(hits: &[Hit]) -> Vec<Traffic> {
    let mut k: Vec<Traffic> = hits.iter().map(|h| h.traffic).collect();
    k.sort();
    k
}

#[test]
fn dockers_forward_policy_drops_nat_and_with_br_netfilter_guest_to_guest() {
    let hits = analyse(&rs("docker"), &[net()], &brnf());
    assert_eq!(
        kinds(&hits),
        [Traffic::ForwardOut, Traffic::ForwardIn, Traffic::Cross]
    );
    for h in &hits {
        assert_eq!(h.owner, Owner::Docker);
        assert!(h.certain, "{h:?}");
        assert_eq!(h.location(), "ip filter FORWARD policy drop");
        assert_eq!((h.hook.as_str(), h.prio), ("forward", 0));
    }
    let without = analyse(&rs("docker"), &[net()], &Context::default());
    assert_eq!(kinds(&without), [Traffic::ForwardOut, Traffic::ForwardIn]);
}

#[test]
fn kvnets_accepts_in_docker_user_let_everything_through() {
    let rs = rs("docker-kvnet");
    assert_eq!(analyse(&rs, &[net()], &brnf()), []);
    // Judged without them, the same drops call for exactly these rules: kept.
    let found = iptables::present(&rs, &[net()]);
    let cx = Context {
        skip: iptables::skip(&found),
        ..brnf()
    };
    let hits = analyse(&rs, &[net()], &cx);
    assert_eq!(hits.len(), 3);
    let plan = iptables::plan(&rs, &[net()], &hits, &found);
    assert_eq!(plan.add, []);
    assert_eq!(plan.remove, []);
    assert_eq!(plan.keep.len(), 3);
    // Without br_netfilter the cross rule has nothing to do.
    let cx = Context {
        skip: iptables::skip(&found),
        ..Context::default()
    };
    let plan = iptables::plan(&rs, &[net()], &analyse(&rs, &[net()], &cx), &found);
    assert_eq!(plan.remove.len(), 1);
    assert_eq!(plan.remove[0].traffic, Traffic::Cross);
}

#[test]
fn the_plan_for_docker_goes_into_docker_user() {
    let rs = rs("docker");
    let hits = analyse(&rs, &[net()], &brnf());
    let plan = iptables::plan(&rs, &[net()], &hits, &[]);
    let shown: Vec<String> = plan.add.iter().map(|r| r.display()).collect();
    assert_eq!(
        shown,
        [
            "ip filter DOCKER-USER: -i kvbr0 -s 192.168.150.0/24 -m comment --comment kvnet: default out -j ACCEPT",
            "ip filter DOCKER-USER: -o kvbr0 -d 192.168.150.0/24 -m comment --comment kvnet: default in -j ACCEPT",
            "ip filter DOCKER-USER: -i kvbr0 -o kvbr0 -m comment --comment kvnet: default cross -j ACCEPT",
        ]
    );
    assert!(plan.add.iter().all(|r| r.chain == DOCKER_USER));
}

#[test]
fn firewalld_rejects_dhcp_dns_and_forwarding_of_an_unbound_bridge() {
    let hits = analyse(&rs("firewalld-public"), &[net()], &Context::default());
    assert_eq!(
        kinds(&hits),
        [
            Traffic::ForwardOut,
            Traffic::Dhcp,
            Traffic::Dns,
            Traffic::DnsTcp
        ]
    );
    for h in &hits {
        assert_eq!(h.owner, Owner::Firewalld);
        assert!(h.certain, "{h:?}");
        assert_eq!(h.table, TableId::new("inet", "firewalld"));
        assert_eq!(h.at.verdict, "reject");
    }
    let dns = hits.iter().find(|h| h.traffic == Traffic::Dns).unwrap();
    assert_eq!(dns.at.chain, "filter_IN_public");
    assert!(
        dns.location()
            .starts_with("inet firewalld filter_IN_public handle ")
    );
    // No iptables rule can fix firewalld's table.
    let plan = iptables::plan(&rs("firewalld-public"), &[net()], &hits, &[]);
    assert_eq!(plan, iptables::Plan::default());
}

#[test]
fn a_bridge_in_kvnets_zone_passes_firewalld() {
    assert_eq!(
        analyse(&rs("firewalld-kvnet"), &[net()], &brnf()),
        [],
        "the zone lets DHCP, DNS, forwarding and bridged traffic through"
    );
}

#[test]
fn ufw_drops_services_and_forwarding_and_the_plan_opens_them_at_the_top() {
    let rs = rs("ufw");
    let hits = analyse(&rs, &[net()], &Context::default());
    assert_eq!(
        kinds(&hits),
        [
            Traffic::ForwardOut,
            Traffic::ForwardIn,
            Traffic::Dhcp,
            Traffic::Dns,
            Traffic::DnsTcp
        ]
    );
    assert!(hits.iter().all(|h| h.owner == Owner::Ufw), "{hits:#?}");
    // Replies pass ufw's conntrack accept, which nft shows as an opaque xt match.
    let replies = hits
        .iter()
        .find(|h| h.traffic == Traffic::ForwardIn)
        .unwrap();
    assert!(!replies.certain);
    assert_eq!(replies.at.unknown, ["xt match conntrack"]);
    let plan = iptables::plan(&rs, &[net()], &hits, &[]);
    let chains: Vec<(&str, Traffic)> = plan
        .add
        .iter()
        .map(|r| (r.chain.as_str(), r.traffic))
        .collect();
    assert_eq!(
        chains,
        [
            ("FORWARD", Traffic::ForwardOut),
            ("FORWARD", Traffic::ForwardIn),
            ("INPUT", Traffic::Dns),
            ("INPUT", Traffic::DnsTcp),
            ("INPUT", Traffic::Dhcp),
        ]
    );
}

#[test]
fn ufw_drops_tftp_requests_of_a_network_with_tftp_and_the_plan_opens_port_69() {
    let rs = rs("ufw");
    let mut tftp = net();
    tftp.tftp = true;
    let hits = analyse(&rs, &[tftp.clone()], &Context::default());
    let h = hits
        .iter()
        .find(|h| h.traffic == Traffic::Tftp)
        .expect("TFTP dropped");
    assert_eq!(h.owner, Owner::Ufw);
    let plan = iptables::plan(&rs, &[tftp], &hits, &[]);
    let rule = plan
        .add
        .iter()
        .find(|r| r.traffic == Traffic::Tftp)
        .expect("an accept for TFTP");
    assert_eq!(
        rule.display(),
        "ip filter INPUT: -i kvbr0 -p udp --dport 69 -m comment --comment kvnet: default tftp -j ACCEPT"
    );
}

fn custom(rules: &str, policy: &str) -> Ruleset {
    Ruleset::parse(&format!(
        r#"{{"nftables":[{{"table":{{"family":"inet","name":"mine","handle":1}}}},
        {{"chain":{{"family":"inet","table":"mine","name":"fwd","handle":1,"type":"filter","hook":"forward","prio":-5,"policy":"{policy}"}}}},
        {rules}]}}"#
    ))
    .unwrap()
}

fn rule(handle: u64, expr: &str) -> String {
    format!(
        r#"{{"rule":{{"family":"inet","table":"mine","chain":"fwd","handle":{handle},"expr":[{expr}]}}}}"#
    )
}

#[test]
fn a_native_table_is_named_by_table_chain_and_handle() {
    let rs = custom(
        &rule(
            4,
            r#"{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"kv*"}},{"drop":null}"#,
        ),
        "accept",
    );
    let hits = analyse(&rs, &[net()], &Context::default());
    assert_eq!(kinds(&hits), [Traffic::ForwardOut]);
    assert_eq!(hits[0].owner, Owner::Unknown);
    assert_eq!(hits[0].location(), "inet mine fwd handle 4 (drop)");
    assert_eq!(hits[0].prio, -5);
    // kvnet's own table is never judged.
    let cx = Context {
        own_tables: vec![TableId::new("inet", "mine")],
        ..Context::default()
    };
    assert_eq!(analyse(&rs, &[net()], &cx), []);
}

#[test]
fn an_undecidable_match_makes_a_drop_possible_not_certain() {
    let rs = custom(
        &[
            rule(
                2,
                r#"{"xt":{"type":"match","name":"physdev"}},{"drop":null}"#,
            ),
            rule(3, r#"{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"eth0"}},{"drop":null}"#),
        ]
        .join(","),
        "accept",
    );
    let hits = analyse(&rs, &[net()], &Context::default());
    assert_eq!(kinds(&hits), [Traffic::ForwardOut, Traffic::ForwardIn]);
    assert!(hits.iter().all(|h| !h.certain));
    assert_eq!(hits[0].at.unknown, ["xt match physdev"]);
}

#[test]
fn accepts_and_returns_are_followed_through_jumps() {
    let rs = Ruleset::parse(
        r#"{"nftables":[{"table":{"family":"ip","name":"t","handle":1}},
        {"chain":{"family":"ip","table":"t","name":"in","handle":1,"type":"filter","hook":"input","prio":0,"policy":"drop"}},
        {"chain":{"family":"ip","table":"t","name":"svc","handle":2}},
        {"rule":{"family":"ip","table":"t","chain":"in","handle":3,"expr":[{"jump":{"target":"svc"}}]}},
        {"rule":{"family":"ip","table":"t","chain":"svc","handle":4,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":{"set":[53,67]}}},{"accept":null}]}},
        {"rule":{"family":"ip","table":"t","chain":"svc","handle":5,"expr":[{"return":null}]}},
        {"rule":{"family":"ip","table":"t","chain":"svc","handle":6,"expr":[{"accept":null}]}}
        ]}"#,
    )
    .unwrap();
    let hits = analyse(&rs, &[net()], &Context::default());
    assert_eq!(kinds(&hits), [Traffic::DnsTcp], "udp 53 and 67 accepted");
    assert_eq!(hits[0].location(), "ip t in policy drop");
    assert_eq!(hits[0].owner, Owner::Unknown);
}

#[test]
fn an_empty_ruleset_drops_nothing() {
    let rs = Ruleset::parse(r#"{"nftables":[]}"#).unwrap();
    assert_eq!(analyse(&rs, &[net()], &brnf()), []);
}

#[test]
fn iptables_legacy_drops_are_judged_and_fixed_with_its_own_binary() {
    let save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                :DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n";
    let mut rs = Ruleset::default();
    rs.tables.insert(
        crate::legacy::table_id(false),
        crate::legacy::parse_save(save, false).unwrap(),
    );
    let hits = analyse(&rs, &[net()], &Context::default());
    assert_eq!(kinds(&hits), [Traffic::ForwardOut, Traffic::ForwardIn]);
    assert_eq!(hits[0].owner, Owner::Docker);
    assert_eq!(
        hits[0].location(),
        "ip filter (iptables-legacy) FORWARD policy drop"
    );
    let plan = iptables::plan(&rs, &[net()], &hits, &[]);
    assert_eq!(plan.add.len(), 2);
    assert!(
        plan.add
            .iter()
            .all(|r| r.binary() == "iptables-legacy" && r.chain == DOCKER_USER),
        "{plan:?}"
    );
    // Once added (as iptables-legacy-save shows them), they are found again.
    let with = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n\
         -A FORWARD -j DOCKER-USER\n\
         -A DOCKER-USER -d 192.168.150.0/24 -o kvbr0 -m comment --comment \"kvnet: default in\" -j ACCEPT\n\
         -A DOCKER-USER -s 192.168.150.0/24 -i kvbr0 -m comment --comment \"kvnet: default out\" -j ACCEPT\nCOMMIT\n";
    let mut rs = Ruleset::default();
    rs.tables.insert(
        crate::legacy::table_id(false),
        crate::legacy::parse_save(with, false).unwrap(),
    );
    assert_eq!(analyse(&rs, &[net()], &Context::default()), []);
    assert_eq!(iptables::present(&rs, &[net()]).len(), 2);
}
