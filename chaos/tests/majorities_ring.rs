//! Five voters in a majorities ring (Jepsen's nemesis): each node still reaches its two
//! ring neighbours, so each sees a majority, but no two see the same one. Writes and
//! revocations are attempted on every node meanwhile; whatever is acknowledged must stay
//! ordered by log index and must keep its users out. After the heal the cluster elects,
//! commits and serves.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::client::Token;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::net::majorities_ring_cuts;
use tether_chaos::scenario::Scenario;
use tether_chaos::workload::{self, PERMS, Revoked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majorities_ring_of_five() {
    let mut s = Scenario::new("majorities_ring");
    let opts = Options {
        voters: 5,
        ..Options::default()
    };
    let c = ChaosCluster::start(&opts, &s).await;
    let mut ids = c.ids();
    // The seed decides the ring's order.
    for i in (1..ids.len()).rev() {
        let j = s.pick(i + 1);
        ids.swap(i, j);
    }
    let plan: Vec<(String, u64)> = (0..10).map(|i| (format!("r{i}"), ids[i % 5])).collect();
    let sessions = workload::open_sessions(&c, plan, Some("feed.r")).await;
    for (a, b) in majorities_ring_cuts(&ids) {
        c.net.partition(&[a], &[b]);
    }
    // Operations on every node while the ring stands.
    let mut revoked = Vec::new();
    let end =
        tokio::time::Instant::now() + s.between(Duration::from_secs(4), Duration::from_secs(7));
    let mut k = 0u64;
    while tokio::time::Instant::now() < end {
        k += 1;
        let id = ids[s.pick(ids.len())];
        let addr = c.node(id).admin().to_owned();
        if s.pick(2) == 0 {
            c.admin.write_probe(id, &addr, k).await;
        } else {
            let token = Token::new(&format!("ring-{k}"), &PERMS);
            if c.admin
                .revoke_token(id, &addr, &token.jti, token.exp())
                .await
                .is_ok()
            {
                revoked.push(Revoked::Jti { token });
            }
        }
    }
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(40)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    drop(sessions);
    let params = Params {
        // Revocations here target tokens nobody holds; the bound is the healthy one.
        revocation_bound: Duration::from_secs(3),
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
