//! The index kvnetd writes and the module reads: guest names and their addresses.
//!
//! Text, so an admin can `cat` it:
//!
//! ```text
//! kvnet-nss-hosts 1
//! vm1 192.168.122.50
//! vm1.example.test 192.168.122.50
//! end
//! ```
//!
//! One `name address` per line, names lowercase, lines sorted by name (bytewise), so a
//! lookup is a binary search over the file's bytes without parsing the rest. The header
//! carries the version; the `end` trailer tells a whole file from a truncated one.
//! Everything here is safe code on byte slices: a hostile file can make a lookup miss,
//! never panic, loop or allocate more than [`MAX_ADDRS`] addresses.

use std::net::IpAddr;

pub const HEADER: &[u8] = b"kvnet-nss-hosts 1\n";
pub const TRAILER: &[u8] = b"end\n";
/// Files larger than this are not read (about 100,000 names).
pub const MAX_INDEX: usize = 4 << 20;
/// A DNS name's longest text form.
pub const MAX_NAME: usize = 253;
/// The longest valid line: a name, a space, the longest IPv6 text, a newline.
const MAX_LINE: usize = MAX_NAME + 1 + 45 + 1;
/// Addresses returned for one name at most: bounds the answer whatever the file holds.
pub const MAX_ADDRS: usize = 32;

/// Which addresses a lookup wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    Any,
}

impl Family {
    fn wants(self, ip: &IpAddr) -> bool {
        match self {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
            Family::Any => true,
        }
    }
}

/// Whether `n` is a name the index holds: lowercase labels of letters, digits, `-` and
/// `_`, 1–63 bytes each, at most [`MAX_NAME`] in all.
pub fn valid_name(n: &str) -> bool {
    n.len() <= MAX_NAME
        && n.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// A queried name as the index spells it: lowercase, without the root's trailing dot.
/// None for a name the index cannot hold (the lookup ends without reading the file).
pub fn normalize(query: &[u8]) -> Option<String> {
    let q = query.strip_suffix(b".").unwrap_or(query);
    if q.len() > MAX_NAME {
        return None;
    }
    let s = std::str::from_utf8(q).ok()?.to_ascii_lowercase();
    valid_name(&s).then_some(s)
}

/// The body of a whole index of this version: the lines between header and trailer.
pub fn body(file: &[u8]) -> Option<&[u8]> {
    if file.len() > MAX_INDEX {
        return None;
    }
    let b = file.strip_prefix(HEADER)?.strip_suffix(TRAILER)?;
    (b.is_empty() || b.ends_with(b"\n")).then_some(b)
}

/// Split one line (without its newline) into name and address text.
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = line.iter().position(|&b| b == b' ')?;
    Some((&line[..sp], &line[sp + 1..]))
}

/// Random access to an index: a slice in memory, or a file read piecewise with `pread`
/// (crate::read), so a lookup in a large index reads a few KiB, not the whole file.
pub trait Source {
    /// The index's size in bytes.
    fn size(&self) -> usize;
    /// Bytes `off..off + len`; None when they cannot be read (outside, I/O error).
    fn bytes(&mut self, off: usize, len: usize) -> Option<&[u8]>;
}

impl Source for &[u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn bytes(&mut self, off: usize, len: usize) -> Option<&[u8]> {
        self.get(off..off.checked_add(len)?)
    }
}

/// How many bytes the scan of a name's lines reads at a time.
const SCAN_CHUNK: usize = 4096;

/// The body's bounds `(start, end)` when `src` holds a whole index of this version.
fn body_bounds(src: &mut impl Source) -> Option<(usize, usize)> {
    let size = src.size();
    if size > MAX_INDEX || size < HEADER.len() + TRAILER.len() {
        return None;
    }
    let end = size - TRAILER.len();
    if src.bytes(0, HEADER.len())? != HEADER || src.bytes(end, TRAILER.len())? != TRAILER {
        return None;
    }
    // A non-empty body ends with its last line's newline (the header's, when empty).
    (src.bytes(end - 1, 1)? == b"\n").then_some((HEADER.len(), end))
}

