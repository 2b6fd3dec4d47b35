//! Measures revoke → close: the time from issuing `POST /v1/sessions/{id}/revoke` to the
//! client reading its 4004 close frame, over many sessions. Prints p50/p95/p99/max.
//!
//! One node:        `cargo run --release -p tether-tests --example revoke_latency -- 500`
//! 3-node cluster:  `cargo run --release -p tether-tests --example revoke_latency -- 500 cluster`
//!   (clients on a node chosen at random, the revoke issued on a different random node)
//! Set TETHER_BIN=$PWD/target/release/tether to measure a release node (default: debug).

use std::time::Duration;

use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::cluster::TestCluster;
use tether_tests::node::TestNode;
use tether_tests::tokens::token;
use tokio::time::Instant;

/// Loopback load from one address: lift the per-IP limits for the measurement.
const LIMITS: &str = "handshakes_per_ip_per_sec = 100000\nmax_connections_per_ip = 100000";

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let cluster_mode = args.next().as_deref() == Some("cluster");
    let (_single, _cluster, nodes): (Option<TestNode>, Option<TestCluster>, Vec<(String, String)>);
    if cluster_mode {
        let c = TestCluster::start(3, 0, LIMITS).await;
        nodes = c
            .nodes
            .iter()
            .map(|n| (n.ws_url(), n.admin_addr.clone()))
            .collect();
        _cluster = Some(c);
        _single = None;
    } else {
        let node = TestNode::start_with(LIMITS, "").await;
        nodes = vec![(node.ws_url(), node.admin_addr.clone())];
        _single = Some(node);
        _cluster = None;
    }
    let admin_node = |i: usize| -> &TestNode {
        match (&_single, &_cluster) {
            (Some(n), _) => n,
            (_, Some(c)) => &c.nodes[i],
            _ => unreachable!("one of the two is set"),
        }
    };
    let mut client_ms = Vec::with_capacity(n);
    let mut server_ms = Vec::with_capacity(n);
    for i in 0..n {
        let owner = rand::random_range(0..nodes.len());
        let issuer = if nodes.len() > 1 {
            (owner + 1 + rand::random_range(0..nodes.len() - 1)) % nodes.len()
        } else {
            0
        };
        let (mut c, w) = WsClient::connect(&nodes[owner].0, &token(&format!("u{i}"), &[])).await;
        let sid = w["session_id"].as_str().expect("session id").to_owned();
        let t0 = Instant::now();
        let path = format!("/v1/sessions/{sid}/revoke?wait=closed");
        let (resp, closed) = tokio::join!(call(admin_node(issuer), "POST", &path, None), async {
            let cl = c.closed_within(Duration::from_secs(10)).await.0;
            (cl, t0.elapsed())
        });
        assert_eq!(closed.0.code, 4004);
        client_ms.push(closed.1.as_secs_f64() * 1000.0);
        server_ms.push(resp.body["propagation_ms"].as_f64().unwrap_or(f64::NAN));
    }
    let mode = if cluster_mode {
        "3-node cluster, owner != issuer"
    } else {
        "single node"
    };
    println!("{mode}");
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
