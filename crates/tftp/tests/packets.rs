//! The parser against any bytes, and against the requests real clients send.

use kvnet_tftp::packet::{self, ErrorCode, MAX_REQUEST, op};
use kvnet_tftp::{Mode, Packet, ParseError, parse};
use proptest::prelude::*;

#[test]
fn requests_of_real_clients() {
    // iPXE: octet, blksize and tsize.
    let p = packet::rrq("boot.ipxe", "octet", &[("blksize", "1432"), ("tsize", "0")]);
    let Ok(Packet::Request(r)) = parse(&p) else {
        panic!("{p:?}")
    };
    assert!(!r.write);
    assert_eq!(r.filename, "boot.ipxe");
    assert_eq!(r.mode, Mode::Octet);
    assert_eq!(
        r.options,
        [
            ("blksize".into(), "1432".into()),
            ("tsize".into(), "0".into())
        ]
    );
    // tftp-hpa's default mode, upper case; option names are case-insensitive.
    let p = packet::rrq("a.txt", "NetASCII", &[("BLKSIZE", "512"), ("blksize", "9")]);
    let Ok(Packet::Request(r)) = parse(&p) else {
        panic!()
    };
    assert_eq!(r.mode, Mode::Netascii);
    assert_eq!(r.options, [("blksize".into(), "512".into())], "first wins");
    // A write request parses; the server refuses it.
    let mut w = packet::rrq("x", "octet", &[]);
    w[1] = op::WRQ as u8;
    assert!(matches!(parse(&w), Ok(Packet::Request(r)) if r.write));
    // Padding after the last field.
    let mut p = packet::rrq("f", "octet", &[]);
    p.extend([0, 0, 0]);
    assert!(matches!(parse(&p), Ok(Packet::Request(_))));
}

#[test]
fn malformed_requests_are_errors() {
    let cases: Vec<(Vec<u8>, ParseError)> = vec![
        (vec![], ParseError::Short),
        (vec![0], ParseError::Short),
        (vec![0, 9], ParseError::Opcode(9)),
        (vec![0, 1], ParseError::Unterminated),
        (b"\0\x01file".to_vec(), ParseError::Unterminated),
        (b"\0\x01file\0".to_vec(), ParseError::Unterminated),
        (b"\0\x01\0octet\0".to_vec(), ParseError::EmptyName),
        (b"\0\x01f\0mail\0".to_vec(), ParseError::Mode("mail".into())),
        (b"\0\x01f\xff\0octet\0".to_vec(), ParseError::NotUtf8),
        (
            b"\0\x01f\0octet\0blksize\0".to_vec(),
            ParseError::OptionValue("blksize".into()),
        ),
        (vec![0, 4, 1], ParseError::AckLength(3)),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse(&bytes), Err(want), "{bytes:?}");
    }
    let long = packet::rrq(&"a".repeat(MAX_REQUEST), "octet", &[]);
    assert_eq!(parse(&long), Err(ParseError::TooLong));
}

#[test]
fn acks_errors_and_replies() {
    assert_eq!(parse(&packet::ack(7)), Ok(Packet::Ack(7)));
    assert_eq!(parse(&[0, 4, 0, 7, 0xff]), Ok(Packet::Ack(7)));
    assert_eq!(
        parse(b"\0\x05\0\x08no options\0"),
        Ok(Packet::Error {
            code: 8,
            message: "no options".into()
        })
    );
    assert_eq!(
        parse(&[0, 5]),
        Ok(Packet::Error {
            code: 0,
            message: String::new()
        })
    );
    assert_eq!(parse(&[0, 3, 0, 1, 42]), Ok(Packet::Other(op::DATA)));
    let e = packet::error(ErrorCode::AccessViolation, "no\0pe");
    assert_eq!(e, b"\0\x05\0\x02nope\0");
    assert_eq!(
        ParseError::Mode("mail".into()).reply()[..4],
        [0, 5, 0, ErrorCode::IllegalOperation as u8]
    );
    // Long messages are cut on a character boundary.
    let e = packet::error(ErrorCode::Undefined, &"é".repeat(300));
    assert!(e.len() < 512 && std::str::from_utf8(&e[4..e.len() - 1]).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any bytes: an answer, never a panic.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = parse(&bytes);
    }

    /// Any bytes after a valid opcode: still no panic, and a request always has a name.
    #[test]
    fn requests_never_panic(
        opcode in 1u16..=6,
        body in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..600),
    ) {
        let mut bytes = opcode.to_be_bytes().to_vec();
        bytes.extend(body);
        if let Ok(Packet::Request(r)) = parse(&bytes) {
            prop_assert!(!r.filename.is_empty());
            prop_assert!(bytes.len() <= MAX_REQUEST);
        }
    }

    /// What a client builds, the server reads back.
    #[test]
    fn rrq_round_trips(
        name in "[a-zA-Z0-9./_-]{1,100}",
        blksize in "[0-9]{1,6}",
        tsize in "[0-9]{1,6}",
    ) {
        let p = packet::rrq(&name, "octet", &[("blksize", &blksize), ("tsize", &tsize)]);
        let Ok(Packet::Request(r)) = parse(&p) else { panic!("{p:?}") };
        prop_assert_eq!(r.filename, name);
        prop_assert_eq!(r.options, vec![("blksize".to_string(), blksize), ("tsize".to_string(), tsize)]);
    }
}
