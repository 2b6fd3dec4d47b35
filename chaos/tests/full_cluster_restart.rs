//! Revocations, logouts and token revokes are acknowledged, then every voter is SIGKILLed
//! at seeded moments (some while more revocations are in flight) and all restart on their
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
    let kill_at = [s.pick(6) + 6, s.pick(3) + 12, sessions.len()];
    let mut revoked = Vec::new();
    let mut killed = 0;
    for (i, sess) in sessions.iter_mut().enumerate() {
        while killed < 2 && i == kill_at[killed] {
            c.kill(order[killed]);
            killed += 1;
        }
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
        let o = match kind {
            0 => c.admin.revoke_session(node, &addr, &sid, false).await,
            1 => {
                c.admin
                    .revoke_token(node, &addr, &token.jti, token.exp())
                    .await
            }
            _ => c.admin.logout(node, &addr, &token.user, false).await,
        };
        if o.is_ok() {
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
    }
    c.kill(order[2]);
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
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(15)).await;
    drop(sessions);
    s.finish(Some(&c), &Params::default());
}
