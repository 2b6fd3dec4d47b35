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
