//! The host name a client gives: option 12, or option 81 (client FQDN, RFC 4702), and
//! the option 81 the server answers with. Pure; never panics on any bytes.

/// Option 81 flags (RFC 4702 §2.1).
const S: u8 = 0x01;
const O: u8 = 0x02;
const E: u8 = 0x04;

/// What a client sent in option 81: its flags and the host name it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFqdn {
    pub flags: u8,
    pub host: Option<String>,
}

/// The host label of a client's name, as dnsmasq takes it: the first label of a dotted
/// name (its domain is the network's, whatever the client says), kept only if it is a
/// plausible host label (it ends up in DNS and in the lease listing).
pub fn host_label(name: &str) -> Option<String> {
    let label = name.trim_end_matches('\0').split('.').next()?;
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-');
    ok.then(|| label.to_string())
}

/// Option 81's data: flags, two obsolete RCODE bytes, then the name, in DNS wire format
/// (E set) or ASCII.
pub fn parse(data: &[u8]) -> Option<ClientFqdn> {
    let (&flags, rest) = data.split_first()?;
    let name = rest.get(2..)?;
    let host = if flags & E != 0 {
        // The first label: its length byte, then its bytes.
        name.split_first()
            .and_then(|(&len, rest)| rest.get(..usize::from(len)))
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(host_label)
    } else {
        std::str::from_utf8(name).ok().and_then(host_label)
    };
    Some(ClientFqdn { flags, host })
}

/// The server's option 81 for a client that sent `flags`: the server updates the A
/// record (S; it serves the name in DNS), says so when the client did not ask (O),
/// answers in the client's encoding (E), RCODEs 255 (RFC 4702 §4), and the name it
/// uses: `host.domain` when the network has a domain, else `host` alone.
pub fn answer(flags: u8, host: &str, domain: Option<&str>) -> Vec<u8> {
    let e = flags & E;
    let o = if flags & S == 0 { O } else { 0 };
    let mut out = vec![S | o | e, 255, 255];
    let labels = std::iter::once(host).chain(domain.into_iter().flat_map(|d| d.split('.')));
    if e != 0 {
        for l in labels.filter(|l| !l.is_empty() && l.len() <= 63) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        // A fully qualified name ends with the root; a bare host name is partial.
        if domain.is_some() {
            out.push(0);
        }
    } else {
        out.extend_from_slice(labels.collect::<Vec<_>>().join(".").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_label_of_a_dotted_name_is_the_host() {
        assert_eq!(host_label("web1.example.lan").as_deref(), Some("web1"));
        assert_eq!(host_label("web1\0").as_deref(), Some("web1"));
        assert_eq!(host_label("bad name;rm"), None);
        assert_eq!(host_label(".lan"), None);
        assert_eq!(host_label("-x"), None);
        assert_eq!(host_label(&"a".repeat(64)), None);
    }

    #[test]
    fn option_81_in_both_encodings() {
        let wire = [&[E | S, 0, 0][..], b"\x04web1\x07example\x03lan\x00"].concat();
        assert_eq!(
            parse(&wire),
            Some(ClientFqdn {
                flags: E | S,
                host: Some("web1".into())
            })
        );
        let ascii = [&[0u8, 0, 0][..], b"db.example.lan"].concat();
        assert_eq!(parse(&ascii).unwrap().host.as_deref(), Some("db"));
        // Truncated or empty: flags kept, no name.
        assert_eq!(parse(&[E, 0, 0, 9, b'a']).unwrap().host, None);
        assert_eq!(parse(&[0, 0, 0]).unwrap().host, None);
        assert_eq!(parse(&[0, 0]), None);
    }

    #[test]
    fn the_answer_says_the_server_updates_and_keeps_the_encoding() {
        assert_eq!(
            answer(E, "web1", Some("lan")),
            [&[S | O | E, 255, 255][..], b"\x04web1\x03lan\x00"].concat()
        );
        assert_eq!(
            answer(S, "web1", Some("example.lan")),
            [&[S, 255, 255][..], b"web1.example.lan"].concat()
        );
        assert_eq!(
            answer(E | S, "web1", None),
            [&[S | E, 255, 255][..], b"\x04web1"].concat()
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for n in 0..20_000 {
            let data: Vec<u8> = (0..n % 40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = parse(&data);
        }
    }
}
