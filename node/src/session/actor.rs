//! The connection actor: its state, lifecycle (start, the hot messages, stop). Messages
//! are routed in `route.rs`, client frames handled in `handlers.rs`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tether_protocol::CloseCode;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::close::denial_close_code;
use super::deadlines::Deadline;
use super::directory::DirEntry;
use super::io::IoHandles;
use super::outbox::Outbox;
use super::rate::RateWindow;
use super::{AuthContext, ConnMsg, IoStarter, PermsUpdate};
use crate::context::NodeCtx;
use crate::perms::Permissions;

pub struct ConnectionActor;

/// Everything needed to start a connection actor once its session is admitted.
pub struct ConnArgs {
    pub ctx: Arc<NodeCtx>,
    pub auth: AuthContext,
    pub resume_token: String,
    pub io: IoStarter,
    /// Message rate for this connection (the tenant's limit, else the node's).
    pub messages_per_sec: u32,
    /// Wall time (ms) at which the session ends whatever its tokens say
    /// (the tenant's `session_max_lifetime_secs`).
    pub session_deadline_ms: Option<u64>,
    /// Set when this actor takes over a session resumed from another node.
    pub resumed: Option<ResumedFrom>,
}

/// A session resumed here from another node, without its backlog.
pub struct ResumedFrom {
    /// The client's last seen seq: numbering continues after it.
    pub last_seq: u64,
    pub epoch: u64,
    /// The previous owner, asked for the session's state once this actor is registered.
    pub previous_node: Option<tether_cluster::NodeId>,
    /// Messages a stale actor of this session on this node kept for the previous owner
    /// (the session came back before that owner fetched them); taken after the handover.
    pub carried: Vec<super::Relayed>,
    /// The handshake's span, the parent of the actor's `session.resume` span.
    pub cause: tracing::Span,
}

pub struct ConnState {
    pub(super) ctx: Arc<NodeCtx>,
    pub(super) auth: AuthContext,
    pub(super) perms: Permissions,
    pub(super) subs: BTreeSet<String>,
    pub(super) seq: u64,
    /// `None` while detached (no connection; resumable within the window).
    pub(super) io: Option<IoHandles>,
    pub(super) outbox: Outbox,
    /// Registry epoch of this ownership (fencing).
    pub(super) epoch: u64,
    pub(super) detach_timer: Option<JoinHandle<Result<(), ractor::MessagingErr<ConnMsg>>>>,
    /// Set once another node took the session over (lingering for the handover).
    pub(super) fenced: bool,
    /// A resume from another node, completed in post_start (resume token, origin).
    pending_resume: Option<Box<(String, ResumedFrom)>>,
    /// Ids of recently offered messages.
    pub(super) recent: super::handover::RecentIds,
    /// After a handover: messages kept for the session's new owner.
    pub(super) relay: Option<Box<super::handover::Relay>>,
    /// After taking the session over: the previous owner, while it may relay older messages.
    pub(super) upstream: Option<Box<super::handover::Upstream>>,
    pub(super) last_activity: Instant,
    pub(super) last_ping: Instant,
    pub(super) protocol_errors: u32,
    pub(super) rate: RateWindow,
    /// The token's and the session's deadlines (`deadlines.rs`).
    pub(super) deadline: Deadline,
    /// Set once closing started; `registry` says whether the registry already ended the session.
    pub(super) closed: Option<(CloseCode, bool)>,
}

