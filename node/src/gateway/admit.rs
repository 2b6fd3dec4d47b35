//! The handshake of one connection: upgrade, `hello` within `auth_timeout`, token checks,
//! admission through the log; then `start` runs the connection actor.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use tether_protocol::{ClientFrame, CloseCode, ResumeRequest, ServerFrame};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use super::upgrade::{self, UpgradeInfo};
use super::{ClientStream, Gateway, handshake_failed};
use crate::audit::AuditRecord;
use crate::auth::VerifiedToken;
use crate::context::{NodeCtx, RegistryTenants};
use crate::limits::ConnSlot;
use crate::net::forwarded_client;
use crate::session::{close_raw, denial_close_code};
use tether_cluster::RegistryError;
use tether_cluster::command::{ClientInfo, Command, Denial, OpenSession, RegistryEvent};

/// Outcome of the handshake before an actor exists: a close code and a metrics reason.
struct Refusal {
    code: CloseCode,
    reason: &'static str,
}

fn refuse(code: CloseCode, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

/// The handshake of a socket that holds its `slot`. `client` is its peer, or the address a
/// PROXY protocol header named; a trusted proxy's request may name the real client in its
/// forwarded headers, and the slot is charged to that client before the upgrade is answered.
pub(super) async fn handshake<S: ClientStream>(
    gw: Arc<Gateway>,
    stream: S,
    client: SocketAddr,
    slot: ConnSlot,
) {
    // Upgrade, hello, token, admission or resume: one span, filled in as it goes.
    let span = tracing::info_span!(
        "gateway.handshake",
        tenant = tracing::field::Empty,
        user = tracing::field::Empty,
        session_id = tracing::field::Empty,
        outcome = tracing::field::Empty
    );
    let started = tokio::time::Instant::now();
    super::HANDSHAKE_STARTED
        .scope(started, handshake_in_span(gw, stream, client, slot))
        .instrument(span)
        .await;
}

async fn handshake_in_span<S: ClientStream>(
    gw: Arc<Gateway>,
    stream: S,
    client: SocketAddr,
    mut slot: ConnSlot,
) {
    let ctx = &gw.ctx;
    let mut info = UpgradeInfo::default();
    let mut client_ip = client.ip();
    let mut refused = None;
    let allow_query = ctx.conn.allow_query_token;
    let trusted = &gw.edge.trusted_proxies;
    #[allow(clippy::result_large_err)] // tungstenite's callback contract
    let cb = |req: &Request, resp| {
        if trusted.contains(client_ip)
            && let Some(ip) = forwarded_client(req.headers(), trusted)
        {
            client_ip = ip;
        }
        // A no-op for a slot charged at accept; a proxied one is charged to its client here.
        if let Err(e) = slot.attribute(client_ip, false) {
            refused = Some(e);
            return Err(upgrade::reject_limit(e));
        }
        upgrade::inspect(req, resp, allow_query).map(|(resp, i)| {
            info = i;
            resp
        })
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, cb, Some(gw.ws_config()));
    let ws = match tokio::time::timeout(ctx.conn.upgrade_timeout, accept).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(_)) | Err(_) => {
            if let Some(e) = refused {
                ctx.metrics.refused(e.reason());
            }
            let reason = refused.map(|e| e.reason()).unwrap_or("upgrade");
            return handshake_failed(ctx, reason);
        }
    };
    slot.upgraded();
    let peer = SocketAddr::new(client_ip, client.port());
    let mut ws = ws;
    if ctx.isolation.is_isolated() {
        // Fail closed: a node cut off from the quorum cannot see revocations.
        handshake_failed(ctx, "isolated");
        return close_raw(
            &mut ws,
            CloseCode::RegistryUnavailable,
            ctx.conn.close_timeout,
        )
        .await;
    }
    match authenticate(&gw, &mut ws, &info, peer).await {
        Ok((token, hello_client, Some(r))) => {
            super::resume::resume(gw, ws, token, hello_client, r, slot).await
        }
        Ok((token, hello_client, None)) => admit(gw, ws, token, hello_client, slot).await,
        Err(r) => {
            handshake_failed(ctx, r.reason);
            close_raw(&mut ws, r.code, ctx.conn.close_timeout).await;
        }
    }
}

