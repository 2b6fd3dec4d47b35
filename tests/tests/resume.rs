//! Resume: a dropped connection keeps its session for `resume_window`; a resume on the same
//! node replays what the client missed, in order, filtered by its current permissions; a
//! second resume takes the session over (4009); a resume on another node continues the
//! numbering with `recovered: false`; revoked and logged-out sessions cannot be resumed.

use serde_json::{Value, json};
use tether_tests::admin::call;
use tether_tests::client::{WsClient, request};
use tether_tests::cluster::TestCluster;
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

/// Sends a resume hello with `token` for the session of `welcome`, returning the client.
async fn resume(url: &str, token: &str, welcome: &Value, last_seq: u64) -> WsClient {
    let mut c = WsClient::upgrade(request(url, Some(token), None, None))
        .await
        .expect("upgrade");
    let resume = json!({
        "session_id": welcome["session_id"],
        "resume_token": welcome["resume_token"],
        "last_seq": last_seq,
    });
    c.send_json(&json!({"type": "hello", "resume": resume}))
        .await;
    c
}

/// Waits until `node` holds no attached connection (the dropped one was detached).
async fn wait_detached(node: &TestNode) {
    tether_tests::wait_for(
        "the session to be detached",
        tether_tests::DEADLINE,
        || async {
            let m = call(node, "GET", "/metrics", None).await.body;
            m.as_str()
                .unwrap_or_default()
                .contains("tether_connections 0")
                .then_some(())
        },
    )
    .await;
}

async fn publish(node: &TestNode, channel: &str, n: u64) {
    let body = json!({"tenant": "acme", "channel": channel, "data": {"n": n}});
    let r = call(node, "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Events published while the client was away are replayed after a same-node resume, in
/// order, exactly once, with seq continuing; the session id is kept.
#[tokio::test]
async fn same_node_resume_replays_missed_events() {
    let node = TestNode::start().await;
    let t = token("alice", &["sub:chat.*"]);
    let (mut c, w) = WsClient::connect(&node.ws_url(), &t).await;
    assert_eq!(c.subscribe("chat.a", 1).await["ok"], true);
    publish(&node, "chat.a", 1).await;
    let first = c.next_of("event").await;
    let last_seq = first["seq"].as_u64().unwrap();
    drop(c); // network drop: no close frame
    // The node notices the drop and detaches the session; publish while it is away.
    wait_detached(&node).await;
    // The admin API tells the detached session apart, with the end of its resume window.
    let path = format!("/v1/sessions/{}", w["session_id"].as_str().unwrap());
    let shown = tether_tests::wait_for(
        "the session shown detached",
        tether_tests::DEADLINE,
        || async {
            let s = call(&node, "GET", &path, None).await.body;
            (s["state"] == "detached").then_some(s)
        },
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let until = shown["resumable_until"].as_u64().expect("resumable_until");
    assert!(until + 5 >= now && until <= now + 3600, "{shown}");
    for n in 2..=4 {
        publish(&node, "chat.a", n).await;
    }
    let mut c = resume(&node.ws_url(), &t, &w, last_seq).await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        (welcome["resumed"].as_bool(), welcome["recovered"].as_bool()),
        (Some(true), Some(true)),
        "{welcome}"
    );
    assert_eq!(welcome["session_id"], w["session_id"]);
    assert_ne!(
        welcome["resume_token"], w["resume_token"],
        "the resume token rotates"
    );
    let mut seq = last_seq;
    for n in 2..=4 {
        let ev = c.next_of("event").await;
        assert_eq!(ev["data"]["n"], n);
        assert_eq!(ev["seq"].as_u64().unwrap(), seq + 1);
        seq += 1;
    }
    // Still subscribed after the resume: live events keep flowing.
    publish(&node, "chat.a", 5).await;
    assert_eq!(c.next_of("event").await["seq"].as_u64().unwrap(), seq + 1);
    let s = call(&node, "GET", &path, None).await.body;
    assert_eq!(
        (s["state"].as_str(), s["resumable_until"].is_null()),
        (Some("live"), true),
        "{s}"
    );
}

/// A second resume of a live session takes it over: the older connection closes 4009.
#[tokio::test]
async fn second_resume_takes_over_4009() {
    let node = TestNode::start().await;
    let t = token("bob", &[]);
    let (mut old, w) = WsClient::connect(&node.ws_url(), &t).await;
    let mut new = resume(&node.ws_url(), &t, &w, 0).await;
    assert_eq!(new.next_json().await["resumed"], true);
    let closed = old.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4009, "session_taken_over")
    );
    // The old socket's end (its close reply) must not cost the new connection anything.
    drop(old);
    for n in 1..=2 {
        let body = json!({"tenant": "acme", "session": w["session_id"], "data": {"n": n}});
        let r = call(&node, "POST", "/v1/publish", Some(body)).await;
        assert_eq!(r.body["delivered"], 1, "{}", r.body);
        assert_eq!(new.next_of("event").await["data"]["n"], n);
    }
}

