//! Admission limits seen from outside: per-IP connection cap, per-IP handshake rate, and the
//! per-user session cap (node-wide and per tenant).

use std::net::IpAddr;

use serde_json::{Value, json};
use tether_tests::DEADLINE;
use tether_tests::client::{Carrier, WsClient, refused_status, request, tcp_from};
use tether_tests::node::{NodeSpec, TestNode};
use tether_tests::tokens::*;

const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Upgrades from `src` with a header token and sends `hello` (welcome unread).
async fn upgrade_from(
    node: &TestNode,
    src: IpAddr,
    token: &str,
) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
    let req = request(&node.ws_url(), Some(token), None, None);
    let mut c = WsClient::upgrade_from(src, &node.client_addr, req).await?;
    c.send_json(&json!({"type": "hello"})).await;
    Ok(c)
}

async fn welcome(c: &mut WsClient) -> Value {
    let w = c.next_json().await;
    assert_eq!(w["type"], "welcome", "{w}");
    w
}

/// With `max_connections_per_ip = 3`, the 4th upgrade from 127.0.0.1 is refused with HTTP
/// 429 while 127.0.0.2 still connects, and closing one connection frees exactly one slot.
#[tokio::test]
async fn per_ip_cap_refuses_fourth_and_frees_on_close() {
    let node = TestNode::start_with(
        "max_connections_per_ip = 3\nhandshakes_per_ip_per_sec = 1000",
        "",
    )
    .await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = upgrade_from(&node, HOME, &token(&format!("u{i}"), &[]))
            .await
            .expect("upgrade within the cap");
        welcome(&mut c).await;
        held.push(c);
    }
    let fourth = upgrade_from(&node, HOME, &token("u3", &[])).await;
    assert_eq!(refused_status(&fourth), Some(429), "4th from 127.0.0.1");
    if let Err(tokio_tungstenite::tungstenite::Error::Http(resp)) = &fourth {
        let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
            .expect("JSON error body");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let mut other = upgrade_from(&node, OTHER, &token("v0", &[]))
        .await
        .expect("another source address is not capped");
    welcome(&mut other).await;

    held.pop().expect("held").close_and_drain().await;
    let mut again = tether_tests::wait_for("a freed per-IP slot", DEADLINE, || {
        let node = &node;
        async move { upgrade_from(node, HOME, &token("u4", &[])).await.ok() }
    })
    .await;
    welcome(&mut again).await;
    // One close freed one slot, not more.
    let over = upgrade_from(&node, HOME, &token("u5", &[])).await;
    assert_eq!(refused_status(&over), Some(429), "cap again after refill");
    // The connections that stayed are unaffected.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.subscribe("x.y", i as u64 + 1).await["type"], "reply");
    }
}

/// With `handshakes_per_ip_per_sec = 5`, a burst of upgrades from one address gets HTTP 429
/// for all but about 5, another address is unaffected, and the address recovers later.
#[tokio::test]
async fn handshake_rate_refuses_burst() {
    let node = TestNode::start_with("handshakes_per_ip_per_sec = 5", "").await;
    let t = token("alice", &[]);
    let started = tokio::time::Instant::now();
    let burst = (0..20).map(|_| {
        WsClient::upgrade_from(
            HOME,
            &node.client_addr,
            request(&node.ws_url(), Some(&t), None, None),
        )
    });
    let results = futures_util::future::join_all(burst).await;
    let elapsed = started.elapsed();
    let refused = results
        .iter()
        .filter(|r| refused_status(r) == Some(429))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok + refused, 20, "other failures in the burst");
    // 5 in the bucket, plus one token per 200 ms the burst took to arrive.
    let refill = (elapsed.as_millis() / 200) as usize + 1;
    assert!(
        (1..=5 + refill).contains(&ok),
        "{ok} admitted, {refused} refused in {elapsed:?}"
    );
    assert!(
        refused >= 1 && refused >= 15usize.saturating_sub(refill),
        "only {refused} refused in {elapsed:?}"
    );
    drop(results);

    let mut other = upgrade_from(&node, OTHER, &t)
        .await
        .expect("another address has its own budget");
    welcome(&mut other).await;
    let mut back = tether_tests::wait_for("the handshake budget to refill", DEADLINE, || {
        let (node, t) = (&node, &t);
        async move { upgrade_from(node, HOME, t).await.ok() }
    })
    .await;
    welcome(&mut back).await;
}

