//! One live connection after `welcome`: reads frames, delivers events once and in order,
//! acks, forwards requests, matches replies, refreshes the token in-band, and notices the
//! end of the connection (close frame, dead link, `reconnect` advice, shutdown).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_protocol::{ClientFrame, ServerMessage};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::driver::Ctx;
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::pending::{Command, Done, PendingMap, Request, Waiter};
use crate::refresh::RefreshTimer;
use crate::transport::Ws;

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// [`crate::Client::close`] or the client was dropped.
    Shutdown,
    /// The connection is gone. `code` is `None` when the link dropped without a close frame.
    /// `advised` is the rest of a `reconnect.after_ms` delay, if the server sent one.
    Closed {
        code: Option<u16>,
        reason: String,
        advised: Option<Duration>,
    },
}

/// Runs one connection to its end. `fresh`: the session is new, so re-subscribe.
pub(crate) async fn run(ctx: &mut Ctx, ws: Ws, fresh: bool) -> Ended {
    let heartbeat = ctx
        .session
        .heartbeat_ms
        .map(|ms| Duration::from_millis(ms) * 2);
    let read_timeout = match heartbeat {
        Some(h) => ctx.cfg.read_timeout.max(h + Duration::from_secs(5)),
        None => ctx.cfg.read_timeout,
    };
    let mut c = Conn {
        ctx,
        ws,
        pending: PendingMap::default(),
        refresh: RefreshTimer::default(),
        advised_at: None,
        last_rx: Instant::now(),
        read_timeout,
    };
    c.schedule_refresh();
    let ended = match c.start(fresh).await {
        Ok(()) => c.run_loop().await,
        Err(e) => e,
    };
    c.pending.fail_all();
    ended
}

struct Conn<'a> {
    ctx: &'a mut Ctx,
    ws: Ws,
    pending: PendingMap,
    refresh: RefreshTimer,
    advised_at: Option<Instant>,
    last_rx: Instant,
    read_timeout: Duration,
}

