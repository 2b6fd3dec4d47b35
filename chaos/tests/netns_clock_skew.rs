//! Root tier: clock skew. Three voters; node 2's wall clock runs 30 s ahead and node 3's 30 s
//! behind (libfaketime, monotonic time untouched), with `auth.leeway_secs = 0` as in every
//! test node. DESIGN: JWT time checks use the node's clock (its skew past the leeway shows as
//! early or late expiry on that node, failing closed at the handshake), while revocation is
//! registry state committed through the log, so it reaches every node whatever their clocks.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tether_chaos::netns::{self, Net, NetCluster, Tally, faketime_env};
use tether_tests::admin::call_as;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::tokens::*;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const SKEW: [i64; 3] = [0, 30, -30];

/// A token for `sub` with `iat` and `exp` relative to the real clock.
fn token_at(sub: &str, iat: i64, exp: i64) -> (String, Value) {
    let now = now() as i64;
    let mut c = claims(sub, 600, &[]);
    c["iat"] = json!(now + iat);
    c["exp"] = json!(now + exp);
    (sign_hs(TENANT_KID, TENANT_SECRET, &c), c)
}

/// An admin token issued 60 s ago, so the node whose clock is behind accepts it too.
fn admin() -> String {
    let now = now();
    let c = json!({"sub": "chaos", "scope": "tether:admin", "iat": now - 60, "exp": now + 600});
    sign_hs(ADMIN_KID, ADMIN_SECRET, &c)
}

/// Connects and returns the welcome, or the close code the node answered with.
async fn admit(url: &str, token: &str) -> Result<(WsClient, Value), u16> {
    let mut c = WsClient::connect_with(url, token, Carrier::Header).await;
    let first = tokio::time::timeout(Duration::from_secs(20), c.ws.next()).await;
    match first {
        Ok(Some(Ok(Message::Text(t)))) => {
            let v: Value = serde_json::from_str(&t).expect("JSON frame");
            assert_eq!(v["type"], "welcome", "{v}");
            Ok((c, v))
        }
        Ok(Some(Ok(Message::Close(Some(f))))) => Err(u16::from(f.code)),
        other => panic!("no answer from {url}: {other:?}"),
    }
}

/// Reads until the close frame in the background: (code, when).
fn watch(ws: WsClient) -> tokio::task::JoinHandle<(u16, Instant)> {
    tokio::spawn(async move {
        let mut ws = ws;
        let (closed, _) = ws.closed_within(Duration::from_secs(120)).await;
        (closed.code, Instant::now())
    })
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
    let (seed, _rng) = netns::seeded_rng("netns_clock_skew");
    let mut tally = Tally::new("netns_clock_skew", seed);
    tally.faults += 2; // two skewed clocks
    let net = Net::new(&["dc", "dc", "dc"], None, seed).await;
    let mut c = NetCluster::start(net, 3, "", "", |i| match SKEW[i] {
        0 => Vec::new(),
        s => faketime_env(s),
    })
    .await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    let url = |id: u64| c.node(id).ws_url();
    let admin = admin();

    // Expiry by the node's own clock.
    let (short, _) = token_at("short", 0, 20);
    assert_eq!(
        admit(&url(2), &short).await.err(),
        Some(4001),
        "node 2 (+30 s) sees it expired"
    );
    assert!(
        admit(&url(1), &short).await.is_ok(),
        "node 1 admits a token with 20 s left"
    );
    let (fresh, _) = token_at("fresh", 0, 600);
    assert_eq!(
        admit(&url(3), &fresh).await.err(),
        Some(4001),
        "node 3 (-30 s) sees iat in the future"
    );
    let (older, _) = token_at("older", -40, 600);
    assert!(
        admit(&url(3), &older).await.is_ok(),
        "node 3 admits a token issued 40 s ago"
    );
    let minted = Instant::now();
    let (expiring, _) = token_at("expiring", 0, 40);
    let on2 = watch(
        admit(&url(2), &expiring)
            .await
            .expect("node 2 admits 40 s")
            .0,
    );
    let on1 = watch(
        admit(&url(1), &expiring)
            .await
            .expect("node 1 admits 40 s")
            .0,
    );

    // Revocation through the skewed nodes, meanwhile.
    let (t, _) = token_at("victim", -40, 600);
    let (ws, w) = admit(&url(2), &t).await.expect("victim on node 2");
    let victim = watch(ws);
    let sid = w["session_id"].as_str().expect("sid").to_owned();
    let path = format!("/v1/sessions/{sid}/revoke?wait=closed");
    let revoked = Instant::now();
    let r = call_as(c.node(3), Some(&admin), "POST", &path, None).await;
    assert_eq!(r.status, 200, "revoke through node 3: {}", r.body);
    let (code, at) = victim.await.expect("victim");
    assert_eq!(code, 4004);
    tally.revocation(at - revoked);

    let (t, cl) = token_at("jti-holder", -40, 600);
    let body = json!({"jti": cl["jti"], "exp": cl["exp"]});
    let r = call_as(
        c.node(2),
        Some(&admin),
        "POST",
        "/v1/tenants/acme/tokens/revoke",
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "token revoke through node 2: {}", r.body);
    for id in 1..=3 {
        assert_eq!(
            admit(&url(id), &t).await.err(),
            Some(4004),
            "revoked jti on node {id}"
        );
    }

    for (via, user) in [(2u64, "lo2"), (3, "lo3")] {
        let (t, _) = token_at(user, -40, 600);
        let mut live = Vec::new();
        for id in 1..=3 {
            live.push(watch(admit(&url(id), &t).await.expect("before logout").0));
        }
        let path = format!("/v1/tenants/acme/users/{user}/logout?wait=closed");
        let r = call_as(c.node(via), Some(&admin), "POST", &path, None).await;
        assert_eq!(r.status, 200, "logout through node {via}: {}", r.body);
        for (k, s) in live.into_iter().enumerate() {
            assert_eq!(
                s.await.expect("watcher").0,
                4005,
                "{user} on node {}",
                k + 1
            );
        }
        for id in 1..=3 {
            assert_eq!(
                admit(&url(id), &t).await.err(),
                Some(4005),
                "{user}'s old token on node {id}"
            );
        }
    }

    // Node 2 closed the 40 s token when its clock reached `exp`: ~10 s after minting.
    let (code, at) = on2.await.expect("watcher");
    let after = at - minted;
    println!("node 2 (+30 s) closed a 40 s token {code} after {after:?}");
    assert_eq!(code, 4100);
    assert!(
        after >= Duration::from_millis(8_500) && after <= Duration::from_secs(14),
        "node 2 expired a 40 s token after {after:?}, expected ~10 s (its clock is 30 s ahead)"
    );
    assert!(
        !on1.is_finished(),
        "node 1 closed a token with time left: {:?}",
        on1.await
    );
    on1.abort();

    c.assert_alive();
    c.wait_all_ready(Duration::from_secs(30)).await;
    // 7 admissions, victim + revoke, jti revoke + 3 admissions, 2 × (3 sessions + logout + 3
    // admissions).
    tally.operations += 7 + 2 + 4 + 2 * 7;
    tally.record();
}
