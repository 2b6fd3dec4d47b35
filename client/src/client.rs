//! [`Client`]: the application's handle. It starts the background task, forwards requests
//! through the bounded outbound buffer and waits for their replies with a timeout.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::driver::{self, Ctx};
use crate::error::ClientError;
use crate::event::Events;
use crate::pending::{Command, Request};
use crate::session::ResumeState;
use crate::token::TokenProvider;

/// State the task (and the event stream) share with the handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    resume: Mutex<Option<ResumeState>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ResumeState>> {
        self.resume.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `welcome`: the session and its (rotated) resume token; `fresh_seq` restarts the
    /// numbering for a new session.
    pub fn welcomed(&self, session_id: &str, resume_token: &str, fresh_seq: Option<u64>) {
        let mut g = self.lock();
        let last_seq = match (&*g, fresh_seq) {
            (_, Some(seq)) => seq,
            (Some(r), None) => r.last_seq,
            (None, None) => 0,
        };
        *g = Some(ResumeState {
            session_id: session_id.to_owned(),
            resume_token: resume_token.to_owned(),
            last_seq,
        });
    }

    /// The application received the event `seq`.
    pub fn delivered(&self, seq: u64) {
        if let Some(r) = self.lock().as_mut() {
            r.last_seq = r.last_seq.max(seq);
        }
    }

    fn resume_state(&self) -> Option<ResumeState> {
        self.lock().clone()
    }
}

/// A connection to a Tether cluster that reconnects, resumes and fails over on its own.
///
/// Dropping the `Client` stops it (like [`Client::close`], without waiting).
#[derive(Debug)]
pub struct Client {
    cmds: mpsc::Sender<Command>,
    shutdown: watch::Sender<bool>,
    shared: Arc<Shared>,
    events: Mutex<Option<Events>>,
    task: Mutex<Option<JoinHandle<()>>>,
    cfg: ClientConfig,
}

impl Client {
    /// Connects to the first endpoint that answers (each is tried once, in order) and waits
    /// for the `welcome`; then keeps the session alive in a background task.
    ///
    /// Fails with [`ClientError::Config`] for a bad config, [`ClientError::Token`] if the
    /// provider fails, [`ClientError::Closed`] if the server refuses with a terminal close
    /// code (e.g. 4001 for a bad token), or [`ClientError::Connect`] if no endpoint answered.
    /// Must be called inside a Tokio runtime.
    pub async fn connect(
        config: ClientConfig,
        token_provider: impl TokenProvider,
    ) -> Result<Client, ClientError> {
        config.validate()?;
        let (cmd_tx, cmd_rx) = mpsc::channel(config.outbound_buffer);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_buffer);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        if let Some(r) = &config.resume_state {
            shared.welcomed(&r.session_id, &r.resume_token, Some(r.last_seq));
        }
        let provider: Arc<dyn TokenProvider> = Arc::new(token_provider);
        let mut ctx = Ctx::new(
            config.clone(),
            provider,
            ev_tx,
            cmd_rx,
            shutdown_rx,
            shared.clone(),
        );
        let (ws, fresh) = driver::first(&mut ctx).await?;
        let task = tokio::spawn(driver::run(ctx, ws, fresh));
        let events = Events::new(ev_rx, shared.clone());
        Ok(Client {
            cmds: cmd_tx,
            shutdown: shutdown_tx,
            shared,
            events: Mutex::new(Some(events)),
            task: Mutex::new(Some(task)),
            cfg: config,
        })
    }

    /// The event stream. Returns `Some` on the first call only. Read it continuously: a full
    /// event buffer pauses the client (see [`Events`]).
    pub fn events(&self) -> Option<Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The id of the current (or last) session.
    pub fn session_id(&self) -> Option<String> {
        self.shared.resume_state().map(|r| r.session_id)
    }

    /// What to persist so that the app, restarted, resumes this session
    /// ([`ClientConfig::resume_state`]): the session, its current resume token and the last
    /// event the app received. `None` before the first `welcome`.
    pub fn resume_state(&self) -> Option<ResumeState> {
        self.shared.resume_state()
    }

    /// Subscribes to `channel` (needs a `sub:` grant). The subscription is remembered and
    /// sent again after a reconnect that did not resume the session.
    pub async fn subscribe(&self, channel: impl Into<String>) -> Result<(), ClientError> {
        self.request(Request::Subscribe(channel.into())).await
    }

    /// Unsubscribes from `channel` and forgets it.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), ClientError> {
        self.request(Request::Unsubscribe(channel.into())).await
    }

    /// Publishes `data` to `channel` (needs a `pub:` grant). Not retried after a reconnect:
    /// on [`ClientError::ConnectionLost`] or [`ClientError::Timeout`] it may or may not have
    /// been delivered.
    pub async fn publish(
        &self,
        channel: impl Into<String>,
        data: Value,
    ) -> Result<(), ClientError> {
        self.request(Request::Publish(channel.into(), data)).await
    }

    /// Closes the session (close code 1000) and stops the background task. The event stream
    /// ends with `Closed { code: 1000, reason: "client_close", terminal: true }`.
    pub async fn close(&self) {
        let _ = self.shutdown.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let limit = self.cfg.write_timeout + self.cfg.connect_timeout;
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!("tether-client: background task did not stop in time");
            }
        }
    }

    async fn request(&self, request: Request) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        let (answer, rx) = oneshot::channel();
        let cmd = Command {
            request,
            answer,
            deadline,
        };
        match tokio::time::timeout_at(deadline, self.cmds.send(cmd)).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(_)) => return Err(ClientError::Shutdown),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::Shutdown),
            Ok(Ok(r)) => r,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
