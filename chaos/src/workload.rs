//! Building blocks the scenarios share: open many sessions (hand-driven or through the
//! Rust SDK), revoke things with retries, probe revocations after restarts, and check
//! liveness after the heal. Everything is recorded in the scenario's history by the
//! recorded clients and admin calls.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::admin::Outcome;
use crate::client::{Conn, Dial, SdkClient, Session, Token};
use crate::cluster::ChaosCluster;

/// Per-call deadline for a client's welcome.
pub const WELCOME: Duration = Duration::from_secs(15);
/// Concurrent connection attempts when opening many sessions.
pub const PARALLEL: usize = 48;

/// What every scenario client may do.
pub const PERMS: [&str; 2] = ["sub:feed.*", "pub:feed.*"];

/// Starts one SDK client per `(user, node)` (at most `PARALLEL` at a time) with `node` as
/// its first endpoint and the other nodes after it, subscribed to `channel` when given.
/// Panics if one cannot start: the scenario's premise is that they all run.
pub async fn open_sdk_clients(
    c: &ChaosCluster,
    plan: Vec<(String, u64)>,
    channel: Option<&str>,
) -> Vec<SdkClient> {
    let mut out = Vec::new();
    for batch in plan.chunks(PARALLEL) {
        let starts = batch.iter().map(|(user, node)| {
            let mut endpoints: Vec<(u64, String)> = c
                .ids()
                .into_iter()
                .map(|id| (id, c.node(id).ws_url()))
                .collect();
            endpoints.sort_by_key(|(id, _)| *id != *node);
            let token = Token::new(user, &PERMS);
            let history = c.history.clone();
            async move {
                SdkClient::start(
                    &history,
                    &token,
                    &endpoints,
                    channel,
                    Duration::from_secs(30),
                )
                .await
            }
        });
        for r in futures_util::future::join_all(starts).await {
            out.push(r.unwrap_or_else(|e| panic!("SDK client: {e}")));
        }
    }
    out
}

/// Opens one session per `(user, node)` (at most `PARALLEL` at a time), subscribes each to
/// `channel` when given, and returns those that were welcomed (and subscribed).
pub async fn open_sessions(
    c: &ChaosCluster,
    plan: Vec<(String, u64)>,
    channel: Option<&str>,
) -> Vec<Session> {
    let mut out = Vec::new();
    let mut pending = FuturesUnordered::new();
    let mut plan = plan.into_iter();
    loop {
        while pending.len() < PARALLEL {
            let Some((user, node)) = plan.next() else {
                break;
            };
            let url = c.node(node).ws_url();
            let history = c.history.clone();
            pending.push(async move {
                let mut s = Session::new(&history, Token::new(&user, &PERMS));
                // As a client would: retry what the protocol says to retry (4111 when the
                // node briefly lost its lease under the load, 1013, a dropped upgrade).
                let mut ok = false;
                for attempt in 0..5u64 {
                    match s.connect(&history, node, &url, WELCOME).await {
                        Ok(_) => {
                            ok = true;
                            break;
                        }
                        Err(Some(4111) | Some(1013) | None) => {
                            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                        }
                        Err(Some(_)) => break,
                    }
                }
                let mut subscribed = true;
                if ok && let (Some(ch), Some(conn)) = (channel, s.conn.as_mut()) {
                    subscribed = conn.subscribe(ch, 1, WELCOME).await;
                }
                (s, ok && subscribed)
            });
        }
        match pending.next().await {
            Some((s, true)) => out.push(s),
            Some((_, false)) => {}
            None => break,
        }
    }
    out
}

