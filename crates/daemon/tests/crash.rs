//! kill -9 at any instant, then a restart: the host converges to what kvnetd records.
//!
//! A campaign of rounds on a lab with networks of every kind kvnet runs (NAT with DHCP
//! and a port-create'd TAP, routed with IPv6 and static routes, isolated with DHCP, a
//! host bridge; a network defined and undefined, a transient one created and destroyed).
//! Each round picks a verb and a kill point, spread over the verb's measured duration
//! (a destroy's over its background teardown too) and including "just after the reply",
//! sends the verb, kills kvnetd with SIGKILL at that point and starts a new one; in a
//! quarter of the rounds that one is killed too, during its own start. Then (after a
//! bounded settling time) what kvnetd reports must match the kernel exactly
//! (`converge::differences`), a verb that was answered must have taken effect, the
//! bridges and TAPs of the other networks must be the same links (adopted, not made
//! again), and a guest on the NAT network renews its lease. Failures are collected, with
//! the seed, the verb, the kill point, the difference and kvnetd's log, and the lab is
//! rebuilt for the next round. crash_points.rs pins each failure found to its instant.
//!
//! `./test.sh` runs a short campaign: a few rounds on fixed seeds plus a random one.
//! `KVNET_CRASH_ROUNDS=N` sets the rounds per seed, `KVNET_CRASH_SEED=S` replays one
//! seed (the choices of each round come from the seed and the round's number, given
//! the same state; kill instants are as precise as the scheduler); `bench/crash.sh` runs
//! the long campaign. Root only.

mod converge;
mod lab;

use converge::*;
use kvnet_api::request as req;
use kvnet_api::{CreatedPort, Request};
use kvnet_model::{UpdateCommand, UpdateSection};
use lab::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Seeds `./test.sh` always runs (a random one is added and printed).
const SEEDS: &[u64] = &[0x6b76_6e65_7401, 0x6b76_6e65_7402];
/// Rounds per seed in `./test.sh`.
const ROUNDS: u64 = 10;
/// The DHCP guest on `default`.
const GUEST_MAC: &str = "52:54:00:c0:ff:ee";
const HOST_BRIDGE: &str = "kvhb0";

const ROUTED: &str = "<network><name>routed</name><forward mode='route'/><bridge name='kvr0'/>\
    <ip address='192.168.62.1' prefix='24'/><ip family='ipv6' address='fd00:62::1' prefix='64'/>\
    <route address='10.62.0.0' prefix='16' gateway='192.168.62.2'/>\
    <route family='ipv6' address='fd00:6200::' prefix='48' gateway='fd00:62::2'/></network>";
const HOSTBR: &str = "<network><name>hostbr</name><forward mode='bridge'/>\
    <bridge name='kvhb0'/></network>";

