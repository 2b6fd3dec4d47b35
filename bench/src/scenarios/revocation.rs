//! Revocation propagation on a 3-node cluster: `conns` held connections spread over the
//! nodes, `revocations` session revocations (random session, so a random owner, issued on
//! a random node, one after another), timed from the admin call to the 4004 close frame
//! read by the client; then logout-everywhere of a user with 20 sessions over the 3 nodes,
//! timed to the last 4005 close frame.

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::json;
use tokio::time::Instant;

use crate::Ctx;
use crate::node::BenchCluster;
use crate::pool::{Pool, PoolSpec};
use crate::report::{Row, ScenarioReport, Target};
use crate::tokens::Alg;
use crate::ws::{End, Endpoint};

const CLOSE_WITHIN: Duration = Duration::from_secs(10);
pub(super) const LOGOUT_SESSIONS: usize = 20;

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let mut rep = ScenarioReport::new(
        "revocation",
        json!({"nodes": 3, "conns": o.conns, "revocations": o.revocations,
               "logouts": o.logouts, "logout_sessions": LOGOUT_SESSIONS, "wait": "closed"}),
    );
    let cluster = BenchCluster::start(&ctx.bin, 3, None, &ctx.log_dir("revocation")).await?;
    let eps: Vec<Endpoint> = cluster
        .nodes
        .iter()
        .map(|n| Endpoint::new(&n.ws_url(), None))
        .collect::<anyhow::Result<_>>()?;
    let admins: Vec<String> = cluster.nodes.iter().map(|n| n.admin_addr.clone()).collect();
    eprintln!("  opening {} connections over 3 nodes", o.conns);
    let mut pool = Pool::open(PoolSpec {
        endpoints: &eps,
        count: o.conns,
        user_prefix: "rv",
        users_per: 1,
        perms: &[],
        alg: Alg::Hs256,
        concurrency: 64,
        src_base: 2,
        per_ip: 2000,
        src_ip: None,
        on_text: None,
        subscribe: None,
    })
    .await?;
    rep.row(Row::new(
        "setup connects/s (3 nodes)",
        o.conns as f64 / pool.seconds,
        "1/s",
    ));
    let http = reqwest::Client::new();
    let ph = Phase {
        http: &http,
        admins: &admins,
        eps: &eps,
        within: CLOSE_WITHIN,
        src_base: 20,
        per_ip: 1000,
        src_ip: None,
    };
    eprintln!("  {} revocations", o.revocations);
    let label = "revoke → 4004 at client";
    let target = Some(Target::at_most(10.0));
    let (all, same, cross) =
        revocations(&mut rep, &ph, &mut pool, o.revocations, label, target).await;
    let dir = ctx.out.clone();
    let fsync =
        tokio::task::spawn_blocking(move || crate::machine::fsync_latency(&dir, 200)).await??;
    rep.latency("4 KiB write + fdatasync (this disk, now)", &fsync, None);

    eprintln!(
        "  {} logout-everywhere of a user with {LOGOUT_SESSIONS} sessions",
        o.logouts
    );
    let last = logouts(&mut rep, &ph, o.logouts, "lo").await?;
    rep.note(
        "80 ms RTT variant: scenario `revocation-rtt` (root tier, TETHER_CHAOS_NETNS=1; see docs/performance.md)",
    );
    let svg = ctx.out.join("revocation_cdf.svg");
    crate::plot::cdf(
        &svg,
        &format!(
            "Revocation → close frame, 3-node loopback, {} conns",
            o.conns
        ),
        "ms from admin call",
        &[
            ("revoke, all".into(), all),
            ("revoke, owner = issuer".into(), same),
            ("revoke, owner ≠ issuer".into(), cross),
            ("logout 20 sessions, last close".into(), last),
        ],
        true,
    )?;
    rep.plots.push(svg.display().to_string());
    drop(pool);
    drop(cluster);
    Ok(rep)
}

/// Rows for the Raft commit histogram (propose to apply, bucket upper bounds) summed over the
/// nodes during a phase.
pub fn commit_rows(rep: &mut ScenarioReport, phase: &str, h: &[(f64, u64)]) {
    let n = h.last().map(|x| x.1).unwrap_or(0);
    for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
        if let Some(le) = crate::prom::quantile_le(h, q) {
            rep.row(Row::new(
                format!("Raft commit during {phase} {label} ≤ (bucket, {n} commits)"),
                le * 1000.0,
                "ms",
            ));
        }
    }
}

/// How the measured phases reach a cluster's nodes (this scenario and `revocation_rtt`).
pub(super) struct Phase<'a> {
    pub http: &'a reqwest::Client,
    /// Admin addresses, one per node, in endpoint order.
    pub admins: &'a [String],
    pub eps: &'a [Endpoint],
    /// A client whose close frame takes longer counts as missing.
    pub within: Duration,
    /// Source addresses of the logout users' pools (as in `PoolSpec`).
    pub src_base: u8,
    pub per_ip: usize,
    pub src_ip: Option<std::net::IpAddr>,
}

