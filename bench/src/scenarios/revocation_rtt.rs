//! Revocation propagation at 80 ms RTT between nodes (root tier): the `revocation` scenario
//! on three voters in three regions, each in its own network namespace, with the chaos
//! crate's cross-region link (40 ms each way plus up to 4 ms jitter, added by its L4 relay
//! because this kernel has no `sch_netem`) and `timing = "cross-region"`. Clients and admin
//! calls come from the host end of the bridge, next to every node: only node-to-node traffic
//! crosses a region. Runs only with `TETHER_CHAOS_NETNS=1` (root, iproute2, nftables) and
//! `TETHER_BIN` (the release binary); otherwise the report says skipped.

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::json;
use tether_chaos::netns::{self, Link, Net, NetCluster};
use tokio::time::Instant;

use crate::Ctx;
use crate::pool::{Pool, PoolSpec};
use crate::report::{Row, ScenarioReport, Status};
use crate::tokens::Alg;
use crate::ws::{End, Endpoint};

/// Longer than the loopback scenario's 10 s: a revocation here is a few round trips plus a
/// cross-region heartbeat, and a slow outlier should count as late, not as lost.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);
const LOGOUT_SESSIONS: usize = 20;
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// The benchmark node's raised limits (`node.rs`), minus the keys the test harness's config
/// already sets: every client comes from one address, the host end of the bridge.
const LIMITS: &str = "max_connections = 200000\nmax_connections_per_ip = 200000\n\
                      handshakes_per_ip_per_sec = 1000000\nmax_connections_per_user = 50\n\
                      upgrade_timeout_secs = 30\n";

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let link = Link::cross_region();
    let mut rep = ScenarioReport::new(
        "revocation-rtt",
        json!({"nodes": 3, "regions": REGIONS, "rtt_ms": link.rtt().as_millis() as u64,
               "jitter_ms_each_way": link.jitter.as_millis() as u64,
               "conns": o.rtt_conns, "revocations": o.rtt_revocations,
               "logouts": o.rtt_logouts, "logout_sessions": LOGOUT_SESSIONS,
               "timing": "cross-region", "wait": "closed"}),
    );
    if !netns::enabled() {
        rep.status = Status::Skipped;
        rep.note(format!("skipped: {} not set (root tier)", netns::ENV));
        return Ok(rep);
    }
    if std::env::var_os("TETHER_BIN").is_none() {
        anyhow::bail!(
            "revocation-rtt needs TETHER_BIN=<release tether>: the namespace cluster starts \
             the test harness's binary, a debug build otherwise"
        );
    }
    let seed = rand::random::<u64>();
    eprintln!("  3 namespaces ({REGIONS:?}), RTT {:?}", link.rtt());
    let net = Net::new(&REGIONS, Some(link), seed).await;
    let host = std::net::IpAddr::V4(net.host_ip());
    let t0 = Instant::now();
    let cluster =
        NetCluster::start(net, 3, "timing = \"cross-region\"", LIMITS, |_| Vec::new()).await;
    cluster.wait_all_ready(Duration::from_secs(60)).await;
    rep.row(Row::new(
        "cluster of 3 regions ready",
        t0.elapsed().as_secs_f64() * 1000.0,
        "ms",
    ));
    let eps: Vec<Endpoint> = cluster
        .nodes
        .iter()
        .map(|n| Endpoint::new(&n.ws_url(), None))
        .collect::<anyhow::Result<_>>()?;
    let admins: Vec<String> = cluster.nodes.iter().map(|n| n.admin_addr.clone()).collect();

    eprintln!("  opening {} connections over 3 regions", o.rtt_conns);
    let mut pool = Pool::open(PoolSpec {
        endpoints: &eps,
        count: o.rtt_conns,
        user_prefix: "rr",
        users_per: 1,
        perms: &[],
        alg: Alg::Hs256,
        concurrency: 64,
        src_base: 2,
        per_ip: usize::MAX,
        src_ip: Some(host),
        on_text: None,
        subscribe: None,
    })
    .await?;
    rep.row(Row::new(
        "setup connects/s (3 regions)",
        o.rtt_conns as f64 / pool.seconds,
        "1/s",
    ));
    let http = reqwest::Client::new();
    let reason = json!({"reason": "bench"});
    let commits_before = commit_histograms(&http, &admins).await;
    let mut order: Vec<usize> = (0..pool.clients.len()).collect();
    order.shuffle(&mut rand::rng());
    let (mut all, mut same, mut cross, mut call_ms, mut prop_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut wrong = 0usize;
    eprintln!("  {} revocations", o.rtt_revocations);
    for &i in order.iter().take(o.rtt_revocations) {
        let issuer = rand::random_range(0..admins.len());
        let c = &mut pool.clients[i];
        let owner = c.node;
        let Some(end) = c.end.take() else { continue };
        let path = format!("/v1/sessions/{}/revoke?wait=closed", c.welcome.session_id);
        let t0 = Instant::now();
        let call = crate::admin::post(&http, &admins[issuer], &path, &reason);
        let (resp, closed) = tokio::join!(
            async {
                let r = call.await;
                (r, t0.elapsed())
            },
            tokio::time::timeout(CLOSE_WITHIN, end)
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
    rep.latency("revoke → 4004 at client (80 ms RTT)", &all, None);
    rep.latency("  same node (owner = issuer)", &same, None);
    rep.latency("  cross node (owner ≠ issuer)", &cross, None);
    rep.latency("revoke admin call (wait=closed)", &call_ms, None);
    rep.latency("revoke propagation_ms (server)", &prop_ms, None);
    if wrong > 0 {
        rep.partial(format!(
            "{wrong} revocations without a 4004 close within {CLOSE_WITHIN:?}"
        ));
    }
    let deltas: Vec<_> = commit_histograms(&http, &admins)
        .await
        .iter()
        .zip(&commits_before)
        .map(|(after, before)| crate::prom::delta(after, before))
        .collect();
    super::revocation::commit_rows(&mut rep, "revocations", &crate::prom::sum(&deltas));

    eprintln!(
        "  {} logout-everywhere of a user with {LOGOUT_SESSIONS} sessions",
        o.rtt_logouts
    );
    let (mut last, mut each, mut lo_prop) = (Vec::new(), Vec::new(), Vec::new());
    let mut lo_wrong = 0usize;
    for k in 0..o.rtt_logouts {
        let prefix = format!("rlo{k}-");
        let mut p = Pool::open(PoolSpec {
            endpoints: &eps,
            count: LOGOUT_SESSIONS,
            user_prefix: &prefix,
            users_per: LOGOUT_SESSIONS,
            perms: &[],
            alg: Alg::Hs256,
            concurrency: LOGOUT_SESSIONS,
            src_base: 2,
            per_ip: usize::MAX,
            src_ip: Some(host),
            on_text: None,
            subscribe: None,
        })
        .await?;
        let user = p.clients[0].user.clone();
        let ends: Vec<_> = p.clients.iter_mut().filter_map(|c| c.end.take()).collect();
        let issuer = rand::random_range(0..admins.len());
        let path = format!("/v1/tenants/acme/users/{user}/logout?wait=closed");
        let t0 = Instant::now();
        let call = crate::admin::post(&http, &admins[issuer], &path, &reason);
        let waits = futures_util::future::join_all(
            ends.into_iter()
                .map(|e| tokio::time::timeout(CLOSE_WITHIN, e)),
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
            "{lo_wrong} logout sessions without a 4005 close within {CLOSE_WITHIN:?}"
        ));
    }
    rep.note(format!("netns seed {seed} (relay jitter)"));
    let svg = ctx.out.join("revocation_rtt_cdf.svg");
    crate::plot::cdf(
        &svg,
        &format!(
            "Revocation → close frame, 3 regions at 80 ms RTT, {} conns",
            o.rtt_conns
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
    // Clients first, then the nodes, then the namespaces (`NetCluster`'s field order).
    drop(pool);
    drop(cluster);
    Ok(rep)
}

/// Every node's Raft commit (propose to apply) histogram, from `/metrics`.
async fn commit_histograms(http: &reqwest::Client, admins: &[String]) -> Vec<Vec<(f64, u64)>> {
    let mut out = Vec::new();
    for a in admins {
        let text = match http
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
