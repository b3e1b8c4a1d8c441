//! The lease journal stays bounded under churn from rotating MACs, and a full disk is
//! survived: kvnetd's config and state dirs on a small tmpfs that the test fills and
//! frees. Root only.
//!
//! The tmpfs is mounted in a mount namespace of its own, held by a `sleep` that dies
//! with the test (and its thread: `setpriv --pdeathsig`), so nothing is mounted where
//! the machine sees it and nothing is left when the test fails; there it is bound over
//! the lab's `etc` and `lib`, kvnetd (and the one restarted after it) runs in that mount
//! namespace, and the test reaches the files through `/proc/PID/root`. The
//! clients are crafted DHCP messages relayed (giaddr) from a guest namespace, one
//! socket standing for hundreds of MACs, as perfdhcp does.

mod lab;

use kvnet_api::request as req;
use kvnet_host::testns::TestNs;
use lab::{Daemon, ip};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The network under churn: a /20, so its budget of lease changes (4,081) covers the
/// test's 3,000 changes at once.
const NET_A: &str = "<network><name>fa</name><bridge name='kvfa0'/>\
    <ip address='10.78.0.1' prefix='20'><dhcp>\
    <range start='10.78.0.10' end='10.78.15.250'/></dhcp></ip></network>";
const NET_B: &str = "<network><name>fb</name><bridge name='kvfb0'/>\
    <ip address='10.79.0.1' prefix='24'><dhcp>\
    <range start='10.79.0.10' end='10.79.0.250'/></dhcp></ip></network>";

/// The mount namespace with the small filesystem, held by a process.
struct Holder {
    child: Child,
}

