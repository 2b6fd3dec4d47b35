//! Fan-out: `subscribers` clients spread over a 3-node cluster subscribe to one channel;
//! `publishes` admin publishes (`POST /v1/publish`, issued on the nodes in turn), one at a
//! time, each waiting until every subscriber has it; then a burst of 20 publishes at once.
//! Reports the latency from the publish call to each delivery, the time until a publish
//! reached everyone, and deliveries/s.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tether_protocol::ServerMessage;
use tokio::time::Instant;

use crate::Ctx;
use crate::node::BenchCluster;
use crate::pool::{Pool, PoolSpec};
use crate::report::{Row, ScenarioReport};
use crate::tokens::Alg;
use crate::ws::{Endpoint, OnText};

const CHANNEL: &str = "feed.fan";
const BURST: usize = 20;
const ALL_WITHIN: Duration = Duration::from_secs(20);

/// What subscribers record: per publish `k`, its start (ns since `base`, 0 = not yet), the
/// deliveries seen and the time of the last one; and every delivery's latency.
struct Sink {
    base: Instant,
    start_ns: Vec<AtomicU64>,
    seen: Vec<AtomicUsize>,
    last_ns: Vec<AtomicU64>,
    latencies: Mutex<Vec<f64>>,
}

impl Sink {
    fn on_text(&self, text: &str) {
        let Some(ServerMessage::Event { data, .. }) = ServerMessage::parse(text) else {
            return;
        };
        let Some(k) = data["k"].as_u64().map(|k| k as usize) else {
            return;
        };
        let (Some(start), Some(seen), Some(last)) =
            (self.start_ns.get(k), self.seen.get(k), self.last_ns.get(k))
        else {
            return;
        };
        let now = self.base.elapsed().as_nanos() as u64;
        let s = start.load(Ordering::SeqCst);
        if s > 0 {
            let ms = now.saturating_sub(s) as f64 / 1e6;
            self.latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ms);
        }
        last.fetch_max(now, Ordering::SeqCst);
        seen.fetch_add(1, Ordering::SeqCst);
    }

    fn start(&self, k: usize) {
        let now = self.base.elapsed().as_nanos().max(1) as u64;
        self.start_ns[k].store(now, Ordering::SeqCst);
    }

    async fn all_seen(&self, ks: std::ops::Range<usize>, n: usize) -> bool {
        let end = Instant::now() + ALL_WITHIN;
        loop {
            if ks.clone().all(|k| self.seen[k].load(Ordering::SeqCst) >= n) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn take_latencies(&self) -> Vec<f64> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let n = o.subscribers;
    let mut rep = ScenarioReport::new(
        "fanout",
        json!({"nodes": 3, "subscribers": n, "publishes": o.publishes, "burst": BURST,
               "publish": "POST /v1/publish on nodes 1,2,3 in turn (waits for the other nodes' answers)"}),
    );
    let cluster = BenchCluster::start(&ctx.bin, 3, None, &ctx.log_dir("fanout")).await?;
    let eps: Vec<Endpoint> = cluster
        .nodes
        .iter()
        .map(|n| Endpoint::new(&n.ws_url(), None))
        .collect::<anyhow::Result<_>>()?;
    let total = o.publishes + BURST;
    let sink = Arc::new(Sink {
        base: Instant::now(),
        start_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        seen: (0..total).map(|_| AtomicUsize::new(0)).collect(),
        last_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        latencies: Mutex::new(Vec::new()),
    });
    let s2 = sink.clone();
    let on_text: OnText = Arc::new(move |t: &str| s2.on_text(t));
    eprintln!("  {n} subscribers over 3 nodes");
    let pool = Pool::open(PoolSpec {
        endpoints: &eps,
        count: n,
        user_prefix: "fan",
        users_per: 1,
        perms: &["sub:feed.*"],
        alg: Alg::Hs256,
        concurrency: 64,
        src_base: 2,
        per_ip: 2000,
        src_ip: None,
        on_text: Some(on_text),
        subscribe: Some(CHANNEL),
    })
    .await?;
    let http = reqwest::Client::new();
    let admins: Vec<String> = cluster.nodes.iter().map(|n| n.admin_addr.clone()).collect();
    let publish = |k: usize| {
        let http = http.clone();
        let addr = admins[k % admins.len()].clone();
        let sink = sink.clone();
        async move {
            let body = json!({"tenant": "acme", "channel": CHANNEL, "data": {"k": k}});
            sink.start(k);
            crate::admin::post(&http, &addr, "/v1/publish", &body).await
        }
    };
    let mut to_all = Vec::new();
    let mut call_ms = Vec::new();
    let mut incomplete = 0usize;
    for k in 0..o.publishes {
        let t0 = Instant::now();
        let r = publish(k).await;
        call_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        match r {
            Ok((200, b)) if b["delivered"].as_u64() == Some(n as u64) => {}
            other => rep.note(format!("publish {k}: {other:?}")),
        }
        if sink.all_seen(k..k + 1, n).await {
            let start = sink.start_ns[k].load(Ordering::SeqCst);
            let last = sink.last_ns[k].load(Ordering::SeqCst);
            to_all.push(last.saturating_sub(start) as f64 / 1e6);
        } else {
            incomplete += 1;
        }
    }
    let lat = sink.take_latencies();
    rep.latency("publish → each delivery", &lat, None);
    rep.latency("publish → last subscriber", &to_all, None);
    rep.latency("admin publish call", &call_ms, None);
    if let Some(s) = crate::stats::Summary::of(&to_all) {
        rep.row(Row::new(
            "deliveries/s, one publish at a time (n / median time to all)",
            n as f64 / (s.p50 / 1000.0),
            "1/s",
        ));
    }
    // Burst: BURST publishes at once.
    let burst = o.publishes..total;
    let t0 = Instant::now();
    let calls = futures_util::future::join_all(burst.clone().map(publish)).await;
    let bad_calls = calls.iter().filter(|r| !matches!(r, Ok((200, _)))).count();
    if sink.all_seen(burst.clone(), n).await {
        let first = burst
            .clone()
            .map(|k| sink.start_ns[k].load(Ordering::SeqCst))
            .min()
            .unwrap_or(0);
        let last = burst
            .clone()
            .map(|k| sink.last_ns[k].load(Ordering::SeqCst))
            .max()
            .unwrap_or(0);
        let secs = last.saturating_sub(first) as f64 / 1e9;
        rep.row(Row::new(
            format!("deliveries/s, burst of {BURST} publishes"),
            (BURST * n) as f64 / secs,
            "1/s",
        ));
        rep.row(Row::new(
            format!("burst of {BURST}: first publish → last delivery"),
            secs * 1000.0,
            "ms",
        ));
    } else {
        rep.partial(format!(
            "burst: not every delivery arrived within {ALL_WITHIN:?} ({:?} after start)",
            t0.elapsed()
        ));
    }
    let burst_lat = sink.take_latencies();
    rep.latency(
        &format!("burst of {BURST}: publish → delivery"),
        &burst_lat,
        None,
    );
    if incomplete > 0 || bad_calls > 0 {
        rep.partial(format!(
            "{incomplete} sequential publishes not fully delivered; {bad_calls} burst calls failed"
        ));
    }
    let svg = ctx.out.join("fanout_cdf.svg");
    crate::plot::cdf(
        &svg,
        &format!("Fan-out to {n} subscribers on 3 nodes: publish → delivery"),
        "ms",
        &[
            ("one publish at a time".into(), lat),
            (format!("burst of {BURST}"), burst_lat),
        ],
        true,
    )?;
    rep.plots.push(svg.display().to_string());
    drop(pool);
    drop(cluster);
    Ok(rep)
}
