//! Revocations, logouts and token revokes are acknowledged, then every voter is SIGKILLed
//! at seeded moments (each while a revocation is in flight) and all restart on their
//! data dirs. Every acknowledged revocation must be in force on every node afterwards
//! (probed), and commit indices must keep growing.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload::{self, Revoked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_sigkill_and_restart() {
    let mut s = Scenario::new("full_cluster_restart");
    let mut c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let plan: Vec<(String, u64)> = (0..18).map(|i| (format!("f{i}"), ids[i % 3])).collect();
    let mut sessions = workload::open_sessions(&c, plan, None).await;
    assert!(sessions.len() >= 16, "only {} sessions", sessions.len());
    let mut order = ids.clone();
    for i in (1..order.len()).rev() {
        let j = s.pick(i + 1);
        order.swap(i, j);
    }
    // The three kills come at seeded points, each while a revocation is in flight; the
    // last right after the second (without a quorum nothing more could commit).
    // At least six revocations are acknowledged before the first kill: those after it can
    // fail while the survivors elect, and the checks below need six.
    let first = s.pick(5) + 6;
    let second = first + s.pick(5) + 2;
    // The third kill must still find a session to revoke: fewer than 18 may have opened.
    let third = (second + 1).min(sessions.len() - 1);
    let kill_at = [first, second.min(third - 1), third];
    let mut revoked = Vec::new();
    let mut killed = 0;
    for (i, sess) in sessions.iter_mut().enumerate() {
        let alive: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| c.node(*id).running)
            .collect();
        let kind = s.pick(3);
        let token = sess.token.clone();
        let sid = sess.session_id.clone().unwrap_or_default();
        let rt = sess.resume_token.clone().unwrap_or_default();
        let node = alive[s.pick(alive.len())];
        let addr = c.node(node).admin().to_owned();
        let admin = c.admin.clone();
        let (t, id) = (token.clone(), sid.clone());
        let call = tokio::spawn(async move {
            match kind {
                0 => admin.revoke_session(node, &addr, &id, false).await,
                1 => admin.revoke_token(node, &addr, &t.jti, t.exp()).await,
                _ => admin.logout(node, &addr, &t.user, false).await,
            }
        });
        if killed < 3 && i == kill_at[killed] {
            tokio::time::sleep(s.between(Duration::ZERO, Duration::from_millis(30))).await;
            c.kill(order[killed]);
            killed += 1;
        }
        if call.await.is_ok_and(|o| o.is_ok()) {
            revoked.push(match kind {
                0 => Revoked::Session {
                    token,
                    sid,
                    resume_token: rt,
                },
                1 => Revoked::Jti { token },
                _ => Revoked::User { token },
            });
        }
        if killed == 3 {
            break;
        }
    }
    assert_eq!(killed, 3, "only {killed} voters killed");
    s.phase("all voters killed");
    assert!(
        revoked.len() >= 6,
        "only {} revocations acknowledged",
        revoked.len()
    );
    tokio::time::sleep(s.between(Duration::from_millis(100), Duration::from_secs(1))).await;
    for id in &order {
        c.restart(*id).await;
    }
    assert!(
        workload::all_ready(&c, Duration::from_secs(60)).await,
        "not ready after restart"
    );
    s.phase("all ready after restart");
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(15)).await;
    s.phase("probed");
    drop(sessions);
    s.finish(Some(&c), &Params::default());
}