/// With `max_connections_per_user = 2`, the third connection of the same user is closed 4108
/// (rate_limited), its first two stay up, and a different user still connects.
#[tokio::test]
async fn per_user_cap_closes_third_4108() {
    let node = TestNode::start_with("max_connections_per_user = 2", "").await;
    let (mut a1, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let (mut a2, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let mut a3 =
        WsClient::connect_with(&node.ws_url(), &token("alice", &[]), Carrier::Header).await;
    let closed = a3.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4108, "rate_limited")
    );
    WsClient::connect(&node.ws_url(), &token("bob", &[])).await;
    assert_eq!(a1.subscribe("x.y", 1).await["type"], "reply");
    assert_eq!(a2.subscribe("x.y", 1).await["type"], "reply");
    let r = tether_tests::admin::call(&node, "GET", "/v1/tenants/acme/users/alice/sessions", None)
        .await;
    assert_eq!(
        r.body["sessions"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );
}

/// A tenant's `[tenants.limits] max_connections_per_user` overrides the node's `[limits]`
/// (PROTOCOL: tenant config carries limits; config: "absent keys fall back to the node's
/// limits"): with the tenant at 1 and the node at 50, a user's second connection is closed
/// 4108.
#[tokio::test]
async fn tenant_max_connections_per_user_overrides_node_limit() {
    let node = TestNode::start_with(
        "max_connections_per_user = 50",
        "[tenants.limits]\nmax_connections_per_user = 1",
    )
    .await;
    let r = tether_tests::admin::call(&node, "GET", "/v1/tenants/acme", None).await;
    assert_eq!(
        r.body["limits"]["max_connections_per_user"], 1,
        "{}",
        r.body
    );
    let (_a1, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let mut a2 =
        WsClient::connect_with(&node.ws_url(), &token("alice", &[]), Carrier::Header).await;
    match first_outcome(&mut a2).await {
        Err(code) => assert_eq!(code, 4108),
        Ok(frame) => panic!("second connection admitted despite the tenant cap of 1: {frame}"),
    }
}

/// The first thing the server sends after `hello`: a frame (`Ok`) or a close code (`Err`).
async fn first_outcome(c: &mut WsClient) -> Result<Value, u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let m = tokio::time::timeout_at(end, c.ws.next())
            .await
            .expect("timed out waiting for the handshake's outcome");
        match m {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(f))) => return Err(f.map(|f| f.code.into()).unwrap_or(1005)),
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a frame or close: {other:?}"),
        }
    }
}

/// The tenant's `session_max_lifetime_secs` ends a session (4100) even though its token is
/// valid for much longer, and a refresh cannot extend it.
#[tokio::test]
async fn tenant_session_max_lifetime_closes_4100() {
    let node = TestNode::start_with("", "[tenants.limits]\nsession_max_lifetime_secs = 3").await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let reply = c.refresh(&token("alice", &[]), 1).await;
    assert_eq!(reply["ok"], true);
    // Keep the connection busy so idle_timeout (3 s) is not what closes it.
    let mut id = 2;
    let closed = loop {
        c.send_json(&serde_json::json!({"type": "subscribe", "id": id, "channel": "a.b"}))
            .await;
        id += 1;
        let mut frames = Vec::new();
        if let Some(cl) = c
            .try_closed_within(std::time::Duration::from_millis(500), &mut frames)
            .await
        {
            break cl;
        }
        assert!(id < 60, "session outlived its maximum lifetime");
    };
    assert_eq!(closed.code, 4100);
}

