//! `log-queries`: one line per query for the shell to log, dnsmasq-style.

use hickory_proto::op::Message;

use crate::engine::{Decision, Peer};

/// Answers named in one line at most; the rest are counted.
const MAX_LISTED: usize = 4;

/// What `client` asked in `query` and what the engine decided: e.g.
/// `query[A] x.apps.lab from 10.0.0.9:5353: NOERROR x.apps.lab. A 10.0.0.50` or
/// `query[A] example.org from …: forwarded to 192.0.2.53:53`.
pub fn query_log_line(client: Peer, query: &[u8], d: &Decision) -> String {
    let question = Message::from_vec(query)
        .ok()
        .and_then(|m| m.queries.first().cloned())
        .map_or_else(
            || "unreadable query".to_string(),
            |q| format!("query[{}] {}", q.query_type(), q.name()),
        );
    let what = match d {
        Decision::Forward { to, .. } => format!("forwarded to {}", to.addr),
        Decision::Drop => "dropped".to_string(),
        Decision::Answer { bytes, .. } => match Message::from_vec(bytes) {
            Err(_) => "answered".to_string(),
            Ok(m) => {
                let mut s = m.metadata.response_code.to_string();
                for r in m.answers.iter().take(MAX_LISTED) {
                    s.push_str(&format!(" {} {} {}", r.name, r.record_type(), r.data));
                }
                if m.answers.len() > MAX_LISTED {
                    s.push_str(&format!(" (+{} more)", m.answers.len() - MAX_LISTED));
                }
                s
            }
        },
    };
    // Names from the wire are printed escaped by hickory; no control character reaches
    // the log.
    format!("{question} from {}: {what}", client.addr)
        .escape_debug()
        .to_string()
}
