//! Property tests: arbitrary input never panics; random client behaviour with crashes
//! at random points never puts one address on two clients.

mod common;

use std::net::Ipv4Addr;

use common::*;
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use kvnet_dhcp::{Effect, LeaseTable, RateLimit, Server, compact, encode_record, replay};
use proptest::prelude::*;

fn any_packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = vec![
        Pkt::discover(mac(1)).hostname("h").client_id(&[1, 2, 3]),
        Pkt::select(mac(2), ip(20)),
        Pkt::renew(mac(3), ip(30)),
        Pkt::release(mac(4), ip(40)),
        Pkt::decline(mac(5), ip(50)),
        Pkt::inform(mac(6), ip(60)),
    ]
    .into_iter()
    .map(|p| p.bytes())
    .collect::<Vec<_>>();
    prop_oneof![
        // Raw noise.
        prop::collection::vec(any::<u8>(), 0..700),
        // A valid header followed by noise where the options are.
        (
            prop::sample::select(valid.clone()),
            prop::collection::vec(any::<u8>(), 0..400)
        )
            .prop_map(|(mut p, tail)| {
                p.truncate(240);
                p.extend(tail);
                p
            }),
        // Valid packets with bytes overwritten and the end cut off.
        (
            prop::sample::select(valid),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut p, edits, cut)| {
                for (i, b) in edits {
                    let i = i.index(p.len());
                    p[i] = b;
                }
                let keep = 200 + cut.index(p.len() - 199);
                p.truncate(keep);
                p
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn handle_never_panics(packets in prop::collection::vec(any_packet_bytes(), 1..4)) {
        let mut s = server(&small_net(10, 12, "", "<host mac='52:54:00:00:00:01' ip='192.168.122.20'/>"));
        for (i, p) in packets.iter().enumerate() {
            let effects = s.handle(NOW + i as u64, p);
            for e in effects {
                if let Effect::Send { bytes, .. } = e {
                    prop_assert!(bytes.len() >= 300);
                }
            }
        }
        s.expire(NOW + 10_000);
    }
}

#[derive(Debug, Clone)]
enum Act {
    Discover(usize),
    /// Accept the current offer.
    Select(usize),
    /// INIT-REBOOT asking for pool address `n` (held, someone else's, or free).
    Reboot(usize, usize),
    Renew(usize),
    Release(usize),
    Decline(usize),
    Wait(u64),
}

const CLIENTS: usize = 5;
const POOL: [u8; 4] = [10, 11, 12, 13];

fn act() -> impl Strategy<Value = Act> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => c.clone().prop_map(Act::Discover),
        3 => c.clone().prop_map(Act::Select),
        1 => (c.clone(), 0..POOL.len()).prop_map(|(c, n)| Act::Reboot(c, n)),
        2 => c.clone().prop_map(Act::Renew),
        1 => c.clone().prop_map(Act::Release),
        1 => c.clone().prop_map(Act::Decline),
        2 => (0u64..200).prop_map(Act::Wait),
    ]
}

/// What a client believes.
#[derive(Debug, Clone, Default)]
struct Guest {
    offered: Option<Ipv4Addr>,
    /// Address and expiry (0 = infinite).
    held: Option<(Ipv4Addr, u64)>,
}

impl Guest {
    fn holds(&self, now: u64) -> Option<Ipv4Addr> {
        self.held
            .filter(|&(_, e)| e == 0 || e > now)
            .map(|(a, _)| a)
    }
}

fn guest_mac(c: usize) -> kvnet_model::MacAddr {
    mac(c as u8 + 1)
}

fn packet(c: usize, g: &Guest, a: &Act, now: u64) -> Option<Pkt> {
    let m = guest_mac(c);
    let p = match *a {
        Act::Discover(_) => Pkt::discover(m),
        Act::Select(_) => Pkt::select(m, g.offered?),
        Act::Reboot(_, n) => Pkt::init_reboot(m, ip(POOL[n])),
        Act::Renew(_) => Pkt::renew(m, g.holds(now)?),
        Act::Release(_) => Pkt::release(m, g.holds(now)?),
        Act::Decline(_) => Pkt::decline(m, g.offered.or(g.holds(now))?),
        Act::Wait(_) => return None,
    };
    // One client identifies itself by client id as well.
    Some(if c == 0 {
        p.client_id(&[0xff, 1, 2, 3])
    } else {
        p
    })
}

/// An action, maybe a crash during it (which journal write to tear, and where), whether
/// the restarted server compacts its journal, and whether the journal write fails (a
/// full disk: nothing is written and the replies that needed it are dropped).
type Step = (Act, Option<(usize, usize)>, bool, bool);

