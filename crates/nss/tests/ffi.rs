//! The C interface as glibc calls it: buffer packing, ERANGE retries, not-found codes,
//! unaligned buffers, errno kept, many threads at once; on an index of the test's own.

use libc::{c_char, c_int, hostent};
use nss_kvnet::ffi::{GaihAddrtuple, hostbyname3, hostbyname4};
use nss_kvnet::index::Builder;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::ptr;

const TRYAGAIN: c_int = -2;
const UNAVAIL: c_int = -1;
const NOTFOUND: c_int = 0;
const SUCCESS: c_int = 1;
const HOST_NOT_FOUND: c_int = 1;
const NO_DATA: c_int = 4;

fn index(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kvnet-nss-ffi-{tag}-{}", std::process::id()));
    let mut b = Builder::default();
    let d = Some("lab.test");
    b.add("web", "192.168.1.20".parse().unwrap(), d);
    b.add("db", "192.168.1.30".parse().unwrap(), d);
    b.add("db", "2001:db8::30".parse().unwrap(), d);
    b.add("six", "2001:db8::6".parse().unwrap(), d);
    std::fs::write(&p, b.build().0).unwrap();
    p
}

/// gethostbyname4_r into a buffer of `len` bytes starting `skew` bytes past an
/// aligned address: (status, errno, h_errno, addresses, canonical name).
fn gh4(
    path: &Path,
    name: &str,
    len: usize,
    skew: usize,
) -> (c_int, c_int, c_int, Vec<IpAddr>, String) {
    let mut buf = vec![0u64; len / 8 + 2];
    let base = unsafe { (buf.as_mut_ptr() as *mut c_char).add(skew) };
    let cname = CString::new(name).unwrap();
    let mut pat: *mut GaihAddrtuple = ptr::null_mut();
    let (mut e, mut h, mut ttl) = (0, 0, -1);
    let st = unsafe {
        hostbyname4(
            path,
            cname.as_ptr(),
            &mut pat,
            base,
            len,
            &mut e,
            &mut h,
            &mut ttl,
        )
    };
    let mut addrs = Vec::new();
    let mut canon = String::new();
    let mut t = pat;
    while st == SUCCESS && !t.is_null() {
        let r = unsafe { &*t };
        assert_eq!(
            (t as usize) % std::mem::align_of::<GaihAddrtuple>(),
            0,
            "aligned"
        );
        let b: Vec<u8> = r.addr.iter().flat_map(|w| w.to_ne_bytes()).collect();
        addrs.push(match r.family {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())),
            f => panic!("family {f}"),
        });
        canon = unsafe { CStr::from_ptr(r.name) }
            .to_str()
            .unwrap()
            .to_string();
        t = r.next;
    }
    drop(buf);
    (st, e, h, addrs, canon)
}

/// gethostbyname3_r likewise: (status, errno, h_errno, addresses, name, canonical name).
fn gh3(
    path: &Path,
    name: &str,
    af: c_int,
    len: usize,
    skew: usize,
) -> (c_int, c_int, c_int, Vec<IpAddr>, String) {
    let mut buf = vec![0u64; len / 8 + 2];
    let base = unsafe { (buf.as_mut_ptr() as *mut c_char).add(skew) };
    let cname = CString::new(name).unwrap();
    let mut host: hostent = unsafe { std::mem::zeroed() };
    let (mut e, mut h, mut ttl) = (0, 0, -1);
    let mut canonp: *mut c_char = ptr::null_mut();
    let st = unsafe {
        hostbyname3(
            path,
            cname.as_ptr(),
            af,
            &mut host,
            base,
            len,
            &mut e,
            &mut h,
            &mut ttl,
            &mut canonp,
        )
    };
    let mut addrs = Vec::new();
    let mut hname = String::new();
    if st == SUCCESS {
        hname = unsafe { CStr::from_ptr(host.h_name) }
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(canonp, host.h_name);
        assert!(unsafe { *host.h_aliases }.is_null());
        assert_eq!(host.h_addrtype, af);
        let mut i = 0;
        loop {
            let p = unsafe { *host.h_addr_list.add(i) };
            if p.is_null() {
                break;
            }
            let b = unsafe { std::slice::from_raw_parts(p as *const u8, host.h_length as usize) };
            addrs.push(match af {
                libc::AF_INET => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())),
            });
            i += 1;
        }
    }
    drop(buf);
    (st, e, h, addrs, hname)
}

