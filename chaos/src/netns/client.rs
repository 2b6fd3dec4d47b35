//! Client steps of the root-tier scenarios that report a refusal as its close code, and a
//! retry for the brief 4111 windows that elections cause.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tether_tests::client::{WsClient, request};
use tokio_tungstenite::tungstenite::Message;

/// Connects with `token` (header) and sends `hello` (with `resume` if given): the client and
/// its welcome, or the close code the node answered with.
pub async fn hello(
    url: &str,
    token: &str,
    resume: Option<Value>,
) -> Result<(WsClient, Value), u16> {
    let mut c = WsClient::upgrade(request(url, Some(token), None, None))
        .await
        .expect("upgrade");
    let hello = match resume {
        Some(r) => json!({"type": "hello", "resume": r}),
        None => json!({"type": "hello"}),
    };
    c.send_json(&hello).await;
    match tokio::time::timeout(Duration::from_secs(20), c.ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            let v: Value = serde_json::from_str(&t).expect("JSON frame");
            assert_eq!(v["type"], "welcome", "{v}");
            Ok((c, v))
        }
        Ok(Some(Ok(Message::Close(Some(f))))) => Err(u16::from(f.code)),
        other => panic!("no answer to hello on {url}: {other:?}"),
    }
}

/// The `resume` object of a hello that resumes the session of `welcome`.
pub fn resume_of(welcome: &Value, last_seq: u64) -> Value {
    json!({"session_id": welcome["session_id"], "resume_token": welcome["resume_token"], "last_seq": last_seq})
}

/// Repeats `attempt` while it is refused with 4111 (`registry_unavailable`: the node is
/// briefly cut off from the quorum, e.g. while the election that a healed node's higher term
/// causes runs, cluster.md §9) for up to 30 s, as a client reconnecting with backoff would.
pub async fn past_4111<T, F, Fut>(mut attempt: F) -> Result<T, u16>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, u16>>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Err(4111) if tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// An admin call that must succeed, repeated while the node answers 503 (no leader reachable
/// for a moment, as during the election after a heal) for up to 30 s; returns the body.
pub async fn admin_ok(
    node: &tether_tests::node::TestNode,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = tether_tests::admin::call(node, method, path, body.clone()).await;
        if r.status == 503 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        assert_eq!(r.status, 200, "{method} {path} on n{}: {}", node.id, r.body);
        return r.body;
    }
}

/// [`past_4111`] for a recorded session: connects `session` (resuming if it has a session)
/// to node `node` at `url`, again while it is refused 4111, for up to 30 s.
pub async fn session_past_4111(
    session: &mut crate::client::Session,
    history: &crate::history::History,
    node: u64,
    url: &str,
) -> Result<Value, Option<u16>> {
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

/// [`admin_ok`] for a recorded call: repeats `attempt` (each try recorded in the history)
/// while it fails with 503 or no answer, for up to 30 s, and panics unless it succeeds;
/// returns the body.
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