/// The line that holds byte `at`, searched no further back than `lo` (a line start) and
/// no further than [`MAX_LINE`] bytes either way: `(start, end)`, `end` at its newline,
/// and whether its name is below `key`. None when no line boundary is that close (not
/// an index kvnetd wrote).
fn probe(
    src: &mut impl Source,
    (lo, hi): (usize, usize),
    at: usize,
    key: &[u8],
) -> Option<(usize, usize, bool)> {
    let from = at.saturating_sub(MAX_LINE).max(lo);
    let to = (at + MAX_LINE).min(hi);
    let w = src.bytes(from, to - from)?;
    let at_w = at - from;
    let start = match w[..at_w].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if from == lo => 0,
        None => return None,
    };
    let end = at_w + w[at_w..].iter().position(|&b| b == b'\n')?;
    let line = &w[start..end];
    let name = split_line(line).map_or(line, |(n, _)| n);
    Some((from + start, from + end, name < key))
}

/// The addresses of `name` (already [`normalize`]d) of `family`, in file order, at most
/// [`MAX_ADDRS`]. Empty when the file is not a whole index.
pub fn lookup(file: &[u8], name: &str, family: Family) -> Vec<IpAddr> {
    lookup_in(&mut { file }, name, family)
}

/// [`lookup`] on any [`Source`]: O(log n) probes of at most 2 × [`MAX_LINE`] bytes,
/// then the name's own lines.
pub fn lookup_in(src: &mut impl Source, name: &str, family: Family) -> Vec<IpAddr> {
    let Some((b0, b1)) = body_bounds(src) else {
        return Vec::new();
    };
    let key = name.as_bytes();
    // Lower bound: the first line whose name is not below `key`. `lo` is always a line
    // start; every step moves `lo` past `mid` or `hi` down to `mid`'s line start, so the
    // search ends after O(log n) steps whatever the file holds.
    let (mut lo, mut hi) = (b0, b1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some((start, end, below)) = probe(src, (lo, b1), mid, key) else {
            return Vec::new();
        };
        if below {
            lo = end + 1;
        } else {
            hi = start;
        }
    }
    let mut out = Vec::new();
    let (mut pos, mut lines) = (lo, 0);
    'scan: while pos < b1 {
        let Some(w) = src.bytes(pos, SCAN_CHUNK.min(b1 - pos)) else {
            break;
        };
        // Whole lines only: the last one may continue in the next chunk.
        let Some(last_nl) = w.iter().rposition(|&b| b == b'\n') else {
            break;
        };
        for line in w[..last_nl].split(|&b| b == b'\n') {
            lines += 1;
            let Some((_, addr)) = split_line(line).filter(|(n, _)| *n == key) else {
                break 'scan;
            };
            let ip = std::str::from_utf8(addr)
                .ok()
                .and_then(|a| a.parse::<IpAddr>().ok());
            if let Some(ip) = ip.filter(|ip| family.wants(ip) && !out.contains(ip)) {
                out.push(ip);
            }
            if out.len() == MAX_ADDRS || lines == MAX_ADDRS * 4 {
                break 'scan;
            }
        }
        pos += last_nl + 1;
    }
    out
}

/// Every entry of a whole, well-formed index, or why it is not one (sorted, valid names,
/// valid addresses). The lookup never needs this; tests, fuzzers and `kvnet doctor`-like
/// checks do.
pub fn parse(file: &[u8]) -> Result<Vec<(String, IpAddr)>, String> {
    let body = body(file).ok_or("no header, no trailer or too large")?;
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    let Some(lines) = body.strip_suffix(b"\n") else {
        return Ok(out);
    };
    for (i, line) in lines.split(|&b| b == b'\n').enumerate() {
        let n = i + 2;
        // kvnetd writes none, and the lookup's scan of a name's lines stops at one.
        if line.is_empty() {
            return Err(format!("line {n}: empty"));
        }
        let (name, addr) = split_line(line).ok_or(format!("line {n}: no space"))?;
        let name = std::str::from_utf8(name).map_err(|_| format!("line {n}: not UTF-8"))?;
        if !valid_name(name) {
            return Err(format!("line {n}: invalid name"));
        }
        let ip = std::str::from_utf8(addr)
            .ok()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .ok_or(format!("line {n}: invalid address"))?;
        if out.last().is_some_and(|(p, _)| p.as_str() > name) {
            return Err(format!("line {n}: not sorted"));
        }
        out.push((name.to_string(), ip));
    }
    Ok(out)
}

