//! Cross-region latency without root: three voters in three regions on the `cross-region`
//! timing profile, with 40 ms ± 10 ms each way on every peer link (an 80 ms RTT, as between
//! continents). Clients publish-subscribe, get revoked through random nodes, and resume on
//! nodes in other regions (handover across the slow links). Revocations must hold the
//! healthy bound, resumes must lose nothing, and the cluster must stay live.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;
use tokio::time::Instant;

const CHANNEL: &str = "feed.xr";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_region_latency_with_revocations_and_resumes() {
    let mut s = Scenario::new("cross_region_latency");
    let opts = Options {
        cluster: "timing = \"cross-region\"".into(),
        ..Options::default()
    };
    let c = ChaosCluster::start(&opts, &s).await;
    let ids = c.ids();
    for a in &ids {
        for b in &ids {
            if a < b {
                c.net
                    .delay(*a, *b, Duration::from_millis(40), Duration::from_millis(10));
            }
        }
    }
    let plan: Vec<(String, u64)> = (0..12).map(|i| (format!("x{i}"), ids[i % 3])).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some(CHANNEL)).await;
    assert!(sessions.len() >= 11, "only {} sessions", sessions.len());
    let admin = c.admin.clone();
    let nodes: Vec<(u64, String)> = ids
        .iter()
        .map(|id| (*id, c.node(*id).admin().to_owned()))
        .collect();
    let publisher = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(8);
        let mut n = 0u64;
        while Instant::now() < end {
            n += 1;
            let (id, addr) = &nodes[n as usize % nodes.len()];
            admin.publish(*id, addr, CHANNEL, n).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Resumes in another region, and revocations, interleaved.
    let mut revoked = Vec::new();
    for (i, sess) in sessions.iter_mut().enumerate() {
        tokio::time::sleep(s.between(Duration::from_millis(100), Duration::from_millis(500))).await;
        if i % 3 == 2 {
            let on = [ids[s.pick(ids.len())]];
            let kind = s.pick(3);
            let r = workload::revoke(&c, kind, sess, &on, true, Duration::from_secs(20));
            revoked.push(r.await.expect("revocation acknowledged"));
        } else {
            let home = sess.conn.as_ref().map_or(ids[0], |x| x.node);
            let away: Vec<u64> = ids.iter().copied().filter(|id| *id != home).collect();
            let node = away[s.pick(away.len())];
            sess.drop_conn();
            s.fault(
                "drop_client",
                &format!("client {} moves n{home} -> n{node}", sess.client),
            );
            let r = sess
                .connect(&c.history, node, &c.node(node).ws_url(), workload::WELCOME)
                .await;
            assert!(r.is_ok(), "resume in another region failed: {r:?}");
        }
    }
    publisher.await.expect("publisher");
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    drop(sessions);
    s.finish(Some(&c), &Params::default());
}