/// Slowloris: connections that never finish their HTTP upgrade are dropped after
/// `upgrade_timeout_secs`, and meanwhile real clients connect, get revoked, and the admin
/// API answers.
#[tokio::test]
async fn slowloris_upgrades_time_out_without_blocking_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start_with(
        "upgrade_timeout_secs = 2\nhandshakes_per_ip_per_sec = 10000\nmax_pending_upgrades_per_ip = 32",
        "",
    )
    .await;
    let server = node.client_addr.parse().expect("client addr");
    let mut lorises = Vec::new();
    for _ in 0..200 {
        let mut s = tcp_from(OTHER, server).await.expect("tcp connect");
        // A request line and one header, never the blank line that ends the request.
        let _ = s
            .write_all(b"GET /v1/connect HTTP/1.1\r\nHost: x\r\n")
            .await;
        lorises.push(s);
    }
    let (mut c, w) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let r = tether_tests::admin::call(
        &node,
        "POST",
        &format!("/v1/sessions/{sid}/revoke?wait=closed"),
        None,
    )
    .await;
    assert_eq!(r.body["closed"], 1, "{}", r.body);
    assert_eq!(c.closed().await.code, 4004);
    // Every slowloris socket is closed by the node, none is left hanging: the 32 within the
    // pending cap at their upgrade timeout (EOF or reset, no answer), the rest at once with 429.
    let (mut timed_out, mut refused) = (0, 0);
    for mut s in lorises {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await;
        match read {
            Ok(_) if buf.is_empty() => timed_out += 1,
            Ok(_) if buf.starts_with(b"HTTP/1.1 429 ") => refused += 1,
            Ok(_) => panic!("unexpected answer: {}", String::from_utf8_lossy(&buf)),
            Err(_) => panic!("a slowloris connection was never closed"),
        }
    }
    // A refusal past the bound of sockets being answered at once is closed unanswered.
    assert_eq!(timed_out + refused, 200);
    assert!(
        refused >= 1 && timed_out >= 32,
        "{timed_out} timed out, {refused} refused"
    );
    let series = "tether_connections_refused_total{reason=\"pending_upgrades\"}";
    assert_eq!(
        tether_tests::admin::metric(&node, series).await,
        Some(168.0)
    );
}

/// The state (`live`/`detached`) of session `sid` in the admin API, or `None` once it is gone.
async fn session_state(node: &TestNode, sid: &str) -> Option<String> {
    let r = tether_tests::admin::call(node, "GET", &format!("/v1/sessions/{sid}"), None).await;
    (r.status == 200).then(|| r.body["state"].as_str().unwrap_or_default().to_owned())
}

/// Regression (detached sessions counted against `max_connections_per_user`, so a user whose
/// connections dropped was refused 4108 for the whole resume window): with cap 2 and
/// `session.max_detached_per_user = 2`, three dropped sessions do not lock the user out, a
/// fourth connection is admitted, and the oldest detached session is gone (its resume starts
/// a fresh session).
#[tokio::test]
async fn dropped_sessions_do_not_lock_the_user_out() {
    let spec = NodeSpec {
        limits: "max_connections_per_user = 2".into(),
        env: vec![("TETHER_SESSION_MAX_DETACHED_PER_USER".into(), "2".into())],
        ..Default::default()
    };
    let node = TestNode::start_spec(&spec).await;
    let t = token("alice", &[]);
    let mut welcomes = Vec::new();
    for _ in 0..3 {
        let (c, w) = WsClient::connect(&node.ws_url(), &t).await;
        drop(c); // a network drop: no close frame, the session stays resumable
        let sid = w["session_id"].as_str().expect("session id").to_owned();
        tether_tests::wait_for("the session to be detached", DEADLINE, || {
            let (node, sid) = (&node, &sid);
            async move { (session_state(node, sid).await.as_deref() == Some("detached")).then_some(()) }
        })
        .await;
        welcomes.push(w);
    }
    let sid = |i: usize| welcomes[i]["session_id"].as_str().unwrap().to_owned();
    let (_fourth, _) = WsClient::connect(&node.ws_url(), &t).await;
    assert_eq!(
        session_state(&node, &sid(0)).await,
        None,
        "the oldest detached session"
    );
    for i in [1, 2] {
        assert_eq!(
            session_state(&node, &sid(i)).await.as_deref(),
            Some("detached")
        );
    }
    // A resume of the evicted session starts a fresh one.
    let w0 = &welcomes[0];
    let resume = json!({"type": "hello", "resume": {
        "session_id": w0["session_id"], "resume_token": w0["resume_token"], "last_seq": 0}});
    let mut evicted = WsClient::upgrade(request(&node.ws_url(), Some(&t), None, None))
        .await
        .expect("upgrade");
    evicted.send_json(&resume).await;
    let w = evicted.next_json().await;
    assert_eq!(
        (w["type"].as_str(), w["resumed"].as_bool()),
        (Some("welcome"), Some(false)),
        "{w}"
    );
}
