//! What the actor sends: frames through the socket's bounded outbound queue (a client that
//! does not keep up is closed 4108, never buffered without limit), and the `welcome`.

use ractor::ActorRef;
use tether_protocol::{CloseCode, ServerFrame};

use super::ConnMsg;
use super::actor::ConnState;
use super::link::Outbound;

impl ConnState {
    /// Queues a frame if a connection is attached; a client whose queue is full is not
    /// reading and loses its connection (4108, resumable).
    pub(super) async fn send(&mut self, myself: &ActorRef<ConnMsg>, frame: String) {
        let Some(io) = &self.io else { return };
        if io.try_send(Outbound::Text(frame)).is_err() {
            self.ctx.metrics.slow_consumers.inc();
            self.close(myself, CloseCode::RateLimited, false).await;
        }
    }

    /// Queues a frame without the slow-consumer check (the welcome, replayed backlog: the
    /// queue was just created).
    pub(super) fn queue(&self, frame: String) {
        if let Some(io) = &self.io {
            let _ = io.try_send(Outbound::Text(frame));
        }
    }

    /// The `welcome` frame for this session.
    pub(super) fn welcome_json(
        &self,
        resume_token: &str,
        resumed: bool,
        recovered: bool,
    ) -> String {
        let c = &self.ctx;
        ServerFrame::Welcome {
            session_id: &self.auth.session_id,
            resume_token,
            resumed,
            recovered,
            seq: self.seq,
            expires_at: self.auth.exp,
            permissions: &self.auth.permissions,
            node: &c.node_name,
            region: &c.region,
            heartbeat_ms: c.conn.heartbeat_interval.as_millis() as u64,
        }
        .to_json()
    }
}