/// Calls `f` on the nodes in `nodes` in turn until one acknowledges or `within` passes.
pub async fn until_ok<F, Fut>(
    c: &ChaosCluster,
    nodes: &[u64],
    within: Duration,
    mut f: F,
) -> Option<Outcome>
where
    F: FnMut(u64, String) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let end = Instant::now() + within;
    let mut i = 0usize;
    while Instant::now() < end {
        let id = nodes[i % nodes.len()];
        i += 1;
        let n = c.node(id);
        if !n.running || n.stopped {
            continue;
        }
        let o = f(id, n.admin().to_owned()).await;
        if o.is_ok() {
            return Some(o);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// After the heal: retries a registry write and a new client on every running node until
/// both succeed or `within` passes (the liveness checker judges the timing).
pub async fn liveness(c: &ChaosCluster, within: Duration) {
    let ids: Vec<u64> = c
        .nodes
        .iter()
        .filter(|n| n.running && !n.stopped)
        .map(|n| n.id)
        .collect();
    let admin = c.admin.clone();
    let mut k = 0;
    until_ok(c, &ids, within, |id, addr| {
        k += 1;
        let admin = admin.clone();
        async move { admin.write_probe(id, &addr, k).await }
    })
    .await;
    let end = Instant::now() + within;
    let mut i = 0;
    while Instant::now() < end {
        let id = ids[i % ids.len()];
        i += 1;
        let mut s = Session::new(&c.history, Token::new("liveness", &PERMS));
        if s.connect(&c.history, id, &c.node(id).ws_url(), WELCOME)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A probe connection on node `node`: `Some(code)` when it was refused with a close frame,
/// `None` when it was welcomed or ended without one.
pub async fn probe(
    c: &ChaosCluster,
    node: u64,
    token: &Token,
    resume: Option<(String, String, u64)>,
) -> Option<u16> {
    let mut conn = Conn::open(Dial {
        history: &c.history,
        client: c.history.next_id(),
        node,
        url: &c.node(node).ws_url(),
        token,
        resume,
        probe: true,
    })
    .await;
    match conn.welcomed(WELCOME).await {
        Ok(_) => None,
        Err(code) => code,
    }
}

/// Probes on node `node` until the answer is not a "try again" (4111, 1013, no close
/// frame) or `within` passes; returns the last answer.
pub async fn probe_settled(
    c: &ChaosCluster,
    node: u64,
    token: &Token,
    resume: Option<(String, String, u64)>,
    within: Duration,
) -> Option<u16> {
    let end = Instant::now() + within;
    loop {
        let r = probe(c, node, token, resume.clone()).await;
        if !matches!(r, Some(4111) | Some(1013) | None) || Instant::now() >= end {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every running node answers `/readyz` 200, or `within` passes.
pub async fn all_ready(c: &ChaosCluster, within: Duration) -> bool {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http");
    let end = Instant::now() + within;
    loop {
        let mut ready = true;
        for n in c.nodes.iter().filter(|n| n.running && !n.stopped) {
            let url = format!("http://{}/readyz", n.admin());
            let ok = http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ready &= ok;
        }
        if ready {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a revocation targeted, for the probes after a restart.
#[derive(Clone, Debug)]
pub enum Revoked {
    /// A session: resume it with this token and resume token.
    Session {
        token: Token,
        sid: String,
        resume_token: String,
    },
    /// A logged-out user: this token was issued before the logout.
    User { token: Token },
    /// A deny-listed token.
    Jti { token: Token },
    /// A user whose IdP session the IdP ended: every token of it (this one is fresh).
    IdpSession { token: Token },
}

impl Revoked {
    /// Probes every running node (in parallel) until each gives a settled answer.
    pub async fn probe_everywhere(&self, c: &ChaosCluster, within: Duration) {
        let ids: Vec<u64> = c
            .nodes
            .iter()
            .filter(|n| n.running && !n.stopped)
            .map(|n| n.id)
            .collect();
        let probes = ids.into_iter().map(|id| async move {
            match self {
                Revoked::Session {
                    token,
                    sid,
                    resume_token,
                } => {
                    let resume = Some((sid.clone(), resume_token.clone(), 0));
                    probe_settled(c, id, token, resume, within).await
                }
                Revoked::User { token }
                | Revoked::Jti { token }
                | Revoked::IdpSession { token } => probe_settled(c, id, token, None, within).await,
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

/// Probes every revocation in `revoked` on every running node, a few at a time.
pub async fn probe_all(c: &ChaosCluster, revoked: &[Revoked], within: Duration) {
    futures_util::stream::iter(revoked.iter().map(|r| r.probe_everywhere(c, within)))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// Revokes `sess` through the nodes `on` (retrying on the next one until `within`):
/// `kind` 0 revokes its session, 1 deny-lists its token, 2 logs its user out. Returns what
/// was revoked once acknowledged.
pub async fn revoke(
    c: &ChaosCluster,
    kind: usize,
    sess: &mut Session,
    on: &[u64],
    wait: bool,
    within: Duration,
) -> Option<Revoked> {
    let token = sess.token.clone();
    let sid = sess.session_id.clone().unwrap_or_default();
    let resume_token = sess.resume_token.clone().unwrap_or_default();
    let admin = c.admin.clone();
    until_ok(c, on, within, |id, addr| {
        let (admin, token, sid) = (admin.clone(), token.clone(), sid.clone());
        async move {
            match kind {
                0 => admin.revoke_session(id, &addr, &sid, wait).await,
                1 => admin.revoke_token(id, &addr, &token.jti, token.exp()).await,
                _ => admin.logout(id, &addr, &token.user, wait).await,
            }
        }
    })
    .await?;
    Some(match kind {
        0 => Revoked::Session {
            token,
            sid,
            resume_token,
        },
        1 => Revoked::Jti { token },
        _ => Revoked::User { token },
    })
}
