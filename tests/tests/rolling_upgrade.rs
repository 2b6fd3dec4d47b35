//! A rolling upgrade on real processes: a 3-node cluster with live SDK sessions, each node
//! drained (SIGTERM) and started again on its data dir in turn, followers first and the
//! leader last, while token revocations and logouts go on through whichever nodes are up.
//! Every acknowledged one must refuse admission at once on another node and hold on every
//! node after the roll; no revoked token may be admitted at any point; the sessions resume.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};
use tether_tests::client::{WsClient, request};
use tether_tests::cluster::TestCluster;
use tether_tests::tokens::*;
use tether_tests::{DEADLINE, wait_for};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 6;

/// How an admission attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Welcome,
    Closed(u16),
    /// No answer: the node is down or draining (connection refused or dropped).
    Unreachable,
}

async fn admit(url: &str, token: &str) -> Admission {
    let Ok(mut c) = WsClient::upgrade(request(url, Some(token), None, None)).await else {
        return Admission::Unreachable;
    };
    c.send(&tether_protocol::ClientFrame::hello(None)).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(end, c.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"welcome\"") => {
                return Admission::Welcome;
            }
            Ok(Some(Ok(Message::Close(Some(f))))) => return Admission::Closed(f.code.into()),
            Ok(Some(Ok(_))) => continue,
            _ => return Admission::Unreachable,
        }
    }
}

/// A revocation the cluster acknowledged, and a token it must refuse from then on.
struct Acked {
    what: String,
    token: String,
    code: u16,
}

/// Admissions of valid fresh tokens on one node while another one restarts.
#[derive(Default, Debug, Clone, Copy)]
struct Probe {
    admitted: usize,
    refused: usize,
    unreachable: usize,
}

