//! Root tier: a logout proposed by a node whose wall clock is behind, by less than the
//! configured `auth.leeway_secs` (30 s, the default). The logout entry's time is the proposing
//! node's clock (`at_ms`) and `not_before` is derived from it, so with that clock 20 s behind,
//! a token issued 10 s before the logout has `iat` ≥ `not_before`.
//!
//! Every client connection and admin call is recorded in the scenario's history (the
//! recording `Conn` and an `Admin` with a back-dated admin token, pointed at the namespace
//! nodes; the connections after the logout are probes) and the shared checkers run at the
//! end: revocation bound (the healthy default: the sessions admitted before the logout stay
//! open until it and must be closed by it), no admission after the logout (on every node),
//! resume, durability and single owner. The lagging clock is node configuration, never
//! healed, so it is not recorded as a fault and the liveness checker has nothing to check.

use std::time::Duration;

use serde_json::json;
use tether_chaos::admin::Admin;
use tether_chaos::checkers::Params;
use tether_chaos::client::{Conn, Dial, Token};
use tether_chaos::history::History;
use tether_chaos::netns::{self, Net, NetCluster, faketime_env};
use tether_chaos::scenario::Scenario;
use tether_tests::tokens::*;

/// A recorded connection to node `node` at `url` with `token` (`probe` when it is expected
/// to be refused): the connection, or the close code the node answered with.
async fn admission(
    h: &History,
    node: u64,
    url: &str,
    token: &Token,
    probe: bool,
) -> Result<Conn, Option<u16>> {
    let mut conn = Conn::open(Dial {
        history: h,
        client: h.next_id(),
        node,
        url,
        token,
        resume: None,
        probe,
    })
    .await;
    conn.welcomed(Duration::from_secs(20)).await.map(|_| conn)
}

/// DESIGN §2: logout-everywhere kills every token issued before the logout. Issued through a
/// node 20 s behind (within the 30 s leeway), the logout must still refuse (4005) a token
/// minted 10 s before it, on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_through_a_lagging_node_refuses_tokens_issued_before_it() {
    if !netns::enabled() {
        return;
    }
    let s = Scenario::new("netns_skewed_logout");
    let h = s.history.clone();
    let net = Net::new(&["dc", "dc", "dc"], None, s.seed).await;
    let c = NetCluster::start(net, 3, "", "", |i| {
        let mut env = vec![("TETHER_AUTH_LEEWAY_SECS".to_owned(), "30".to_owned())];
        if i == 2 {
            env.extend(faketime_env(-20));
        }
        env
    })
    .await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    let now = now();
    let mut cl = claims("late-logout", 600, &[]);
    cl["iat"] = json!(now - 10);
    let t = Token {
        user: "late-logout".into(),
        jwt: sign_hs(TENANT_KID, TENANT_SECRET, &cl),
        jti: cl["jti"].as_str().unwrap_or_default().to_owned(),
        iat: now - 10,
    };
    let mut live = Vec::new();
    for id in [1u64, 2, 3] {
        let conn = admission(&h, id, &c.node(id).ws_url(), &t, false).await;
        assert!(
            conn.is_ok(),
            "node {id} before the logout (node 3 within its leeway): {:?}",
            conn.err()
        );
        live.extend(conn);
    }
    let admin = json!({"sub": "chaos", "scope": "tether:admin", "iat": now - 60, "exp": now + 600});
    let admin = Admin::with_token(&h, sign_hs(ADMIN_KID, ADMIN_SECRET, &admin));
    let r = admin
        .logout(3, &c.node(3).admin_addr, "late-logout", false)
        .await;
    assert!(r.is_ok(), "logout through node 3: {r:?}");
    for id in [1u64, 2, 3] {
        assert_eq!(
            admission(&h, id, &c.node(id).ws_url(), &t, true)
                .await
                .err(),
            Some(Some(4005)),
            "node {id} admitted a token issued 10 s before a logout proposed by a node 20 s behind"
        );
    }
    for conn in &mut live {
        let ended = conn.ended(Duration::from_secs(10)).await;
        s.phase(&format!(
            "session on n{} after the logout: {ended:?}",
            conn.node
        ));
    }
    drop(live);
    s.finish(None, &Params::default());
}