fn knob(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// splitmix64: small, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn for_round(seed: u64, round: u64) -> Rng {
        let mut r = Rng(seed ^ round.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The verbs the campaign interrupts.
#[derive(Debug, Clone)]
enum Op {
    Start(String),
    Destroy {
        net: String,
        wait: bool,
    },
    UpdateHost {
        net: String,
        n: u8,
        add: bool,
        config: bool,
    },
    UpdateForward {
        net: String,
        add: bool,
        config: bool,
    },
    PortCreate {
        net: String,
        ifname: Option<String>,
    },
    PortDelete {
        net: String,
        ifname: String,
    },
    Define,
    Undefine,
    Create,
}

const KINDS: [&str; 10] = [
    "start",
    "destroy",
    "destroy --wait",
    "update --live dhcp-host",
    "update --live forward-interface",
    "port-create",
    "port-delete",
    "define",
    "undefine",
    "create",
];

/// A network to define and undefine, and a transient one to create.
fn extra_xml() -> String {
    net_xml("extra", "kvx0", 65, "<forward mode='nat'/>")
}
fn tnet_xml() -> String {
    net_xml("tnet", "kvt0", 64, "<forward mode='nat'/>")
}

fn host_mac(n: u8) -> String {
    format!("52:54:00:aa:00:0{n}")
}

fn subnet_of(net: &str) -> &'static str {
    match net {
        "default" => "192.168.122",
        _ => "192.168.63",
    }
}

const FORWARD_IF: &str = "<interface dev='wan0'/>";

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Start(_) => KINDS[0],
            Op::Destroy { wait: false, .. } => KINDS[1],
            Op::Destroy { wait: true, .. } => KINDS[2],
            Op::UpdateHost { .. } => KINDS[3],
            Op::UpdateForward { .. } => KINDS[4],
            Op::PortCreate { .. } => KINDS[5],
            Op::PortDelete { .. } => KINDS[6],
            Op::Define => KINDS[7],
            Op::Undefine => KINDS[8],
            Op::Create => KINDS[9],
        }
    }

    /// The network the verb acts on.
    fn network(&self) -> Option<&str> {
        match self {
            Op::Start(n)
            | Op::Destroy { net: n, .. }
            | Op::UpdateHost { net: n, .. }
            | Op::UpdateForward { net: n, .. }
            | Op::PortCreate { net: n, .. }
            | Op::PortDelete { net: n, .. } => Some(n),
            Op::Define | Op::Undefine => Some("extra"),
            Op::Create => Some("tnet"),
        }
    }

    fn request(&self) -> Request {
        let update = |net: &str, section, xml: String, add: bool, config: bool| {
            req::Update {
                network: net.into(),
                command: if add {
                    UpdateCommand::AddLast
                } else {
                    UpdateCommand::Delete
                },
                section,
                xml,
                parent_index: None,
                live: true,
                config,
            }
            .into()
        };
        match self {
            Op::Start(n) => req::Start { network: n.clone() }.into(),
            Op::Destroy { net, wait } => req::Destroy {
                network: net.clone(),
                wait: *wait,
            }
            .into(),
            Op::UpdateHost {
                net,
                n,
                add,
                config,
            } => update(
                net,
                UpdateSection::IpDhcpHost,
                format!(
                    "<host mac='{}' ip='{}.{}'/>",
                    host_mac(*n),
                    subnet_of(net),
                    50 + n
                ),
                *add,
                *config,
            ),
            Op::UpdateForward { net, add, config } => update(
                net,
                UpdateSection::ForwardInterface,
                FORWARD_IF.into(),
                *add,
                *config,
            ),
            Op::PortCreate { net, ifname } => req::PortCreate {
                network: net.clone(),
                ifname: ifname.clone(),
                ..Default::default()
            }
            .into(),
            Op::PortDelete { net, ifname } => req::PortDelete {
                network: Some(net.clone()),
                ifname: ifname.clone(),
            }
            .into(),
            Op::Define => req::Define { xml: extra_xml() }.into(),
            Op::Undefine => req::Undefine {
                network: "extra".into(),
            }
            .into(),
            Op::Create => req::Create { xml: tnet_xml() }.into(),
        }
    }

    /// What an answered verb must have left, as the restarted kvnetd reports it.
    fn took_effect(&self, rep: &Report, data: &serde_json::Value) -> Result<(), String> {
        let net = |n: &str| rep.get(n).ok_or_else(|| format!("network {n} is gone"));
        let live_has = |n: &str, what: &str| -> Result<bool, String> {
            let v = net(n)?;
            let live = v.live.as_ref().ok_or(format!("{n} is not active"))?;
            Ok(live.to_xml().contains(what))
        };
        let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        match self {
            Op::Start(n) => check(net(n)?.live.is_some(), format!("{n} is not active")),
            Op::Destroy { net: n, .. } => check(
                rep.get(n).is_none_or(|v| v.live.is_none()),
                format!("{n} is still active"),
            ),
            Op::UpdateHost {
                net: n,
                n: h,
                add,
                config,
            } => {
                let mac = host_mac(*h);
                check(live_has(n, &mac)? == *add, format!("live {n}: host {mac}"))?;
                let def = net(n)?.inactive_xml.contains(&mac);
                check(!config || def == *add, format!("defined {n}: host {mac}"))
            }
            Op::UpdateForward {
                net: n,
                add,
                config,
            } => {
                check(
                    live_has(n, FORWARD_IF)? == *add,
                    format!("live {n}: {FORWARD_IF}"),
                )?;
                let def = net(n)?.inactive_xml.contains(FORWARD_IF);
                check(!config || def == *add, format!("defined {n}: {FORWARD_IF}"))
            }
            Op::PortCreate { net: n, .. } => {
                let c: CreatedPort =
                    serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                let ifname = c.port.ifname;
                check(
                    net(n)?.ports.iter().any(|p| p.ifname == ifname),
                    format!("port {ifname} not listed on {n}"),
                )
            }
            Op::PortDelete { ifname, .. } => check(
                !rep.values()
                    .flat_map(|v| &v.ports)
                    .any(|p| p.ifname == *ifname),
                format!("port {ifname} still listed"),
            ),
            Op::Define => check(
                rep.get("extra").is_some_and(|v| v.sum.persistent),
                "extra is not defined".into(),
            ),
            Op::Undefine => check(
                rep.get("extra").is_none_or(|v| !v.sum.persistent),
                "extra is still defined".into(),
            ),
            Op::Create => check(
                rep.get("tnet")
                    .is_some_and(|v| v.live.is_some() && !v.sum.persistent),
                "tnet is not running as a transient network".into(),
            ),
        }
    }
}

