//! Starting the connection actor of an admitted (or resumed-from-elsewhere) session: its
//! effective permissions, the audit line, its socket tasks and its supervisor link.

use ractor::Actor;
use tokio_tungstenite::WebSocketStream;

use super::{ClientStream, Gateway};
use crate::audit::AuditRecord;
use crate::auth::VerifiedToken;
use crate::limits::ConnSlot;
use crate::session::end::{End, record_end};
use crate::session::{
    AuthContext, ConnArgs, ConnectionActor, ResumedFrom, SupervisorMsg, spawn_io,
};

/// Starts the connection actor of an admitted (or resumed-from-elsewhere) session.
pub(super) async fn start_session<S: ClientStream>(
    gw: &Gateway,
    ws: WebSocketStream<S>,
    slot: ConnSlot,
    t: VerifiedToken,
    session_id: String,
    resume_token: String,
    resumed: Option<ResumedFrom>,
) {
    let ctx = gw.ctx.clone();
    // A new session starts at epoch 1; a resumed one at the epoch its `BindSession` gave it.
    let epoch = resumed.as_ref().map_or(1, |r| r.epoch);
    let tenant_limits = ctx
        .registry
        .read(|s| s.tenant(&t.tenant).map(|r| r.config.limits.clone()))
        .unwrap_or_default();
    let (permissions, perms_version) = ctx
        .registry
        .read(|s| {
            s.user_permissions(&t.tenant, &t.user)
                .map(|(p, v)| (p.to_vec(), v))
        })
        .unwrap_or_else(|| (t.permissions.clone(), 0));
    ctx.audit.emit(AuditRecord {
        kind: if t.act.is_some() {
            "impersonation"
        } else {
            "auth_ok"
        },
        tenant: Some(&t.tenant),
        user: Some(&t.user),
        session_id: Some(&session_id),
        actor: t.act.as_deref(),
        ..Default::default()
    });
    let auth = AuthContext {
        tenant: t.tenant,
        user: t.user,
        session_id: session_id.clone(),
        jti: t.jti,
        iat: t.iat,
        exp: t.exp,
        token_permissions: t.permissions,
        permissions,
        perms_version,
        act: t.act,
        sid: t.sid,
    };
    let io_cfg = crate::session::IoConfig::of(&ctx.conn);
    // The slot lives as long as the socket's reader: dropping it frees the per-IP count.
    let io = Box::new(move |me| spawn_io(ws, me, io_cfg, slot));
    let messages_per_sec = tenant_limits
        .messages_per_conn_per_sec
        .unwrap_or(ctx.conn.messages_per_sec);
    let args = ConnArgs {
        ctx: ctx.clone(),
        auth,
        resume_token,
        io,
        resumed,
        messages_per_sec,
        session_deadline_ms: tenant_limits
            .session_max_lifetime_secs
            .map(|secs| ctx.clock.now_ms().saturating_add(secs.saturating_mul(1000))),
    };
    match Actor::spawn_linked(None, ConnectionActor, args, gw.supervisor.get_cell()).await {
        Ok((actor, _)) => {
            tracing::Span::current().record("outcome", "ok");
            super::handshake_done(&ctx, crate::metrics::Outcome::OK);
            let _ = gw.supervisor.cast(SupervisorMsg::Track {
                actor: actor.get_id(),
                session_id,
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "could not start connection actor");
            super::handshake_failed(&ctx, "spawn");
            let _ = record_end(&ctx.registry, session_id, epoch, End::Close).await;
        }
    }
}
