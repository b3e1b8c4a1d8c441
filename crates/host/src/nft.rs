//! nftables through the `nft` binary: one script = one atomic transaction.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::{ErrorKind, HostError};

/// The `nft` binary: `$KVNET_NFT` if set, else `nft` from `PATH`.
pub fn binary() -> String {
    std::env::var("KVNET_NFT").unwrap_or_else(|_| "nft".to_string())
}

fn run(context: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, HostError> {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HostError::new(format!("{context}: spawn {}", binary()), e))?;
    if let Some(input) = stdin {
        // Dropping the pipe after writing gives nft its EOF.
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // An nft that exits early closes its stdin: its exit status and stderr, read
        // below, say why, better than the EPIPE would.
        if let Err(e) = pipe.write_all(input.as_bytes())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(HostError::new(format!("{context}: write to nft"), e));
        }
    }
    child
        .wait_with_output()
        .map_err(|e| HostError::new(format!("{context}: wait for nft"), e))
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
    let context = format!("nft list table {family} {table}");
    let out = run(&context, &["list", "table", family, table], None)?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    // nft has no distinct exit code for "absent"; it reports the kernel's ENOENT.
    if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
        return Ok(None);
    }
    Err(command_error(&context, &out))
}
