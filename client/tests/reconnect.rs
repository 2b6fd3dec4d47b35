//! Reconnect policy by close code, resume fields, advised delays and endpoint failover.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{TestServer, config, next_seq, wait_event};
use serde_json::json;
use tether_client::{Client, ClientError, ClientEvent, StaticToken, token_fn};

/// A drop after events makes the client resume with the last welcome's session and
/// resume token and the highest seq it saw.
#[tokio::test]
async fn reconnect_sends_resume_with_last_seq() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for seq in 1..=5 {
        conn.event(seq, "chat.a").await;
    }
    for want in 1..=5 {
        assert_eq!(next_seq(&mut events).await, want);
    }
    drop(conn); // the link dies without a close frame
    let mut conn2 = srv.next_conn().await;
    let hello = conn2.recv_type("hello").await;
    assert_eq!(
        hello["resume"],
        json!({"session_id": "s1", "resume_token": "rt-s1", "last_seq": 5})
    );
    conn2.welcome("s1", true).await;
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Connected { .. })).await;
    assert!(
        matches!(ev, ClientEvent::Connected { resumed: true, .. }),
        "{ev:?}"
    );
    // Replayed events up to last_seq are dropped; the next one is delivered.
    for seq in 4..=6 {
        conn2.event(seq, "chat.a").await;
    }
    assert_eq!(next_seq(&mut events).await, 6);
}

/// A 40xx close (4004 session_revoked) is terminal: a terminal `Closed`, the stream ends,
/// and no new connection is attempted.
#[tokio::test]
async fn close_4004_is_terminal() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    conn.close(4004, "session_revoked").await;
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Closed { .. })).await;
    assert_eq!(
        ev,
        ClientEvent::Closed {
            code: 4004,
            reason: "session_revoked".into(),
            terminal: true
        }
    );
    // The task has ended: the stream closes and requests fail.
    let end = tokio::time::timeout(common::DEADLINE, events.recv())
        .await
        .expect("stream end");
    assert_eq!(end, None);
    assert_eq!(client.subscribe("chat.a").await, Err(ClientError::Shutdown));
    assert!(
        srv.no_conn_within(Duration::from_millis(300)).await,
        "no reconnect after 4004"
    );
}

/// 4102 (idle_timeout) and 1012 (service_restart) reconnect after a full-jitter backoff
/// within the configured cap, and resume.
#[tokio::test]
async fn close_4102_and_1012_reconnect_with_backoff() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for (code, reason) in [(4102, "idle_timeout"), (1012, "service_restart")] {
        conn.close(code, reason).await;
        let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Closed { .. })).await;
        assert_eq!(
            ev,
            ClientEvent::Closed {
                code,
                reason: reason.into(),
                terminal: false
            }
        );
        let ev = wait_event(&mut events, |e| {
            matches!(e, ClientEvent::Reconnecting { .. })
        })
        .await;
        let ClientEvent::Reconnecting { attempt, after } = ev else {
            unreachable!()
        };
        assert_eq!(attempt, 1);
        assert!(
            after <= Duration::from_millis(20),
            "first backoff within backoff_min: {after:?}"
        );
        conn = srv.next_conn().await;
        let hello = conn.recv_type("hello").await;
        assert_eq!(hello["resume"]["session_id"], "s1");
        conn.welcome("s1", true).await;
        wait_event(&mut events, |e| {
            matches!(e, ClientEvent::Connected { resumed: true, .. })
        })
        .await;
    }
}

/// Failed attempts grow the backoff (attempt numbers count up) until a connect succeeds.
#[tokio::test]
async fn failed_attempts_back_off_and_count_up() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    conn.close(1013, "try_again_later").await;
    for _ in 0..2 {
        // Refuse before the welcome: still reconnectable.
        let mut c = srv.next_conn().await;
        c.recv_type("hello").await;
        c.close(4108, "rate_limited").await;
    }
    let mut attempts = Vec::new();
    while attempts.len() < 3 {
        if let ClientEvent::Reconnecting { attempt, after } = wait_event(&mut events, |e| {
            matches!(e, ClientEvent::Reconnecting { .. })
        })
        .await
        {
            assert!(
                after <= Duration::from_millis(20 << (attempt - 1)).min(Duration::from_millis(200))
            );
            attempts.push(attempt);
        }
    }
    assert_eq!(attempts, [1, 2, 3]);
    let (_c, hello) = srv.accept("s1").await;
    assert_eq!(hello["resume"]["session_id"], "s1");
}