impl Actor for ConnectionActor {
    type Msg = ConnMsg;
    type State = ConnState;
    type Arguments = ConnArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ConnMsg>,
        args: ConnArgs,
    ) -> Result<ConnState, ActorProcessingErr> {
        Box::pin(async move {
            let ConnArgs {
                ctx,
                auth,
                resume_token,
                io,
                messages_per_sec,
                session_deadline_ms,
                resumed,
            } = args;
            let io = io(myself.clone());
            ctx.directory.insert(
                &auth.session_id,
                DirEntry {
                    actor: myself.clone(),
                    tenant: auth.tenant.clone(),
                    user: auth.user.clone(),
                    jti: auth.jti.clone(),
                },
            );
            ctx.metrics.connection_opened();
            // Counted here, before the welcome is queued, so a client that has its welcome can
            // already see its handshake in /metrics.
            ctx.metrics
                .handshakes
                .get_or_create(&crate::metrics::Outcome::OK)
                .inc();
            let now = Instant::now();
            let perms = Permissions::parse(&auth.permissions);
            let (seq, epoch) = resumed
                .as_ref()
                .map(|r| (r.last_seq, r.epoch))
                .unwrap_or((0, 1));
            let outbox = Outbox::new(
                seq + 1,
                ctx.conn.outbox_max_messages,
                ctx.conn.outbox_max_bytes,
                ctx.metrics.outbox_bytes.clone(),
            );
            let mut state = ConnState {
                ctx,
                auth,
                perms,
                subs: BTreeSet::new(),
                seq,
                io: Some(io),
                outbox,
                epoch,
                detach_timer: None,
                fenced: false,
                pending_resume: None,
                recent: Default::default(),
                relay: None,
                upstream: None,
                last_activity: now,
                last_ping: now,
                protocol_errors: 0,
                rate: RateWindow::new(messages_per_sec, now),
                deadline: Deadline::new(session_deadline_ms),
                closed: None,
            };
            match resumed {
                // The welcome waits for the handover, in post_start.
                Some(from) => state.pending_resume = Some(Box::new((resume_token, from))),
                None => state.queue(state.welcome_json(&resume_token, false, false)),
            }
            tracing::debug!(
                session_id = %state.auth.session_id,
                tenant = %state.auth.tenant,
                user = %state.auth.user,
                node = state.ctx.node_id,
                act = ?state.auth.act,
                "session opened"
            );
            state.arm_expiry();
            Ok(state)
        })
        .await
    }

    async fn post_start(
        &self,
        myself: ActorRef<ConnMsg>,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        Box::pin(async move {
            if let Some((token, from)) = state.pending_resume.take().map(|b| *b) {
                let span = tracing::info_span!(
                    parent: &from.cause,
                    "session.resume",
                    session_id = %state.auth.session_id,
                    from = "other_node"
                );
                state
                    .complete_remote_resume(&myself, &token, from)
                    .instrument(span)
                    .await;
            }
            // The session was admitted by the log, but a revocation may have been applied between
            // that commit and our directory registration above, when no dispatcher could find us.
            // Re-checking the state now closes that window: anything applied later is dispatched.
            let a = &state.auth;
            let (denial, perms) = state.ctx.registry.read(|s| {
                let denial = match s.tombstone(&a.session_id) {
                    Some(t) => Some(denial_close_code(t.cause)),
                    None => s
                        .check_admission(
                            &a.tenant,
                            &a.user,
                            a.iat,
                            a.jti.as_deref(),
                            a.sid.as_deref(),
                        )
                        .err()
                        .map(denial_close_code),
                };
                let perms = s
                    .user_permissions(&a.tenant, &a.user)
                    .map(|(p, v)| (p.to_vec(), v));
                (denial, perms)
            });
            if let Some(code) = denial {
                state.close(&myself, code, true).await;
                return Ok(());
            }
            // Same window for a permission change: apply it if we missed its dispatch.
            let version = state
                .ctx
                .registry
                .read(|s| s.user_perms_version(&a.tenant, &a.user));
            if version > state.auth.perms_version {
                let update = PermsUpdate {
                    permissions: perms.map(|(p, _)| p),
                    version,
                };
                state.on_permissions(&myself, update).await;
            }
            Ok(())
        })
        .await
    }

    /// Not an `async fn`: ractor allocates the future of every message wait with this one
    /// inside, and keeps it while the actor is idle. So the hot cases (`Activity`, a `Tick`
    /// with nothing due) are handled here at once and the future is two words; anything
    /// else runs as one boxed future (docs/performance.md, memory).
    fn handle(
        &self,
        myself: ActorRef<ConnMsg>,
        msg: ConnMsg,
        state: &mut ConnState,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let work: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = match msg {
            _ if state.closed.is_some() => None,
            ConnMsg::Activity => {
                state.last_activity = Instant::now();
                None
            }
            ConnMsg::Tick => state.on_tick().map(|code| {
                let close: Pin<Box<dyn Future<Output = ()> + Send + '_>> =
                    Box::pin(async move { state.close(&myself, code, false).await });
                close
            }),
            msg => Some(Box::pin(async move { state.dispatch(&myself, msg).await })),
        };
        async move {
            if let Some(work) = work {
                work.await;
            }
            Ok(())
        }
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ConnMsg>,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        state.cancel_timers();
        state
            .ctx
            .directory
            .remove_actor(&state.auth.session_id, myself.get_id());
        if let Some(t) = state.detach_timer.take() {
            t.abort();
        }
        if state.io.is_some() {
            state.ctx.metrics.connection_closed();
        }
        let (code, registry) = state.closed.unwrap_or((CloseCode::Normal, false));
        state
            .ctx
            .metrics
            .closes
            .get_or_create(&crate::metrics::Code { code: code.code() })
            .inc();
        // Let go of the socket: its task writes what is queued and ends on its own.
        state.io = None;
        if !registry {
            // The connection ended without the registry ending the session: record it so the
            // session stops counting against the user's cap. Off the actor: it may take a commit.
            let sid = state.auth.session_id.clone();
            super::end::spawn_record_end(&state.ctx, sid, state.epoch, super::end::End::Close);
        }
        tracing::debug!(
            session_id = %state.auth.session_id,
            tenant = %state.auth.tenant,
            user = %state.auth.user,
            node = state.ctx.node_id,
            code = code.code(),
            "connection closed"
        );
        Ok(())
    }
}
