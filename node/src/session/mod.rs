//! Sessions on this node: one ractor actor per client connection, its socket tasks and their
//! supervisor; detach, outbox and resume; the session directory; the dispatcher that turns
//! applied registry events into actor messages; the reaper of orphaned sessions.
//!
//! The actor owns the session's `AuthContext`, subscriptions, sequence counter and deadlines.
//! One socket task per connection turns frames into `ConnMsg::Frame` and writes the bounded
//! outbound queue the actor fills; a close request goes past the queue, so a revocation is
//! sent even when the queue is full.

mod actor;
mod close;
mod deadlines;
pub mod directory;
pub mod dispatch;
pub mod end;
mod handlers;
mod handover;
mod io;
#[cfg(test)]
mod io_tests;
mod link;
mod outbox;
pub mod publish;
mod rate;
pub mod reap;
mod resume;
mod route;
pub mod rpc;
mod send;
mod supervisor;

use std::sync::Arc;

use serde_json::value::RawValue;
use tether_protocol::CloseCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use actor::{ConnArgs, ConnectionActor, ResumedFrom};
pub use close::denial_close_code;
pub use io::{IoConfig, IoHandles, IoStarter, close_raw, spawn_io};
use link::Link;
pub use supervisor::{SessionSupervisor, SupervisorMsg};

use crate::auth::VerifiedToken;

/// The authorization state of one live session.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub tenant: String,
    pub user: String,
    pub session_id: String,
    pub jti: Option<String>,
    pub iat: u64,
    pub exp: u64,
    /// Permissions carried by the current token.
    pub token_permissions: Vec<String>,
    /// Effective permissions: the registry override if set, else the token's.
    pub permissions: Vec<String>,
    pub perms_version: u64,
    /// Impersonating actor (`act.sub`).
    pub act: Option<String>,
    /// The IdP session id of the current token.
    pub sid: Option<String>,
}

/// A message published to a channel or addressed to a user/session, shared by every recipient.
#[derive(Debug)]
pub struct Delivery {
    /// Random id given where the message was published: a session that moves between
    /// nodes may be offered one message twice (directly and forwarded by its old owner).
    pub id: u64,
    pub channel: String,
    pub data: Box<RawValue>,
    /// Direct deliveries (to a user or session) skip the subscription check.
    pub direct: bool,
}

impl Delivery {
    pub fn new(channel: String, data: Box<RawValue>, direct: bool) -> Delivery {
        Delivery {
            id: rand::random(),
            channel,
            data,
            direct,
        }
    }
}

/// A permission change from the registry.
#[derive(Debug)]
pub struct PermsUpdate {
    /// `None`: back to the token's claims.
    pub permissions: Option<Vec<String>>,
    pub version: u64,
}

/// What a session's previous owner hands to the node it was resumed on: the numbering, the
/// subscriptions and the frames the client may have missed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HandoverState {
    /// Last seq the old owner assigned.
    pub seq: u64,
    pub subs: Vec<String>,
    /// (seq, channel of an event — `None` for direct events and permission frames, JSON).
    pub frames: Vec<(u64, Option<String>, String)>,
    /// Ids of the messages this session was offered recently (for de-duplication).
    pub recent_ids: Vec<u64>,
    /// Whether every frame after the requested seq is in `frames`.
    pub covers: bool,
}

/// A message a session's previous owner kept for the new owner after the handover.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Relayed {
    pub id: u64,
    pub channel: String,
    /// The payload as JSON text.
    pub data: String,
    pub direct: bool,
}

impl Relayed {
    /// Back to a delivery; `None` if the payload is not JSON (it was when it was kept).
    pub fn into_delivery(self) -> Option<Arc<Delivery>> {
        let data = RawValue::from_string(self.data).ok()?;
        Some(Arc::new(Delivery {
            id: self.id,
            channel: self.channel,
            data,
            direct: self.direct,
        }))
    }
}

/// A previous owner's answer to a flush: the messages kept since the last one, in order;
/// `ended` when it keeps nothing more (it left, or was never relaying).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FlushAnswer {
    pub messages: Vec<Relayed>,
    pub ended: bool,
}

impl FlushAnswer {
    /// Nothing kept, nothing more to come.
    pub fn ended() -> FlushAnswer {
        FlushAnswer {
            messages: Vec::new(),
            ended: true,
        }
    }
}

