//! nftables through the `nft` binary (one script = one atomic transaction),
//! and [`apply_batch`], which sends a prebuilt nfnetlink batch directly.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{ErrorKind, HostError};

/// How long one `nft` may run. It answers in milliseconds; one that hangs (a stuck
/// kernel lock, a netlink socket nobody reads) must not freeze kvnetd, which waits for
/// it on its only thread. It is killed then, and the change fails like any nft error.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The `nft` binary: `$KVNET_NFT` if set, else `nft` from `PATH`.
pub fn binary() -> String {
    std::env::var("KVNET_NFT").unwrap_or_else(|_| "nft".to_string())
}

fn run(context: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, HostError> {
    run_program(&binary(), context, args, stdin, TIMEOUT)
}

/// Runs `program` with `stdin` fed and its output collected by threads, so that a
/// program that neither reads nor exits cannot block us past `timeout`.
pub(crate) fn run_program(
    program: &str,
    context: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, HostError> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HostError::new(format!("{context}: spawn {program}"), e))?;
    // Its commits are kvnet's own (crate::nftwatch), until shortly after it is reaped.
    let _own = crate::nftwatch::own_process(child.id());
    let stdout = collect(child.stdout.take().expect("stdout is piped"));
    let stderr = collect(child.stderr.take().expect("stderr is piped"));
    let writer = child.stdin.take().zip(stdin).map(|(mut pipe, input)| {
        let input = input.to_owned();
        // Dropping the pipe after writing gives the program its EOF.
        std::thread::spawn(move || pipe.write_all(input.as_bytes()))
    });
    let left = || deadline.saturating_duration_since(Instant::now());
    let timed_out = |mut child: Child| {
        let _ = child.kill();
        let _ = child.wait();
        HostError::new(
            context,
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{program} did not finish within {timeout:?}: killed"),
            ),
        )
    };
    // Both pipes at their end: the program exited (or closed them).
    let (Ok(out), Ok(err)) = (stdout.recv_timeout(left()), stderr.recv_timeout(left())) else {
        return Err(timed_out(child));
    };
    let Some(status) = wait_until(&mut child, deadline) else {
        return Err(timed_out(child));
    };
    let read = |r: std::io::Result<Vec<u8>>| {
        r.map_err(|e| HostError::new(format!("{context}: read from {program}"), e))
    };
    let output = Output {
        status,
        stdout: read(out)?,
        stderr: read(err)?,
    };
    // A program that exits early closes its stdin: its exit status and stderr say why,
    // better than the EPIPE would.
    if let Some(Ok(Err(e))) = writer.map(|w| w.join())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(HostError::new(format!("{context}: write to {program}"), e));
    }
    Ok(output)
}

/// Everything `pipe` yields, read on a thread of its own.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = tx.send(pipe.read_to_end(&mut buf).map(|_| buf));
    });
    rx
}

/// The exit status, polled until `deadline`: the pipes close a moment before the
/// process can be reaped.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_micros(50);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn command_error(context: &str, out: &Output) -> HostError {
    HostError::new(
        context,
        ErrorKind::Command {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        },
    )
}

/// Runs `nft -f -` with `script` on stdin; nft's stderr is in the error.
pub fn apply(script: &str) -> Result<(), HostError> {
    let out = run("nft apply", &["-f", "-"], Some(script))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(command_error("nft apply", &out))
    }
}

/// `nft list table FAMILY TABLE`, or `None` when the table does not exist.
pub fn list_table(family: &str, table: &str) -> Result<Option<String>, HostError> {
    list(&["list", "table", family, table])
}

/// `nft -j list table FAMILY TABLE` (JSON), or `None` when the table does not exist.
pub fn list_table_json(family: &str, table: &str) -> Result<Option<String>, HostError> {
    list(&["-j", "list", "table", family, table])
}

fn list(args: &[&str]) -> Result<Option<String>, HostError> {
    let context = format!("nft {}", args.join(" "));
    let out = run(&context, args, None)?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    // nft has no distinct exit code for "absent"; it reports the kernel's ENOENT.
    if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
        return Ok(None);
    }
    Err(command_error(&context, &out))
}