/// For fuzzers: parse `data` as an index and look up a few names, among them names the
/// data itself holds. Must never panic.
pub fn fuzz_one(data: &[u8]) {
    let _ = parse(data);
    let mut names: Vec<String> = ["vm1", "a", "zzz", "vm1.example.test"]
        .map(String::from)
        .to_vec();
    names.extend(
        data.split(|&b| b == b'\n' || b == b' ')
            .take(8)
            .filter_map(normalize),
    );
    for n in &names {
        for f in [Family::V4, Family::V6, Family::Any] {
            let _ = lookup(data, n, f);
        }
    }
}

/// A guest's own name for its lease, as dnsmasq (and kvnet's DNS) registers it: the
/// first label, lowercased. A guest cannot claim a name in another domain
/// (`github.com` registers as `github`).
pub fn lease_name(raw: &str) -> Option<String> {
    let first = raw.split('.').next()?.to_ascii_lowercase();
    valid_name(&first).then_some(first)
}

/// The index kvnetd writes, from the names of every active network.
#[derive(Default)]
pub struct Builder {
    entries: Vec<(String, IpAddr)>,
    /// Names left out: not valid names.
    pub rejected: Vec<String>,
}

impl Builder {
    /// A name the network's definition gives (a static DHCP host, a `<dns><host>`): as
    /// it is and, when it is a plain name, also in the network's `domain`.
    pub fn add(&mut self, name: &str, ip: IpAddr, domain: Option<&str>) {
        let n = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if !valid_name(&n) {
            self.rejected.push(name.escape_debug().to_string());
            return;
        }
        if let Some(d) = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            && !n.contains('.')
            && !d.is_empty()
        {
            let full = format!("{n}.{d}");
            if valid_name(&full) {
                self.entries.push((full, ip));
            }
        }
        self.entries.push((n, ip));
    }

    /// A DHCP lease's hostname, which the guest chose: see [`lease_name`].
    pub fn add_lease(&mut self, hostname: &str, ip: IpAddr, domain: Option<&str>) {
        match lease_name(hostname) {
            Some(n) => self.add(&n, ip, domain),
            None => self.rejected.push(hostname.escape_debug().to_string()),
        }
    }