impl Conn<'_> {
    async fn start(&mut self, fresh: bool) -> Result<(), Ended> {
        if !fresh {
            return Ok(());
        }
        let channels: Vec<String> = self.ctx.session.subscriptions.iter().cloned().collect();
        for channel in channels {
            let id = self.ctx.id();
            let deadline = Instant::now() + self.ctx.cfg.request_timeout;
            self.pending
                .insert(id, Waiter::Resubscribe(channel.clone()), deadline);
            self.send(&ClientFrame::Subscribe { id, channel }).await?;
        }
        Ok(())
    }

    async fn run_loop(&mut self) -> Ended {
        let mut tick = tokio::time::interval(self.ctx.cfg.ack_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let read_deadline = self.last_rx + self.read_timeout;
            let can_take = self.pending.len() < self.ctx.cfg.max_pending;
            let step = tokio::select! {
                biased;
                _ = self.ctx.shutdown.changed() => Err(Ended::Shutdown),
                msg = self.ws.next() => self.on_message(msg).await,
                cmd = self.ctx.cmds.recv(), if can_take => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => Err(Ended::Shutdown),
                },
                _ = sleep_until(read_deadline) => Err(self.lost("no frame from the server in time")),
                _ = sleep_until(self.advised_at.unwrap_or(far)), if self.advised_at.is_some() => {
                    self.close(1001, "reconnect").await;
                    Err(Ended::Closed {
                        code: Some(1001),
                        reason: "reconnect".into(),
                        advised: Some(Duration::ZERO),
                    })
                }
                _ = sleep_until(self.refresh.at.unwrap_or(far)), if self.refresh.at.is_some() => {
                    self.start_refresh();
                    Ok(())
                }
                t = self.refresh.token(), if self.refresh.fetching() => self.on_token(t).await,
                _ = tick.tick() => self.housekeeping().await,
            };
            if let Err(ended) = step {
                if matches!(ended, Ended::Shutdown) {
                    self.close(1000, "client_close").await;
                }
                return ended;
            }
        }
    }

    async fn on_message(&mut self, msg: Option<Result<Message, WsError>>) -> Result<(), Ended> {
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(self.lost(&e.to_string())),
            None => return Err(self.lost("connection closed")),
        };
        self.last_rx = Instant::now();
        match msg {
            Message::Text(t) => match ServerMessage::parse(&t) {
                Some(frame) => self.on_frame(frame).await,
                None => {
                    tracing::debug!("tether-client: ignoring an unreadable frame");
                    Ok(())
                }
            },
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                // Complete the closing handshake (bounded).
                let _ = tokio::time::timeout(self.ctx.cfg.write_timeout, self.ws.close(None)).await;
                let advised = self
                    .advised_at
                    .map(|at| at.saturating_duration_since(Instant::now()));
                Err(Ended::Closed {
                    code: Some(code),
                    reason,
                    advised,
                })
            }
            _ => Ok(()),
        }
    }

    async fn on_frame(&mut self, frame: ServerMessage) -> Result<(), Ended> {
        match frame {
            ServerMessage::Event { seq, channel, data } => {
                if self.ctx.session.accept_seq(seq) {
                    self.deliver(ClientEvent::Event { seq, channel, data })
                        .await?;
                    self.ack_if_due(false).await?;
                }
            }
            ServerMessage::Permissions {
                seq,
                permissions,
                version,
                dropped,
            } => {
                if self.ctx.session.accept_seq(seq) {
                    for ch in &dropped {
                        self.ctx.session.subscriptions.remove(ch);
                    }
                    let ev = ClientEvent::Permissions {
                        seq,
                        permissions,
                        dropped,
                        version,
                    };
                    self.deliver(ev).await?;
                    self.ack_if_due(false).await?;
                }
            }
            ServerMessage::Reply { id, ok, error } => {
                if let Some(done) = self.pending.complete(id, ok, error) {
                    self.on_done(done).await?;
                }
            }
            ServerMessage::TokenExpiring { .. } => self.start_refresh(),
            ServerMessage::Reconnect { after_ms, reason } => {
                tracing::debug!(after_ms, reason, "tether-client: reconnect advised");
                let after = Duration::from_millis(after_ms).min(Duration::from_secs(300));
                self.advised_at = Some(Instant::now() + after);
            }
            ServerMessage::Error { code, message } => {
                self.deliver(ClientEvent::Error { code, message }).await?;
            }
            ServerMessage::Welcome(_) | ServerMessage::Unknown => {}
        }
        Ok(())
    }

    async fn on_done(&mut self, done: Done) -> Result<(), Ended> {
        match (done.waiter, done.result) {
            (Waiter::App(req, answer), Ok(())) => {
                match req {
                    Request::Subscribe(ch) => {
                        self.ctx.session.subscriptions.insert(ch);
                    }
                    Request::Unsubscribe(ch) => {
                        self.ctx.session.subscriptions.remove(&ch);
                    }
                    Request::Publish(..) => {}
                }
                let _ = answer.send(Ok(()));
            }
            (Waiter::App(_, answer), Err(e)) => {
                let _ = answer.send(Err(ClientError::Refused {
                    code: e.code,
                    message: e.message,
                }));
            }
            (Waiter::Resubscribe(_), Ok(())) => {}
            (Waiter::Resubscribe(ch), Err(e)) => {
                self.ctx.session.subscriptions.remove(&ch);
                let message = format!("{ch}: {}: {}", e.code, e.message);
                self.deliver(ClientEvent::Error {
                    code: "resubscribe_failed".into(),
                    message,
                })
                .await?;
            }
            (Waiter::Refresh(token), Ok(())) => {
                self.refresh.done();
                self.ctx.session.set_token(token);
                self.schedule_refresh();
            }
            (Waiter::Refresh(_), Err(e)) => {
                self.refresh.retry_later();
                let message = format!("{}: {}", e.code, e.message);
                self.deliver(ClientEvent::Error {
                    code: "refresh_failed".into(),
                    message,
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), Ended> {
        let Command {
            request,
            answer,
            deadline,
        } = cmd;
        if answer.is_closed() {
            return Ok(());
        }
        if deadline <= Instant::now() {
            let _ = answer.send(Err(ClientError::Timeout));
            return Ok(());
        }
        let id = self.ctx.id();
        let frame = request.frame(id);
        self.pending
            .insert(id, Waiter::App(request, answer), deadline);
        self.send(&frame).await
    }

    /// Arms the refresh timer `refresh_before` ahead of the token's expiry.
    fn schedule_refresh(&mut self) {
        let exp = self.ctx.session.expires_at();
        self.refresh.schedule(exp, self.ctx.cfg.refresh_before);
    }

    fn start_refresh(&mut self) {
        self.refresh
            .start(self.ctx.provider.as_ref(), self.ctx.cfg.request_timeout);
    }

    async fn on_token(&mut self, t: Result<String, String>) -> Result<(), Ended> {
        let token = match t {
            Ok(t) if self.ctx.session.token() == Some(t.as_str()) => {
                // Nothing new to send (e.g. a StaticToken); the server's expiry applies.
                let message = "the token provider returned the current token".to_owned();
                let ev = ClientEvent::Error {
                    code: "refresh_failed".into(),
                    message,
                };
                return self.deliver(ev).await;
            }
            Ok(t) => t,
            Err(message) => {
                self.refresh.retry_later();
                let ev = ClientEvent::Error {
                    code: "token_provider".into(),
                    message,
                };
                return self.deliver(ev).await;
            }
        };
        let id = self.ctx.id();
        let deadline = Instant::now() + self.ctx.cfg.request_timeout;
        self.pending
            .insert(id, Waiter::Refresh(token.clone()), deadline);
        self.refresh.sent();
        self.send(&ClientFrame::Refresh { id, token }).await
    }

    async fn housekeeping(&mut self) -> Result<(), Ended> {
        self.ack_if_due(true).await?;
        for waiter in self.pending.expire(Instant::now()) {
            match waiter {
                Waiter::Resubscribe(ch) => {
                    let message = format!("{ch}: no reply in time");
                    self.deliver(ClientEvent::Error {
                        code: "resubscribe_failed".into(),
                        message,
                    })
                    .await?;
                }
                Waiter::Refresh(_) => self.refresh.retry_later(),
                Waiter::App(..) => {}
            }
        }
        Ok(())
    }

    /// Sends an `ack` when events are unacknowledged and either `timer` fired or
    /// `ack_every` accumulated.
    async fn ack_if_due(&mut self, timer: bool) -> Result<(), Ended> {
        let s = &self.ctx.session;
        let unacked = s.last_seq.saturating_sub(s.last_acked);
        if unacked == 0 || (!timer && unacked < self.ctx.cfg.ack_every) {
            return Ok(());
        }
        let seq = s.last_seq;
        self.send(&ClientFrame::Ack { seq }).await?;
        self.ctx.session.last_acked = seq;
        Ok(())
    }

    async fn deliver(&mut self, ev: ClientEvent) -> Result<(), Ended> {
        if self.ctx.emit(ev).await {
            Ok(())
        } else {
            Err(Ended::Shutdown)
        }
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), Ended> {
        let msg = Message::text(frame.to_json());
        match tokio::time::timeout(self.ctx.cfg.write_timeout, self.ws.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(&e.to_string())),
            Err(_) => Err(self.lost("write timed out")),
        }
    }

    /// The link is gone without a close frame (1006).
    fn lost(&self, why: &str) -> Ended {
        tracing::debug!(why, "tether-client: connection lost");
        let advised = self
            .advised_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        Ended::Closed {
            code: None,
            reason: why.to_owned(),
            advised,
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(self.ctx.cfg.write_timeout, self.ws.close(Some(frame))).await;
    }
}
