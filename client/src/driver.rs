//! The background task: [`Ctx`] (everything the task owns), the first connect, and the
//! reconnect loop that applies the close-code policy, backoff and endpoint failover.

use std::sync::Arc;
use std::time::Duration;

use tether_protocol::Welcome;
use tokio::sync::{mpsc, watch};

use crate::client::Shared;
use crate::config::ClientConfig;
use crate::conn::{self, Ended};
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::handshake::{self, Failure};
use crate::pending::Command;
use crate::policy::{self, Action, Backoff};
use crate::session::SessionState;
use crate::token::TokenProvider;
use crate::transport::Ws;

/// Longest `reconnect.after_ms` the SDK honours (a larger advice is capped).
const MAX_ADVISED: Duration = Duration::from_secs(300);

/// State owned by the background task.
pub(crate) struct Ctx {
    pub cfg: ClientConfig,
    pub provider: Arc<dyn TokenProvider>,
    pub events: mpsc::Sender<ClientEvent>,
    pub cmds: mpsc::Receiver<Command>,
    pub shutdown: watch::Receiver<bool>,
    pub session: SessionState,
    pub shared: Arc<Shared>,
    next_id: u64,
    endpoint: usize,
    backoff: Backoff,
}

impl Ctx {
    pub fn new(
        cfg: ClientConfig,
        provider: Arc<dyn TokenProvider>,
        events: mpsc::Sender<ClientEvent>,
        cmds: mpsc::Receiver<Command>,
        shutdown: watch::Receiver<bool>,
        shared: Arc<Shared>,
    ) -> Self {
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let session = cfg
            .resume_state
            .as_ref()
            .map(SessionState::restored)
            .unwrap_or_default();
        Ctx {
            cfg,
            provider,
            events,
            cmds,
            shutdown,
            session,
            shared,
            next_id: 0,
            endpoint: 0,
            backoff,
        }
    }

    /// A fresh request id (unique for the client's lifetime).
    pub fn id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    pub fn endpoint_url(&self) -> String {
        let n = self.cfg.endpoints.len().max(1);
        self.cfg
            .endpoints
            .get(self.endpoint % n)
            .cloned()
            .unwrap_or_default()
    }

    fn rotate(&mut self) {
        self.endpoint = (self.endpoint + 1) % self.cfg.endpoints.len().max(1);
    }

    /// Hands `ev` to the application, waiting while the buffer is full. Returns `false` if
    /// the client shut down meanwhile. A dropped [`crate::Events`] discards events.
    pub async fn emit(&mut self, ev: ClientEvent) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => false,
            r = self.events.send(ev) => { let _ = r; true }
        }
    }

    /// Last event before the task ends: never waits.
    fn emit_final(&self, ev: ClientEvent) {
        let _ = self.events.try_send(ev);
    }

    /// Records a `welcome` and tells the application. Returns `true` when the subscriptions
    /// must be sent again: a new session, or a resume that did not recover the session's
    /// state (`recovered: false`, e.g. resumed on another node without its backlog).
    async fn welcomed(&mut self, w: &Welcome) -> bool {
        let fresh = self.session.on_welcome(w);
        let fresh_seq = (!w.resumed || fresh).then_some(w.seq);
        self.shared
            .welcomed(&w.session_id, &w.resume_token, fresh_seq);
        self.backoff.reset();
        tracing::debug!(session = %w.session_id, resumed = w.resumed, node = %w.node, "tether-client: welcome");
        self.emit(ClientEvent::Connected {
            session_id: w.session_id.clone(),
            resumed: w.resumed && !fresh,
            recovered: w.recovered,
            node: w.node.clone(),
        })
        .await;
        fresh || !w.recovered
    }
}

