//! Revocation propagation at 80 ms RTT between nodes (root tier): the `revocation` scenario
//! on three voters in three regions, each in its own network namespace, with the chaos
//! crate's cross-region link (40 ms each way plus up to 4 ms jitter, added by its L4 relay
//! because this kernel has no `sch_netem`) and `timing = "cross-region"`. Clients and admin
//! calls come from the host end of the bridge, next to every node: only node-to-node traffic
//! crosses a region. Runs only with `TETHER_CHAOS_NETNS=1` (root, iproute2, nftables) and
//! `TETHER_BIN` (the release binary); otherwise the report says skipped.

use std::time::Duration;

use serde_json::json;
use tether_chaos::netns::{self, Link, Net, NetCluster};
use tokio::time::Instant;

use super::revocation::{LOGOUT_SESSIONS, Phase, logouts, revocations};
use crate::Ctx;
use crate::pool::{Pool, PoolSpec};
use crate::report::{Row, ScenarioReport, Status};
use crate::tokens::Alg;
use crate::ws::Endpoint;

/// Longer than the loopback scenario's 10 s: a revocation here is a few round trips plus a
/// cross-region heartbeat, and a slow outlier should count as late, not as lost.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// The benchmark node's raised limits (`node.rs`), minus the keys the test harness's config
/// already sets: every client comes from one address, the host end of the bridge.
const LIMITS: &str = "max_connections = 200000\nmax_connections_per_ip = 200000\n\
                      max_pending_upgrades_per_ip = 200000\n\
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
    let ph = Phase {
        http: &http,
        admins: &admins,
        eps: &eps,
        within: CLOSE_WITHIN,
        src_base: 2,
        per_ip: usize::MAX,
        src_ip: Some(host),
    };
    eprintln!("  {} revocations", o.rtt_revocations);
    let label = "revoke → 4004 at client (80 ms RTT)";
    let (all, same, cross) =
        revocations(&mut rep, &ph, &mut pool, o.rtt_revocations, label, None).await;
    eprintln!(
        "  {} logout-everywhere of a user with {LOGOUT_SESSIONS} sessions",
        o.rtt_logouts
    );
    let last = logouts(&mut rep, &ph, o.rtt_logouts, "rlo").await?;
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