fn ips(s: &[&str]) -> Vec<IpAddr> {
    s.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn getaddrinfo_path_packs_every_address() {
    let p = index("gh4");
    for skew in 0..8 {
        let (st, _, h, a, canon) = gh4(&p, "DB.lab.test.", 1024, skew);
        assert_eq!((st, h), (SUCCESS, 0));
        assert_eq!(a, ips(&["192.168.1.30", "2001:db8::30"]));
        assert_eq!(canon, "db.lab.test");
    }
    let (st, e, h, a, _) = gh4(&p, "nosuch", 1024, 0);
    assert_eq!(
        (st, e, h, a.len()),
        (NOTFOUND, libc::ENOENT, HOST_NOT_FOUND, 0)
    );
    let _ = std::fs::remove_file(p);
}

#[test]
fn small_buffers_ask_for_a_larger_one() {
    let p = index("erange");
    let mut first_ok = None;
    for len in 0..256 {
        let (st, e, _, a, _) = gh4(&p, "db", len, 1);
        if st == SUCCESS {
            assert_eq!(a.len(), 2);
            first_ok.get_or_insert(len);
        } else {
            assert!(first_ok.is_none(), "success then failure at {len}");
            assert_eq!((st, e), (TRYAGAIN, libc::ERANGE), "len {len}");
        }
    }
    assert!(first_ok.is_some());
    let mut first_ok = None;
    for len in 0..128 {
        let (st, e, _, a, _) = gh3(&p, "db", libc::AF_INET6, len, 3);
        if st == SUCCESS {
            assert_eq!(a, ips(&["2001:db8::30"]));
            first_ok.get_or_insert(len);
        } else {
            assert_eq!((st, e), (TRYAGAIN, libc::ERANGE), "len {len}");
        }
    }
    assert!(first_ok.is_some());
    let _ = std::fs::remove_file(p);
}

#[test]
fn gethostbyname_path_by_family() {
    let p = index("gh3");
    let (st, _, _, a, n) = gh3(&p, "web.lab.test", libc::AF_INET, 512, 0);
    assert_eq!(
        (st, a, n.as_str()),
        (SUCCESS, ips(&["192.168.1.20"]), "web.lab.test")
    );
    let (st, _, _, a, _) = gh3(&p, "six", libc::AF_INET6, 512, 5);
    assert_eq!((st, a), (SUCCESS, ips(&["2001:db8::6"])));
    // Known, but not with this family: NO_DATA, so the caller tries the other.
    let (st, _, h, _, _) = gh3(&p, "web", libc::AF_INET6, 512, 0);
    assert_eq!((st, h), (NOTFOUND, NO_DATA));
    let (st, _, h, _, _) = gh3(&p, "nosuch", libc::AF_INET, 512, 0);
    assert_eq!((st, h), (NOTFOUND, HOST_NOT_FOUND));
    let (st, e, _, _, _) = gh3(&p, "web", libc::AF_UNIX, 512, 0);
    assert_eq!((st, e), (UNAVAIL, libc::EAFNOSUPPORT));
    let _ = std::fs::remove_file(p);
}

#[test]
fn missing_or_bad_index_is_not_found_and_errno_is_kept() {
    let p = std::env::temp_dir().join("kvnet-nss-ffi-none/nss-hosts");
    unsafe { *libc::__errno_location() = 1234 };
    let (st, _, h, _, _) = gh4(&p, "web", 1024, 0);
    assert_eq!((st, h), (NOTFOUND, HOST_NOT_FOUND));
    assert_eq!(unsafe { *libc::__errno_location() }, 1234);
    let g = std::env::temp_dir().join(format!("kvnet-nss-ffi-garbage-{}", std::process::id()));
    std::fs::write(&g, b"kvnet-nss-hosts 1\nweb 1.2.3.4\n").unwrap(); // torn: no trailer
    assert_eq!(gh4(&g, "web", 1024, 0).0, NOTFOUND);
    let _ = std::fs::remove_file(g);
    let long = "a".repeat(5000);
    assert_eq!(gh4(&p, &long, 1024, 0).0, NOTFOUND);
}

#[test]
fn null_pointers_are_refused_not_followed() {
    let p = index("null");
    let (mut e, mut h) = (0, 0);
    let mut buf = [0u8; 256];
    let st = unsafe {
        hostbyname4(
            &p,
            ptr::null(),
            ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            256,
            &mut e,
            &mut h,
            ptr::null_mut(),
        )
    };
    assert_eq!(st, UNAVAIL);
    let _ = std::fs::remove_file(p);
}

#[test]
fn many_threads_at_once() {
    let p = index("threads");
    std::thread::scope(|s| {
        for t in 0..8 {
            let p = &p;
            s.spawn(move || {
                for i in 0..500 {
                    let (st, _, _, a, _) = gh4(p, "db", 64 + (i % 200), t % 8);
                    assert!(st == SUCCESS && a.len() == 2 || st == TRYAGAIN);
                }
            });
        }
    });
    let _ = std::fs::remove_file(p);
}
