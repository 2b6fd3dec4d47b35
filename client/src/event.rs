//! [`ClientEvent`] and the [`Events`] stream that carries them to the application.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::Shared;

/// Something that happened on the client, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A `welcome` arrived: a session is open (first connect or reconnect).
    Connected {
        /// The session id (stable across a successful resume).
        session_id: String,
        /// `true` when the server resumed the previous session.
        resumed: bool,
        /// `true` when the server replays the missed events after a resume.
        recovered: bool,
        /// The node that serves the session, e.g. `n1`.
        node: String,
    },
    /// A channel (or `$direct`) event, delivered once and in `seq` order.
    Event {
        /// Per-session sequence number.
        seq: u64,
        /// Channel name, or `$direct` for messages addressed to the user or session.
        channel: String,
        /// The published JSON payload.
        data: Value,
    },
    /// The effective permissions changed; `dropped` subscriptions were removed by the server.
    Permissions {
        /// Per-session sequence number (shared with events).
        seq: u64,
        /// The new effective grants.
        permissions: Vec<String>,
        /// Channels the server unsubscribed this session from.
        dropped: Vec<String>,
        /// Registry version of the change.
        version: u64,
    },
    /// The connection is gone; the SDK will try again after `after`.
    Reconnecting {
        /// 1 for the first attempt after a drop, then 2, 3, ...
        attempt: u32,
        /// Delay before the attempt.
        after: Duration,
    },
    /// A connection closed. With `terminal: true` the client has stopped for good.
    Closed {
        /// WebSocket close code (1006 when the link dropped without a close frame).
        code: u16,
        /// Close reason (the code's name for Tether codes).
        reason: String,
        /// `true` when the SDK will not reconnect (40xx codes, or [`crate::Client::close`]).
        terminal: bool,
    },
    /// An `error` frame from the server, or a failure the SDK handled on its own (a failed
    /// token refresh, a failed automatic re-subscribe). The connection stays up.
    Error {
        /// Error code (`bad_frame`, `rate_limited`, `refresh_failed`, `resubscribe_failed`, ...).
        code: String,
        /// Human-readable detail.
        message: String,
    },
}

/// The stream of [`ClientEvent`]s of one [`crate::Client`], from [`crate::Client::events`].
///
/// It is bounded ([`crate::ClientConfig::event_buffer`]): while it is full the SDK stops
/// reading the socket, so read it promptly. It ends after a terminal `Closed` event.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<ClientEvent>,
    /// Told of every event handed to the application (`Client::resume_state`'s `last_seq`).
    shared: Arc<Shared>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<ClientEvent>, shared: Arc<Shared>) -> Self {
        Events { rx, shared }
    }

    /// The next event, or `None` once the client has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        let ev = self.rx.recv().await;
        self.handed_over(ev)
    }

    fn handed_over(&self, ev: Option<ClientEvent>) -> Option<ClientEvent> {
        if let Some(ClientEvent::Event { seq, .. }) = &ev {
            self.shared.delivered(*seq);
        }
        ev
    }
}

impl futures_util::Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        let polled = self.rx.poll_recv(cx);
        polled.map(|ev| self.handed_over(ev))
    }
}