/// Waits for `hello`, picks the token by carrier precedence and verifies it.
async fn authenticate<S: ClientStream>(
    gw: &Gateway,
    ws: &mut WebSocketStream<S>,
    info: &UpgradeInfo,
    peer: SocketAddr,
) -> Result<(VerifiedToken, ClientInfo, Option<ResumeRequest>), Refusal> {
    use futures_util::StreamExt;
    let ctx = &gw.ctx;
    let deadline = tokio::time::Instant::now() + ctx.conn.auth_timeout;
    let mut errors = 0;
    let (hello_token, resume, client) = loop {
        let next = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(refuse(CloseCode::AuthTimeout, "auth_timeout")),
            Ok(Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. })))) => {
                return Err(refuse(CloseCode::MessageTooBig, "frame_too_big"));
            }
            Ok(None) | Ok(Some(Err(_))) => return Err(refuse(CloseCode::Normal, "client_gone")),
            Ok(Some(Ok(m))) => m,
        };
        let text = match next {
            Message::Text(t) => t,
            Message::Close(_) => return Err(refuse(CloseCode::Normal, "client_gone")),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                errors += 1;
                if errors >= ctx.conn.max_protocol_errors {
                    return Err(refuse(CloseCode::ProtocolError, "protocol"));
                }
                continue;
            }
        };
        match ClientFrame::parse(&text) {
            Ok(ClientFrame::Hello {
                token,
                resume,
                client,
            }) => break (token, resume, client),
            other => {
                errors += 1;
                let message = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "the first frame must be hello".to_owned(),
                };
                let f = ServerFrame::Error {
                    code: "bad_frame",
                    message: &message,
                }
                .to_json();
                let _ = futures_util::SinkExt::send(ws, Message::text(f)).await;
                if errors >= ctx.conn.max_protocol_errors {
                    return Err(refuse(CloseCode::ProtocolError, "protocol"));
                }
            }
        }
    };
    let token = info
        .bearer_header
        .as_deref()
        .or(info.bearer_subprotocol.as_deref())
        .or(hello_token.as_deref())
        .or(info.query_token.as_deref())
        .ok_or_else(|| refuse(CloseCode::Unauthorized, "missing_token"))?;
    let remote = peer.ip().to_string();
    let verified = match ctx
        .auth
        .verify(token, &RegistryTenants(&ctx.registry))
        .instrument(tracing::info_span!("auth.verify"))
        .await
    {
        Ok(v) => {
            let span = tracing::Span::current();
            span.record("tenant", v.tenant.as_str());
            span.record("user", v.user.as_str());
            v
        }
        Err(e) => {
            ctx.audit.emit(AuditRecord {
                kind: "auth_fail",
                reason: Some(e.reason()),
                remote: Some(&remote),
                ..Default::default()
            });
            return Err(refuse(CloseCode::Unauthorized, e.reason()));
        }
    };
    let origins = ctx.registry.read(|s| {
        s.tenant(&verified.tenant)
            .map(|t| t.config.allowed_origins.clone())
    });
    if !upgrade::origin_allowed(&origins.unwrap_or_default(), info.origin.as_deref()) {
        return Err(refuse(CloseCode::ForbiddenOrigin, "origin"));
    }
    if let Some(r) = &resume {
        // Resuming a session the registry revoked must fail loudly, not silently start fresh.
        if let Some(cause) = ctx
            .registry
            .read(|s| s.tombstone(&r.session_id).map(|t| t.cause))
        {
            return Err(refuse(denial_close_code(cause), "resume_revoked"));
        }
    }
    let client = client
        .map(|c| ClientInfo {
            name: c.name,
            version: c.version,
        })
        .unwrap_or_default();
    Ok((verified, client, resume))
}

