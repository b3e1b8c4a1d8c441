//! How long one lookup takes through the C entry point, index read included:
//! `cargo run --release -p kvnet-nss --example lookup_time -- [NAMES] [ROUNDS]`.

use libc::c_char;
use nss_kvnet::ffi::{GaihAddrtuple, hostbyname4};
use nss_kvnet::index::Builder;
use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let names: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let path = std::env::temp_dir().join(format!("kvnet-nss-bench-{}", std::process::id()));
    let mut b = Builder::default();
    for i in 0..names {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        b.add(&format!("guest-{i}"), ip, Some("lab.test"));
    }
    let (file, _) = b.build();
    std::fs::write(&path, &file).expect("write index");
    let mut buf = vec![0u8; 1024];
    let mut lookup = |name: &CString| {
        let mut pat: *mut GaihAddrtuple = std::ptr::null_mut();
        let (mut e, mut h) = (0, 0);
        unsafe {
            hostbyname4(
                &path,
                name.as_ptr(),
                &mut pat,
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                &mut e,
                &mut h,
                std::ptr::null_mut(),
            )
        }
    };
    let queries: Vec<CString> = (0..rounds)
        .map(|i| CString::new(format!("guest-{}.lab.test", (i * 7919) % names)).unwrap())
        .collect();
    let miss = CString::new("nosuch").unwrap();
    for q in queries.iter().take(100) {
        assert_eq!(lookup(q), 1);
    }
    let mut t = Vec::with_capacity(rounds as usize);
    for q in &queries {
        let t0 = Instant::now();
        let st = lookup(q);
        t.push(t0.elapsed());
        assert_eq!(st, 1);
    }
    let t0 = Instant::now();
    for _ in 0..rounds {
        assert_eq!(lookup(&miss), 0);
    }
    let miss_mean = t0.elapsed() / rounds;
    t.sort();
    let pct = |p: usize| t[(t.len() - 1) * p / 100];
    println!(
        "{names} names ({} bytes), {rounds} hits: median {:?}, p99 {:?}, max {:?}; unknown name: mean {miss_mean:?}",
        file.len(),
        pct(50),
        pct(99),
        t[t.len() - 1]
    );
    let _ = std::fs::remove_file(&path);
}
