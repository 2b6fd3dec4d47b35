//! Client steps of the root-tier scenarios: connects and admin calls retried over the brief
//! 4111/503 windows that elections cause, and the events a history recorded.

use std::time::Duration;

use serde_json::Value;
use tether_protocol::Welcome;

/// Connects `session` (resuming if it has a session) to node `node` at `url`, again while it
/// is refused 4111 (`registry_unavailable`: the node is briefly cut off from the quorum, e.g.
/// while the election that a healed node's higher term causes runs, cluster.md §9), for up to
/// 30 s, as a client reconnecting with backoff would.
pub async fn session_past_4111(
    session: &mut crate::client::Session,
    history: &crate::history::History,
    node: u64,
    url: &str,
) -> Result<Welcome, Option<u16>> {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match session
            .connect(history, node, url, Duration::from_secs(20))
            .await
        {
            Err(Some(4111)) if tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// An admin call that must succeed: repeats `attempt` (each try recorded in the history)
/// while it fails with 503 (no leader reachable for a moment, as during the election after a
/// heal) or no answer, for up to 30 s, and panics unless it succeeds; returns the body.
pub async fn recorded_ok<F, Fut>(what: &str, mut attempt: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::admin::Outcome>,
{
    use crate::admin::Outcome;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Outcome::Ok { body, .. } => return body,
            Outcome::Fail {
                status: Some(503) | None,
                ..
            } if tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Outcome::Fail { status, error } => panic!("{what}: {status:?} {error}"),
        }
    }
}

/// `(seq, n)` of every event the history recorded on connections `conns`, in order.
pub fn recorded_events(
    history: &crate::history::History,
    conns: &[crate::history::Id],
) -> Vec<(u64, u64)> {
    use crate::history::Event;
    history
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Frame {
                conn, kind, seq, n, ..
            } if kind == "event" && conns.contains(&conn) => Some((seq?, n?)),
            _ => None,
        })
        .collect()
}
