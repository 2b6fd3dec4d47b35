//! Connect rate: `rate_conns` authenticated connects (TCP, TLS if any, upgrade, `hello`,
//! `OpenSession` committed through Raft, `welcome`) with `concurrency` in flight, per
//! variant: HS256 and ES256, plaintext and TLS, one node and a 3-node cluster. Reports
//! connects/s (wall time from the first connect to the last welcome) and the handshake
//! latency of each connect. TLS handshakes are full ones (no resumption).
//!
//! The load generator shares the 2 cores with the nodes: its TLS client handshakes and
//! WebSocket framing are part of what limits the rate.

use std::time::Duration;

use serde_json::json;

use crate::Ctx;
use crate::node::{BenchCluster, BenchNode, NodeSpec};
use crate::pool::{Pool, PoolSpec};
use crate::report::{Row, ScenarioReport, Target};
use crate::tokens::Alg;
use crate::ws::Endpoint;

/// Waits until no node reports a connection or a registry session: the previous variant's
/// clients have left and their `CloseSession` entries are applied, so they do not compete with
/// the next variant's admissions.
async fn drained(nodes: &[&BenchNode]) {
    let http = reqwest::Client::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < end {
        let mut total = 0.0;
        for n in nodes {
            total += n.metric(&http, "tether_connections").await.unwrap_or(0.0);
            total += n
                .metric(&http, "tether_registry_sessions")
                .await
                .unwrap_or(0.0);
        }
        if total == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let mut rep = ScenarioReport::new(
        "connect-rate",
        json!({"conns_per_variant": o.rate_conns, "concurrency": o.concurrency,
               "tls": "TLS 1.3, P-256 certificate, full handshakes (no resumption)",
               "measures": "TCP connect to welcome; OpenSession committed through Raft"}),
    );
    let client_tls = crate::tls::client_config(&ctx.wss.cert)?;
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    let mut variant = 0u8;
    for clustered in [false, true] {
        for tls in [false, true] {
            let wss = tls.then(|| ctx.wss.clone());
            let log = ctx.log_dir("connect-rate");
            let (single, cluster) = if clustered {
                let c = BenchCluster::start(&ctx.bin, 3, wss.as_ref(), &log).await?;
                (None, Some(c))
            } else {
                let spec = NodeSpec {
                    id: 1,
                    wss,
                    ..Default::default()
                };
                let n = BenchNode::start(&ctx.bin, &spec, &log, Duration::from_secs(60)).await?;
                (Some(n), None)
            };
            let nodes: Vec<&BenchNode> = match (&single, &cluster) {
                (Some(n), _) => vec![n],
                (_, Some(c)) => c.nodes.iter().collect(),
                _ => Vec::new(),
            };
            let eps: Vec<Endpoint> = nodes
                .iter()
                .map(|n| Endpoint::new(&n.ws_url(), Some(client_tls.clone())))
                .collect::<anyhow::Result<_>>()?;
            for alg in [Alg::Hs256, Alg::Es256] {
                let name = format!(
                    "{} {} {}",
                    if clustered { "3 nodes" } else { "1 node" },
                    if tls { "TLS" } else { "plain" },
                    alg.name()
                );
                eprintln!("  {name}: {} connects", o.rate_conns);
                let http = reqwest::Client::new();
                let mut before = Vec::new();
                for n in &nodes {
                    before.push(n.commit_histogram(&http).await);
                }
                let prefix = format!("cr{variant}-");
                let pool = Pool::open(PoolSpec {
                    endpoints: &eps,
                    count: o.rate_conns,
                    user_prefix: &prefix,
                    users_per: 1,
                    perms: &[],
                    alg,
                    concurrency: o.concurrency,
                    src_base: 30 + variant * 8,
                    per_ip: 1000,
                    src_ip: None,
                    on_text: None,
                    subscribe: None,
                })
                .await;
                variant += 1;
                let pool = match pool {
                    Ok(p) => p,
                    Err(e) => {
                        rep.partial(format!("{name}: {e:#}"));
                        continue;
                    }
                };
                let rate = o.rate_conns as f64 / pool.seconds;
                rep.row(Row::new(format!("{name} connects/s"), rate, "1/s"));
                let per_node = rate / nodes.len() as f64;
                let mut row = Row::new(format!("{name} connects/s per node"), per_node, "1/s");
                if alg == Alg::Es256 {
                    row = row.with_target(Target::at_least(5000.0));
                }
                rep.row(row);
                rep.latency(&format!("{name} handshake"), &pool.connect_ms, None);
                let mut deltas = Vec::new();
                for (n, b) in nodes.iter().zip(&before) {
                    deltas.push(crate::prom::delta(&n.commit_histogram(&http).await, b));
                }
                super::revocation::commit_rows(&mut rep, &name, &crate::prom::sum(&deltas));
                series.push((name, pool.connect_ms.clone()));
                drop(pool);
                drained(&nodes).await;
            }
        }
    }
    let svg = ctx.out.join("connect_rate_cdf.svg");
    crate::plot::cdf(
        &svg,
        &format!(
            "Connect latency (TCP → welcome), {} connects, {} in flight",
            o.rate_conns, o.concurrency
        ),
        "ms",
        &series,
        true,
    )?;
    rep.plots.push(svg.display().to_string());
    Ok(rep)
}
