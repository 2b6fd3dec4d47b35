//! Regression: a freshly elected leader was fenced by the isolation monitor before its
//! first AppendEntries was acknowledged (its lease counted only AppendEntries acks, and it
//! had none yet), and a fenced leader sends no AppendEntries, so it never got one: the
//! cluster stayed leaderless for minutes (found by `leader_kill_revocations` on a loaded
//! machine; fixed in `cluster/src/network.rs`: a granted vote dates the lease). The race
//! needs the monitor's 100 ms tick to fall between the election and the first ack, so this
//! test widens that window: a small delay on every peer link, and the survivors stutter
//! (SIGSTOP/SIGCONT) while they elect. Four new leaders in a row must each commit within
//! the deadline. The race stays a race: `cluster/src/network.rs` has the deterministic unit
//! test of the cause.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_leader_fenced_before_first_ack() {
    let mut s = Scenario::with_seed("new_leader_fenced_before_first_ack", 10193736698323060083);
    let mut c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    for a in &ids {
        for b in &ids {
            if a != b {
                // RTT 20 ms: under the 50 ms AppendEntries timeout, above a tick's share.
                c.net
                    .update(*a, *b, |f| f.delay = Duration::from_millis(10));
            }
        }
    }
    for round in 0..4u64 {
        let leader = c
            .agreed_leader(&ids, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("round {round}: no leader"));
        tokio::time::sleep(s.between(Duration::ZERO, Duration::from_millis(300))).await;
        c.kill(leader);
        let others = c.others(&[leader]);
        // Stutter the survivors while they elect: a process that wakes from a pause runs
        // its overdue isolation check and its first replication in either order.
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < until {
            for id in &others {
                c.stop(*id);
            }
            tokio::time::sleep(s.between(Duration::from_millis(80), Duration::from_millis(200)))
                .await;
            for id in &others {
                c.cont(*id);
            }
            tokio::time::sleep(s.between(Duration::from_millis(10), Duration::from_millis(60)))
                .await;
        }
        let admin = c.admin.clone();
        let ok = workload::until_ok(&c, &others, Duration::from_secs(20), |id, addr| {
            let admin = admin.clone();
            async move { admin.write_probe(id, &addr, round).await }
        })
        .await;
        assert!(
            ok.is_some(),
            "round {round}: the survivors never committed (leaderless)"
        );
        c.restart(leader).await;
        assert!(
            workload::all_ready(&c, Duration::from_secs(30)).await,
            "round {round}"
        );
    }
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    s.finish(Some(&c), &Params::default());
}
