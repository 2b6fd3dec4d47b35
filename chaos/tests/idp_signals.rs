//! Identity-provider signals under faults: back-channel logouts and SETs (each ending one
//! user's IdP session and logging another user out) are posted through random nodes while
//! a follower is cut off from the other voters and the leader is SIGKILLed mid-burst; a
//! signal that fails is retried on the next node. Every signal answered 200/202 must hold on
//! every node afterwards (sessions closed, the IdP session denied, old tokens refused), and a
//! SET that was never acknowledged must be all or nothing: both of its users refused, or
//! neither.

use std::time::Duration;

use tether_chaos::admin::Outcome;
use tether_chaos::checkers::Params;
use tether_chaos::client::Token;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload::{self, PERMS, Revoked};
use tokio::time::Instant;

/// A fenced minority closes its clients within 2 × lease + grace (docs/cluster.md §7), plus
/// a loaded machine's margin.
const BOUND: Duration = Duration::from_millis(3_500 + 1_500);
/// How long one signal is retried across the nodes.
const RETRY_FOR: Duration = Duration::from_secs(20);

/// One signal: a back-channel logout of `a`'s IdP session, or a SET ending `a`'s and
/// logging `b` out.
#[derive(Clone, Debug)]
struct Signal {
    a: String,
    b: Option<String>,
}

/// Posts `signal` to the nodes in `order` (through their client proxies) until one answers
/// 2xx or `RETRY_FOR` passes.
async fn post_until_ok(c: &ChaosCluster, order: &[u64], signal: &Signal) -> bool {
    let end = Instant::now() + RETRY_FOR;
    for id in order.iter().cycle() {
        if Instant::now() >= end {
            return false;
        }
        let n = c.node(*id);
        if !n.running || n.stopped {
            continue;
        }
        let addr = n.client_proxy.addr().to_string();
        let outcome = match &signal.b {
            None => c.admin.idp_logout(*id, &addr, &signal.a).await,
            Some(b) => c.admin.idp_set(*id, &addr, &signal.a, b).await,
        };
        if matches!(outcome, Outcome::Ok { .. }) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_signals_hold_through_leader_kill_and_partition() {
    let mut s = Scenario::new("idp_signals");
    let opts = Options {
        voters: 5,
        extra_tenant: tether_chaos::idp::tenant_toml(),
        ..Options::default()
    };
    let mut c = ChaosCluster::start(&opts, &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("a leader");
    let plan: Vec<(String, u64)> = (0..36)
        .map(|i| (format!("i{i}"), ids[s.pick(ids.len())]))
        .collect();
    let sessions = workload::open_sessions(&c, plan, Some("feed.i")).await;
    assert!(sessions.len() >= 32, "only {} sessions", sessions.len());
    s.phase("sessions open");

    // A follower is cut off from the other voters for the whole burst.
    let followers: Vec<u64> = ids.iter().copied().filter(|id| *id != leader).collect();
    let minority = followers[s.pick(followers.len())];
    c.net.isolate(minority, &c.others(&[minority]));
    let users: Vec<String> = sessions.iter().map(|x| x.token.user.clone()).collect();
    let mut signals = Vec::new();
    let mut i = 0;
    while i < users.len().min(30) {
        if s.pick(3) == 0 && i + 1 < users.len() {
            signals.push(Signal {
                a: users[i].clone(),
                b: Some(users[i + 1].clone()),
            });
            i += 2;
        } else {
            signals.push(Signal {
                a: users[i].clone(),
                b: None,
            });
            i += 1;
        }
    }
    let kill_at = s.pick(signals.len() / 2) + 2;
    let mut acked = Vec::new();
    let mut unacked = Vec::new();
    for (k, signal) in signals.iter().enumerate() {
        if k == kill_at {
            c.kill(leader);
            s.phase("leader killed");
        }
        let start = ids[s.pick(ids.len())];
        let order: Vec<u64> = ids
            .iter()
            .cycle()
            .skip_while(|id| **id != start)
            .take(ids.len())
            .copied()
            .collect();
        if post_until_ok(&c, &order, signal).await {
            acked.push(signal.clone());
        } else {
            unacked.push(signal.clone());
        }
        tokio::time::sleep(s.between(Duration::from_millis(10), Duration::from_millis(120))).await;
    }
    s.phase(&format!(
        "{} signals acknowledged, {} not",
        acked.len(),
        unacked.len()
    ));
    assert!(
        acked.len() * 4 >= signals.len() * 3,
        "only {} of {} signals acknowledged",
        acked.len(),
        signals.len()
    );
    c.restart(leader).await;
    s.heal();
    assert!(
        workload::all_ready(&c, Duration::from_secs(40)).await,
        "nodes not ready after the heal"
    );
    workload::liveness(&c, Duration::from_secs(30)).await;
    s.phase("live after heal");

    // Every acknowledged signal holds on every node: a fresh token of an ended IdP session
    // is refused (4004), a logged-out user's old token too (4005).
    let old_token = |user: &str| {
        sessions
            .iter()
            .find(|x| x.token.user == user)
            .map(|x| x.token.clone())
            .expect("a session of the user")
    };
    let mut revoked = Vec::new();
    for signal in &acked {
        revoked.push(Revoked::IdpSession {
            token: Token::new(&signal.a, &PERMS),
        });
        if let Some(b) = &signal.b {
            revoked.push(Revoked::User {
                token: old_token(b),
            });
        }
    }
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    // A SET never acknowledged is one log entry or none: its two users agree.
    let alive = ids[0];
    for signal in unacked.iter().filter(|x| x.b.is_some()) {
        let b = signal.b.as_deref().unwrap_or_default();
        let a_refused = workload::probe_settled(
            &c,
            alive,
            &Token::new(&signal.a, &PERMS),
            None,
            Duration::from_secs(10),
        )
        .await
            == Some(4004);
        let b_refused =
            workload::probe_settled(&c, alive, &old_token(b), None, Duration::from_secs(10)).await
                == Some(4005);
        assert_eq!(
            a_refused, b_refused,
            "SET {signal:?} was half applied (a refused: {a_refused}, b refused: {b_refused})"
        );
    }
    s.phase("probed");
    drop(sessions);
    let params = Params {
        revocation_bound: BOUND,
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
