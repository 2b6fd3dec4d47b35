//! Hostile clients on one node while revocations flow: slowloris upgrades (headers one byte
//! at a time), frames above `max_frame_bytes`, and clients that subscribe to a flooded
//! channel and never read. The node must shed each of them (upgrade timeout, 1009, slow
//! consumer 4108 or idle 4102) while its well-behaved clients keep receiving every message in order and
//! revoked ones are closed within the healthy bound.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;
use tether_tests::client::request;
use tether_tests::tokens::token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Upgrades and reads the welcome (a raw client the history does not record).
async fn raw_client(url: &str, user: &str) -> Ws {
    let req = request(url, Some(&token(user, &["sub:feed.*"])), None, None);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("upgrade in time")
    .expect("upgrade");
    ws.send(Message::text(json!({"type": "hello"}).to_string()))
        .await
        .expect("hello");
    let w = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .expect("welcome in time");
    assert!(
        matches!(w, Some(Ok(Message::Text(ref t))) if t.contains("welcome")),
        "{w:?}"
    );
    ws
}

/// Reads until a close frame: its code, or `None` if the socket ended without one.
async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let end = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(CloseFrame { code, .. }))))) => {
                return Some(code.into());
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// A slowloris: starts an upgrade and sends one header byte every 300 ms; returns how long
/// the server kept it open (it must not wait for ever).
async fn slowloris(addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return Duration::ZERO;
    };
    let head = b"GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Slow: ";
    if tcp.write_all(head).await.is_err() {
        return started.elapsed();
    }
    let mut buf = [0u8; 256];
    while started.elapsed() < Duration::from_secs(30) {
        if tcp.write_all(b"a").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            _ => {}
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_while_revocations_flow() {
    let mut s = Scenario::new("hostile_clients");
    let opts = Options {
        limits: "upgrade_timeout_secs = 3\noutbound_queue = 64".into(),
        ..Options::default()
    };
    let c = ChaosCluster::start(&opts, &s).await;
    let ids = c.ids();
    let target = ids[s.pick(ids.len())];
    let url = c.node(target).ws_url();
    let plan: Vec<(String, u64)> = (0..16).map(|i| (format!("h{i}"), target)).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.h")).await;
    assert!(sessions.len() >= 15, "only {} sessions", sessions.len());

    s.fault(
        "hostile_clients",
        &format!("n{target}: 4 never-reading clients, 30 slowloris upgrades, 4 oversized frames"),
    );
    // Never-reading clients on the flooded channel.
    let mut sleepers = Vec::new();
    for i in 0..4 {
        let mut ws = raw_client(&url, &format!("sleeper{i}")).await;
        ws.send(Message::text(
            json!({"type": "subscribe", "id": 1, "channel": "feed.flood"}).to_string(),
        ))
        .await
        .expect("subscribe");
        sleepers.push(ws);
    }
    let proxy_addr = c.node(target).client_proxy.addr();
    let lorises: Vec<_> = (0..30)
        .map(|_| tokio::spawn(slowloris(proxy_addr)))
        .collect();
    let mut oversized = Vec::new();
    for i in 0..4 {
        let mut ws = raw_client(&url, &format!("big{i}")).await;
        let big = format!(
            "{{\"type\":\"publish\",\"id\":2,\"channel\":\"feed.x\",\"data\":\"{}\"}}",
            "x".repeat(100_000)
        );
        let _ = ws.send(Message::text(big)).await;
        oversized.push(ws);
    }
    // The flood (big messages to the sleepers) and the numbered feed, both by admin publish.
    let admin = c.admin.clone();
    let addrs: Vec<(u64, String)> = ids
        .iter()
        .map(|id| (*id, c.node(*id).admin().to_owned()))
        .collect();
    let flood = {
        let http = reqwest::Client::new();
        let addr = c.node(target).admin().to_owned();
        let tok = tether_tests::tokens::admin_token("tether:admin");
        tokio::spawn(async move {
            let blob = "y".repeat(32 * 1024);
            for _ in 0..200 {
                let body =
                    json!({"tenant": "acme", "channel": "feed.flood", "data": {"blob": blob}});
                let _ = http
                    .post(format!("http://{addr}/v1/publish"))
                    .bearer_auth(&tok)
                    .timeout(Duration::from_secs(10))
                    .json(&body)
                    .send()
                    .await;
            }
        })
    };
    let feed = tokio::spawn(async move {
        for n in 1..=150u64 {
            let (id, addr) = &addrs[(n as usize) % addrs.len()];
            admin.publish(*id, addr, "feed.h", n).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    // Revocations meanwhile, through random nodes, waiting for the sockets to close.
    let mut revoked = 0;
    for sess in sessions.iter_mut().take(6) {
        tokio::time::sleep(s.between(Duration::from_millis(100), Duration::from_millis(500))).await;
        let on = [ids[s.pick(ids.len())]];
        let kind = s.pick(3);
        if workload::revoke(&c, kind, sess, &on, true, Duration::from_secs(15))
            .await
            .is_some()
        {
            revoked += 1;
        }
    }
    assert_eq!(
        revoked, 6,
        "revocations must be acknowledged under hostile load"
    );
    feed.await.expect("feed");
    flood.await.expect("flood");
    for (i, ws) in oversized.iter_mut().enumerate() {
        assert_eq!(
            close_code(ws, Duration::from_secs(10)).await,
            Some(1009),
            "oversized client {i}"
        );
    }
    for (i, l) in lorises.into_iter().enumerate() {
        let held = l.await.expect("slowloris");
        assert!(
            held < Duration::from_secs(15),
            "slowloris {i} held the server for {held:?}"
        );
    }
    // The sleepers were shed: as slow consumers (4108) or, since a client that never reads
    // never answers pings, by the idle timeout (4102), whichever came first. They never
    // read their close frames, so the node's counters tell.
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("http://{}/metrics", c.node(target).admin()))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let count = |code: &str| -> f64 {
        let key = format!("tether_closes_total{{code=\"{code}\"}}");
        metrics
            .lines()
            .find(|l| l.starts_with(&key))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let shed = count("4108") + count("4102");
    assert!(shed >= 4.0, "never-reading clients shed: {shed}\n{metrics}");
    drop(sleepers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    drop(sessions);
    s.finish(Some(&c), &Params::default());
}
