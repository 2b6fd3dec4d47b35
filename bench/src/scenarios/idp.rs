//! IdP back-channel logout on a 3-node cluster: the tenant gets an `idp` section, one
//! session is held per user (its token carries the IdP session id `idp-<user>`), and
//! `idp_signals` logout tokens naming those IdP sessions are posted one after another to a
//! random node's client listener; each is timed from the POST to the 4004 close frame read
//! by the client (and the POST's own answer, which comes after the commit).

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::json;
use tether_tests::idp::{BACKCHANNEL_EVENT, LOGOUT_AUD, sign_hs_typed};
use tether_tests::tokens::{
    AUDIENCE, EC_KID, EC_PUBLIC_PEM, ISSUER, TENANT, TENANT_KID, TENANT_SECRET, now,
};
use tokio::time::Instant;

use crate::Ctx;
use crate::node::BenchCluster;
use crate::pool::{Pool, PoolSpec};
use crate::report::{ScenarioReport, Target};
use crate::tokens::{Alg, idp_sid};
use crate::ws::{End, Endpoint};

const CLOSE_WITHIN: Duration = Duration::from_secs(10);

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let n = ctx.opts.idp_signals;
    let mut rep = ScenarioReport::new(
        "idp",
        json!({"nodes": 3, "signals": n, "kind": "backchannel_logout with sid"}),
    );
    let cluster = BenchCluster::start(&ctx.bin, 3, None, &ctx.log_dir("idp")).await?;
    let http = reqwest::Client::new();
    let tenant = json!({
        "id": TENANT, "issuer": ISSUER, "audiences": [AUDIENCE],
        "keys": [{"kid": TENANT_KID, "alg": "HS256", "secret": TENANT_SECRET},
                 {"kid": EC_KID, "alg": "ES256", "public_key_pem": EC_PUBLIC_PEM}],
        "idp": {"backchannel_logout_audiences": [LOGOUT_AUD], "sid_ttl_secs": 3600},
    });
    let put = http
        .put(format!(
            "http://{}/v1/tenants/{TENANT}",
            cluster.nodes[0].admin_addr
        ))
        .bearer_auth(crate::admin::admin_token())
        .json(&tenant)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    anyhow::ensure!(put.status().is_success(), "PUT tenant: {}", put.status());
    // Every node reads its registry behind a barrier here, so each has the idp section.
    for node in &cluster.nodes {
        crate::admin::get(&http, &node.admin_addr, &format!("/v1/tenants/{TENANT}")).await?;
    }
    let eps: Vec<Endpoint> = cluster
        .nodes
        .iter()
        .map(|n| Endpoint::new(&n.ws_url(), None))
        .collect::<anyhow::Result<_>>()?;
    let clients: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.client_addr.clone())
        .collect();
    eprintln!("  opening {n} sessions over 3 nodes");
    let mut pool = Pool::open(PoolSpec {
        endpoints: &eps,
        count: n,
        user_prefix: "idp",
        users_per: 1,
        perms: &[],
        alg: Alg::Hs256,
        concurrency: 64,
        src_base: 2,
        per_ip: 2000,
        src_ip: None,
        on_text: None,
        subscribe: None,
    })
    .await?;
    let mut order: Vec<usize> = (0..pool.clients.len()).collect();
    order.shuffle(&mut rand::rng());
    let (mut closed, mut answered, mut cross) = (Vec::new(), Vec::new(), Vec::new());
    let mut refused = 0usize;
    eprintln!("  {n} back-channel logouts");
    for &i in &order {
        let c = &mut pool.clients[i];
        let Some(end) = c.end.take() else { continue };
        let receiver = rand::random_range(0..clients.len());
        let claims = json!({
            "iss": ISSUER, "aud": LOGOUT_AUD, "iat": now(), "exp": now() + 300,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "sid": idp_sid(&c.user), "events": {BACKCHANNEL_EVENT: {}},
        });
        let token = sign_hs_typed("logout+jwt", &claims);
        let url = format!(
            "http://{}/v1/idp/{TENANT}/backchannel-logout",
            clients[receiver]
        );
        let t0 = Instant::now();
        let post = http
            .post(url)
            .form(&[("logout_token", token)])
            .timeout(Duration::from_secs(30))
            .send();
        let (status, end) = tokio::join!(
            async {
                let r = post.await.map(|r| r.status().as_u16());
                (r, t0.elapsed())
            },
            tokio::time::timeout(CLOSE_WITHIN, end)
        );
        match status {
            (Ok(200), took) => answered.push(took.as_secs_f64() * 1000.0),
            _ => refused += 1,
        }
        if let Ok(Ok(End::Closed(4004, at))) = end {
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            closed.push(ms);
            if c.node != receiver {
                cross.push(ms);
            }
        }
    }
    rep.latency(
        "IdP logout POST → 4004 at client",
        &closed,
        Some(Target::at_most(10.0)),
    );
    rep.latency("  session on another node than the receiver", &cross, None);
    rep.latency(
        "IdP logout POST answered 200 (after commit)",
        &answered,
        None,
    );
    rep.note(format!(
        "{} of {} signals closed their session with 4004 within {:?}; {refused} not answered 200",
        closed.len(),
        order.len(),
        CLOSE_WITHIN
    ));
    drop(pool);
    drop(cluster);
    Ok(rep)
}
