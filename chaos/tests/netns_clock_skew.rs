//! Root tier: clock skew. Three voters; node 2's wall clock runs 30 s ahead and node 3's 30 s
//! behind (libfaketime, monotonic time untouched), with `auth.leeway_secs = 0` as in every
//! test node. DESIGN: JWT time checks use the node's clock (its skew past the leeway shows as
//! early or late expiry on that node, failing closed at the handshake), while revocation is
//! registry state committed through the log, so it reaches every node whatever their clocks.
//!
//! Every client connection and admin call is recorded in the scenario's history (the
//! recording `Conn`/`Session` and an `Admin` with a back-dated admin token, pointed at the
//! namespace nodes; connections expected to be refused are probes) and the shared checkers
//! run at the end: revocation bound (the healthy default), no admission after a revocation
//! (the revoked jti and the logged-out users' old tokens on every node), resume (no resumes
//! here: it checks `seq` from 1), durability and single owner. The skewed clocks are node
//! configuration for the whole run, never healed, so they are not recorded as faults and
//! the liveness checker has nothing to check. The asserts below stay (the close codes by
//! each node's own clock, the ~10 s early expiry on node 2).

use std::time::Duration;

use serde_json::json;
use tether_chaos::admin::Admin;
use tether_chaos::checkers::Params;
use tether_chaos::client::{Conn, Dial, Token};
use tether_chaos::history::History;
use tether_chaos::netns::{self, Net, NetCluster, faketime_env};
use tether_chaos::scenario::Scenario;
use tether_tests::tokens::*;

const SKEW: [i64; 3] = [0, 30, -30];
const WELCOME: Duration = Duration::from_secs(20);

/// A token for `sub` with `iat` and `exp` relative to the real clock.
fn token_at(sub: &str, iat: i64, exp: i64) -> (Token, u64) {
    let now = now() as i64;
    let mut c = claims(sub, 600, &[]);
    c["iat"] = json!(now + iat);
    c["exp"] = json!(now + exp);
    let t = Token {
        user: sub.to_owned(),
        jwt: sign_hs(TENANT_KID, TENANT_SECRET, &c),
        jti: c["jti"].as_str().unwrap_or_default().to_owned(),
        iat: (now + iat) as u64,
    };
    (t, (now + exp) as u64)
}

/// An admin token issued 60 s ago, so the node whose clock is behind accepts it too.
fn admin_jwt() -> String {
    let now = now();
    let c = json!({"sub": "chaos", "scope": "tether:admin", "iat": now - 60, "exp": now + 600});
    sign_hs(ADMIN_KID, ADMIN_SECRET, &c)
}

/// A recorded connection to node `node` with `token`; `probe` when it is expected to be
/// refused. The connection and its welcome, or the close code the node answered with.
async fn admit(
    h: &History,
    c: &NetCluster,
    node: u64,
    token: &Token,
    probe: bool,
) -> Result<Conn, Option<u16>> {
    let mut conn = Conn::open(Dial {
        history: h,
        client: h.next_id(),
        node,
        url: &c.node(node).ws_url(),
        token,
        resume: None,
        probe,
    })
    .await;
    conn.welcomed(WELCOME).await.map(|_| conn)
}