/// A flush answer as the new owner's actor gets it.
#[derive(Debug)]
pub struct Flushed {
    /// Deliveries held when the flush was sent: everything older is in `answer`.
    pub count: usize,
    pub answer: FlushAnswer,
}

/// A new connection for a resumed session.
pub struct ResumeAttach {
    pub io: IoStarter,
    /// The token the client resumed with.
    pub token: VerifiedToken,
    pub last_seq: u64,
    /// New resume token (plaintext, for the welcome; the registry keeps its hash).
    pub resume_token: String,
    pub epoch: u64,
    /// The handshake's span, the parent of the actor's `session.resume` span.
    pub cause: tracing::Span,
}

impl std::fmt::Debug for ResumeAttach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeAttach")
            .field("last_seq", &self.last_seq)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Result of verifying a refresh token off the actor.
#[derive(Debug)]
pub struct RefreshResult {
    pub id: u64,
    pub outcome: Result<VerifiedToken, (&'static str, String)>,
}

/// What a connection actor handles. Large variants are boxed to keep the mailbox small.
#[derive(Debug)]
pub enum ConnMsg {
    /// A text frame from the client; the permit bounds frames in flight per connection.
    Frame(Utf8Bytes, OwnedSemaphorePermit),
    /// A binary frame (not part of the protocol).
    Binary,
    /// Any sign of life from the client (pong).
    Activity,
    /// The client sent a frame above `max_frame_bytes`. Socket-end messages carry the
    /// connection's link, so one from a replaced connection is ignored.
    TooBig(Arc<Link>),
    /// The socket failed or ended without a close frame (resumable).
    ClientGone(Arc<Link>),
    /// The client sent a normal close (1000): it is leaving for good.
    ClientClosed(Arc<Link>),
    /// A resume of this session committed here: attach the new connection.
    Resume(Box<ResumeAttach>),
    /// The session was resumed on another node at this epoch.
    TakenOver {
        epoch: u64,
    },
    /// The resume window of a detached session (at this epoch) ran out.
    ResumeWindowOver {
        epoch: u64,
    },
    /// The node is draining: advise the client to reconnect elsewhere after `after_ms`.
    Drain {
        after_ms: u64,
    },
    /// The node the session was resumed on (at `epoch`) asks for its state; the actor
    /// answers and ends.
    Handover {
        epoch: u64,
        after_seq: u64,
        /// The node asking (the new owner).
        from: tether_cluster::NodeId,
        reply: ractor::RpcReplyPort<Option<HandoverState>>,
        /// The RPC's span, the parent of the actor's `session.handover` span.
        cause: tracing::Span,
    },
    /// A fenced-off owner waited long enough for a handover request.
    LingerOver,
    /// From the socket task, every `tick_period`: heartbeat and idle checks.
    Tick,
    /// The deadline timer of this token generation fired (`token_expiring`, `exp`, or the
    /// tenant's maximum session lifetime, whichever was next).
    Deadline {
        generation: u64,
    },
    Deliver(Arc<Delivery>),
    /// Asked through the peer transport by the session's new owner: answer with every
    /// message kept for it since the last flush (all were queued before this request).
    /// `last` ends the relay: the actor leaves the directory, queues the request again behind
    /// anything that found it meanwhile (`removed`), then answers and ends.
    /// `epoch`: the asking owner's epoch; only the relay handed over at that epoch answers
    /// with messages (`None`: whatever this actor kept).
    Flush {
        epoch: Option<u64>,
        last: bool,
        removed: bool,
        reply: ractor::RpcReplyPort<FlushAnswer>,
    },
    /// The previous owner's answer to a flush sent while `count` deliveries were held here.
    Flushed(Box<Flushed>),
    /// Time to flush the previous owner again (after a handover).
    RelayCheck,
    Permissions(Box<PermsUpdate>),
    /// Close with this code. `registry` is true when the registry already ended the session.
    /// `cause`: the span that asked (a registry entry's apply), so the close joins its trace;
    /// `Span::none()` when nothing is traced.
    Close {
        code: CloseCode,
        registry: bool,
        cause: tracing::Span,
    },
    Refreshed(Box<RefreshResult>),
}