/// The verbs that make sense in the state `rep` reports (each would succeed).
fn candidates(rep: &Report, rng: &mut Rng) -> Vec<Op> {
    let mut ops = Vec::new();
    let xml_has =
        |v: &NetView, what: &str| v.live.as_ref().is_some_and(|l| l.to_xml().contains(what));
    for (name, v) in rep {
        let Some(_) = &v.live else {
            if v.sum.persistent {
                ops.push(Op::Start(name.clone()));
            }
            continue;
        };
        ops.push(Op::Destroy {
            net: name.clone(),
            wait: false,
        });
        ops.push(Op::Destroy {
            net: name.clone(),
            wait: true,
        });
        // --config too when the definition agrees with the live network on it.
        let config = |what: &str, rng: &mut Rng| {
            v.sum.persistent && v.inactive_xml.contains(what) == xml_has(v, what) && rng.chance(0.5)
        };
        if ["default", "iso"].contains(&name.as_str()) {
            let n = rng.below(3) as u8;
            let mac = host_mac(n);
            ops.push(Op::UpdateHost {
                net: name.clone(),
                n,
                add: !xml_has(v, &mac),
                config: config(&mac, rng),
            });
        }
        if ["default", "routed"].contains(&name.as_str()) {
            ops.push(Op::UpdateForward {
                net: name.clone(),
                add: !xml_has(v, FORWARD_IF),
                config: config(FORWARD_IF, rng),
            });
        }
        if v.sum.bridge.is_some() {
            let ifname = rng.chance(0.5).then(|| format!("kp{}", rng.below(100)));
            ops.push(Op::PortCreate {
                net: name.clone(),
                ifname: ifname
                    .filter(|i| !rep.values().flat_map(|v| &v.ports).any(|p| p.ifname == *i)),
            });
        }
    }
    for (name, v) in rep {
        for p in &v.ports {
            ops.push(Op::PortDelete {
                net: name.clone(),
                ifname: p.ifname.clone(),
            });
        }
    }
    match rep.get("extra") {
        Some(v) if v.sum.persistent && v.ports.is_empty() => ops.push(Op::Undefine),
        Some(v) if v.sum.persistent => {}
        _ => ops.push(Op::Define),
    }
    if !rep.contains_key("tnet") {
        ops.push(Op::Create);
    }
    ops
}