/// With node 2 at +30 s and node 3 at -30 s: each node judges `exp`/`iat` by its own clock
/// (node 2 refuses a token with 20 s left and closes one with 40 s left 4100 about 10 s after
/// it was minted, node 3 refuses a fresh token as issued in the future), while a session
/// revoke, a token revoke and a logout issued through either skewed node close and refuse
/// what they cover on every node; no node crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clocks_expire_locally_and_revoke_everywhere() {
    if !netns::enabled() {
        return;
    }
    let s = Scenario::new("netns_clock_skew");
    let h = s.history.clone();
    let admin = Admin::with_token(&h, admin_jwt());
    let net = Net::new(&["dc", "dc", "dc"], None, s.seed).await;
    let mut c = NetCluster::start(net, 3, "", "", |i| match SKEW[i] {
        0 => Vec::new(),
        s => faketime_env(s),
    })
    .await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    s.phase("cluster ready: n2 +30 s, n3 -30 s");

    // Expiry by the node's own clock.
    let (short, _) = token_at("short", 0, 20);
    assert_eq!(
        admit(&h, &c, 2, &short, true).await.err(),
        Some(Some(4001)),
        "node 2 (+30 s) sees it expired"
    );
    assert!(
        admit(&h, &c, 1, &short, false).await.is_ok(),
        "node 1 admits a token with 20 s left"
    );
    let (fresh, _) = token_at("fresh", 0, 600);
    assert_eq!(
        admit(&h, &c, 3, &fresh, true).await.err(),
        Some(Some(4001)),
        "node 3 (-30 s) sees iat in the future"
    );
    let (older, _) = token_at("older", -40, 600);
    assert!(
        admit(&h, &c, 3, &older, false).await.is_ok(),
        "node 3 admits a token issued 40 s ago"
    );
    let minted = h.now_us();
    let (expiring, _) = token_at("expiring", 0, 40);
    let mut on2 = admit(&h, &c, 2, &expiring, false)
        .await
        .expect("node 2 admits 40 s");
    let on1 = admit(&h, &c, 1, &expiring, false)
        .await
        .expect("node 1 admits 40 s");

    // Revocation through the skewed nodes, meanwhile.
    let (t, _) = token_at("victim", -40, 600);
    let mut victim = admit(&h, &c, 2, &t, false).await.expect("victim on node 2");
    let sid = victim.state().welcome.map(|w| w.session_id).expect("sid");
    let r = admin
        .revoke_session(3, &c.node(3).admin_addr, &sid, true)
        .await;
    assert!(r.is_ok(), "revoke through node 3: {r:?}");
    assert_eq!(
        victim.ended(Duration::from_secs(30)).await,
        Some(Some(4004))
    );

    let (t, exp) = token_at("jti-holder", -40, 600);
    let r = admin
        .revoke_token(2, &c.node(2).admin_addr, &t.jti, exp)
        .await;
    assert!(r.is_ok(), "token revoke through node 2: {r:?}");
    for id in 1..=3 {
        assert_eq!(
            admit(&h, &c, id, &t, true).await.err(),
            Some(Some(4004)),
            "revoked jti on node {id}"
        );
    }

    for (via, user) in [(2u64, "lo2"), (3, "lo3")] {
        let (t, _) = token_at(user, -40, 600);
        let mut live = Vec::new();
        for id in 1..=3 {
            live.push(admit(&h, &c, id, &t, false).await.expect("before logout"));
        }
        let r = admin.logout(via, &c.node(via).admin_addr, user, true).await;
        assert!(r.is_ok(), "logout through node {via}: {r:?}");
        for (k, conn) in live.iter_mut().enumerate() {
            assert_eq!(
                conn.ended(Duration::from_secs(30)).await,
                Some(Some(4005)),
                "{user} on node {}",
                k + 1
            );
        }
        for id in 1..=3 {
            assert_eq!(
                admit(&h, &c, id, &t, true).await.err(),
                Some(Some(4005)),
                "{user}'s old token on node {id}"
            );
        }
    }

    // Node 2 closed the 40 s token when its clock reached `exp`: ~10 s after minting.
    let code = on2.ended(Duration::from_secs(120)).await;
    let at = h.end_of(on2.id).expect("end recorded");
    let after = Duration::from_micros(at.saturating_sub(minted));
    s.phase(&format!(
        "node 2 (+30 s) closed a 40 s token {code:?} after {after:?}"
    ));
    assert_eq!(code, Some(Some(4100)));
    assert!(
        after >= Duration::from_millis(8_500) && after <= Duration::from_secs(14),
        "node 2 expired a 40 s token after {after:?}, expected ~10 s (its clock is 30 s ahead)"
    );
    assert!(on1.is_open(), "node 1 closed a token with time left");

    c.assert_alive();
    c.wait_all_ready(Duration::from_secs(30)).await;
    drop((on1, on2));
    s.finish(None, &Params::default());
}