/// The first connection, made by [`crate::Client::connect`]: each endpoint once, in order.
pub(crate) async fn first(ctx: &mut Ctx) -> Result<(Ws, bool), ClientError> {
    let mut last = String::from("no endpoint tried");
    for _ in 0..ctx.cfg.endpoints.len() {
        match handshake::attempt(ctx).await {
            Ok((ws, w)) => {
                let fresh = ctx.welcomed(&w).await;
                return Ok((ws, fresh));
            }
            Err(Failure::Token(m)) => return Err(ClientError::Token(m)),
            Err(Failure::Closed { code, reason })
                if policy::on_close(Some(code)) == Action::Never =>
            {
                return Err(ClientError::Closed { code, reason });
            }
            Err(Failure::Closed { code, reason }) => {
                if code == 4100 {
                    ctx.session.drop_token();
                }
                last = format!("{}: closed {code} {reason}", ctx.endpoint_url());
            }
            Err(Failure::Io(m)) => last = m,
        }
        ctx.rotate();
    }
    Err(ClientError::Connect(last))
}

/// Runs connections until a terminal close or shutdown.
pub(crate) async fn run(mut ctx: Ctx, ws: Ws, fresh: bool) {
    let (mut ws, mut fresh) = (ws, fresh);
    loop {
        let ended = conn::run(&mut ctx, ws, fresh).await;
        let (mut action, mut advised) = match ended {
            Ended::Shutdown => {
                ctx.emit_final(closed(1000, "client_close", true));
                return;
            }
            Ended::Closed {
                code,
                reason,
                advised,
            } => {
                let action = policy::on_close(code);
                let terminal = action == Action::Never;
                let ev = closed(code.unwrap_or(1006), &reason, terminal);
                if terminal {
                    ctx.emit_final(ev);
                    return;
                }
                if !ctx.emit(ev).await {
                    ctx.emit_final(closed(1000, "client_close", true));
                    return;
                }
                // A `reconnect` advice (drain) means: this node is going away.
                let action = if advised.is_some() && action == Action::Backoff {
                    Action::BackoffElsewhere
                } else {
                    action
                };
                (action, advised)
            }
        };
        // Reconnect attempts until one gets a welcome.
        loop {
            let delay = match (advised.take(), action) {
                (Some(after), _) => {
                    ctx.backoff.bump();
                    after.min(MAX_ADVISED)
                }
                // The first retry after 4111 or 4100 goes at once; later ones back off.
                (None, Action::NowElsewhere | Action::WithNewToken)
                    if ctx.backoff.attempt() == 0 =>
                {
                    ctx.backoff.bump();
                    Duration::ZERO
                }
                (None, _) => ctx.backoff.next_delay(),
            };
            match action {
                Action::NowElsewhere | Action::BackoffElsewhere => ctx.rotate(),
                Action::WithNewToken => ctx.session.drop_token(),
                Action::Backoff | Action::Never => {}
            }
            let attempt = ctx.backoff.attempt();
            tracing::debug!(attempt, ?delay, "tether-client: reconnecting");
            if !ctx
                .emit(ClientEvent::Reconnecting {
                    attempt,
                    after: delay,
                })
                .await
            {
                ctx.emit_final(closed(1000, "client_close", true));
                return;
            }
            let mut stop = ctx.shutdown.clone();
            let outcome = tokio::select! {
                biased;
                _ = stop.changed() => None,
                r = async {
                    tokio::time::sleep(delay).await;
                    handshake::attempt(&mut ctx).await
                } => Some(r),
            };
            match outcome {
                None => {
                    ctx.emit_final(closed(1000, "client_close", true));
                    return;
                }
                Some(Ok((new_ws, w))) => {
                    fresh = ctx.welcomed(&w).await;
                    ws = new_ws;
                    break;
                }
                Some(Err(Failure::Closed { code, reason })) => {
                    action = policy::on_close(Some(code));
                    let terminal = action == Action::Never;
                    let ev = closed(code, &reason, terminal);
                    if terminal {
                        ctx.emit_final(ev);
                        return;
                    }
                    ctx.emit(ev).await;
                }
                Some(Err(Failure::Io(m))) => {
                    tracing::debug!(error = %m, "tether-client: connect failed");
                    action = Action::BackoffElsewhere;
                }
                Some(Err(Failure::Token(m))) => {
                    ctx.emit(ClientEvent::Error {
                        code: "token_provider".into(),
                        message: m,
                    })
                    .await;
                    action = Action::Backoff;
                }
            }
        }
    }
}

fn closed(code: u16, reason: &str, terminal: bool) -> ClientEvent {
    ClientEvent::Closed {
        code,
        reason: reason.to_owned(),
        terminal,
    }
}
