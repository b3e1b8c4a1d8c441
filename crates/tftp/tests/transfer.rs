//! Transfers against a clock the test moves: negotiation, lock-step, retransmission,
//! giving up, wrap-around, netascii, and a property test with a lossy client.

use kvnet_tftp::packet::{self, ErrorCode};
use kvnet_tftp::{Config, Packet, Request, Step, Transfer, negotiate, parse};
use proptest::prelude::*;
use std::io::{self, Cursor, Read};
use std::time::{Duration, Instant};

fn req(mode: &str, options: &[(&str, &str)]) -> Request {
    match parse(&packet::rrq("f", mode, options)) {
        Ok(Packet::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn cfg() -> Config {
    Config::for_mtu(1500)
}

fn data_of(p: &[u8]) -> (u16, &[u8]) {
    assert_eq!(&p[..2], &[0, 3], "not DATA: {p:?}");
    (u16::from_be_bytes([p[2], p[3]]), &p[4..])
}

/// Run a transfer with a perfect client; the bytes received.
fn fetch(mode: &str, options: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let r = req(mode, options);
    let mut t = Transfer::start(
        &r,
        Cursor::new(file.to_vec()),
        file.len() as u64,
        &cfg(),
        now,
    )
    .expect("start");
    let mut got = Vec::new();
    if t.packet()[1] == 6 {
        assert_eq!(t.on_packet(&packet::ack(0), now), Step::Send);
    }
    loop {
        let (block, data) = data_of(t.packet());
        got.extend_from_slice(data);
        match t.on_packet(&packet::ack(block), now) {
            Step::Send => {}
            Step::Done => return got,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn mtu_bounds_the_block_size() {
    assert_eq!(Config::for_mtu(1500).max_blksize, 1468);
    assert_eq!(Config::for_mtu(9000).max_blksize, 8968);
    assert_eq!(
        Config::for_mtu(100).max_blksize,
        512,
        "never below RFC 1350's"
    );
    assert_eq!(Config::for_mtu(u32::MAX).max_blksize, 65464);
}

#[test]
fn negotiation() {
    let c = cfg();
    let n = negotiate(
        &req(
            "octet",
            &[("blksize", "1432"), ("tsize", "0"), ("timeout", "3")],
        ),
        Some(1234),
        &c,
    );
    assert_eq!(n.blksize, 1432);
    assert_eq!(n.timeout, Duration::from_secs(3));
    assert_eq!(
        n.oack,
        [
            ("blksize", "1432".to_string()),
            ("tsize", "1234".to_string()),
            ("timeout", "3".to_string())
        ]
    );
    // Clamped to the MTU; out of range or malformed: left out.
    let n = negotiate(&req("octet", &[("blksize", "65464")]), None, &c);
    assert_eq!((n.blksize, n.oack.len()), (1468, 1));
    for (k, v) in [
        ("blksize", "7"),
        ("blksize", "65465"),
        ("blksize", "x"),
        ("timeout", "0"),
        ("timeout", "256"),
        ("windowsize", "4"),
        ("tsize", "-1"),
    ] {
        let n = negotiate(&req("octet", &[(k, v)]), Some(1), &c);
        assert!(n.oack.is_empty(), "{k}={v}: {n:?}");
        assert_eq!(n.blksize, 512);
        assert_eq!(n.timeout, c.timeout);
    }
    // Size unknown (netascii): tsize not acknowledged.
    assert!(
        negotiate(&req("octet", &[("tsize", "0")]), None, &c)
            .oack
            .is_empty()
    );
}

#[test]
fn plain_transfer_without_options() {
    let file: Vec<u8> = (0..1300u32).map(|i| i as u8).collect();
    assert_eq!(fetch("octet", &[], &file), file);
    // A multiple of the block size ends with an empty block.
    let file = vec![7u8; 1024];
    assert_eq!(fetch("octet", &[], &file), file);
    assert_eq!(fetch("octet", &[], &[]), b"");
}

#[test]
fn options_give_an_oack_first() {
    let now = Instant::now();
    let r = req("octet", &[("blksize", "1000"), ("tsize", "0")]);
    let mut t = Transfer::start(&r, Cursor::new(vec![1u8; 2500]), 2500, &cfg(), now).unwrap();
    assert_eq!(t.packet(), b"\0\x06blksize\x001000\0tsize\x002500\0");
    assert_eq!(t.on_packet(&packet::ack(0), now), Step::Send);
    assert_eq!(data_of(t.packet()), (1, &[1u8; 1000][..]));
    assert_eq!(
        fetch("octet", &[("blksize", "1000")], &[1; 2500]).len(),
        2500
    );
}

#[test]
fn the_client_may_refuse_the_options() {
    let now = Instant::now();
    let r = req("octet", &[("tsize", "0")]);
    let mut t = Transfer::start(&r, Cursor::new(vec![1u8; 10]), 10, &cfg(), now).unwrap();
    let refused = packet::error(ErrorCode::OptionRefused, "no");
    assert!(matches!(
        t.on_packet(&refused, now),
        Step::Fail { reply: None, .. }
    ));
}

#[test]
fn late_acks_retransmit_then_give_up() {
    let t0 = Instant::now();
    let r = req("octet", &[]);
    let c = cfg();
    let mut t = Transfer::start(&r, Cursor::new(vec![9u8; 600]), 600, &c, t0).unwrap();
    let first = t.packet().to_vec();
    assert_eq!(t.deadline(), t0 + c.timeout);
    assert_eq!(t.on_timeout(t0 + Duration::from_millis(999)), Step::Wait);
    let mut now = t0;
    for _ in 1..c.tries {
        now = t.deadline();
        assert_eq!(t.on_timeout(now), Step::Send);
        assert_eq!(t.packet(), first, "the same block again");
    }
    let Step::Fail { reply: Some(e), .. } = t.on_timeout(t.deadline()) else {
        panic!("gave up")
    };
    assert_eq!(&e[..4], &[0, 5, 0, 0]);
    assert_eq!(t.retransmits, u64::from(c.tries - 1));
    let _ = now;
}

#[test]
fn duplicate_acks_are_not_answered() {
    let now = Instant::now();
    let r = req("octet", &[]);
    let mut t = Transfer::start(&r, Cursor::new(vec![0u8; 2000]), 2000, &cfg(), now).unwrap();
    assert_eq!(t.on_packet(&packet::ack(1), now), Step::Send);
    assert_eq!(data_of(t.packet()).0, 2);
    for junk in [
        packet::ack(1),
        packet::ack(0),
        packet::ack(3),
        vec![0, 3, 0, 1],
        vec![1],
    ] {
        assert_eq!(t.on_packet(&junk, now), Step::Wait, "{junk:?}");
    }
    assert_eq!(data_of(t.packet()).0, 2);
    // The negotiated timeout is the retransmission timeout.
    let r = req("octet", &[("timeout", "4")]);
    let t = Transfer::start(&r, Cursor::new(vec![]), 0, &cfg(), now).unwrap();
    assert_eq!(t.deadline(), now + Duration::from_secs(4));
}

#[test]
fn block_numbers_wrap() {
    // 65536 + 2 blocks of 8 bytes: block numbers go 65535, 0, 1.
    let file = vec![5u8; (65_537) * 8 + 3];
    let got = fetch("octet", &[("blksize", "8")], &file);
    assert_eq!(got, file);
}

#[test]
fn netascii_translates_line_ends_and_hides_the_size() {
    let got = fetch("netascii", &[("tsize", "0")], b"a\nb\rc\r\n");
    assert_eq!(got, b"a\r\nb\r\0c\r\0\r\n");
    let r = req("netascii", &[("tsize", "0")]);
    let t = Transfer::start(&r, Cursor::new(b"x".to_vec()), 1, &cfg(), Instant::now()).unwrap();
    assert_eq!(data_of(t.packet()).1, b"x", "no OACK: DATA first");
}

struct Failing;
impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn read_errors_end_with_an_error_packet() {
    let now = Instant::now();
    let Err(e) = Transfer::start(&req("octet", &[]), Failing, 1, &cfg(), now) else {
        panic!()
    };
    assert!(String::from_utf8_lossy(&e).contains("disk on fire"));
    let mut t = Transfer::start(&req("octet", &[("tsize", "0")]), Failing, 1, &cfg(), now)
        .expect("the OACK reads nothing");
    assert!(matches!(
        t.on_packet(&packet::ack(0), now),
        Step::Fail { reply: Some(_), .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A client that loses ACKs and DATA at random, duplicates ACKs and sends garbage
    /// still gets the whole file, in order, as long as no packet is lost `tries` times
    /// in a row; the server never sends a block before the previous one was acked.
    #[test]
    fn lossy_client_gets_the_file(
        len in 0usize..5000,
        blksize in 8u16..1500,
        events in proptest::collection::vec(0u8..6, 0..400),
    ) {
        let file: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let c = cfg();
        let mut now = Instant::now();
        let r = req("octet", &[("blksize", &blksize.to_string())]);
        let mut t = Transfer::start(&r, Cursor::new(file.clone()), len as u64, &c, now).unwrap();
        let mut got = Vec::new();
        let mut last_block: Option<u16> = None; // the last block the client took
        let mut ev = events.into_iter();
        let mut lost_in_a_row = 0;
        let mut in_flight = t.packet().to_vec();
        loop {
            let e = ev.next().unwrap_or(0);
            let step = if e == 1 && lost_in_a_row + 1 < c.tries {
                // The packet in flight (or its ACK) is lost: the server times out.
                lost_in_a_row += 1;
                now = t.deadline();
                t.on_timeout(now)
            } else if e == 2 {
                t.on_packet(&[0, 4, 0xff], now)
            } else {
                lost_in_a_row = 0;
                let ackno = if in_flight[1] == 6 {
                    0
                } else {
                    let (block, data) = data_of(&in_flight);
                    if last_block != Some(block) {
                        got.extend_from_slice(data);
                        last_block = Some(block);
                    }
                    block
                };
                if e == 3 {
                    // A duplicate of the previous ACK first: never answered.
                    prop_assert_eq!(t.on_packet(&packet::ack(ackno.wrapping_sub(1)), now), Step::Wait);
                }
                t.on_packet(&packet::ack(ackno), now)
            };
            match step {
                Step::Send => in_flight = t.packet().to_vec(),
                Step::Wait => {}
                Step::Done => break,
                Step::Fail { reason, .. } => prop_assert!(false, "failed: {}", reason),
            }
        }
        prop_assert_eq!(got, file);
    }
}
