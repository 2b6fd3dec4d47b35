//! SIGSTOP of the leader for longer than the election timeout: the process freezes with
//! its sockets open. The others elect a new leader and keep revoking and admitting. On
//! SIGCONT the old leader must step down and catch up: its own revoked sessions close,
//! and none of its clients gets a frame it should not.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_leader_past_election_timeout() {
    let mut s = Scenario::new("leader_sigstop");
    let mut c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("leader");
    let plan: Vec<(String, u64)> = (0..18).map(|i| (format!("p{i}"), ids[i % 3])).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.p")).await;
    assert!(sessions.len() >= 16, "only {} sessions", sessions.len());
    let others = c.others(&[leader]);
    c.stop(leader);
    let frozen_for = s.between(Duration::from_millis(1_500), Duration::from_secs(4));
    let stopped_at = tokio::time::Instant::now();
    let new_leader = c.agreed_leader(&others, Duration::from_secs(20)).await;
    assert!(
        new_leader.is_some(),
        "no leader among the others while n{leader} is frozen"
    );
    let mut revoked = Vec::new();
    // While frozen: revoke sessions owned by the others.
    for sess in sessions
        .iter_mut()
        .filter(|x| x.conn.as_ref().is_some_and(|c| c.node != leader))
        .take(4)
    {
        let kind = s.pick(3);
        let r = workload::revoke(&c, kind, sess, &others, true, Duration::from_secs(15)).await;
        revoked.push(r.expect("revocation not acknowledged"));
    }
    tokio::time::sleep_until(stopped_at + frozen_for).await;
    c.cont(leader);
    // After the thaw: revoke sessions the old leader owns.
    for sess in sessions
        .iter_mut()
        .filter(|x| x.conn.as_ref().is_some_and(|c| c.node == leader))
        .take(3)
    {
        let kind = s.pick(3);
        let r = workload::revoke(&c, kind, sess, &others, true, Duration::from_secs(15)).await;
        revoked.push(r.expect("revocation not acknowledged"));
    }
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(30)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    drop(sessions);
    let params = Params {
        // A thawed node may still be fenced or behind for a lease; the others are healthy.
        revocation_bound: Duration::from_secs(5),
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
