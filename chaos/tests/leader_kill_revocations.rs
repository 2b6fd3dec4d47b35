//! Leader SIGKILL during a burst of revocations (sessions, tokens, logouts) issued on
//! random nodes, with retries on other nodes when a call fails; the old leader restarts on
//! its data dir. Every acknowledged revocation must close its sockets within the bound,
//! survive the crash (probed on every node after the restart), and keep its users out.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload::{self, Revoked};

/// The leader dies at a random moment of a 40-revocation burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_during_revocation_burst() {
    let mut s = Scenario::new("leader_kill_revocations");
    let mut c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let plan: Vec<(String, u64)> = (0..40)
        .map(|i| (format!("u{i}"), ids[s.pick(ids.len())]))
        .collect();
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.a")).await;
    assert!(
        sessions.len() >= 36,
        "only {} sessions opened",
        sessions.len()
    );
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("a leader");
    let kill_after = s.pick(sessions.len() / 2) + 2;
    let mut revoked = Vec::new();
    for (i, sess) in sessions.iter_mut().enumerate() {
        if i == kill_after {
            c.kill(leader);
        }
        let kind = s.pick(3);
        let wait = s.pick(2) == 0;
        let start = ids[s.pick(ids.len())];
        let order: Vec<u64> = ids
            .iter()
            .cycle()
            .skip_while(|id| **id != start)
            .take(ids.len())
            .copied()
            .collect();
        let admin = c.admin.clone();
        let token = sess.token.clone();
        let sid = sess.session_id.clone().unwrap_or_default();
        let resume_token = sess.resume_token.clone().unwrap_or_default();
        let ok = workload::until_ok(&c, &order, Duration::from_secs(20), |id, addr| {
            let admin = admin.clone();
            let (token, sid) = (token.clone(), sid.clone());
            async move {
                match kind {
                    0 => admin.revoke_session(id, &addr, &sid, wait).await,
                    1 => admin.revoke_token(id, &addr, &token.jti, token.exp()).await,
                    _ => admin.logout(id, &addr, &token.user, wait).await,
                }
            }
        })
        .await;
        if ok.is_some() {
            revoked.push(match kind {
                0 => Revoked::Session {
                    token,
                    sid,
                    resume_token,
                },
                1 => Revoked::Jti { token },
                _ => Revoked::User { token },
            });
        }
        tokio::time::sleep(s.between(Duration::from_millis(10), Duration::from_millis(120))).await;
    }
    assert!(
        revoked.len() >= 30,
        "only {} revocations acknowledged",
        revoked.len()
    );
    c.restart(leader).await;
    assert!(
        workload::all_ready(&c, Duration::from_secs(40)).await,
        "nodes not ready after restart"
    );
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    let params = Params {
        revocation_bound: Duration::from_secs(3),
        ..Params::default()
    };
    drop(sessions);
    s.finish(Some(&c), &params);
}