/// `reconnect {after_ms}` is honoured: the client keeps the connection for that long,
/// then reconnects (resuming) and not before.
#[tokio::test]
async fn reconnect_advice_after_ms_is_honoured() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    let sent = tokio::time::Instant::now();
    conn.send(json!({"type":"reconnect","after_ms":400,"reason":"drain"}))
        .await;
    // Still delivering meanwhile.
    conn.event(1, "chat.a").await;
    assert_eq!(next_seq(&mut events).await, 1);
    assert_eq!(conn.client_close_code().await, Some(1001));
    let mut conn2 = srv.next_conn().await;
    assert!(
        conn2.at - sent >= Duration::from_millis(400),
        "reconnected after {:?}",
        conn2.at - sent
    );
    let hello = conn2.recv_type("hello").await;
    assert_eq!(hello["resume"]["last_seq"], 1);
}

/// If the server closes (1012) before the advised delay ran out, the client still waits
/// for the rest of `after_ms` instead of its backoff.
#[tokio::test]
async fn advised_delay_survives_an_early_close() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    let sent = tokio::time::Instant::now();
    conn.send(json!({"type":"reconnect","after_ms":500,"reason":"drain"}))
        .await;
    conn.close(1012, "service_restart").await;
    let ev = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    let ClientEvent::Reconnecting { after, .. } = ev else {
        unreachable!()
    };
    assert!(
        after > Duration::from_millis(200) && after <= Duration::from_millis(500),
        "{after:?}"
    );
    let conn2 = srv.next_conn().await;
    assert!(conn2.at - sent >= Duration::from_millis(500));
}

/// 4111 (registry_unavailable) makes the client reconnect at once to the next endpoint.
#[tokio::test]
async fn close_4111_switches_endpoint() {
    let mut a = TestServer::start().await;
    let mut b = TestServer::start().await;
    let cfg = config(&[&a.url, &b.url]);
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(cfg, StaticToken("t".into())),
        a.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    conn.close(4111, "registry_unavailable").await;
    let ev = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    assert_eq!(
        ev,
        ClientEvent::Reconnecting {
            attempt: 1,
            after: Duration::ZERO
        }
    );
    let (_c, hello) = b.accept("s1").await;
    assert_eq!(hello["resume"]["session_id"], "s1");
    assert!(
        a.no_conn_within(Duration::from_millis(100)).await,
        "not back to the cut-off node"
    );
}

/// The first connect fails over past a dead endpoint.
#[tokio::test]
async fn connect_fails_over_past_a_dead_endpoint() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        format!("ws://{addr}/v1/connect")
    };
    let mut srv = TestServer::start().await;
    let (client, _) = tokio::join!(
        Client::connect(config(&[&dead, &srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    assert_eq!(client.expect("connect").session_id().as_deref(), Some("s1"));
}

/// A terminal close during the first connect (4001 unauthorized) fails `connect`.
#[tokio::test]
async fn unauthorized_at_connect_is_an_error() {
    let mut srv = TestServer::start().await;
    let cfg = config(&[&srv.url]);
    let refuse = async {
        let mut c = srv.next_conn().await;
        c.recv_type("hello").await;
        c.close(4001, "unauthorized").await;
    };
    let (client, ()) = tokio::join!(Client::connect(cfg, StaticToken("bad".into())), refuse);
    assert_eq!(
        client.err(),
        Some(ClientError::Closed {
            code: 4001,
            reason: "unauthorized".into()
        })
    );
}

/// 4100 (token_expired) makes the client get a new token from the provider, then
/// reconnect at once and resume.
#[tokio::test]
async fn close_4100_fetches_a_fresh_token() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let provider = token_fn(move || {
        let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(format!("tok-{n}")) }
    });
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), provider),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    assert_eq!(conn.auth.as_deref(), Some("Bearer tok-1"));
    conn.close(4100, "token_expired").await;
    let ev = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    assert_eq!(
        ev,
        ClientEvent::Reconnecting {
            attempt: 1,
            after: Duration::ZERO
        }
    );
    let (conn2, hello) = srv.accept("s1").await;
    assert_eq!(conn2.auth.as_deref(), Some("Bearer tok-2"));
    assert_eq!(hello["resume"]["session_id"], "s1");
}

/// `close()` sends close code 1000 and ends the event stream with a terminal `Closed`.
#[tokio::test]
async fn close_ends_the_session() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    let (_, code) = tokio::join!(client.close(), conn.client_close_code());
    assert_eq!(code, Some(1000));
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Closed { .. })).await;
    assert_eq!(
        ev,
        ClientEvent::Closed {
            code: 1000,
            reason: "client_close".into(),
            terminal: true
        }
    );
    assert!(srv.no_conn_within(Duration::from_millis(200)).await);
}