/// Every node's Raft commit (propose to apply) histogram, from `/metrics`.
async fn commit_histograms(ph: &Phase<'_>) -> Vec<Vec<(f64, u64)>> {
    let mut out = Vec::new();
    for a in ph.admins {
        let text = match ph
            .http
            .get(format!("http://{a}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(crate::prom::buckets(&text, "tether_raft_commit_seconds"));
    }
    out
}

/// `count` session revocations, one after another: a random held session (so a random
/// owner), issued on a random node with `wait=closed`, timed from the call to the client's
/// 4004. Reports the latencies (`label`, then by owner), the call and the server's
/// `propagation_ms`, and the commit histogram over the phase; returns (all, owner = issuer,
/// owner ≠ issuer) for the plot.
pub(super) async fn revocations(
    rep: &mut ScenarioReport,
    ph: &Phase<'_>,
    pool: &mut Pool,
    count: usize,
    label: &str,
    target: Option<Target>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let reason = json!({"reason": "bench"});
    let commits_before = commit_histograms(ph).await;
    let mut order: Vec<usize> = (0..pool.clients.len()).collect();
    order.shuffle(&mut rand::rng());
    let (mut all, mut same, mut cross, mut call_ms, mut prop_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut wrong = 0usize;
    for &i in order.iter().take(count) {
        let issuer = rand::random_range(0..ph.admins.len());
        let c = &mut pool.clients[i];
        let owner = c.node;
        let Some(end) = c.end.take() else { continue };
        let path = format!("/v1/sessions/{}/revoke?wait=closed", c.welcome.session_id);
        let t0 = Instant::now();
        let call = crate::admin::post(ph.http, &ph.admins[issuer], &path, &reason);
        let (resp, closed) = tokio::join!(
            async {
                let r = call.await;
                (r, t0.elapsed())
            },
            tokio::time::timeout(ph.within, end)
        );
        match closed {
            Ok(Ok(End::Closed(4004, at))) => {
                let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
                all.push(ms);
                if owner == issuer {
                    same.push(ms);
                } else {
                    cross.push(ms);
                }
            }
            _ => wrong += 1,
        }
        if let (Ok((200, body)), took) = resp {
            call_ms.push(took.as_secs_f64() * 1000.0);
            prop_ms.push(body["propagation_ms"].as_f64().unwrap_or(f64::NAN));
        }
    }
    rep.latency(label, &all, target);
    rep.latency("  same node (owner = issuer)", &same, None);
    rep.latency("  cross node (owner ≠ issuer)", &cross, None);
    rep.latency("revoke admin call (wait=closed)", &call_ms, None);
    rep.latency("revoke propagation_ms (server)", &prop_ms, None);
    if wrong > 0 {
        rep.partial(format!(
            "{wrong} revocations without a 4004 close within {:?}",
            ph.within
        ));
    }
    let deltas: Vec<_> = commit_histograms(ph)
        .await
        .iter()
        .zip(&commits_before)
        .map(|(after, before)| crate::prom::delta(after, before))
        .collect();
    commit_rows(rep, "revocations", &crate::prom::sum(&deltas));
    (all, same, cross)
}

/// `runs` times: a fresh user (`{prefix}{k}-…`) with [`LOGOUT_SESSIONS`] sessions over the
/// nodes, logged out everywhere on a random node with `wait=closed`, timed from the call to
/// each client's 4005. Reports the last and each close and `propagation_ms`; returns the
/// last-close times for the plot.
pub(super) async fn logouts(
    rep: &mut ScenarioReport,
    ph: &Phase<'_>,
    runs: usize,
    prefix: &str,
) -> anyhow::Result<Vec<f64>> {
    let reason = json!({"reason": "bench"});
    let (mut last, mut each, mut lo_prop) = (Vec::new(), Vec::new(), Vec::new());
    let mut lo_wrong = 0usize;
    for k in 0..runs {
        let prefix = format!("{prefix}{k}-");
        let mut p = Pool::open(PoolSpec {
            endpoints: ph.eps,
            count: LOGOUT_SESSIONS,
            user_prefix: &prefix,
            users_per: LOGOUT_SESSIONS,
            perms: &[],
            alg: Alg::Hs256,
            concurrency: LOGOUT_SESSIONS,
            src_base: ph.src_base,
            per_ip: ph.per_ip,
            src_ip: ph.src_ip,
            on_text: None,
            subscribe: None,
        })
        .await?;
        let user = p.clients[0].user.clone();
        let ends: Vec<_> = p.clients.iter_mut().filter_map(|c| c.end.take()).collect();
        let issuer = rand::random_range(0..ph.admins.len());
        let path = format!("/v1/tenants/acme/users/{user}/logout?wait=closed");
        let t0 = Instant::now();
        let call = crate::admin::post(ph.http, &ph.admins[issuer], &path, &reason);
        let waits = futures_util::future::join_all(
            ends.into_iter().map(|e| tokio::time::timeout(ph.within, e)),
        );
        let (resp, closes) = tokio::join!(call, waits);
        let mut latest: f64 = 0.0;
        for c in closes {
            match c {
                Ok(Ok(End::Closed(4005, at))) => {
                    let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
                    each.push(ms);
                    latest = latest.max(ms);
                }
                _ => lo_wrong += 1,
            }
        }
        last.push(latest);
        if let Ok((200, body)) = resp {
            lo_prop.push(body["propagation_ms"].as_f64().unwrap_or(f64::NAN));
        }
    }
    rep.latency("logout (20 sessions) → last 4005", &last, None);
    rep.latency("logout → each 4005", &each, None);
    rep.latency("logout propagation_ms (server)", &lo_prop, None);
    if lo_wrong > 0 {
        rep.partial(format!(
            "{lo_wrong} logout sessions without a 4005 close within {:?}",
            ph.within
        ));
    }
    Ok(last)
}
