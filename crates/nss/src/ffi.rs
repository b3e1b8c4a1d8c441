//! glibc's NSS `hosts` interface: the only `unsafe` of the crate. Each exported function
//! checks its pointers, runs the safe lookup ([`crate::resolve`]) under `catch_unwind`,
//! and packs the answer into the caller's buffer with glibc's rules:
//!
//! * the buffer is too small: `NSS_STATUS_TRYAGAIN`, `*errnop = ERANGE` (glibc retries
//!   with a larger one), `*h_errnop = NETDB_INTERNAL`;
//! * the name is unknown: `NSS_STATUS_NOTFOUND`, `*errnop = ENOENT`,
//!   `*h_errnop = HOST_NOT_FOUND` (`NO_DATA` when it is known with the other family);
//! * an address family other than IPv4/IPv6: `NSS_STATUS_UNAVAIL`, `EAFNOSUPPORT`.
//!
//! Everything returned points into the caller's buffer (nothing is allocated for the
//! caller, nothing leaks); the caller's `errno` is kept as it was, since the lookup's
//! file operations would change it.

use crate::index::Family;
use crate::read::INDEX_PATH;
use libc::{c_char, c_int, hostent, size_t};
use std::ffi::CStr;
use std::mem::{align_of, size_of};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::ptr;

// enum nss_status (nss.h).
const NSS_STATUS_TRYAGAIN: c_int = -2;
const NSS_STATUS_UNAVAIL: c_int = -1;
const NSS_STATUS_NOTFOUND: c_int = 0;
const NSS_STATUS_SUCCESS: c_int = 1;
// h_errno values (netdb.h).
const NETDB_INTERNAL: c_int = -1;
const NETDB_SUCCESS: c_int = 0;
const HOST_NOT_FOUND: c_int = 1;
const NO_RECOVERY: c_int = 3;
const NO_DATA: c_int = 4;

/// glibc's `struct gaih_addrtuple` (nss.h), the list `gethostbyname4_r` returns.
#[repr(C)]
pub struct GaihAddrtuple {
    pub next: *mut GaihAddrtuple,
    pub name: *mut c_char,
    pub family: c_int,
    pub addr: [u32; 4],
    pub scopeid: u32,
}

/// What a lookup tells its caller besides what it packed.
struct Outcome {
    status: c_int,
    errno: c_int,
    h_errno: c_int,
}

const fn outcome(status: c_int, errno: c_int, h_errno: c_int) -> Outcome {
    Outcome {
        status,
        errno,
        h_errno,
    }
}

const SUCCESS: Outcome = outcome(NSS_STATUS_SUCCESS, 0, NETDB_SUCCESS);
const NOT_FOUND: Outcome = outcome(NSS_STATUS_NOTFOUND, libc::ENOENT, HOST_NOT_FOUND);
const NO_ADDRESS: Outcome = outcome(NSS_STATUS_NOTFOUND, libc::ENOENT, NO_DATA);
const TOO_SMALL: Outcome = outcome(NSS_STATUS_TRYAGAIN, libc::ERANGE, NETDB_INTERNAL);
const BAD_FAMILY: Outcome = outcome(NSS_STATUS_UNAVAIL, libc::EAFNOSUPPORT, NO_DATA);
/// A panic (a bug) or a null pointer where glibc never passes one.
const BROKEN: Outcome = outcome(NSS_STATUS_UNAVAIL, libc::EINVAL, NO_RECOVERY);

/// Run `f` with panics caught and the caller's errno kept, then report through
/// `errnop`/`h_errnop` (either may be null from a careless caller).
fn guarded(errnop: *mut c_int, h_errnop: *mut c_int, f: impl FnOnce() -> Outcome) -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno, always valid.
    let saved = unsafe { *libc::__errno_location() };
    let out = catch_unwind(AssertUnwindSafe(f)).unwrap_or(BROKEN);
    // SAFETY: as above. Restored before *errnop is written: errnop is often &errno.
    unsafe { *libc::__errno_location() = saved };
    if out.status != NSS_STATUS_SUCCESS && !errnop.is_null() {
        // SAFETY: non-null, and glibc passes a valid int pointer.
        unsafe { *errnop = out.errno };
    }
    if !h_errnop.is_null() {
        // SAFETY: as above.
        unsafe { *h_errnop = out.h_errno };
    }
    out.status
}

/// The caller's buffer, handed out front to back with each piece aligned.
struct Arena {
    base: *mut u8,
    len: usize,
    used: usize,
}