impl Holder {
    /// A tmpfs of `size` at DIR/fs, its `etc` and `lib` bound over DIR/etc and DIR/lib,
    /// seen only in a new mount namespace (made inside the network namespace `host`, so
    /// its /sys is that namespace's).
    fn new(host: &TestNs, dir: &Path, size: &str) -> Holder {
        for d in ["fs", "etc", "lib"] {
            std::fs::create_dir_all(dir.join(d)).expect("mount point");
        }
        let script = format!(
            "set -e; D={}; mount -t tmpfs -o size={size},mode=0755 kvnet-fulldisk $D/fs; \
             for d in etc lib; do mkdir $D/fs/$d; mount --bind $D/fs/$d $D/$d; done; \
             echo ready; exec sleep 100000",
            dir.display()
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", host.name()])
            .args(["setpriv", "--pdeathsig", "KILL"])
            .args(["unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the mount namespace");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("read");
        let h = Holder { child };
        assert_eq!(line.trim(), "ready", "tmpfs not mounted");
        h
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `p` as the holder's mount namespace sees it.
    fn path(&self, p: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(p.strip_prefix("/").unwrap_or(p))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kvnetd in `host` and in the holder's mount namespace: the lab's dirs under `dir`,
/// its config and state dirs on the tmpfs.
fn kvnetd(host: &TestNs, h: &Holder, dir: &Path) -> Daemon {
    let prelude = format!(
        "exec nsenter --mount=/proc/{}/ns/mnt \"$0\" \"$@\"",
        h.pid()
    );
    Daemon::launch(host, dir, &[], &prelude, None)
}

/// SIGKILL kvnetd (it saves nothing) and start another on the same dirs.
fn crash(mut d: Daemon, host: &TestNs, h: &Holder) -> Daemon {
    if let Some(mut c) = d.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let dir = d.dir.clone();
    // The new Daemon removes the directory when it is done.
    std::mem::forget(d);
    kvnetd(host, h, &dir)
}

fn alive(d: &mut Daemon) -> bool {
    d.child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        && kvnet_api::call(&d.socket, req::Ping {}).is_ok()
}

fn call(d: &Daemon, r: impl Into<kvnet_api::Request>) -> kvnet_api::Reply {
    kvnet_api::call_raw(&d.socket, &r.into()).expect("api call")
}

fn ok(d: &Daemon, r: impl Into<kvnet_api::Request>) -> kvnet_api::Reply {
    let r = call(d, r);
    assert!(r.ok, "{:?}\n{}", r.error, d.log());
    r
}

/// (MAC, address) of every lease the network lists.
fn leases(d: &Daemon, network: &str) -> BTreeSet<(String, String)> {
    let r = ok(
        d,
        req::DhcpLeases {
            network: network.into(),
            mac: None,
        },
    );
    r.data
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| {
            (
                l["mac-address"].as_str().unwrap_or("").to_string(),
                l["ip-address"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

type Mac = [u8; 6];

fn mac_str(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A BOOTREQUEST of DHCP type `kind` from `mac`, relayed by `giaddr`.
fn dhcp(
    kind: u8,
    mac: &Mac,
    xid: u32,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    opts: &[(u8, [u8; 4])],
) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[..4].copy_from_slice(&[1, 1, 6, 1]);
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[12..16].copy_from_slice(&ciaddr.octets());
    p[24..28].copy_from_slice(&giaddr.octets());
    p[28..34].copy_from_slice(mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, kind]);
    for (code, v) in opts {
        p.extend_from_slice(&[*code, 4]);
        p.extend_from_slice(v);
    }
    p.push(255);
    p.resize(300, 0);
    p
}

/// A reply: (xid, DHCP type, yiaddr, lease time).
fn parse(b: &[u8]) -> Option<(u32, u8, Ipv4Addr, Option<u32>)> {
    if b.len() < 240 || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let xid = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let yiaddr = Ipv4Addr::from(<[u8; 4]>::try_from(&b[16..20]).ok()?);
    let (mut kind, mut lease) = (0, None);
    let mut o = &b[240..];
    while let [code, rest @ ..] = o {
        match *code {
            0 => o = rest,
            255 => break,
            _ => {
                let [len, rest @ ..] = rest else { break };
                let len = usize::from(*len);
                let v = rest.get(..len)?;
                match (*code, v) {
                    (53, [t]) => kind = *t,
                    (51, [a, b, c, d]) => lease = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                    _ => {}
                }
                o = &rest[len..];
            }
        }
    }
    Some((xid, kind, yiaddr, lease))
}

const ACK: u8 = 5;

/// One guest's relay socket: it speaks for any number of MACs.
struct Relay {
    sock: UdpSocket,
    giaddr: Ipv4Addr,
    server: Ipv4Addr,
    xid: u32,
}

/// What the server answered a request.
#[derive(Debug, Clone, Copy)]
struct Acked {
    ip: Ipv4Addr,
    lease: u32,
    /// Round trip of the request that got the answer.
    rtt: Duration,
}

impl Relay {
    fn new(g: &TestNs, giaddr: Ipv4Addr, server: Ipv4Addr) -> Relay {
        let sock = g.run(|| UdpSocket::bind((giaddr, 67)).expect("bind the relay socket"));
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        Relay {
            sock,
            giaddr,
            server,
            xid: 0x4b56_0000,
        }
    }

    /// REQUESTs for (MAC, address) (INIT-REBOOT, or RENEWING when `renew`), each sent
    /// again every second until ACKed or `within` has passed; the ACKs by MAC.
    /// `tick` runs every few milliseconds meanwhile.
    fn request(
        &mut self,
        want: &[(Mac, Ipv4Addr)],
        renew: bool,
        within: Duration,
        tick: &mut dyn FnMut(),
    ) -> BTreeMap<Mac, Acked> {
        let mut pending: BTreeMap<u32, (Mac, Vec<u8>, Instant)> = BTreeMap::new();
        for &(mac, addr) in want {
            self.xid += 1;
            let (ciaddr, opts) = if renew {
                (addr, vec![])
            } else {
                (Ipv4Addr::UNSPECIFIED, vec![(50, addr.octets())])
            };
            let p = dhcp(3, &mac, self.xid, ciaddr, self.giaddr, &opts);
            pending.insert(self.xid, (mac, p, Instant::now() - Duration::from_secs(1)));
        }
        let mut acked = BTreeMap::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 1500];
        while !pending.is_empty() && t0.elapsed() < within {
            for (_, p, sent) in pending.values_mut() {
                if sent.elapsed() >= Duration::from_secs(1) {
                    self.sock.send_to(p, (self.server, 67)).expect("send");
                    *sent = Instant::now();
                    // Paced: the per-client limit is 2 a second, the socket holds plenty.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Some((xid, ACK, ip, Some(lease))) = parse(&buf[..n])
                    && let Some((mac, _, sent)) = pending.remove(&xid)
                {
                    acked.insert(
                        mac,
                        Acked {
                            ip,
                            lease,
                            rtt: sent.elapsed(),
                        },
                    );
                }
            }
            tick();
        }
        acked
    }

    fn release(&mut self, leases: &[(Mac, Ipv4Addr)]) {
        for &(mac, addr) in leases {
            self.xid += 1;
            let p = dhcp(
                7,
                &mac,
                self.xid,
                addr,
                self.giaddr,
                &[(54, self.server.octets())],
            );
            self.sock.send_to(&p, (self.server, 67)).expect("send");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A guest namespace on `bridge` with `addr`/`prefix`.
fn guest(host: &TestNs, bridge: &str, port: &str, addr: &str) -> TestNs {
    let g = TestNs::with_prefix("kvt-g").expect("guest ns");
    ip(
        host,
        &format!(
            "link add {port} type veth peer name eth0 netns {}",
            g.name()
        ),
    );
    ip(host, &format!("link set {port} master {bridge} up"));
    ip(&g, "link set lo up");
    ip(&g, &format!("addr add {addr} dev eth0"));
    ip(&g, "link set eth0 up");
    g
}

fn nth(base: Ipv4Addr, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + i)
}

fn mac(set: u8, i: u32) -> Mac {
    [0x02, 0xfd, 0, set, (i >> 8) as u8, i as u8]
}

/// Fill the filesystem of `path` with one file until it refuses another byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    for _ in 0..64 {
        if f.write_all(&[0u8; 64]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

/// Every line of the journal is a whole record: no partial write was left behind.
fn assert_whole_lines(path: &Path) {
    let text = std::fs::read_to_string(path).expect("journal");
    for l in text.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "torn line in {}: {l:?}",
            path.display()
        );
    }
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
}

#[test]
#[ignore = "needs root"]
fn the_journal_stays_bounded_and_a_full_disk_is_survived() {
    let host = TestNs::with_prefix("kvt-h").expect("host ns");
    ip(&host, "link set lo up");
    let dir = std::env::temp_dir().join(format!("kvnet-fulldisk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let holder = Holder::new(&host, &dir, "4m");
    let mut d = kvnetd(&host, &holder, &dir);
    for xml in [NET_A, NET_B] {
        let name = ok(&d, req::Define { xml: xml.into() }).data["name"]
            .as_str()
            .expect("name")
            .to_string();
        ok(&d, req::Start { network: name });
    }
    let ga = guest(&host, "kvfa0", "vga", "10.78.0.5/20");
    let gb = guest(&host, "kvfb0", "vgb", "10.79.0.5/24");
    let mut a = Relay::new(
        &ga,
        "10.78.0.5".parse().unwrap(),
        "10.78.0.1".parse().unwrap(),
    );
    let mut b = Relay::new(
        &gb,
        "10.79.0.5".parse().unwrap(),
        "10.79.0.1".parse().unwrap(),
    );
    let journal_a = holder.path(&dir.join("lib/leases/fa.jsonl"));
    let journal_b = holder.path(&dir.join("lib/leases/fb.jsonl"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    // What the test was promised: (MAC, address) → held.
    let mut held: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let wait = Duration::from_secs(20);

    // 1. Churn: 500 addresses bound and released again and again, each time by 500 new
    // MACs (3,000 lease changes, ~300 KB of journal lines): the journal is compacted
    // while it runs and stays within twice its live records (or the 64 KiB floor).
    let base: Ipv4Addr = "10.78.0.10".parse().unwrap();
    let mut max = 0;
    for set in 0..3u8 {
        let want: Vec<(Mac, Ipv4Addr)> = (0..500).map(|i| (mac(set, i), nth(base, i))).collect();
        let acks = a.request(&want, false, wait, &mut || max = max.max(size(&journal_a)));
        assert_eq!(acks.len(), 500, "set {set}:\n{}", d.log());
        a.release(&want);
    }
    // Settle the last releases: a renewal sent after them is answered after them.
    let probe = [(mac(7, 0), nth(base, 600))];
    assert_eq!(a.request(&probe, false, wait, &mut || {}).len(), 1);
    held.entry("fa".into())
        .or_default()
        .insert((mac_str(&probe[0].0), probe[0].1.to_string()));
    max = max.max(size(&journal_a));
    let text = std::fs::read_to_string(&journal_a).expect("journal");
    let longest = text.lines().map(str::len).max().unwrap_or(0) as u64 + 1;
    // 501 records; one batch (128 requests) may land past the bound before compaction.
    let bound = (64 << 10).max(2 * 501 * longest) + 128 * longest;
    assert!(
        3000 * longest > 2 * bound,
        "the churn would not show a missing compaction"
    );
    assert!(max <= bound, "journal reached {max} bytes, bound {bound}");

    // 2. Leases to keep: 20 on each network.
    let keep_a: Vec<(Mac, Ipv4Addr)> = (0..20).map(|i| (mac(8, i), nth(base, 700 + i))).collect();
    let base_b: Ipv4Addr = "10.79.0.10".parse().unwrap();
    let keep_b: Vec<(Mac, Ipv4Addr)> = (0..20).map(|i| (mac(9, i), nth(base_b, i))).collect();
    assert_eq!(a.request(&keep_a, false, wait, &mut || {}).len(), 20);
    assert_eq!(b.request(&keep_b, false, wait, &mut || {}).len(), 20);
    for (net, keep) in [("fa", &keep_a), ("fb", &keep_b)] {
        for (m, ip) in keep.iter() {
            held.entry(net.into())
                .or_default()
                .insert((mac_str(m), ip.to_string()));
        }
    }
    let granted = Instant::now();

    // 3. The disk fills up. The tail of a journal's last page may still take a few
    // lines: new bindings on A are ACKed while they fit, then dropped (and whatever was
    // ACKed must survive the restart below).
    let filler = holder.path(&dir.join("fs/filler"));
    fill(&filler);
    let fresh: Vec<(Mac, Ipv4Addr)> = (0..200)
        .map(|i| (mac(10, i), nth(base, 1000 + i)))
        .collect();
    let acks = a.request(&fresh, false, Duration::from_secs(3), &mut || {});
    for (m, x) in &acks {
        held.entry("fa".into())
            .or_default()
            .insert((mac_str(m), x.ip.to_string()));
    }
    assert!(
        acks.len() < fresh.len(),
        "the disk is not full:\n{}",
        d.log()
    );
    let refused: Vec<(Mac, Ipv4Addr)> = fresh
        .iter()
        .filter(|(m, _)| !acks.contains_key(m))
        .copied()
        .collect();
    assert!(alive(&mut d), "kvnetd died:\n{}", d.log());
    assert!(
        d.log().contains("cannot record lease changes in"),
        "{}",
        d.log()
    );
    // Both networks' guests renew what they hold: answered from the record, promptly,
    // never past what it says.
    for (relay, keep) in [(&mut a, &keep_a), (&mut b, &keep_b)] {
        let acks = relay.request(keep, true, Duration::from_secs(5), &mut || {});
        assert_eq!(acks.len(), keep.len(), "renewals refused:\n{}", d.log());
        let left = 3600 - granted.elapsed().as_secs() as u32;
        for (m, x) in &acks {
            assert!(x.lease <= 3600 && x.lease + 5 >= left, "{x:?}");
            assert!(
                x.rtt < Duration::from_millis(500),
                "slow renewal of {}: {x:?}",
                mac_str(m)
            );
        }
    }
    // Definitions fail cleanly: an error, no definition, nothing half written.
    let net_c = NET_A
        .replace("fa", "fc")
        .replace("kvfa0", "kvfc0")
        .replace("10.78", "10.80");
    let r = call(&d, req::Define { xml: net_c.clone() });
    assert!(!r.ok, "a definition was written on a full disk");
    assert!(
        format!("{:?}", r.error).contains("No space left"),
        "{:?}",
        r.error
    );
    assert!(
        !ok(&d, req::List {}).data.to_string().contains("\"fc\""),
        "a definition that failed to be written is listed"
    );
    // Nothing half written: no definition file, no temporary file.
    let defs = holder.path(&dir.join("etc/networks"));
    let files = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .expect("definitions dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    };
    let listed = files(&defs);
    assert!(
        listed.contains(&"fa.xml".to_string()),
        "not the definitions dir: {listed:?}"
    );
    assert!(
        listed.iter().all(|n| n != "fc.xml" && !n.ends_with(".tmp")),
        "left in {}: {listed:?}",
        defs.display()
    );
    assert_whole_lines(&journal_a);
    assert_whole_lines(&journal_b);

    // 4. Space returns: the refused clients' retries are acked, no restart needed.
    std::fs::remove_file(&filler).expect("free the space");
    let acks = a.request(&refused, false, wait, &mut || {});
    assert_eq!(acks.len(), refused.len(), "not recovered:\n{}", d.log());
    for (m, x) in &acks {
        held.entry("fa".into())
            .or_default()
            .insert((mac_str(m), x.ip.to_string()));
    }
    assert!(d.log().contains("again after"), "{}", d.log());
    ok(&d, req::Define { xml: net_c });
    assert!(files(&defs).contains(&"fc.xml".to_string()));
    assert_whole_lines(&journal_a);

    // 5. A crash, then a restart: every lease that was acked is known.
    let d = crash(d, &host, &holder);
    for (net, want) in &held {
        let listed = leases(&d, net);
        let missing: Vec<_> = want.difference(&listed).collect();
        assert!(missing.is_empty(), "{net}: lost {missing:?}\n{}", d.log());
    }
}