    /// The file: entries sorted and deduplicated; if they would pass [`MAX_INDEX`], the
    /// last names (in sort order) are left out and counted in the second value.
    pub fn build(mut self) -> (Vec<u8>, usize) {
        self.entries.sort();
        self.entries.dedup();
        let mut out = HEADER.to_vec();
        let mut left_out = 0;
        for (n, ip) in &self.entries {
            let line = format!("{n} {ip}\n");
            if out.len() + line.len() + TRAILER.len() > MAX_INDEX {
                left_out += 1;
                continue;
            }
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(TRAILER);
        (out, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample() -> Vec<u8> {
        let mut b = Builder::default();
        let d = Some("example.test");
        b.add("web", ip("192.168.122.20"), d);
        b.add("db", ip("192.168.122.30"), d);
        b.add("db", ip("2001:db8::30"), d);
        b.add("db", ip("192.168.122.30"), d); // duplicate
        b.add("Mixed.Case.Org", ip("10.0.0.1"), d);
        b.add_lease("VM1.evil.org", Ipv4Addr::new(192, 168, 122, 50).into(), d);
        b.add("other", ip("192.168.100.5"), None);
        b.add("bad name", ip("10.0.0.2"), d);
        b.add_lease("x\ny 1.2.3.4", Ipv4Addr::new(1, 2, 3, 4).into(), d);
        assert_eq!(b.rejected.len(), 2, "{:?}", b.rejected);
        b.build().0
    }

    fn find(f: &[u8], q: &str, fam: Family) -> Vec<IpAddr> {
        match normalize(q.as_bytes()) {
            Some(n) => lookup(f, &n, fam),
            None => Vec::new(),
        }
    }

    #[test]
    fn exact_names_with_and_without_domain() {
        let f = sample();
        assert_eq!(find(&f, "web", Family::Any), vec![ip("192.168.122.20")]);
        assert_eq!(
            find(&f, "web.example.test", Family::Any),
            vec![ip("192.168.122.20")]
        );
        assert_eq!(find(&f, "vm1", Family::V4), vec![ip("192.168.122.50")]);
        assert_eq!(
            find(&f, "vm1.example.test", Family::V4),
            vec![ip("192.168.122.50")]
        );
        // A dotted name is kept as it is, not put into the domain.
        assert_eq!(
            find(&f, "mixed.case.org", Family::Any),
            vec![ip("10.0.0.1")]
        );
        assert!(find(&f, "mixed.case.org.example.test", Family::Any).is_empty());
        // No domain: the plain name only.
        assert_eq!(find(&f, "other", Family::Any), vec![ip("192.168.100.5")]);
        // The guest's foreign domain is not registered.
        assert!(find(&f, "vm1.evil.org", Family::Any).is_empty());
        for miss in ["we", "webb", "example.test", "", ".", "zzz", "a"] {
            assert!(find(&f, miss, Family::Any).is_empty(), "{miss}");
        }
    }

    #[test]
    fn case_trailing_dot_and_families() {
        let f = sample();
        assert_eq!(
            find(&f, "WEB.Example.TEST.", Family::Any),
            vec![ip("192.168.122.20")]
        );
        assert_eq!(find(&f, "db", Family::V4), vec![ip("192.168.122.30")]);
        assert_eq!(find(&f, "db", Family::V6), vec![ip("2001:db8::30")]);
        assert_eq!(find(&f, "db", Family::Any).len(), 2, "duplicate dropped");
        assert!(find(&f, "web", Family::V6).is_empty());
    }

    #[test]
    fn written_index_parses_and_is_sorted() {
        let f = sample();
        let all = parse(&f).unwrap();
        assert!(all.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(all.len(), 10, "{all:?}");
        let empty = Builder::default().build().0;
        assert_eq!(parse(&empty).unwrap(), vec![]);
        assert!(find(&empty, "vm1", Family::Any).is_empty());
    }

    #[test]
    fn every_name_of_a_large_index_is_found() {
        let mut b = Builder::default();
        for i in 0..2000u32 {
            b.add(
                &format!("g{i}"),
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                Some("x.test"),
            );
        }
        let f = b.build().0;
        for i in 0..2000u32 {
            let want = vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))];
            assert_eq!(find(&f, &format!("g{i}"), Family::Any), want);
            assert_eq!(find(&f, &format!("g{i}.x.test"), Family::V4), want);
        }
        assert!(find(&f, "g2000", Family::Any).is_empty());
    }

    #[test]
    fn torn_garbage_and_huge_files_find_nothing() {
        let f = sample();
        // Every truncation of a whole index lacks its trailer.
        for cut in 0..f.len() {
            assert!(
                find(&f[..cut], "web", Family::Any).is_empty(),
                "cut at {cut}"
            );
        }
        let mut wrong_version = f.clone();
        wrong_version[HEADER.len() - 2] = b'2';
        assert!(find(&wrong_version, "web", Family::Any).is_empty());
        let mut huge = HEADER.to_vec();
        huge.resize(MAX_INDEX, b'a');
        huge.extend_from_slice(b"\nweb 1.2.3.4\nend\n");
        assert!(find(&huge, "web", Family::Any).is_empty());
        // A line longer than any valid one: the search gives up, it does not scan.
        let mut long = HEADER.to_vec();
        long.extend(std::iter::repeat_n(b'a', 100_000));
        long.extend_from_slice(b" 1.2.3.4\nweb 1.2.3.4\nend\n");
        assert!(find(&long, "web", Family::Any).is_empty());
        for junk in [
            &b""[..],
            b"end\n",
            b"kvnet-nss-hosts 1\nend\n",
            b"\0\0\0\xff\xfe",
        ] {
            assert!(find(junk, "web", Family::Any).is_empty());
        }
    }

    #[test]
    fn hostile_lines_do_not_escape_the_bounds() {
        // Unsorted, junk addresses, many duplicates, no spaces: misses, never panics.
        let mut f = HEADER.to_vec();
        f.extend_from_slice(b"zz 1.1.1.1\nweb notanaddress\nweb\n\n\n web 1.2.3.4\n");
        for _ in 0..1000 {
            f.extend_from_slice(b"web 10.0.0.1\n");
        }
        for i in 0..100 {
            f.extend_from_slice(format!("web 10.1.0.{i}\n").as_bytes());
        }
        f.extend_from_slice(TRAILER);
        let got = find(&f, "web", Family::Any);
        assert!(got.len() <= MAX_ADDRS);
        fuzz_one(&f);
    }

    #[test]
    fn names_are_bounded() {
        assert!(normalize("a".repeat(254).as_bytes()).is_none());
        assert!(normalize(format!("{}.b", "a".repeat(64)).as_bytes()).is_none());
        assert!(normalize(b"a..b").is_none());
        assert!(normalize(b"\xff").is_none());
        assert!(normalize(b"a b").is_none());
        assert_eq!(normalize(b"VM1.").as_deref(), Some("vm1"));
        assert_eq!(lease_name("Web.example.test").as_deref(), Some("web"));
        assert_eq!(lease_name(""), None);
    }

    #[test]
    fn over_the_size_cap_names_are_left_out_not_the_file() {
        let mut b = Builder::default();
        let long = "x".repeat(60);
        for i in 0..80_000u32 {
            b.add(&format!("{long}.{i}"), IpAddr::V4(Ipv4Addr::from(i)), None);
        }
        let (f, left_out) = b.build();
        assert!(f.len() <= MAX_INDEX);
        assert!(left_out > 0);
        assert!(parse(&f).is_ok());
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
                fuzz_one(&data);
            }

            #[test]
            fn random_bodies_never_panic(lines in proptest::collection::vec("[a-z0-9 .:\n-]{0,40}", 0..64)) {
                let mut f = HEADER.to_vec();
                for l in &lines {
                    f.extend_from_slice(l.as_bytes());
                    f.push(b'\n');
                }
                f.extend_from_slice(TRAILER);
                fuzz_one(&f);
            }

            #[test]
            fn what_is_written_is_found(names in proptest::collection::btree_map("[a-z][a-z0-9-]{0,20}", any::<u32>(), 1..50)) {
                let mut b = Builder::default();
                for (n, a) in &names {
                    b.add(n, IpAddr::V4(std::net::Ipv4Addr::from(*a)), Some("lab.test"));
                }
                let f = b.build().0;
                for (n, a) in &names {
                    let want = vec![IpAddr::V4(std::net::Ipv4Addr::from(*a))];
                    prop_assert_eq!(lookup(&f, n, Family::Any), want.clone());
                    prop_assert_eq!(lookup(&f, &format!("{n}.lab.test"), Family::V4), want);
                }
            }
        }

        proptest! {
            // Each case looks up every name it wrote, three times: fewer cases.
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn lookup_agrees_with_a_full_parse(
                entries in proptest::collection::vec(("[a-c]{1,3}", any::<u32>(), any::<bool>()), 0..400),
                pad in 0usize..200,
            ) {
                let mut b = Builder::default();
                let long = "x".repeat(pad.min(60));
                for (n, a, v6) in &entries {
                    let ip = if *v6 { IpAddr::V6((u128::from(*a) << 64).into()) } else { IpAddr::V4((*a).into()) };
                    // Long names push lines across the scan's chunk boundaries.
                    b.add(&format!("{n}.{long}{n}"), ip, None);
                }
                let f = b.build().0;
                let all = parse(&f).unwrap();
                for (n, _, _) in &entries {
                    let key = format!("{n}.{long}{n}");
                    for fam in [Family::V4, Family::V6, Family::Any] {
                        let mut want: Vec<IpAddr> = all.iter().filter(|(k, ip)| *k == key && fam.wants(ip)).map(|(_, ip)| *ip).collect();
                        want.truncate(MAX_ADDRS);
                        let got = lookup(&f, &key, fam);
                        if got.len() < MAX_ADDRS {
                            prop_assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }
}
