//! Other firewalls' rules through their own tools: nftables listings as JSON
//! (`nft -j list …`) and iptables-legacy's (`iptables-legacy-save`), read only,, and the iptables CLI, the one safe way to
//! change the tables iptables-nft owns (its rules hold xtables expressions nft
//! cannot write). Each command's commits are registered as kvnet's own
//! ([`crate::nftwatch::own_process`]), so kvnet's watchers do not react to them.

use crate::{ErrorKind, HostError};
use std::process::{Command, Output, Stdio};

/// Runs `program` (its commits are kvnet's own) within nft's deadline: iptables may
/// wait for the xtables lock, and kvnetd waits for it on its only thread.
fn run(program: &str, args: &[String]) -> Result<Output, HostError> {
    let context = format!("{program} {}", args.join(" "));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = crate::nft::run_program(program, &context, &args, None, crate::nft::TIMEOUT)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(HostError::new(
            context,
            ErrorKind::Command {
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            },
        ))
    }
}

/// The output of `program ARGS` (a listing: `iptables-legacy-save -t filter`), in the
/// calling thread's network namespace.
pub fn output(program: &str, args: &[&str]) -> Result<String, HostError> {
    let all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = run(program, &all)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The output of `nft ARGS` (e.g. `-j list table ip filter`).
pub fn nft_output(args: &[&str]) -> Result<String, HostError> {
    output(&crate::nft::binary(), args)
}

/// Runs `program` (`iptables-nft`, `ip6tables-nft`, …) with `args`; its stderr is in
/// the error.
pub fn iptables(program: &str, args: &[String]) -> Result<(), HostError> {
    run(program, args).map(drop)
}

/// Whether `program` can be run (found on PATH).
pub fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