/// One verb of a kind chosen uniformly among the kinds possible, so that rare kinds
/// (port-delete, undefine) are not drowned by frequent ones.
fn choose(rep: &Report, rng: &mut Rng) -> Op {
    let ops = candidates(rep, rng);
    let mut kinds: Vec<&str> = ops.iter().map(Op::kind).collect();
    kinds.sort();
    kinds.dedup();
    let kind = kinds[rng.below(kinds.len())];
    let of_kind: Vec<&Op> = ops.iter().filter(|o| o.kind() == kind).collect();
    of_kind[rng.below(of_kind.len())].clone()
}

/// When the round kills kvnetd.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the request is sent.
    At(Duration),
    /// As soon as the reply is read.
    AfterReply,
}

/// What the client saw.
struct Outcome {
    /// The reply, if it came (before or just after the kill: kvnetd had sent it).
    reply: Option<kvnet_api::Reply>,
    /// From sending the request to the reply.
    took: Option<Duration>,
    /// From sending the request to the kill.
    killed_at: Duration,
}

/// Send `r`, SIGKILL kvnetd at `kill`, and collect what came back.
fn send_and_kill(lab: &mut Lab, r: &Request, kill: Kill) -> Outcome {
    let mut s = UnixStream::connect(&lab.daemon.socket).expect("connect kvnetd");
    let mut line = serde_json::to_vec(r).expect("request");
    line.push(b'\n');
    let mut rs = s.try_clone().expect("clone socket");
    rs.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let (tx, rx) = std::sync::mpsc::channel();
    let t0 = Instant::now();
    s.write_all(&line).expect("send request");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.contains(&b'\n') {
            match rs.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let at = t0.elapsed();
        let _ = tx.send(());
        let reply = got
            .split(|&b| b == b'\n')
            .next()
            .filter(|_| got.contains(&b'\n'))
            .and_then(|l| serde_json::from_slice::<kvnet_api::Reply>(l).ok());
        (reply, at)
    });
    match kill {
        Kill::At(d) => std::thread::sleep(d.saturating_sub(t0.elapsed())),
        Kill::AfterReply => {
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
    }
    let killed_at = t0.elapsed();
    let mut child = lab.daemon.child.take().expect("kvnetd running");
    let _ = child.kill();
    let _ = child.wait();
    let (reply, at) = reader.join().expect("reader");
    Outcome {
        took: reply.as_ref().map(|_| at),
        reply,
        killed_at,
    }
}

/// What the campaign counts per verb.
#[derive(Default)]
struct Stats {
    rounds: u32,
    /// Killed before the reply left.
    unanswered: u32,
    /// Answered, then killed.
    answered: u32,
    /// Kill points as a share of the verb's typical duration: <25 %, <50, <75, <100,
    /// later (up to 125 %), just after the reply.
    points: [u32; 6],
    /// Durations measured (answered rounds), ms.
    took: Vec<f64>,
    failures: u32,
}

impl Stats {
    /// The typical duration: the median of what was measured, 20 ms before any.
    fn typical(&self) -> Duration {
        let mut t = self.took.clone();
        t.sort_by(f64::total_cmp);
        Duration::from_secs_f64(t.get(t.len() / 2).copied().unwrap_or(20.0) / 1e3)
    }
}

struct Failure {
    text: String,
}

/// The lab with the campaign's networks, a port and a DHCP lease; its guest's index.
struct Campaign {
    lab: Lab,
    guest: usize,
    sysctls: BTreeMap<&'static str, String>,
    leases: Vec<(String, String, String)>,
}

