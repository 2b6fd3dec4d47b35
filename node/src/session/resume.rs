//! Detached sessions and resume on this node: detaching on a reconnect-class drop,
//! re-attaching a new connection, handing the session's state to a new owner, and losing
//! the session to a resume on another node (epoch fencing, close 4009). The outbox is in
//! `outbox`, the ordered relay after a move in `handover`.

use std::time::Duration;

use ractor::ActorRef;
use tether_protocol::CloseCode;
use tokio::time::Instant;

use super::actor::ConnState;
use super::actor::ResumedFrom;
use super::end::{End, spawn_record_end};
use super::outbox::Outbox;
use super::{ConnMsg, ResumeAttach};
use crate::perms::Permissions;

/// Codes after which the client is told to reconnect and resume (41xx, 1012, 1013): the
/// session outlives the connection.
pub fn resumable(code: CloseCode) -> bool {
    matches!(
        code,
        CloseCode::ServiceRestart
            | CloseCode::TryAgainLater
            | CloseCode::TokenExpired
            | CloseCode::IdleTimeout
            | CloseCode::RateLimited
            | CloseCode::RegistryUnavailable
    )
}

impl ConnState {
    /// Records a sequenced frame for resume and sends it if connected.
    pub(super) async fn send_seq(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        seq: u64,
        channel: Option<&str>,
        json: String,
    ) {
        self.outbox
            .push(seq, channel.map(str::to_owned), json.clone());
        self.send(myself, json).await;
    }

    /// The network dropped (no close frame): keep the session for resume.
    pub(super) async fn lose_connection(&mut self, myself: &ActorRef<ConnMsg>) {
        if self.ctx.conn.resume_window.is_zero() {
            self.end(myself, CloseCode::Normal, false).await;
        } else {
            self.detach(myself, None).await;
        }
    }

    /// Drops the connection (after sending `code`, if any) but keeps the session: deliveries
    /// go to the outbox, the registry marks it detached, and it ends if not resumed within
    /// the resume window.
    pub(super) async fn detach(&mut self, myself: &ActorRef<ConnMsg>, code: Option<CloseCode>) {
        if self.io.is_none() {
            return;
        }
        if let Some(code) = code {
            self.close_socket(code).await;
            self.ctx
                .metrics
                .closes
                .get_or_create(&crate::metrics::Code { code: code.code() })
                .inc();
        }
        self.cancel_timers();
        // Let go of the socket: its task reads the client's close reply, if any, and ends.
        self.io = None;
        self.ctx.metrics.connection_closed();
        let window = self.ctx.conn.resume_window;
        let epoch = self.epoch;
        self.detach_timer =
            Some(myself.send_after(window, move || ConnMsg::ResumeWindowOver { epoch }));
        let sid = self.auth.session_id.clone();
        spawn_record_end(&self.ctx, sid, self.epoch, End::Detach { window });
    }

    /// A resume committed on this node: attach the new connection, replay what the client
    /// missed (filtered by the permissions it has now), carry on.
    pub(super) async fn on_resume(&mut self, myself: &ActorRef<ConnMsg>, r: ResumeAttach) {
        if r.epoch <= self.epoch {
            return;
        }
        self.epoch = r.epoch;
        // An old connection still open loses the session to this resume.
        self.let_go_of_socket(CloseCode::SessionTakenOver);
        if let Some(t) = self.detach_timer.take() {
            t.abort();
        }
        self.io = Some((r.io)(myself.clone()));
        self.ctx.metrics.connection_opened();
        let now = Instant::now();
        self.last_activity = now;
        let t = r.token;
        if t.jti != self.auth.jti {
            self.ctx
                .directory
                .set_jti(&self.auth.session_id, t.jti.clone());
        }
        self.auth.jti = t.jti;
        self.auth.iat = t.iat;
        self.auth.exp = t.exp;
        self.auth.sid = t.sid;
        self.auth.act = t.act;
        self.auth.token_permissions = t.permissions;
        let a = &self.auth;
        let over = self.ctx.registry.read(|s| {
            s.user_permissions(&a.tenant, &a.user)
                .map(|(p, v)| (p.to_vec(), v))
        });
        let (permissions, version) =
            over.unwrap_or_else(|| (a.token_permissions.clone(), a.perms_version));
        self.auth.permissions = permissions;
        self.auth.perms_version = version;
        self.perms = Permissions::parse(&self.auth.permissions);
        self.arm_expiry();
        let recovered = r.last_seq <= self.seq && self.outbox.covers(r.last_seq);
        let welcome = self.welcome_json(&r.resume_token, true, recovered);
        self.queue(welcome);
        let replay: Vec<String> = self
            .outbox
            .frames_after(r.last_seq)
            .into_iter()
            .filter(|(_, channel, _)| {
                channel
                    .as_deref()
                    .is_none_or(|c| self.perms.can_subscribe(c))
            })
            .map(|(_, _, json)| json)
            .collect();
        self.ctx
            .metrics
            .resumes
            .get_or_create(&crate::metrics::Where {
                r#where: "same_node",
            })
            .inc();
        for json in replay {
            self.send(myself, json).await;
        }
        // Subscriptions the new token no longer allows are dropped and reported.
        self.reauthorize(myself, false).await;
    }

