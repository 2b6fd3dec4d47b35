//! `hello.resume`: take a session back, on this node or from another one, fenced by the
//! registry's epoch (`BindSession`). An unknown, expired or mismatched resume starts a fresh
//! session; a revoked or logged-out one is refused (4004/4005).

use std::sync::Arc;

use tether_protocol::{CloseCode, ResumeRequest};
use tokio_tungstenite::WebSocketStream;

use super::admit::{admit, random_b64, resume_hash, unavailable_code, user_caps};
use super::start::start_session;
use super::{ClientStream, Gateway, handshake_failed};
use crate::auth::VerifiedToken;
use crate::limits::ConnSlot;
use crate::session::{ConnMsg, ResumeAttach, ResumedFrom, close_raw, denial_close_code, spawn_io};
use tether_cluster::command::{BindSession, ClientInfo, Command, Denial, RegistryEvent};

/// How long a stale local actor of a resumed session may take to give up what it kept.
const STALE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn resume<S: ClientStream>(
    gw: Arc<Gateway>,
    mut ws: WebSocketStream<S>,
    t: VerifiedToken,
    client: ClientInfo,
    r: ResumeRequest,
    slot: ConnSlot,
) {
    let ctx = gw.ctx.clone();
    let fail = |reason: &'static str| handshake_failed(&ctx, reason);
    tracing::Span::current().record("session_id", r.session_id.as_str());
    let new_token = random_b64(32);
    let bind = BindSession {
        session_id: r.session_id.clone(),
        tenant: t.tenant.clone(),
        user: t.user.clone(),
        resume_hash: resume_hash(&r.resume_token),
        new_resume_hash: resume_hash(&new_token),
        node: ctx.node_id,
        jti: t.jti.clone(),
        iat: t.iat,
        exp: t.exp,
        sid: t.sid.clone(),
        max_sessions_per_user: user_caps(&ctx, &t.tenant).0,
    };
    let committed = match ctx.registry.propose(Command::BindSession(bind)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(session_id = %r.session_id, tenant = %t.tenant, user = %t.user, error = %e, "resume commit failed");
            fail("registry_unavailable");
            return close_raw(&mut ws, unavailable_code(&e), ctx.conn.close_timeout).await;
        }
    };
    let (epoch, previous_node) = match committed.events.first() {
        Some(RegistryEvent::SessionBound {
            epoch,
            previous_node,
            ..
        }) => (*epoch, *previous_node),
        Some(RegistryEvent::AdmissionDenied {
            reason: Denial::ResumeUnknown,
            ..
        }) => {
            // Unknown, expired or not this client's: a fresh session, as the protocol says.
            ctx.metrics
                .resumes
                .get_or_create(&crate::metrics::Where { r#where: "fresh" })
                .inc();
            return admit(gw, ws, t, client, slot).await;
        }
        Some(RegistryEvent::AdmissionDenied { reason, .. }) => {
            fail("resume_denied");
            return close_raw(&mut ws, denial_close_code(*reason), ctx.conn.close_timeout).await;
        }
        other => {
            tracing::error!(event = ?other, "unexpected answer to BindSession");
            fail("resume_internal");
            return close_raw(&mut ws, CloseCode::TryAgainLater, ctx.conn.close_timeout).await;
        }
    };
    let io_cfg = crate::session::IoConfig::of(&ctx.conn);
    let local = ctx.directory.get(&r.session_id);
    match local {
        Some(entry) if previous_node == ctx.node_id => {
            // The session lives on this node (detached, or still attached to an older
            // connection): hand the new socket to its actor.
            let io = Box::new(move |me| spawn_io(ws, me, io_cfg, slot));
            let attach = ResumeAttach {
                io,
                token: t,
                last_seq: r.last_seq,
                resume_token: new_token,
                epoch,
                cause: tracing::Span::current(),
            };
            if entry.actor.cast(ConnMsg::Resume(Box::new(attach))).is_err() {
                // It ended in between; the client sees its socket drop and reconnects.
                fail("resume_actor_gone");
            }
        }
        stale => {
            let mut carried = Vec::new();
            if let Some(old) = stale {
                // An actor left here from an earlier ownership (the session moved away and
                // back): its state is out of date, the session's state comes from the node
                // that owned it last. A last flush takes what it still kept for that node and
                // ends it; the rest of it leaves without touching the registry.
                let asked = old.actor.call(
                    |reply| ConnMsg::Flush {
                        epoch: None,
                        last: true,
                        removed: false,
                        reply,
                    },
                    Some(STALE_FLUSH_TIMEOUT),
                );
                if let Ok(ractor::rpc::CallResult::Success(a)) = asked.await {
                    carried = a.messages;
                }
                ctx.directory
                    .remove_actor(&r.session_id, old.actor.get_id());
                let _ = old.actor.cast(ConnMsg::Close {
                    code: CloseCode::SessionTakenOver,
                    registry: true,
                    cause: tracing::Span::current(),
                });
            }
            // Another node owned it: the new actor registers here first (so deliveries
            // routed to this node from now on reach it), then fetches the numbering,
            // subscriptions and missed frames from the previous owner.
            let from = ResumedFrom {
                last_seq: r.last_seq,
                epoch,
                previous_node: (previous_node != ctx.node_id).then_some(previous_node),
                carried,
                cause: tracing::Span::current(),
            };
            start_session(&gw, ws, slot, t, r.session_id, new_token, Some(from)).await;
        }
    }
}
