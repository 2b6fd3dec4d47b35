//! Measures revoke → close on one node: the time from issuing `POST /v1/sessions/{id}/revoke`
//! to the client reading its 4004 close frame, over many sessions. Prints p50/p95/p99/max.
//!
//! `cargo run --release -p tether-tests --example revoke_latency -- [N]`
//! (set TETHER_BIN=target/release/tether to measure a release node; default builds debug).

use std::time::Duration;

use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::node::TestNode;
use tether_tests::tokens::token;
use tokio::time::Instant;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // Loopback load from one address: lift the per-IP handshake rate for the measurement.
    let node = TestNode::start_with(
        "handshakes_per_ip_per_sec = 100000\nmax_connections_per_ip = 100000",
        "",
    )
    .await;
    let mut client_ms = Vec::with_capacity(n);
    let mut server_ms = Vec::with_capacity(n);
    for i in 0..n {
        let (mut c, w) = WsClient::connect(&node.ws_url(), &token(&format!("u{i}"), &[])).await;
        let sid = w["session_id"].as_str().expect("session id").to_owned();
        let t0 = Instant::now();
        let path = format!("/v1/sessions/{sid}/revoke?wait=closed");
        let (resp, closed) = tokio::join!(call(&node, "POST", &path, None), async {
            let cl = c.closed_within(Duration::from_secs(10)).await.0;
            (cl, t0.elapsed())
        });
        assert_eq!(closed.0.code, 4004);
        client_ms.push(closed.1.as_secs_f64() * 1000.0);
        server_ms.push(resp.body["propagation_ms"].as_f64().unwrap_or(f64::NAN));
    }
    for (name, v) in [
        ("admin call -> client close frame", &mut client_ms),
        ("propagation_ms (server)", &mut server_ms),
    ] {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name:34} n={n} p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms",
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 0.99),
            v[v.len() - 1]
        );
    }
}