/// The netlink and nftables numbers [`apply_batch`] needs to send a batch
/// and attribute the kernel's answers, from `include/uapi/linux/netlink.h`,
/// `netfilter/nfnetlink.h` and `netfilter/nf_tables.h` (kvnet-firewall's
/// `nl::consts` has the ones the encoder needs).
mod nfnl {
    pub const NLMSG_HDRLEN: usize = 16;
    pub const NFGENMSG_LEN: usize = 4;
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLM_F_ACK: u16 = 0x4;
    pub const NLM_F_CAPPED: u16 = 0x100;
    pub const NLM_F_ACK_TLVS: u16 = 0x200;
    pub const NLMSGERR_ATTR_MSG: u16 = 1;
    pub const NETLINK_CAP_ACK: libc::c_int = 10;
    pub const NETLINK_EXT_ACK: libc::c_int = 11;
    pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
    pub const NFNL_MSG_BATCH_END: u16 = 17;
    pub const NFT_MSG_NEWCHAIN: u16 = 3;
    pub const NFT_MSG_DELCHAIN: u16 = 5;
    pub const NFT_MSG_NEWRULE: u16 = 6;
    pub const NFT_MSG_DELRULE: u16 = 8;
    pub const NFT_MSG_NEWSETELEM: u16 = 12;
    pub const NFT_MSG_DELSETELEM: u16 = 14;
    pub const NFTA_CHAIN_NAME: u16 = 3;
    pub const NFTA_RULE_CHAIN: u16 = 2;
    pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    pub const NLA_TYPE_MASK: u16 = 0x3fff;
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message of a buffer: type, flags, seq and payload.
struct NlMsg<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Splits a buffer of netlink messages; None if a length is inconsistent.
fn split_messages(mut buf: &[u8]) -> Option<Vec<NlMsg<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
        if len < nfnl::NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        out.push(NlMsg {
            kind: u16::from_ne_bytes(buf[4..6].try_into().ok()?),
            flags: u16::from_ne_bytes(buf[6..8].try_into().ok()?),
            seq: u32::from_ne_bytes(buf[8..12].try_into().ok()?),
            payload: &buf[nfnl::NLMSG_HDRLEN..len],
        });
        buf = buf.get(align4(len).min(buf.len())..)?;
    }
    Some(out)
}