    /// The session was resumed on another node at a higher epoch: this owner is fenced off.
    /// It closes the connection (4009) but lingers briefly, so the new owner can fetch the
    /// backlog and subscriptions; then it ends (the registry already moved the session).
    pub(super) async fn on_taken_over(&mut self, myself: &ActorRef<ConnMsg>, epoch: u64) {
        if epoch <= self.epoch || self.fenced {
            return;
        }
        self.fenced = true;
        self.let_go_of_socket(CloseCode::SessionTakenOver);
        self.cancel_timers();
        if let Some(t) = self.detach_timer.take() {
            t.abort();
        }
        self.detach_timer = Some(myself.send_after(HANDOVER_LINGER, || ConnMsg::LingerOver));
    }

    /// The new owner (`from`, at `epoch`) asks for the session's state: answer, then close
    /// the socket and keep relaying.
    pub(super) async fn on_handover(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        epoch: u64,
        after_seq: u64,
        from: tether_cluster::NodeId,
        reply: ractor::RpcReplyPort<Option<super::HandoverState>>,
    ) {
        let state_out = self.hand_over(epoch, after_seq);
        let handed = state_out.is_some();
        let _ = reply.send(state_out);
        if handed {
            // Until the new owner ends the relay, messages still reaching this node for the
            // session are kept for its flushes, in order (it drops the ones it already has).
            self.on_taken_over(myself, epoch).await;
            self.relay = Some(Box::new(super::handover::Relay::new(epoch)));
            self.ctx.directory.set_relay(&self.auth.session_id);
            tracing::debug!(session_id = %self.auth.session_id, to = from, "handed over; relaying");
        }
    }

    /// The state the new owner (at `epoch`) needs; `None` if the request is stale.
    fn hand_over(&mut self, epoch: u64, after_seq: u64) -> Option<super::HandoverState> {
        if epoch <= self.epoch {
            return None;
        }
        let frames = self.outbox.frames_after(after_seq);
        Some(super::HandoverState {
            seq: self.seq,
            subs: self.subs.iter().cloned().collect(),
            frames,
            recent_ids: self.recent.ids(),
            covers: after_seq <= self.seq && self.outbox.covers(after_seq),
        })
    }

    /// Takes over a session handed over by its previous owner: numbering, subscriptions
    /// (those still allowed) and the missed frames (filtered by the current permissions).
    pub(super) fn restore(&mut self, resume_token: &str, last_seq: u64, h: super::HandoverState) {
        self.seq = h.seq;
        for id in &h.recent_ids {
            self.recent.insert(*id);
        }
        self.outbox = Outbox::new(
            h.frames.first().map(|f| f.0).unwrap_or(h.seq + 1),
            self.ctx.conn.outbox_max_messages,
            self.ctx.conn.outbox_max_bytes,
            self.ctx.metrics.outbox_bytes.clone(),
        );
        for (seq, channel, json) in &h.frames {
            self.outbox.push(*seq, channel.clone(), json.clone());
        }
        // All of them: the caller's reauthorize drops (and reports) those no longer allowed.
        for c in h.subs {
            self.ctx
                .directory
                .subscribe(&self.auth.session_id, &self.auth.tenant, &c);
            self.subs.insert(c);
        }
        let recovered = h.covers && last_seq <= self.seq;
        self.queue(self.welcome_json(resume_token, true, recovered));
        for (seq, channel, json) in h.frames {
            if seq > last_seq
                && channel
                    .as_deref()
                    .is_none_or(|c| self.perms.can_subscribe(c))
            {
                self.queue(json);
            }
        }
        self.ctx
            .metrics
            .resumes
            .get_or_create(&crate::metrics::Where {
                r#where: "handover",
            })
            .inc();
    }
}

impl ConnState {
    /// Completes a resume that moved the session here from another node: fetch its state
    /// from the previous owner (handover), or report `recovered:false` when that node is gone.
    pub(super) async fn complete_remote_resume(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        token: &str,
        from: ResumedFrom,
    ) {
        // Registered already, so deliveries arriving meanwhile wait in the mailbox and
        // are numbered after the handed-over frames.
        let handover = match from.previous_node {
            Some(node) => {
                let sid = self.auth.session_id.clone();
                crate::session::rpc::handover_from(&self.ctx, node, &sid, from.epoch, from.last_seq)
                    .await
            }
            None => None,
        };
        let place = if handover.is_some() {
            "other_node"
        } else {
            "other_node_lost"
        };
        self.ctx
            .metrics
            .resumes
            .get_or_create(&crate::metrics::Where { r#where: place })
            .inc();
        match (handover, from.previous_node) {
            (Some(h), Some(node)) => {
                self.restore(token, from.last_seq, h);
                self.follow_upstream(myself, node);
                self.reauthorize(myself, false).await;
                for m in from.carried {
                    if let Some(d) = m.into_delivery() {
                        self.on_deliver(myself, &d, true).await;
                    }
                }
            }
            _ => self.queue(self.welcome_json(token, true, false)),
        }
    }
}

/// How long a fenced-off owner keeps a session's state for the new owner to fetch.
const HANDOVER_LINGER: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    /// Only 41xx/1012/1013 keep a session for resume; 40xx end it.
    #[test]
    fn resumable_codes() {
        assert!(resumable(CloseCode::IdleTimeout) && resumable(CloseCode::ServiceRestart));
        assert!(!resumable(CloseCode::SessionRevoked) && !resumable(CloseCode::ProtocolError));
        assert!(!resumable(CloseCode::Normal));
    }
}