impl Arena {
    /// `size` bytes aligned to `align` (a power of two), or None when the buffer is full.
    fn take(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let here = (self.base as usize).checked_add(self.used)?;
        let start = self.used.checked_add(here.wrapping_neg() & (align - 1))?;
        let end = start.checked_add(size)?;
        if end > self.len {
            return None;
        }
        self.used = end;
        // SAFETY: start + size <= len: the pointer stays inside the caller's buffer.
        Some(unsafe { self.base.add(start) })
    }

    /// A NUL-terminated copy of `s`.
    fn string(&mut self, s: &str) -> Option<*mut c_char> {
        let p = self.take(s.len() + 1, 1)?;
        // SAFETY: take() reserved s.len() + 1 bytes at p, which cannot overlap `s`
        // (a Rust string, not the caller's buffer).
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            *p.add(s.len()) = 0;
        }
        Some(p.cast())
    }
}

/// The query's bytes; None for a null pointer.
///
/// # Safety
/// `name` is null or a NUL-terminated string (glibc's contract).
unsafe fn query<'a>(name: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract.
    (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }.to_bytes())
}

fn addr_words(ip: &IpAddr) -> (c_int, [u32; 4]) {
    let mut w = [0u32; 4];
    match ip {
        IpAddr::V4(a) => {
            w[0] = u32::from_ne_bytes(a.octets());
            (libc::AF_INET, w)
        }
        IpAddr::V6(a) => {
            for (i, c) in a.octets().chunks_exact(4).enumerate() {
                w[i] = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
            (libc::AF_INET6, w)
        }
    }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// getaddrinfo's entry point: every address of the name, IPv4 and IPv6, as a list of
/// `gaih_addrtuple` in `buffer`.
///
/// # Safety
/// glibc's contract: `name` a C string, `pat` a valid pointer (to null or to a tuple
/// the answer's first entry is copied into), `buffer` writable for `buflen` bytes,
/// `errnop`/`h_errnop` valid, `ttlp` null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_kvnet_gethostbyname4_r(
    name: *const c_char,
    pat: *mut *mut GaihAddrtuple,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
) -> c_int {
    let path = Path::new(INDEX_PATH);
    // SAFETY: the caller's contract.
    unsafe { hostbyname4(path, name, pat, buffer, buflen, errnop, h_errnop, ttlp) }
}

/// [`_nss_kvnet_gethostbyname4_r`] on the index at `path` (tests use their own).
///
/// # Safety
/// As [`_nss_kvnet_gethostbyname4_r`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn hostbyname4(
    path: &Path,
    name: *const c_char,
    pat: *mut *mut GaihAddrtuple,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
) -> c_int {
    guarded(errnop, h_errnop, || {
        // SAFETY: glibc's contract (see above).
        let Some(q) = (unsafe { query(name) }) else {
            return BROKEN;
        };
        if pat.is_null() || buffer.is_null() {
            return BROKEN;
        }
        let (canon, addrs) = crate::resolve(path, q, Family::Any);
        let Some(canon) = canon.filter(|_| !addrs.is_empty()) else {
            return NOT_FOUND;
        };
        let mut arena = Arena {
            base: buffer.cast(),
            len: buflen,
            used: 0,
        };
        let Some(r_name) = arena.string(&canon) else {
            return TOO_SMALL;
        };
        let mut first: *mut GaihAddrtuple = ptr::null_mut();
        let mut prev: *mut GaihAddrtuple = ptr::null_mut();
        for ip in &addrs {
            let size = size_of::<GaihAddrtuple>();
            let Some(p) = arena.take(size, align_of::<GaihAddrtuple>()) else {
                return TOO_SMALL;
            };
            let t: *mut GaihAddrtuple = p.cast();
            let (family, addr) = addr_words(ip);
            // SAFETY: t is aligned and inside the buffer (take); prev is null or an
            // earlier tuple written here.
            unsafe {
                t.write(GaihAddrtuple {
                    next: ptr::null_mut(),
                    name: r_name,
                    family,
                    addr,
                    scopeid: 0,
                });
                if prev.is_null() {
                    first = t;
                } else {
                    (*prev).next = t;
                }
            }
            prev = t;
        }
        // SAFETY: pat is valid; a non-null *pat is a tuple of the caller's to fill in
        // (as glibc's own modules do), else it takes our list.
        unsafe {
            if (*pat).is_null() {
                *pat = first;
            } else {
                **pat = first.read();
            }
            if !ttlp.is_null() {
                *ttlp = 0;
            }
        }
        SUCCESS
    })
}