/// A stale or wrong resume token starts a fresh session instead.
#[tokio::test]
async fn wrong_resume_token_starts_fresh_session() {
    let node = TestNode::start().await;
    let t = token("carol", &[]);
    let (_c, w) = WsClient::connect(&node.ws_url(), &t).await;
    let mut forged = w.clone();
    forged["resume_token"] = json!("not-the-token");
    let mut c = resume(&node.ws_url(), &t, &forged, 0).await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["resumed"], false, "{welcome}");
    assert_ne!(welcome["session_id"], w["session_id"]);
}

/// A permission lost while offline: events of that channel are not replayed.
#[tokio::test]
async fn permission_lost_offline_not_replayed() {
    let node = TestNode::start().await;
    let t = token("dave", &["sub:chat.*", "sub:news.*"]);
    let (mut c, w) = WsClient::connect(&node.ws_url(), &t).await;
    assert_eq!(c.subscribe("chat.a", 1).await["ok"], true);
    assert_eq!(c.subscribe("news.a", 2).await["ok"], true);
    drop(c);
    wait_detached(&node).await;
    publish(&node, "chat.a", 1).await;
    publish(&node, "news.a", 2).await;
    let perms = json!({"permissions": ["sub:news.*"]});
    assert_eq!(
        call(
            &node,
            "PUT",
            "/v1/tenants/acme/users/dave/permissions",
            Some(perms)
        )
        .await
        .status,
        200
    );
    let mut c = resume(&node.ws_url(), &t, &w, 0).await;
    let welcome = c.next_json().await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["permissions"], json!(["sub:news.*"]));
    // Only the news event comes back; the chat one is filtered out.
    let mut got = Vec::new();
    loop {
        let f = c.next_json().await;
        if f["type"] == "event" {
            got.push(f["channel"].as_str().unwrap_or_default().to_owned());
            if f["channel"] == "news.a" {
                break;
            }
        }
    }
    assert_eq!(got, vec!["news.a".to_owned()]);
}

/// Resume on another node: the session moves (the old owner's connection closes 4009), the
/// old owner hands over its numbering, subscriptions and missed events (`recovered: true`),
/// and live events keep flowing on the new node.
#[tokio::test]
async fn resume_on_another_node_recovers_backlog() {
    let c = TestCluster::start(3, 0, "").await;
    let t = token("erin", &["sub:chat.*"]);
    let (mut old, w) = WsClient::connect(&c.node(1).ws_url(), &t).await;
    assert_eq!(old.subscribe("chat.a", 1).await["ok"], true);
    publish(c.node(3), "chat.a", 1).await;
    let first = old.next_of("event").await;
    let last_seq = first["seq"].as_u64().unwrap();
    drop(old);
    wait_detached(c.node(1)).await;
    publish(c.node(3), "chat.a", 2).await;
    publish(c.node(3), "chat.a", 3).await;
    let mut moved = resume(&c.node(2).ws_url(), &t, &w, last_seq).await;
    let welcome = moved.next_json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        (welcome["resumed"].as_bool(), welcome["recovered"].as_bool()),
        (Some(true), Some(true)),
        "{welcome}"
    );
    assert_eq!(welcome["node"], "n2");
    for n in 2..=3 {
        let ev = moved.next_of("event").await;
        assert_eq!(
            (ev["data"]["n"].as_u64(), ev["seq"].as_u64()),
            (Some(n), Some(last_seq + n - 1)),
            "{ev}"
        );
    }
    // The subscription moved too: a new publish reaches the client on node 2, numbered on.
    publish(c.node(3), "chat.a", 4).await;
    let ev = moved.next_of("event").await;
    assert_eq!(
        (ev["data"]["n"].as_u64(), ev["seq"].as_u64()),
        (Some(4), Some(last_seq + 3)),
        "{ev}"
    );
    let s = call(
        c.node(3),
        "GET",
        &format!("/v1/sessions/{}", w["session_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s.body["node"], 2, "{}", s.body);
}

/// Resume after the owner node was killed: the session moves, numbering continues after
/// `last_seq`, and the welcome says `recovered: false` (the backlog died with the node);
/// a still-open connection on a live owner would have been closed 4009.
#[tokio::test]
async fn resume_after_owner_killed_is_not_recovered() {
    let mut c = TestCluster::start(3, 0, "").await;
    let t = token("finn", &[]);
    let (old, w) = WsClient::connect(&c.node(3).ws_url(), &t).await;
    c.node_mut(3).kill();
    drop(old);
    let mut moved = resume(&c.node(1).ws_url(), &t, &w, 7).await;
    let welcome = moved.next_json().await;
    assert_eq!(
        (welcome["resumed"].as_bool(), welcome["recovered"].as_bool()),
        (Some(true), Some(false)),
        "{welcome}"
    );
    assert_eq!(welcome["seq"], 7);
    // A publish is routed by the publishing node's copy of the registry, which applies the
    // move a heartbeat after the welcome. The session lookup reads through a barrier, so
    // once it answers, node 2 has applied the move too.
    let path = format!("/v1/sessions/{}", w["session_id"].as_str().unwrap());
    let s = call(c.node(2), "GET", &path, None).await;
    assert_eq!(s.body["node"], 1, "{}", s.body);
    let body = json!({"tenant": "acme", "session": w["session_id"], "data": {"x": 1}});
    let r = call(c.node(2), "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.body["delivered"], 1, "{}", r.body);
    assert_eq!(moved.next_of("event").await["seq"], 8);
}
