//! `net-event`: kvnetd's events as they happen, like `virsh net-event`, plus the lease,
//! port and forward events libvirt does not have.

use anyhow::{Context, Result, bail};
use clap::Args;
use kvnet_api::request::{Events, Request};
use kvnet_api::{EventKind, NetEvent, Reply};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct NetEventArgs {
    /// Only this network's events.
    network: Option<String>,
    /// Keep printing events (default: exit after the first).
    #[arg(long = "loop")]
    keep: bool,
    /// Only these kinds: lifecycle, lease, port, forward (repeatable).
    #[arg(long = "event", value_parser = kind)]
    kinds: Vec<EventKind>,
    /// Stop after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Prefix each event with its local time.
    #[arg(long)]
    timestamp: bool,
    /// One JSON object a line.
    #[arg(long)]
    json: bool,
}

fn kind(s: &str) -> Result<EventKind, String> {
    match s {
        "lifecycle" => Ok(EventKind::Lifecycle),
        "lease" => Ok(EventKind::Lease),
        "port" => Ok(EventKind::Port),
        "forward" => Ok(EventKind::Forward),
        _ => Err(format!(
            "unknown event '{s}', expected lifecycle, lease, port or forward"
        )),
    }
}

/// One event as virsh prints them: `event 'lifecycle' for network default: Started`.
pub fn describe(ev: &NetEvent) -> String {
    if ev.kind == EventKind::Gap {
        let n = ev.detail.get("count").map_or("?", String::as_str);
        return format!("{n} events dropped: this reader fell behind");
    }
    let what = match ev.kind {
        // libvirt's words: Defined, Undefined, Started, Stopped.
        EventKind::Lifecycle => {
            let mut c = ev.action.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => {
            let mut s = ev.action.clone();
            for key in ["address", "mac", "hostname", "port", "forward", "to"] {
                if let Some(v) = ev.detail.get(key) {
                    s.push(' ');
                    if key == "to" {
                        s.push_str("-> ");
                    }
                    s.push_str(v);
                }
            }
            s
        }
    };
    format!("event '{}' for network {}: {what}", ev.kind, ev.network)
}

pub fn run(socket: &Path, a: NetEventArgs) -> Result<()> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to kvnetd at {}", socket.display()))?;
    let req = Request::Events(Events {
        network: a.network.clone(),
        kinds: a.kinds.clone(),
    });
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let deadline = a.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut rd = BufReader::new(s.try_clone()?);
    let mut buf = String::new();
    rd.read_line(&mut buf)?;
    let reply: Reply = serde_json::from_str(&buf).context("kvnetd's reply")?;
    if !reply.ok {
        bail!("{}", reply.error.unwrap_or_default());
    }
    let out = std::io::stdout();
    loop {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            s.set_read_timeout(Some(left))?;
        }
        buf.clear();
        match rd.read_line(&mut buf) {
            Ok(0) => bail!("kvnetd closed the event stream"),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let ev: NetEvent = serde_json::from_str(&buf).context("an event")?;
        let mut o = out.lock();
        if a.json {
            writeln!(o, "{}", buf.trim_end())?;
        } else {
            if a.timestamp {
                write!(o, "{}: ", stamp(ev.time_ms))?;
            }
            writeln!(o, "{}", describe(&ev))?;
        }
        o.flush()?;
        if !a.keep && ev.kind != EventKind::Gap {
            return Ok(());
        }
    }
}

/// `2026-12-05 08:30:00.123+0000`, virsh's --timestamp form, in local time.
fn stamp(ms: u64) -> String {
    let tz = jiff::tz::TimeZone::system();
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms as i64) else {
        return ms.to_string();
    };
    let dt = tz.to_datetime(ts);
    let off = tz.to_offset(ts).seconds();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}{sign}{:02}{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000_000,
        off / 3600,
        off % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(kind: EventKind, action: &str, detail: &[(&str, &str)]) -> NetEvent {
        NetEvent {
            time_ms: 0,
            network: "default".into(),
            kind,
            action: action.into(),
            detail: detail
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn events_print_as_virsh_prints_them() {
        assert_eq!(
            describe(&ev(EventKind::Lifecycle, "started", &[])),
            "event 'lifecycle' for network default: Started"
        );
        assert_eq!(
            describe(&ev(
                EventKind::Lease,
                "added",
                &[
                    ("address", "192.168.122.5"),
                    ("mac", "52:54:00:00:00:01"),
                    ("hostname", "vm1")
                ]
            )),
            "event 'lease' for network default: added 192.168.122.5 52:54:00:00:00:01 vm1"
        );
        assert_eq!(
            describe(&ev(
                EventKind::Forward,
                "moved",
                &[("forward", "tcp *:2222 -> vm1:22"), ("to", "192.168.122.9")]
            )),
            "event 'forward' for network default: moved tcp *:2222 -> vm1:22 -> 192.168.122.9"
        );
        let mut g = ev(EventKind::Gap, "dropped", &[("count", "7")]);
        g.network.clear();
        assert_eq!(describe(&g), "7 events dropped: this reader fell behind");
    }
}
