//! The daemon's event bus (`net-event`, the `events` request): what happens to
//! networks, leases, ports and forwards, broadcast to every subscriber. Emitting never
//! waits: a subscriber that falls [`BACKLOG`] events behind loses the oldest, and its
//! stream says how many (a `gap` event). A leaf: anything may emit, the API's
//! connections subscribe.

use kvnet_api::{EventKind, NetEvent};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tokio::sync::broadcast;

/// Events a subscriber may be behind before it loses some.
pub const BACKLOG: usize = 1024;

fn bus() -> &'static broadcast::Sender<NetEvent> {
    static BUS: OnceLock<broadcast::Sender<NetEvent>> = OnceLock::new();
    BUS.get_or_init(|| broadcast::channel(BACKLOG).0)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Announce `action` of `kind` on `network`, with `detail` (key, value) pairs.
pub fn emit(network: &str, kind: EventKind, action: &str, detail: &[(&str, String)]) {
    let ev = NetEvent {
        time_ms: now_ms(),
        network: network.to_string(),
        kind,
        action: action.to_string(),
        detail: detail
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    // No subscriber is not an error.
    let _ = bus().send(ev);
}

pub fn subscribe() -> broadcast::Receiver<NetEvent> {
    bus().subscribe()
}

/// The marker a stream gets in place of `count` events it lost.
pub fn gap(count: u64) -> NetEvent {
    NetEvent {
        time_ms: now_ms(),
        network: String::new(),
        kind: EventKind::Gap,
        action: "dropped".into(),
        detail: BTreeMap::from([("count".to_string(), count.to_string())]),
    }
}

/// Whether a subscription for `network` and `kinds` (empty: all) wants `ev`. Gaps
/// always go through.
pub fn wanted(ev: &NetEvent, network: Option<&str>, kinds: &[EventKind]) -> bool {
    ev.kind == EventKind::Gap
        || (network.is_none_or(|n| n == ev.network)
            && (kinds.is_empty() || kinds.contains(&ev.kind)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_and_emitters_never_wait() {
        // The bus's channel, on its own (the global one is shared by every test).
        let (tx, mut rx) = broadcast::channel::<u64>(BACKLOG);
        for i in 0..BACKLOG as u64 + 10 {
            let _ = tx.send(i);
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap(), 10);
    }

    #[test]
    fn subscriptions_filter_by_network_and_kind() {
        let ev = |n: &str, k| NetEvent {
            time_ms: 0,
            network: n.into(),
            kind: k,
            action: "x".into(),
            detail: BTreeMap::new(),
        };
        assert!(wanted(&ev("a", EventKind::Port), None, &[]));
        assert!(!wanted(&ev("a", EventKind::Port), Some("b"), &[]));
        assert!(!wanted(
            &ev("a", EventKind::Port),
            None,
            &[EventKind::Lease]
        ));
        assert!(wanted(&gap(3), Some("b"), &[EventKind::Lease]));
    }
}