fn run(acts: Vec<Step>) -> Result<(), TestCaseError> {
    let xml = small_net(POOL[0], POOL[3], "<lease expiry='2'/>", "");
    let mut cfg = config(&xml);
    // Fairness is tested elsewhere; here every packet must be answered.
    cfg.rate = RateLimit {
        burst: u32::MAX,
        per_sec: u32::MAX,
    };
    let mut s = Server::new(cfg.clone(), LeaseTable::new());
    let mut journal = String::new();
    let mut guests = vec![Guest::default(); CLIENTS];
    let mut now = NOW;

    for (a, crash, compact_on_restart, fail) in acts {
        let c = match a {
            Act::Wait(d) => {
                now += d;
                s.expire(now);
                continue;
            }
            Act::Discover(c)
            | Act::Select(c)
            | Act::Reboot(c, _)
            | Act::Renew(c)
            | Act::Release(c)
            | Act::Decline(c) => c,
        };
        let Some(p) = packet(c, &guests[c], &a, now) else {
            continue;
        };
        let held_before = guests[c].holds(now);
        let effects = s.handle(now, &p.bytes());
        match &a {
            Act::Release(_) | Act::Decline(_) => {
                guests[c].held = None;
                guests[c].offered = None;
            }
            // A client selecting an offer has been through DISCOVER (INIT): it holds no
            // lease until the ACK (RFC 2131 §4.4.1), and its old address may be freed.
            Act::Select(_) => {
                guests[c].offered = None;
                guests[c].held = None;
            }
            // A client rebooting into another address has let go of its old one.
            Act::Reboot(_, n) if held_before != Some(ip(POOL[*n])) => guests[c].held = None,
            _ => {}
        }

        // Carry the effects out in order; a crash tears the n-th journal write and
        // loses everything after it.
        let persists = effects
            .iter()
            .filter(|e| matches!(e, Effect::Persist(_)))
            .count();
        let tear = crash.filter(|_| persists > 0);
        let fail = fail && persists > 0;
        let mut written = 0;
        let mut crashed = false;
        for e in effects {
            match e {
                Effect::Persist(_) if fail => {}
                // The write failed: the replies that depended on it are dropped.
                Effect::Send { .. } if fail => {}
                Effect::Persist(r) => {
                    let line = encode_record(&r);
                    if let Some((n, cut)) = tear
                        && written == n % persists
                    {
                        journal.push_str(&line[..cut % line.len()]);
                        crashed = true;
                        break;
                    }
                    journal.push_str(&line);
                    written += 1;
                }
                Effect::Send { bytes, .. } => {
                    let o = Out::of(vec![Effect::Send {
                        bytes,
                        to: kvnet_dhcp::Destination::Broadcast,
                        after_probe: None,
                    }]);
                    let r = o.reply();
                    let g = &mut guests[c];
                    match o.kind() {
                        MessageType::Offer => g.offered = Some(r.yiaddr()),
                        MessageType::Ack if !r.yiaddr().is_unspecified() => {
                            let expiry = match opt(r, OptionCode::AddressLeaseTime) {
                                Some(DhcpOption::AddressLeaseTime(u32::MAX)) => 0,
                                Some(DhcpOption::AddressLeaseTime(t)) => now + u64::from(*t),
                                _ => return Err(TestCaseError::fail("ACK without lease time")),
                            };
                            g.held = Some((r.yiaddr(), expiry));
                        }
                        MessageType::Nak => {
                            g.held = None;
                            g.offered = None;
                        }
                        _ => {}
                    }
                }
                Effect::Log(_) | Effect::Probe(_) => {}
            }
        }

        s.recorded(!fail);
        // A client that held a lease must keep its address when it asks again.
        if let (Act::Renew(_), Some(had), false, false) = (&a, held_before, crashed, fail) {
            prop_assert_eq!(guests[c].holds(now), Some(had), "renewal refused");
        }

        if crashed || crash.is_some() {
            let table = replay(&journal);
            if compact_on_restart {
                journal = compact(&table);
            }
            s = Server::new(cfg.clone(), table);
        }

        // No address is held by two clients.
        let mut held: Vec<Ipv4Addr> = guests.iter().filter_map(|g| g.holds(now)).collect();
        let n = held.len();
        held.sort();
        held.dedup();
        prop_assert_eq!(held.len(), n, "an address is held twice: {:?}", guests);
        // Everything a client holds is known (durably) to the server.
        let views = s.leases(now);
        for (i, g) in guests.iter().enumerate() {
            if let Some(a) = g.holds(now) {
                prop_assert!(
                    views
                        .iter()
                        .any(|v| v.ip_address == a && v.mac_address == guest_mac(i)),
                    "client {} holds {} unknown to the server",
                    i,
                    a
                );
            }
        }
        // And no ACK promised more than the journal holds: every held address is bound
        // to its client there, at least until the client believes.
        let durable = replay(&journal);
        for (i, g) in guests.iter().enumerate() {
            if let (Some(a), Some((_, until))) = (g.holds(now), g.held) {
                let rec = durable.get(a);
                prop_assert!(
                    rec.is_some_and(|r| r.mac_address == guest_mac(i)
                        && r.state == kvnet_dhcp::LeaseState::Bound
                        && (r.expiry_time == 0 || (until != 0 && r.expiry_time >= until))),
                    "client {} holds {} until {} but the journal has {:?}",
                    i,
                    a,
                    until,
                    rec
                );
            }
        }
        // And after a restart the same client is offered the same address.
        if crashed {
            for (i, g) in guests.iter().enumerate() {
                if let Some(a) = g.holds(now) {
                    let mut probe = s.clone();
                    let p = packet(i, g, &Act::Discover(i), now).expect("discover");
                    let o = Out::of(probe.handle(now, &p.bytes()));
                    prop_assert_eq!(o.yiaddr(), a);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_address_on_two_clients_across_crashes(
        acts in prop::collection::vec(
            (
                act(),
                prop::option::weighted(0.1, (0usize..3, 0usize..400)),
                any::<bool>(),
                prop::bool::weighted(0.15),
            ),
            1..80,
        )
    ) {
        run(acts)?;
    }
}
