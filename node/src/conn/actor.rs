//! The connection actor: lifecycle, timers (heartbeat, token expiry) and closing.
//! Client frame handling is in `handlers.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::io::{IoHandles, Outbound};
use super::{AuthContext, ConnMsg, IoStarter, PermsUpdate};
use crate::context::NodeCtx;
use crate::directory::DirEntry;
use crate::perms::Permissions;
use crate::protocol::{CloseCode, ServerFrame};
use tether_cluster::command::{Command, Denial};

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
}

pub struct ConnState {
    pub(super) ctx: Arc<NodeCtx>,
    pub(super) auth: AuthContext,
    pub(super) perms: Permissions,
    pub(super) subs: BTreeSet<String>,
    pub(super) seq: u64,
    pub(super) io: IoHandles,
    pub(super) last_activity: Instant,
    last_ping: Instant,
    pub(super) protocol_errors: u32,
    pub(super) messages_per_sec: u32,
    session_deadline_ms: Option<u64>,
    pub(super) rate_window_start: Instant,
    pub(super) rate_count: u32,
    pub(super) rate_strikes: u32,
    pub(super) rate_struck_this_window: bool,
    /// Bumped on every (re-)arm so a stale timer message is ignored.
    pub(super) timer_generation: u64,
    timers: Vec<JoinHandle<Result<(), ractor::MessagingErr<ConnMsg>>>>,
    tick: Option<JoinHandle<()>>,
    /// Set once closing started; `registry` says whether the registry already ended the session.
    closed: Option<(CloseCode, bool)>,
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
        let ConnArgs {
            ctx,
            auth,
            resume_token,
            io,
            messages_per_sec,
            session_deadline_ms,
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
        ctx.metrics.inc(
            "tether_handshakes_total",
            &[("outcome", "ok"), ("reason", "ok")],
        );
        let now = Instant::now();
        let perms = Permissions::parse(&auth.permissions);
        let mut state = ConnState {
            ctx,
            auth,
            perms,
            subs: BTreeSet::new(),
            seq: 0,
            io,
            last_activity: now,
            last_ping: now,
            protocol_errors: 0,
            messages_per_sec,
            session_deadline_ms,
            rate_window_start: now,
            rate_count: 0,
            rate_strikes: 0,
            rate_struck_this_window: false,
            timer_generation: 0,
            timers: Vec::new(),
            tick: None,
            closed: None,
        };
        let welcome = {
            let c = &state.ctx;
            ServerFrame::Welcome {
                session_id: &state.auth.session_id,
                resume_token: &resume_token,
                resumed: false,
                recovered: false,
                seq: state.seq,
                expires_at: state.auth.exp,
                permissions: &state.auth.permissions,
                node: &c.node_name,
                region: &c.region,
                heartbeat_ms: c.conn.heartbeat_interval.as_millis() as u64,
            }
            .to_json()
        };
        let _ = state.io.out.try_send(Outbound::Text(welcome));
        tracing::debug!(
            session_id = %state.auth.session_id,
            tenant = %state.auth.tenant,
            user = %state.auth.user,
            node = state.ctx.node_id,
            act = ?state.auth.act,
            "session opened"
        );
        state.arm_expiry(&myself);
        let tick = (state.ctx.conn.heartbeat_interval / 2)
            .min(state.ctx.conn.idle_timeout / 4)
            .max(Duration::from_millis(50));
        state.tick = Some(myself.send_interval(tick, || ConnMsg::Tick));
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ConnMsg>,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        // The session was admitted by the log, but a revocation may have been applied between
        // that commit and our directory registration above, when no dispatcher could find us.
        // Re-checking the state now closes that window: anything applied later is dispatched.
        let a = &state.auth;
        let (denial, perms) = state.ctx.registry.read(|s| {
            let denial = match s.tombstone(&a.session_id) {
                Some(t) => Some(denial_close_code(t.cause)),
                None => s
                    .check_admission(&a.tenant, &a.user, a.iat, a.jti.as_deref())
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
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnMsg>,
        msg: ConnMsg,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        if state.closed.is_some() {
            return Ok(());
        }
        match msg {
            ConnMsg::Frame(text, _permit) => {
                state.last_activity = Instant::now();
                state.on_text(&myself, &text).await;
            }
            ConnMsg::Binary => {
                state.last_activity = Instant::now();
                state
                    .protocol_error(&myself, "binary_frame", "binary frames are not supported")
                    .await;
            }
            ConnMsg::Activity => state.last_activity = Instant::now(),
            ConnMsg::TooBig => state.close(&myself, CloseCode::MessageTooBig, false).await,
            ConnMsg::ClientGone => state.close(&myself, CloseCode::Normal, false).await,
            ConnMsg::Tick => state.on_tick(&myself).await,
            ConnMsg::TokenExpiring { generation } if generation == state.timer_generation => {
                let f = ServerFrame::TokenExpiring {
                    expires_at: state.auth.exp,
                }
                .to_json();
                state.send(&myself, f).await;
            }
            ConnMsg::TokenExpired { generation } if generation == state.timer_generation => {
                state.close(&myself, CloseCode::TokenExpired, false).await;
            }
            ConnMsg::TokenExpiring { .. } | ConnMsg::TokenExpired { .. } => {}
            ConnMsg::Deliver(d) => state.on_deliver(&myself, &d).await,
            ConnMsg::Permissions(p) => state.on_permissions(&myself, *p).await,
            ConnMsg::Close { code, registry } => state.close(&myself, code, registry).await,
            ConnMsg::Refreshed(r) => state.on_refreshed(&myself, *r).await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ConnMsg>,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        state.cancel_timers();
        if let Some(t) = state.tick.take() {
            t.abort();
        }
        state.ctx.directory.remove(&state.auth.session_id);
        state.ctx.metrics.connection_closed();
        let (code, registry) = state.closed.unwrap_or((CloseCode::Normal, false));
        state
            .ctx
            .metrics
            .inc("tether_closes_total", &[("code", &code.code().to_string())]);
        if let Some(mut reader) = state.io.reader.take() {
            let t = state.ctx.conn.close_timeout;
            tokio::spawn(async move {
                if tokio::time::timeout(t, &mut reader).await.is_err() {
                    reader.abort();
                }
            });
        }
        if !registry {
            // The connection ended without the registry ending the session: record it so the
            // session stops counting against the user's cap. Off the actor: it may take a commit.
            let ctx = state.ctx.clone();
            let session_id = state.auth.session_id.clone();
            tokio::spawn(async move {
                if let Err(e) = ctx
                    .registry
                    .propose(Command::CloseSession { session_id }, None)
                    .await
                {
                    tracing::warn!(error = %e, "could not record session close");
                }
            });
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

/// The close code a client gets when the registry refuses its session.
pub fn denial_close_code(d: Denial) -> CloseCode {
    match d {
        Denial::UnknownTenant => CloseCode::Unauthorized,
        Denial::TenantDisabled => CloseCode::TenantDisabled,
        Denial::LoggedOut => CloseCode::LoggedOut,
        Denial::TokenRevoked | Denial::SessionRevoked => CloseCode::SessionRevoked,
        Denial::SessionExists => CloseCode::ProtocolError,
        Denial::TooManySessions => CloseCode::RateLimited,
    }
}

impl ConnState {
    /// Queues a frame; a client whose queue is full is not reading and is closed 4108.
    pub(super) async fn send(&mut self, myself: &ActorRef<ConnMsg>, frame: String) {
        if self.io.out.try_send(Outbound::Text(frame)).is_err() {
            self.ctx.metrics.inc("tether_slow_consumers_total", &[]);
            self.close(myself, CloseCode::RateLimited, false).await;
        }
    }

    /// Sends the close frame (bypassing the queue), waits for it to be written, then stops.
    pub(super) async fn close(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        code: CloseCode,
        registry: bool,
    ) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some((code, registry));
        self.io.closing.store(true, Ordering::Relaxed);
        self.cancel_timers();
        if let Some(tx) = self.io.close.take() {
            let _ = tx.send(code);
        }
        if let Some(writer) = self.io.writer.take() {
            // The writer sends the close frame within close_timeout or gives up on the socket.
            let _ = tokio::time::timeout(self.ctx.conn.close_timeout * 2, writer).await;
        }
        myself.stop(Some(code.name().to_owned()));
    }

    fn cancel_timers(&mut self) {
        for t in self.timers.drain(..) {
            t.abort();
        }
    }

    /// Arms `token_expiring` at `exp - refresh_window` and the 4100 close at `exp`.
    pub(super) fn arm_expiry(&mut self, myself: &ActorRef<ConnMsg>) {
        self.cancel_timers();
        self.timer_generation += 1;
        let generation = self.timer_generation;
        let now_ms = self.ctx.clock.now_ms();
        let exp_ms = self.auth.exp.saturating_mul(1000);
        let warn_ms = exp_ms.saturating_sub(self.ctx.conn.refresh_window_secs * 1000);
        let until = |at: u64| Duration::from_millis(at.saturating_sub(now_ms));
        self.timers.push(
            myself.send_after(until(warn_ms), move || ConnMsg::TokenExpiring {
                generation,
            }),
        );
        self.timers
            .push(myself.send_after(until(exp_ms), move || ConnMsg::TokenExpired { generation }));
        if let Some(deadline) = self.session_deadline_ms {
            // No warning: a refresh cannot extend the session's lifetime.
            self.timers.push(
                myself.send_after(until(deadline), move || ConnMsg::TokenExpired {
                    generation,
                }),
            );
        }
    }

    async fn on_tick(&mut self, myself: &ActorRef<ConnMsg>) {
        let now = Instant::now();
        if now.duration_since(self.last_activity) >= self.ctx.conn.idle_timeout {
            self.close(myself, CloseCode::IdleTimeout, false).await;
            return;
        }
        if now.duration_since(self.last_ping) >= self.ctx.conn.heartbeat_interval {
            self.last_ping = now;
            if self.io.out.try_send(Outbound::Ping).is_err() {
                self.ctx.metrics.inc("tether_slow_consumers_total", &[]);
                self.close(myself, CloseCode::RateLimited, false).await;
            }
        }
    }
}
