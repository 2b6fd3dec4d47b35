//! A connection's deadlines: `token_expiring` before the token's `exp`, close 4100 at `exp`,
//! the session's maximum lifetime (armed for the earliest, fired by the socket task's timer),
//! and the idle and heartbeat checks driven by the socket task's ticks. A detached session
//! has no deadline: it ends with its resume window, and a resume arms them again.

use std::time::Duration;

use ractor::ActorRef;
use tether_protocol::{CloseCode, ServerFrame};
use tokio::time::Instant;

use super::ConnMsg;
use super::actor::ConnState;
use super::link::Outbound;

/// The deadline timer's state.
pub(super) struct Deadline {
    /// Bumped on every (re-)arm so a stale timer message is ignored.
    pub(super) generation: u64,
    /// `token_expiring` was sent for the current token.
    warned: bool,
    /// The session's end of life (ms since the epoch), from the tenant's
    /// `session_max_lifetime_secs`.
    session_ms: Option<u64>,
}

impl Deadline {
    pub(super) fn new(session_ms: Option<u64>) -> Deadline {
        Deadline {
            generation: 0,
            warned: false,
            session_ms,
        }
    }
}

impl ConnState {
    pub(super) fn cancel_timers(&mut self) {
        if let Some(io) = &self.io {
            io.set_deadline(None);
        }
    }

    /// (Re-)arms the token's deadlines: `token_expiring` at `exp - refresh_window`, the 4100
    /// close at `exp`, and the session's max lifetime: the socket task's timer is set for
    /// the earliest of them and re-armed for the next when it fires (`on_deadline`).
    pub(super) fn arm_expiry(&mut self) {
        self.deadline.generation += 1;
        self.deadline.warned = false;
        self.arm_next_deadline();
    }

    /// `exp` and the `token_expiring` time, in ms.
    fn expiry_ms(&self) -> (u64, u64) {
        let exp_ms = self.auth.exp.saturating_mul(1000);
        let warn_ms = exp_ms.saturating_sub(self.ctx.conn.refresh_window_secs * 1000);
        (exp_ms, warn_ms)
    }

    fn arm_next_deadline(&mut self) {
        let Some(io) = &self.io else { return };
        let (exp_ms, warn_ms) = self.expiry_ms();
        // No warning for the lifetime: a refresh cannot extend it.
        let next = [
            (!self.deadline.warned).then_some(warn_ms),
            Some(exp_ms),
            self.deadline.session_ms,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(exp_ms);
        let wait = Duration::from_millis(next.saturating_sub(self.ctx.clock.now_ms()));
        io.set_deadline(Some((Instant::now() + wait, self.deadline.generation)));
    }

    /// The deadline timer fired: end the session at its max lifetime, close 4100 at `exp`,
    /// warn once `token_expiring` is due, and wait for whatever comes next.
    pub(super) async fn on_deadline(&mut self, myself: &ActorRef<ConnMsg>) {
        let now_ms = self.ctx.clock.now_ms();
        let (exp_ms, warn_ms) = self.expiry_ms();
        if self.deadline.session_ms.is_some_and(|d| now_ms >= d) {
            self.end(myself, CloseCode::TokenExpired, false).await;
            return;
        }
        if now_ms >= exp_ms {
            self.close(myself, CloseCode::TokenExpired, false).await;
            return;
        }
        if !self.deadline.warned && now_ms >= warn_ms {
            self.deadline.warned = true;
            let f = ServerFrame::TokenExpiring {
                expires_at: self.auth.exp,
            }
            .to_json();
            self.send(myself, f).await;
            if self.closed.is_some() {
                return;
            }
        }
        self.arm_next_deadline();
    }

    /// The idle and heartbeat checks; the code to close with, if one fails.
    pub(super) fn on_tick(&mut self) -> Option<CloseCode> {
        let io = self.io.as_ref()?;
        let now = Instant::now();
        if now.duration_since(self.last_activity) >= self.ctx.conn.idle_timeout {
            return Some(CloseCode::IdleTimeout);
        }
        if now.duration_since(self.last_ping) >= self.ctx.conn.heartbeat_interval {
            self.last_ping = now;
            if io.try_send(Outbound::Ping).is_err() {
                self.ctx.metrics.slow_consumers.inc();
                return Some(CloseCode::RateLimited);
            }
        }
        None
    }
}