/// The value of string attribute `kind` among `attrs`, if present.
fn string_attr(mut attrs: &[u8], kind: u16) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & nfnl::NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == kind {
            let v = &attrs[4..len];
            let v = v.split(|&b| b == 0).next().unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

/// What a batch message does, for error messages: `create chain to_virbr0`,
/// `add rule to_virbr0 (#2)`, `add element to_guest`.
fn describe(msg: &NlMsg<'_>, rule_index: usize) -> String {
    let attrs = msg.payload.get(nfnl::NFGENMSG_LEN..).unwrap_or_default();
    let name = |kind| string_attr(attrs, kind).unwrap_or_else(|| "?".to_string());
    if msg.kind >> 8 != nfnl::NFNL_SUBSYS_NFTABLES {
        return format!("netlink message type {}", msg.kind);
    }
    match msg.kind & 0xff {
        nfnl::NFT_MSG_NEWCHAIN => format!("create chain {}", name(nfnl::NFTA_CHAIN_NAME)),
        nfnl::NFT_MSG_NEWRULE => {
            format!("add rule {} (#{rule_index})", name(nfnl::NFTA_RULE_CHAIN))
        }
        nfnl::NFT_MSG_NEWSETELEM => {
            format!("add element {}", name(nfnl::NFTA_SET_ELEM_LIST_SET))
        }
        nfnl::NFT_MSG_DELSETELEM => {
            format!("delete element {}", name(nfnl::NFTA_SET_ELEM_LIST_SET))
        }
        nfnl::NFT_MSG_DELRULE => format!("flush chain {}", name(nfnl::NFTA_RULE_CHAIN)),
        nfnl::NFT_MSG_DELCHAIN => format!("delete chain {}", name(nfnl::NFTA_CHAIN_NAME)),
        t => format!("nftables message type {t}"),
    }
}

/// A NETLINK_NETFILTER socket of the calling thread's network namespace.
fn netfilter_socket() -> Result<std::os::fd::OwnedFd, HostError> {
    use std::os::fd::FromRawFd;
    let ctx = "nftables netlink socket";
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(HostError::new(ctx, std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // Capped acks keep each success/error reply small (no echo of the
    // request); extended acks add the kernel's error text when there is one.
    for opt in [nfnl::NETLINK_CAP_ACK, nfnl::NETLINK_EXT_ACK] {
        set_opt(&fd, libc::SOL_NETLINK, opt, &one)?;
    }
    // A safety net only: the kernel answers a batch while sendmsg runs.
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
    Ok(fd)
}

fn set_opt<T: Copy>(
    fd: &std::os::fd::OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: &T,
) -> Result<(), HostError> {
    crate::sys::setsockopt(fd, level, opt, value)
        .map_err(|e| HostError::new(format!("nftables netlink socket option {opt}"), e))
}

/// One kernel answer to a batch message: its seq, errno (0 for an ack) and
/// extended-ack text.
struct Answer {
    seq: u32,
    errno: i32,
    text: Option<String>,
}

fn parse_answers(buf: &[u8]) -> Result<Vec<Answer>, HostError> {
    let msgs = split_messages(buf)
        .ok_or_else(|| HostError::invalid("nftables netlink reply", "malformed message"))?;
    let mut out = Vec::new();
    for m in msgs {
        if m.kind != nfnl::NLMSG_ERROR {
            continue;
        }
        let Some(code) = m.payload.get(0..4) else {
            return Err(HostError::invalid(
                "nftables netlink reply",
                "short error message",
            ));
        };
        let code = i32::from_ne_bytes(code.try_into().expect("4 bytes"));
        // With NETLINK_CAP_ACK the request is echoed as its header only.
        let text = if m.flags & nfnl::NLM_F_ACK_TLVS != 0 {
            let echoed = m
                .payload
                .get(4..8)
                .map(|l| u32::from_ne_bytes(l.try_into().expect("4 bytes")) as usize)
                .unwrap_or(0);
            let skip = if m.flags & nfnl::NLM_F_CAPPED != 0 {
                nfnl::NLMSG_HDRLEN
            } else {
                align4(echoed)
            };
            m.payload
                .get(4 + skip..)
                .and_then(|tlvs| string_attr(tlvs, nfnl::NLMSGERR_ATTR_MSG))
        } else {
            None
        };
        out.push(Answer {
            seq: m.seq,
            errno: -code,
            text,
        });
    }
    Ok(out)
}

/// Applies an nfnetlink batch (as built by `kvnet_firewall::encode_add_new`)
/// in the calling thread's network namespace, without the `nft` binary.
///
/// The kernel applies the batch atomically: if any message fails, nothing is
/// committed. Every message carrying `NLM_F_ACK` is waited for; the first
/// failure is returned with its errno and the message it belongs to, e.g.
/// `create chain to_virbr0: File exists (os error 17)`. The batch must start
/// with BATCH_BEGIN and end with BATCH_END: without the end the kernel
/// acknowledges the messages but commits nothing.
pub fn apply_batch(batch: &[u8]) -> Result<(), HostError> {
    send_batch(&netfilter_socket()?, batch)
}

/// [`apply_batch`] on a socket that stays open: the tables the batch creates with
/// `NFT_TABLE_F_OWNER` belong to the returned descriptor, and the kernel deletes them
/// when it is closed.
pub fn apply_batch_owned(batch: &[u8]) -> Result<std::os::fd::OwnedFd, HostError> {
    let fd = netfilter_socket()?;
    send_batch(&fd, batch)?;
    Ok(fd)
}

fn send_batch(fd: &std::os::fd::OwnedFd, batch: &[u8]) -> Result<(), HostError> {
    use std::collections::{HashMap, HashSet};
    use std::os::fd::AsRawFd;

    let ctx = "nftables batch";
    let msgs =
        split_messages(batch).ok_or_else(|| HostError::invalid(ctx, "malformed netlink batch"))?;
    let (Some(first), Some(last)) = (msgs.first(), msgs.last()) else {
        return Err(HostError::invalid(ctx, "empty batch"));
    };
    if first.kind != nfnl::NFNL_MSG_BATCH_BEGIN || last.kind != nfnl::NFNL_MSG_BATCH_END {
        return Err(HostError::invalid(
            ctx,
            "batch must start with BATCH_BEGIN and end with BATCH_END",
        ));
    }
    // What each acknowledged message does, by seq; rules are numbered per chain.
    let mut described: HashMap<u32, String> = HashMap::new();
    let mut rules_per_chain: HashMap<Option<String>, usize> = HashMap::new();
    for m in &msgs[1..msgs.len() - 1] {
        let mut index = 0;
        if m.kind & 0xff == nfnl::NFT_MSG_NEWRULE {
            let chain = m
                .payload
                .get(nfnl::NFGENMSG_LEN..)
                .and_then(|a| string_attr(a, nfnl::NFTA_RULE_CHAIN));
            let n = rules_per_chain.entry(chain).or_default();
            *n += 1;
            index = *n;
        }
        if m.flags & nfnl::NLM_F_ACK != 0 {
            described.insert(m.seq, describe(m, index));
        }
    }
    let mut pending: HashSet<u32> = described.keys().copied().collect();

    let _own = crate::nftwatch::own_socket(fd)?;
    // Netlink refuses a datagram larger than the send buffer (EMSGSIZE): thousands of
    // port forwards make a batch of several hundred KiB. As nft does, raise it first.
    if batch.len() > 64 * 1024 {
        let size = libc::c_int::try_from(batch.len() * 2).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: size is a live c_int and its length is given.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
    }
    // SAFETY: sockaddr_nl is plain data; all-zero means "the kernel".
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: batch and kernel outlive the call; lengths match.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            batch.as_ptr().cast(),
            batch.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(HostError::new(
            format!("{ctx}: send"),
            std::io::Error::last_os_error(),
        ));
    }
    if sent as usize != batch.len() {
        return Err(HostError::invalid(ctx, "short send"));
    }

    let mut first_error: Option<Answer> = None;
    let mut buf = vec![0u8; 64 * 1024];
    // Once an error is in, the rest of the answers (if any: a malformed
    // batch gets a single one) are already queued, so drain without waiting.
    while !pending.is_empty() {
        let flags = if first_error.is_some() {
            libc::MSG_DONTWAIT
        } else {
            0
        };
        // SAFETY: buf is a live, writable buffer of the given length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if first_error.is_some() => break,
                _ => return Err(HostError::new(format!("{ctx}: receive"), e)),
            }
        }
        for a in parse_answers(&buf[..n as usize])? {
            pending.remove(&a.seq);
            // A failing message beats the batch-level error the kernel
            // reports against BATCH_BEGIN (e.g. when the commit fails).
            let better = match &first_error {
                None => true,
                Some(e) => !described.contains_key(&e.seq),
            };
            if a.errno != 0 && better {
                first_error = Some(a);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(a) => {
            let what = described
                .get(&a.seq)
                .cloned()
                .unwrap_or_else(|| ctx.to_string());
            Err(HostError::netlink(what, a.errno, a.text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_fed_and_read_at_once_whatever_the_sizes() {
        // More than a pipe holds both ways: feeding first, then reading, would deadlock.
        let input = "x".repeat(1 << 20);
        let out = run_program("cat", "cat", &[], Some(&input), TIMEOUT).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), input.len());
        let out = run_program(
            "sh",
            "fail",
            &["-c", "echo oops >&2; exit 3"],
            Some("ignored"),
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    }

    #[test]
    fn a_program_that_hangs_is_killed_at_the_timeout() {
        let short = Duration::from_millis(300);
        for (args, stdin) in [
            (&["-c", "exec sleep 30"][..], None),
            // Neither reading its input nor exiting.
            (&["-c", "exec sleep 30"][..], Some("x".repeat(1 << 20))),
        ] {
            let t0 = Instant::now();
            let e = run_program("sh", "nft apply", args, stdin.as_deref(), short).unwrap_err();
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            assert_eq!(
                e.to_string(),
                "nft apply: sh did not finish within 300ms: killed"
            );
        }
    }

    /// A message with nfgenmsg and one string attribute.
    fn msg(kind: u16, flags: u16, seq: u32, attr: Option<(u16, &str)>) -> Vec<u8> {
        let mut body = vec![1, 0, 0, 0];
        if let Some((t, s)) = attr {
            let len = (4 + s.len() + 1) as u16;
            body.extend_from_slice(&len.to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(s.as_bytes());
            body.push(0);
            body.resize(align4(body.len()), 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn messages_are_described_by_object() {
        let chain = msg(
            (nfnl::NFNL_SUBSYS_NFTABLES << 8) | nfnl::NFT_MSG_NEWCHAIN,
            5,
            2,
            Some((nfnl::NFTA_CHAIN_NAME, "to_virbr0")),
        );
        let rule = msg(
            (nfnl::NFNL_SUBSYS_NFTABLES << 8) | nfnl::NFT_MSG_NEWRULE,
            5,
            3,
            Some((nfnl::NFTA_RULE_CHAIN, "to_virbr0")),
        );
        let both = [chain, rule].concat();
        let msgs = split_messages(&both).unwrap();
        assert_eq!(describe(&msgs[0], 0), "create chain to_virbr0");
        assert_eq!(describe(&msgs[1], 2), "add rule to_virbr0 (#2)");
    }

    #[test]
    fn incomplete_batches_are_refused_before_sending() {
        let begin = msg(nfnl::NFNL_MSG_BATCH_BEGIN, 1, 1, None);
        let err = apply_batch(&begin).unwrap_err();
        assert!(err.to_string().contains("BATCH_END"), "{err}");
        let mut truncated = begin.clone();
        truncated.pop();
        assert!(apply_batch(&truncated).is_err());
        assert!(apply_batch(&[]).is_err());
    }

    #[test]
    fn error_answers_carry_errno_and_seq() {
        let mut payload = (-libc::EEXIST).to_ne_bytes().to_vec();
        payload.extend_from_slice(&msg(0, 0, 7, None)[..16]);
        let mut reply = Vec::new();
        reply.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        reply.extend_from_slice(&nfnl::NLMSG_ERROR.to_ne_bytes());
        reply.extend_from_slice(&nfnl::NLM_F_CAPPED.to_ne_bytes());
        reply.extend_from_slice(&7u32.to_ne_bytes());
        reply.extend_from_slice(&0u32.to_ne_bytes());
        reply.extend_from_slice(&payload);
        let answers = parse_answers(&reply).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!((answers[0].seq, answers[0].errno), (7, libc::EEXIST));
    }
}