/// One DHCP exchange of the guest; the address it was offered and acked.
fn dhcp(lab: &Lab, g: usize) -> Result<String, String> {
    let (ok, out) = sh(
        &lab.guests[g],
        "busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s /bin/true 2>&1",
    );
    out.lines()
        .find_map(|l| l.split("lease of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .filter(|_| ok)
        .map(str::to_string)
        .ok_or_else(|| format!("no lease: {out}"))
}

impl Campaign {
    fn new(sysctls: &BTreeMap<&'static str, String>) -> Campaign {
        let mut lab = Lab::new();
        ip(&lab.host, &format!("link add {HOST_BRIDGE} type bridge"));
        ip(&lab.host, &format!("link set {HOST_BRIDGE} up"));
        for xml in [
            ROUTED.to_string(),
            net_xml("iso", "kvi0", 63, ""),
            HOSTBR.to_string(),
        ] {
            lab.define_and_start(&xml);
        }
        lab.ok(req::PortCreate {
            network: "default".into(),
            ..Default::default()
        });
        let guest = lab.guest("virbr0", "", "");
        ip(
            &lab.guests[guest],
            &format!("link set eth0 address {GUEST_MAC}"),
        );
        let addr = dhcp(&lab, guest).unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon.log()));
        Campaign {
            lab,
            guest,
            sysctls: sysctls.clone(),
            leases: vec![("default".into(), GUEST_MAC.into(), addr)],
        }
    }

    fn expect(&self) -> Expect<'_> {
        Expect {
            host_bridges: &[HOST_BRIDGE],
            sysctls: &self.sysctls,
            leases: &self.leases,
        }
    }

    fn converge(
        &self,
        extra: impl Fn(&Report) -> Vec<String>,
    ) -> (Result<Report, String>, Vec<String>, Duration) {
        settle(&self.lab, &self.expect(), extra)
    }

    /// The guest renews on `default` (when it runs) and gets the same address.
    fn guest_keeps_its_lease(&self, rep: &Report) -> Vec<String> {
        if rep.get("default").is_none_or(|v| v.live.is_none()) {
            return Vec::new();
        }
        // A new bridge after a restart of the network: the guest's cable goes back in.
        let _ = sh(&self.lab.host, "ip link set vg0 master virbr0 up");
        match dhcp(&self.lab, self.guest) {
            Ok(a) if a == self.leases[0].2 => Vec::new(),
            Ok(a) => vec![format!("guest got {a}, not its lease {}", self.leases[0].2)],
            Err(e) => vec![format!("guest: {e}")],
        }
    }
}

/// The ifindex of each bridge and port of the active networks, with the network.
fn links_of(lab: &Lab, rep: &Report) -> BTreeMap<String, (String, u64)> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&ip(&lab.host, "-j link show")).unwrap_or_default();
    let index = |name: &str| {
        all.iter()
            .find(|l| l["ifname"] == name)
            .and_then(|l| l["ifindex"].as_u64())
    };
    let mut out = BTreeMap::new();
    for v in rep.values().filter(|v| v.live.is_some()) {
        let names = v.sum.bridge.iter().chain(v.ports.iter().map(|p| &p.ifname));
        for n in names {
            if let Some(i) = index(n) {
                out.insert(n.clone(), (v.sum.name.clone(), i));
            }
        }
    }
    out
}

/// Guest traffic untouched: the bridges and TAPs of networks the verb did not act on
/// are the same links after the restart (adopted, not made again).
fn untouched(
    before: &BTreeMap<String, (String, u64)>,
    after: &BTreeMap<String, (String, u64)>,
    op: &Op,
) -> Vec<String> {
    before
        .iter()
        .filter(|(_, (net, _))| Some(net.as_str()) != op.network())
        .filter_map(|(name, (net, i))| match after.get(name) {
            Some((_, j)) if j != i => Some(format!("{net}: {name} was made again ({i} -> {j})")),
            _ => None,
        })
        .collect()
}

fn log_since(lab: &Lab, from: usize) -> String {
    let log = lab.daemon.log();
    let tail = log.get(from..).unwrap_or(&log);
    let lines: Vec<&str> = tail.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The statistics' row of kvnetd's own start, killed too in some rounds.
const RESTART: &str = "(kvnetd's own start)";

/// Start kvnetd on the lab's dirs, as the lab does, and SIGKILL it `after` the spawn:
/// during its start (the adoption) when that is short enough. Whether it was ready.
fn kill_while_starting(lab: &Lab, after: Duration) -> bool {
    let d = &lab.daemon.dir;
    let log = || {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&lab.daemon.log)
            .expect("log")
    };
    let ready = || lab.daemon.log().matches("kvnetd ready").count();
    let before = ready();
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", lab.host.name()])
        .arg(bin("kvnetd"))
        .arg("--config-dir")
        .arg(d.join("etc"))
        .arg("--state-dir")
        .arg(d.join("lib"))
        .arg("--run-dir")
        .arg(d.join("run"))
        .stdout(log())
        .stderr(log())
        .spawn()
        .expect("spawn kvnetd");
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
    ready() > before
}