/// The user caps of `tenant` (its override, else the node's `[limits]`): attached sessions,
/// and detached ones (`session.max_detached_per_user`, else twice the attached cap).
pub(super) fn user_caps(ctx: &NodeCtx, tenant: &str) -> (u32, u32) {
    let tenant_cap = ctx.registry.read(|s| {
        s.tenant(tenant)
            .and_then(|r| r.config.limits.max_connections_per_user)
    });
    let cap = tenant_cap.unwrap_or(ctx.conn.max_sessions_per_user);
    let detached = ctx
        .conn
        .max_detached_per_user
        .unwrap_or(cap.saturating_mul(2));
    (cap, detached)
}

/// The close code for a commit that failed: try again (1013) when the registry is busy
/// electing or slow, 4111 when it is out of reach.
pub(super) fn unavailable_code(e: &RegistryError) -> CloseCode {
    match e {
        RegistryError::Timeout | RegistryError::NotLeader { .. } => CloseCode::TryAgainLater,
        _ => CloseCode::RegistryUnavailable,
    }
}

/// SHA-256 (hex) of a resume token: only the hash goes into the registry.
pub(super) fn resume_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

pub(super) fn random_b64(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Commits `OpenSession` and starts the actor; or closes with the registry's verdict.
pub(super) async fn admit<S: ClientStream>(
    gw: Arc<Gateway>,
    mut ws: WebSocketStream<S>,
    t: VerifiedToken,
    client: ClientInfo,
    slot: ConnSlot,
) {
    let ctx = gw.ctx.clone();
    let fail = |reason: &'static str| handshake_failed(&ctx, reason);
    // Cheap local pre-check: most refusals need no commit.
    if let Err(d) = ctx.registry.read(|s| {
        s.check_admission(
            &t.tenant,
            &t.user,
            t.iat,
            t.jti.as_deref(),
            t.sid.as_deref(),
        )
    }) {
        fail("registry_precheck");
        return close_raw(&mut ws, denial_close_code(d), ctx.conn.close_timeout).await;
    }
    let (max_sessions, max_detached) = user_caps(&ctx, &t.tenant);
    let session_id = random_hex(16);
    tracing::Span::current().record("session_id", session_id.as_str());
    let resume_token = random_b64(32);
    let open = OpenSession {
        session_id: session_id.clone(),
        tenant: t.tenant.clone(),
        user: t.user.clone(),
        jti: t.jti.clone(),
        iat: t.iat,
        exp: t.exp,
        node: ctx.node_id,
        client,
        act: t.act.clone(),
        sid: t.sid.clone(),
        max_sessions_per_user: max_sessions,
        max_detached_per_user: max_detached,
        resume_hash: resume_hash(&resume_token),
    };
    let started = tokio::time::Instant::now();
    let committed = ctx.registry.propose(Command::OpenSession(open)).await;
    ctx.metrics.observe_commit(started.elapsed());
    match committed {
        Ok(c) => {
            if let Some(d) = c.events.iter().find_map(|e| match e {
                RegistryEvent::AdmissionDenied { reason, .. } => Some(*reason),
                _ => None,
            }) {
                fail("registry_denied");
                if d == Denial::TooManySessions {
                    ctx.metrics.refused("per_user");
                }
                return close_raw(&mut ws, denial_close_code(d), ctx.conn.close_timeout).await;
            }
        }
        Err(e) => {
            tracing::warn!(%session_id, tenant = %t.tenant, user = %t.user, error = %e, "admission commit failed");
            fail("registry_unavailable");
            return close_raw(&mut ws, unavailable_code(&e), ctx.conn.close_timeout).await;
        }
    }
    super::start::start_session(&gw, ws, slot, t, session_id, resume_token, None).await;
}