/// Every 100 ms, a fresh valid token on each node; tallied under the phase in `phase` (the
/// node restarting) until `stop`.
async fn probe_admissions(
    urls: Vec<String>,
    phase: Arc<Mutex<usize>>,
    probes: Arc<Mutex<Vec<[Probe; 3]>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        for (i, url) in urls.iter().enumerate() {
            n += 1;
            let outcome = admit(url, &token(&format!("probe-{n}"), &[])).await;
            let at = *phase.lock().expect("phase");
            let mut p = probes.lock().expect("probes");
            let slot = &mut p[at][i];
            match outcome {
                Admission::Welcome => slot.admitted += 1,
                Admission::Closed(_) => slot.refused += 1,
                Admission::Unreachable => slot.unreachable += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Default)]
struct Tally {
    issued: usize,
    acked: Vec<Acked>,
    /// Right after its ack, the revoked token was refused on another node.
    refused_at_once: usize,
    violations: Vec<String>,
}

/// Revokes a token or logs out a user through node `i % 3`, then tries the revoked token on
/// the next node; until `stop`.
async fn revoke_while_rolling(
    admins: Vec<String>,
    urls: Vec<String>,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let bearer = admin_token("tether:admin");
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (path, body, acked) = if i.is_multiple_of(2) {
            let jti = format!("roll-jti-{i}");
            let mut c = claims("holder", 3600, &[]);
            c["jti"] = json!(jti);
            let token = sign_hs(TENANT_KID, TENANT_SECRET, &c);
            let body = json!({"jti": jti, "exp": now() + 3600});
            let acked = Acked {
                what: jti,
                token,
                code: 4004,
            };
            (
                format!("/v1/tenants/{TENANT}/tokens/revoke"),
                Some(body),
                acked,
            )
        } else {
            let user = format!("roll-user-{i}");
            let mut c = claims(&user, 3600, &[]);
            c["iat"] = json!(now() - 5);
            let token = sign_hs(TENANT_KID, TENANT_SECRET, &c);
            let acked = Acked {
                what: user.clone(),
                token,
                code: 4005,
            };
            (
                format!("/v1/tenants/{TENANT}/users/{user}/logout"),
                None,
                acked,
            )
        };
        tally.lock().expect("tally").issued += 1;
        let mut req = http
            .post(format!("http://{}{path}", admins[i % 3]))
            .bearer_auth(&bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if req.send().await.is_ok_and(|r| r.status() == 200) {
            let check = admit(&urls[(i + 1) % 3], &acked.token).await;
            let mut t = tally.lock().expect("tally");
            match check {
                Admission::Welcome => t
                    .violations
                    .push(format!("{} admitted after its ack", acked.what)),
                Admission::Closed(code) if code == acked.code => t.refused_at_once += 1,
                _ => {}
            }
            t.acked.push(acked);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The roll: every acknowledged revocation holds, no revoked token was admitted, every
/// session is still the same session (resumed, never a fresh one).
// Several workers: the SDK clients and the revoker keep running while the test thread waits
// for a node to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_keeps_every_acknowledged_revocation() {
    // A short drain window: clients are told to move within 5 s, so the roll takes seconds.
    let mut c = TestCluster::start_shaped(3, 0, |spec| {
        spec.limits = "handshakes_per_ip_per_sec = 10000\n[session]\ndrain_secs = 6".into();
    })
    .await;
    let urls: Vec<String> = (1..=3).map(|id| c.node(id).ws_url()).collect();
    let admins: Vec<String> = (1..=3).map(|id| c.node(id).admin_addr.clone()).collect();

    let mut clients = Vec::new();
    let resumes = Arc::new(Mutex::new(0usize));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    for k in 0..CLIENTS {
        let mut endpoints = urls.clone();
        endpoints.rotate_left(k % 3);
        let mut cfg = ClientConfig::new(endpoints);
        cfg.backoff_min = Duration::from_millis(50);
        cfg.backoff_max = Duration::from_millis(500);
        let tok = StaticToken(token(&format!("live-{k}"), &[]));
        let client = Client::connect(cfg, tok).await.expect("sdk connect");
        let mut events = client.events().expect("events");
        let resumes = resumes.clone();
        let log = log.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                log.lock().expect("log").push(format!("client {k}: {ev:?}"));
                if let ClientEvent::Connected { resumed: true, .. } = ev {
                    *resumes.lock().expect("resumes") += 1;
                }
            }
        });
        let session = client.session_id().expect("session id");
        clients.push((client, session));
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let revoker = tokio::spawn(revoke_while_rolling(
        admins.clone(),
        urls.clone(),
        tally.clone(),
        stop.clone(),
    ));

    let phase = Arc::new(Mutex::new(0usize));
    let probes = Arc::new(Mutex::new(vec![[Probe::default(); 3]; 4]));
    let prober = tokio::spawn(probe_admissions(
        urls.clone(),
        phase.clone(),
        probes.clone(),
        stop.clone(),
    ));

    let leader = c.leader(1).await;
    let mut order: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    order.push(leader);
    for (step, &id) in order.iter().enumerate() {
        *phase.lock().expect("phase") = step + 1;
        let before = tally.lock().expect("tally").acked.len();
        let node = c.node_mut(id);
        let status = tokio::task::block_in_place(|| node.terminate(Duration::from_secs(40)));
        assert!(
            status.is_some_and(|s| s.success()),
            "node {id} drained: {status:?}"
        );
        c.node_mut(id).spawn().await;
        // The node is back as a member that follows the leader again.
        let admin = c.node(id);
        wait_for(
            "the restarted node to see a leader",
            DEADLINE,
            || async move {
                let view = tether_tests::admin::call(admin, "GET", "/v1/cluster", None).await;
                view.body["leader"].as_u64()
            },
        )
        .await;
        let after = tally.lock().expect("tally").acked.len();
        eprintln!(
            "node {id} restarted: {} revocations acknowledged meanwhile",
            after - before
        );
    }
    *phase.lock().expect("phase") = 0;
    // Let a few more revocations land after the last restart, then stop.
    let settled = tally.lock().expect("tally").acked.len() + 5;
    wait_for("revocations after the roll", DEADLINE, || {
        let tally = tally.clone();
        async move { (tally.lock().expect("tally").acked.len() >= settled).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    revoker.await.expect("revoker");
    prober.await.expect("prober");
    let probes = probes.lock().expect("probes").clone();
    for (step, id) in order.iter().enumerate() {
        let p = &probes[step + 1];
        eprintln!(
            "while node {id} restarted, fresh admissions per node (admitted/refused/no answer): \
             n1 {}/{}/{}, n2 {}/{}/{}, n3 {}/{}/{}",
            p[0].admitted,
            p[0].refused,
            p[0].unreachable,
            p[1].admitted,
            p[1].refused,
            p[1].unreachable,
            p[2].admitted,
            p[2].refused,
            p[2].unreachable,
        );
        // The nodes that stay up keep admitting through each restart, the leader's included.
        for (i, probe) in p.iter().enumerate() {
            if i as u64 + 1 != *id {
                assert!(
                    probe.admitted > 0,
                    "node {} admitted nobody while node {id} restarted",
                    i + 1
                );
            }
        }
    }

    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    let mut held = 0;
    for a in &tally.acked {
        for url in &urls {
            match admit(url, &a.token).await {
                Admission::Closed(code) if code == a.code => held += 1,
                other => panic!("{} on {url} after the roll: {other:?}", a.what),
            }
        }
    }
    for line in log.lock().expect("log").iter() {
        eprintln!("{line}");
    }
    for (client, session) in &clients {
        assert_eq!(
            client.session_id().as_deref(),
            Some(session.as_str()),
            "a fresh session"
        );
        client.close().await;
    }
    let resumes = *resumes.lock().expect("resumes");
    eprintln!(
        "rolling upgrade: {} revocations issued, {} acknowledged, {} refused at once on another \
         node, {held} checks held after the roll ({} per node), {resumes} resumes of {CLIENTS} \
         sessions, {} admissions of a revoked token",
        tally.issued,
        tally.acked.len(),
        tally.refused_at_once,
        tally.acked.len(),
        tally.violations.len()
    );
    assert!(tally.violations.is_empty(), "{:?}", tally.violations);
    assert_eq!(held, tally.acked.len() * urls.len());
    assert!(
        tally.acked.len() >= 10,
        "too few revocations during the roll to mean much"
    );
    assert!(resumes >= CLIENTS, "every session resumed at least once");
}