impl Stats {
    /// A round killed at `at` (`None`: just after the reply), answered or not.
    fn record(&mut self, at: Option<Duration>, typical: Duration, answered: bool) {
        self.rounds += 1;
        self.points[match at {
            None => 5,
            Some(at) => ((at.as_secs_f64() / typical.as_secs_f64() * 4.0) as usize).min(4),
        }] += 1;
        match answered {
            true => self.answered += 1,
            false => self.unanswered += 1,
        }
    }

    /// A kill point for the next round: just after the reply (None) for the first
    /// round of a verb, which measures it, and 15 % of the others; else spread over
    /// 0–125 % of `typical`.
    fn kill_point(&self, typical: Duration, rng: &mut Rng) -> Option<Duration> {
        if self.took.is_empty() || rng.chance(0.15) {
            return None;
        }
        Some(typical.mul_f64(1.25 * (rng.next() % 10_000) as f64 / 10_000.0))
    }
}

/// The processes with a file open whose path ends in `tail`: pid, command line.
fn holders(tail: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let fds = std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten();
        if fds
            .filter_map(|f| std::fs::read_link(f.path()).ok())
            .any(|t| t.to_string_lossy().contains(tail))
        {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{} {}",
                p.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    out
}

/// Runs `rounds` rounds of `seed`; failures go to `failures`.
fn campaign(
    seed: u64,
    rounds: u64,
    stats: &mut BTreeMap<&'static str, Stats>,
    failures: &mut Vec<Failure>,
) {
    let sysctls = fresh_sysctls();
    let mut c = Campaign::new(&sysctls);
    let (rep, diffs, _) = c.converge(|_| Vec::new());
    assert!(
        diffs.is_empty(),
        "the lab before any kill: {diffs:#?}\n{}",
        c.lab.daemon.log()
    );
    let mut rep = rep.expect("report");
    for round in 0..rounds {
        let mut rng = Rng::for_round(seed, round);
        let op = choose(&rep, &mut rng);
        // A destroy goes on after its reply (the background teardown): its kill points
        // spread over the whole of it, as long as a destroy --wait.
        let background = match op.kind() {
            "destroy" => stats.get("destroy --wait").map(Stats::typical),
            _ => None,
        };
        let st = stats.entry(op.kind()).or_default();
        let typical = st.typical().max(background.unwrap_or_default());
        let at = st.kill_point(typical, &mut rng);
        let from = c.lab.daemon.log().len();
        let links = links_of(&c.lab, &rep);
        let kill = at.map_or(Kill::AfterReply, Kill::At);
        let out = send_and_kill(&mut c.lab, &op.request(), kill);
        st.record(at.map(|_| out.killed_at), typical, out.took.is_some());
        st.took.extend(out.took.map(|t| t.as_secs_f64() * 1e3));
        let mut what = format!(
            "seed {seed:#x} round {round}: {} ({:?}) killed at {:.2} ms ({}), typical {:.2} ms",
            op.kind(),
            op,
            out.killed_at.as_secs_f64() * 1e3,
            match (&out.took, &out.reply) {
                (Some(t), Some(r)) => format!(
                    "answered {} in {:.2} ms",
                    if r.ok { "ok" } else { "with an error" },
                    t.as_secs_f64() * 1e3
                ),
                _ => "before the reply".into(),
            },
            typical.as_secs_f64() * 1e3,
        );
        // In a quarter of the rounds the next kvnetd is killed too, while it adopts.
        let rs = stats.entry(RESTART).or_default();
        if !rs.took.is_empty() && rng.chance(0.25) {
            let typical = rs.typical();
            let at = rs.kill_point(typical, &mut rng).unwrap_or(typical);
            let ready = kill_while_starting(&c.lab, at);
            rs.record(Some(at), typical, ready);
            what += &format!(
                "; its restart killed at {:.1} ms ({})",
                at.as_secs_f64() * 1e3,
                if ready { "ready" } else { "starting" }
            );
        }
        let t0 = Instant::now();
        let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.lab.restart_daemon();
        }));
        rs.took.push(t0.elapsed().as_secs_f64() * 1e3);
        let mut diffs = Vec::new();
        let mut settled = Duration::ZERO;
        if let Err(p) = restarted {
            let why = p
                .downcast_ref::<String>()
                .map(|s| s.lines().rev().take(5).collect::<Vec<_>>().join(" / "))
                .unwrap_or_default();
            diffs.push(format!(
                "kvnetd did not restart: {why}; processes holding its lock file: {:?}",
                holders("run/kvnetd.pid")
            ));
        } else {
            let answered = out.reply.clone();
            let (r, d, t) = c.converge(|rep| match &answered {
                Some(a) if a.ok => op.took_effect(rep, &a.data).err().into_iter().collect(),
                Some(a) => vec![format!("refused: {}", a.error.clone().unwrap_or_default())],
                None => Vec::new(),
            });
            diffs = d;
            settled = t;
            if let Ok(r) = r {
                diffs.extend(untouched(&links, &links_of(&c.lab, &r), &op));
                diffs.extend(c.guest_keeps_its_lease(&r));
                rep = r;
            }
        }
        if diffs.is_empty() {
            eprintln!("{what}: converged in {} ms", settled.as_millis());
            continue;
        }
        let text = format!(
            "{what}\nafter {} ms:\n  {}\nkvnetd's log since the round began:\n{}",
            settled.as_millis(),
            diffs.join("\n  "),
            log_since(&c.lab, from)
        );
        eprintln!("FAILED {text}\n");
        stats.entry(op.kind()).or_default().failures += 1;
        failures.push(Failure { text });
        // The next round starts from a clean lab, so that one failure is counted once.
        c = Campaign::new(&sysctls);
        rep = c.converge(|_| Vec::new()).0.expect("report");
    }
}