/// gethostbyname2/gethostbyname's entry point: the addresses of one family as a
/// `hostent` whose strings and arrays live in `buffer`.
///
/// # Safety
/// glibc's contract: `name` a C string, `host` a valid `hostent`, `buffer` writable for
/// `buflen` bytes, `errnop`/`h_errnop` valid, `ttlp` and `canonp` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn _nss_kvnet_gethostbyname3_r(
    name: *const c_char,
    af: c_int,
    host: *mut hostent,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> c_int {
    let path = Path::new(INDEX_PATH);
    // SAFETY: the caller's contract.
    unsafe {
        hostbyname3(
            path, name, af, host, buffer, buflen, errnop, h_errnop, ttlp, canonp,
        )
    }
}

/// [`_nss_kvnet_gethostbyname3_r`] on the index at `path` (tests use their own).
///
/// # Safety
/// As [`_nss_kvnet_gethostbyname3_r`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn hostbyname3(
    path: &Path,
    name: *const c_char,
    af: c_int,
    host: *mut hostent,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> c_int {
    guarded(errnop, h_errnop, || {
        let family = match af {
            libc::AF_INET => Family::V4,
            libc::AF_INET6 => Family::V6,
            _ => return BAD_FAMILY,
        };
        // SAFETY: glibc's contract (see above).
        let Some(q) = (unsafe { query(name) }) else {
            return BROKEN;
        };
        if host.is_null() || buffer.is_null() {
            return BROKEN;
        }
        let (canon, all) = crate::resolve(path, q, Family::Any);
        let Some(canon) = canon.filter(|_| !all.is_empty()) else {
            return NOT_FOUND;
        };
        let addrs: Vec<Vec<u8>> = all
            .iter()
            .filter(|ip| (family == Family::V4) == ip.is_ipv4())
            .map(octets)
            .collect();
        if addrs.is_empty() {
            return NO_ADDRESS;
        }
        let alen = if family == Family::V4 { 4 } else { 16 };
        let psize = size_of::<*mut c_char>();
        let palign = align_of::<*mut c_char>();
        let mut arena = Arena {
            base: buffer.cast(),
            len: buflen,
            used: 0,
        };
        let Some(r_name) = arena.string(&canon) else {
            return TOO_SMALL;
        };
        // No aliases: a list of one null pointer.
        let Some(aliases) = arena.take(psize, palign) else {
            return TOO_SMALL;
        };
        let Some(data) = arena.take(alen * addrs.len(), palign) else {
            return TOO_SMALL;
        };
        let Some(list) = arena.take(psize * (addrs.len() + 1), palign) else {
            return TOO_SMALL;
        };
        let aliases: *mut *mut c_char = aliases.cast();
        let list: *mut *mut c_char = list.cast();
        // SAFETY: every pointer written to was reserved above, aligned, inside the
        // buffer; host and the optional outputs are valid per glibc's contract.
        unsafe {
            aliases.write(ptr::null_mut());
            for (i, a) in addrs.iter().enumerate() {
                let dst = data.add(i * alen);
                ptr::copy_nonoverlapping(a.as_ptr(), dst, alen);
                list.add(i).write(dst.cast());
            }
            list.add(addrs.len()).write(ptr::null_mut());
            (*host).h_name = r_name;
            (*host).h_aliases = aliases;
            (*host).h_addrtype = af;
            (*host).h_length = alen as c_int;
            (*host).h_addr_list = list;
            if !ttlp.is_null() {
                *ttlp = 0;
            }
            if !canonp.is_null() {
                *canonp = r_name;
            }
        }
        SUCCESS
    })
}

/// gethostbyname2_r: [`_nss_kvnet_gethostbyname3_r`] without TTL and canonical name.
///
/// # Safety
/// As [`_nss_kvnet_gethostbyname3_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_kvnet_gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    host: *mut hostent,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract is the one gethostbyname3_r needs.
    unsafe {
        _nss_kvnet_gethostbyname3_r(
            name,
            af,
            host,
            buffer,
            buflen,
            errnop,
            h_errnop,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    }
}

/// gethostbyname_r: IPv4 only.
///
/// # Safety
/// As [`_nss_kvnet_gethostbyname3_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_kvnet_gethostbyname_r(
    name: *const c_char,
    host: *mut hostent,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: as gethostbyname2_r.
    unsafe {
        _nss_kvnet_gethostbyname3_r(
            name,
            libc::AF_INET,
            host,
            buffer,
            buflen,
            errnop,
            h_errnop,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    }
}