fn print_stats(stats: &BTreeMap<&'static str, Stats>) {
    eprintln!(
        "\n| verb | rounds | killed before the reply | answered, then killed | kill points <25/<50/<75/<100/<125 % of typical, after the reply | typical (median) | failures |"
    );
    eprintln!("| --- | --- | --- | --- | --- | --- | --- |");
    for (k, s) in stats {
        let p = s.points.map(|n| n.to_string()).join("/");
        eprintln!(
            "| {k} | {} | {} | {} | {p} | {:.1} ms | {} |",
            s.rounds,
            s.unanswered,
            s.answered,
            s.typical().as_secs_f64() * 1e3,
            s.failures
        );
    }
}

#[test]
#[ignore = "needs root"]
fn kill_9_at_any_instant_and_the_host_converges() {
    have("busybox", "busybox-static");
    let rounds = knob("KVNET_CRASH_ROUNDS").unwrap_or(ROUNDS);
    let seeds: Vec<u64> = match knob("KVNET_CRASH_SEED") {
        Some(s) => vec![s],
        None => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let random = Rng(t.as_nanos() as u64 ^ u64::from(std::process::id())).next();
            eprintln!("random seed {random:#x} (replay: KVNET_CRASH_SEED={random:#x})");
            SEEDS.iter().copied().chain([random]).collect()
        }
    };
    let mut stats = BTreeMap::new();
    let mut failures = Vec::new();
    let t0 = Instant::now();
    for &seed in &seeds {
        campaign(seed, rounds, &mut stats, &mut failures);
    }
    print_stats(&stats);
    let restarts = stats.get(RESTART).map_or(0, |s| s.rounds);
    let total = stats.values().map(|s| s.rounds).sum::<u32>() - restarts;
    eprintln!(
        "{total} rounds ({restarts} with the restart killed too) on {} seeds in {:.0} s, {} failed",
        seeds.len(),
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} rounds did not converge:\n\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
