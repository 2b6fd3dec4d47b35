//! Detached sessions and resume: the bounded outbox of sequenced frames, detaching on a
//! reconnect-class drop, re-attaching a new connection, and losing the session to a resume
//! on another node (epoch fencing, close 4009).

use std::collections::VecDeque;
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::ConnState;
use super::io::IoHandles;
use super::{ConnMsg, ResumeAttach};
use crate::perms::Permissions;
use crate::protocol::CloseCode;
use tether_cluster::command::Command;

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

/// Lets the reader see the client's close reply, then aborts it.
pub fn reap_reader(mut io: IoHandles, close_timeout: Duration) {
    if let Some(mut reader) = io.reader.take() {
        tokio::spawn(async move {
            if tokio::time::timeout(close_timeout, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        });
    }
}

struct OutEntry {
    seq: u64,
    /// Channel of an event (checked against the current permissions on replay); `None`
    /// for direct events and permission frames, which are always replayed.
    channel: Option<String>,
    json: String,
}

/// Sequenced frames kept for resume, bounded by count and bytes; acks trim it.
pub struct Outbox {
    entries: VecDeque<OutEntry>,
    bytes: usize,
    max_len: usize,
    max_bytes: usize,
    /// Every frame with a seq at or above this is still here (or was never sent).
    first_kept: u64,
}

impl Outbox {
    pub fn new(first_seq: u64, max_len: usize, max_bytes: usize) -> Outbox {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            max_len,
            max_bytes,
            first_kept: first_seq,
        }
    }

    pub fn push(&mut self, seq: u64, channel: Option<String>, json: String) {
        self.bytes += json.len();
        self.entries.push_back(OutEntry { seq, channel, json });
        while self.entries.len() > self.max_len || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.json.len();
            self.first_kept = old.seq + 1;
        }
    }

    /// The client has everything up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.json.len();
            }
        }
    }

    /// Whether every frame after `last_seq` is still here.
    pub fn covers(&self, last_seq: u64) -> bool {
        last_seq.saturating_add(1) >= self.first_kept
    }
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
                .inc("tether_closes_total", &[("code", &code.code().to_string())]);
        }
        if let Some(io) = self.io.take() {
            reap_reader(io, self.ctx.conn.close_timeout);
        }
        self.ctx.metrics.connection_closed();
        self.cancel_timers();
        let window = self.ctx.conn.resume_window;
        let epoch = self.epoch;
        self.detach_timer =
            Some(myself.send_after(window, move || ConnMsg::ResumeWindowOver { epoch }));
        let ctx = self.ctx.clone();
        let cmd = Command::DetachSession {
            session_id: self.auth.session_id.clone(),
            resume_window_ms: window.as_millis() as u64,
            epoch: self.epoch,
        };
        tokio::spawn(async move {
            if let Err(e) = ctx.registry.propose(cmd, None).await {
                tracing::warn!(error = %e, "could not record a detached session");
            }
        });
    }

    /// A resume committed on this node: attach the new connection, replay what the client
    /// missed (filtered by the permissions it has now), carry on.
    pub(super) async fn on_resume(&mut self, myself: &ActorRef<ConnMsg>, r: ResumeAttach) {
        if r.epoch <= self.epoch {
            return;
        }
        self.epoch = r.epoch;
        if self.io.is_some() {
            // The old connection is still open: this resume took the session over.
            self.close_socket(CloseCode::SessionTakenOver).await;
            if let Some(io) = self.io.take() {
                reap_reader(io, self.ctx.conn.close_timeout);
            }
            self.ctx.metrics.connection_closed();
        }
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
        self.arm_expiry(myself);
        let recovered = r.last_seq <= self.seq && self.outbox.covers(r.last_seq);
        let welcome = self.welcome_json(&r.resume_token, true, recovered);
        self.queue(welcome);
        let replay: Vec<String> = self
            .outbox
            .entries
            .iter()
            .filter(|e| e.seq > r.last_seq)
            .filter(|e| {
                e.channel
                    .as_deref()
                    .is_none_or(|c| self.perms.can_subscribe(c))
            })
            .map(|e| e.json.clone())
            .collect();
        self.ctx
            .metrics
            .inc("tether_resumes_total", &[("where", "same_node")]);
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
        if self.io.is_some() {
            self.close_socket(CloseCode::SessionTakenOver).await;
            if let Some(io) = self.io.take() {
                reap_reader(io, self.ctx.conn.close_timeout);
            }
            self.ctx.metrics.connection_closed();
        }
        self.cancel_timers();
        if let Some(t) = self.detach_timer.take() {
            t.abort();
        }
        self.detach_timer = Some(myself.send_after(HANDOVER_LINGER, || ConnMsg::LingerOver));
    }

    /// The state the new owner (at `epoch`) needs; `None` if the request is stale.
    pub(super) fn hand_over(&mut self, epoch: u64, after_seq: u64) -> Option<super::HandoverState> {
        if epoch <= self.epoch {
            return None;
        }
        let frames = self
            .outbox
            .entries
            .iter()
            .filter(|e| e.seq > after_seq)
            .map(|e| (e.seq, e.channel.clone(), e.json.clone()))
            .collect();
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
            .inc("tether_resumes_total", &[("where", "handover")]);
    }
}

/// The previous owner of a session handed over to this node, while it may still keep
/// messages that reached it for the session.
///
/// Why: a message published just before the move reaches the previous owner and a newer one
/// may reach this node directly first. Direct deliveries are held here until a flush
/// request, queued on the previous owner behind everything it had, brings back the
/// messages it kept; those go first, then the held ones, in arrival order, duplicates
/// dropped by id. After `RELAY_OVERLAP` the last flush ends the relay: no publish still in
/// flight can reach only the previous owner.
pub(super) struct Upstream {
    node: tether_cluster::NodeId,
    since: Instant,
    held: VecDeque<std::sync::Arc<super::Delivery>>,
    /// A flush request is out.
    flushing: bool,
    /// When the last flush request went out.
    last_flush: Option<Instant>,
    /// This actor was handed over in turn (it relays for a newer owner) while still waiting
    /// on its own upstream: flush requests from the newer owner, answered after this actor's
    /// next flush of its upstream (`waiting`: covered by the flush out now; `queued`: came
    /// after it went out). `bool`: the request was the last one.
    waiting: Vec<(ractor::RpcReplyPort<super::FlushAnswer>, bool)>,
    queued: Vec<(ractor::RpcReplyPort<super::FlushAnswer>, bool)>,
}

/// On a session's previous owner after the handover: what reached it for the session since
/// the new owner's last flush, in order. Bounded.
pub(super) struct Relay {
    /// The new owner's epoch: flushes from another owner of the session (an older one, whose
    /// previous owner was on this node too) get nothing.
    epoch: u64,
    kept: VecDeque<super::Relayed>,
}

impl Relay {
    pub(super) fn new(epoch: u64) -> Relay {
        Relay {
            epoch,
            kept: VecDeque::new(),
        }
    }

    pub(super) fn keep(&mut self, d: &super::Delivery) {
        if self.kept.len() >= MAX_KEPT {
            tracing::warn!("relay full: a message for a moved session is dropped");
            self.kept.pop_front();
        }
        self.kept.push_back(super::Relayed {
            id: d.id,
            channel: d.channel.clone(),
            data: d.data.get().to_owned(),
            direct: d.direct,
        });
    }

    fn take(&mut self) -> Vec<super::Relayed> {
        self.kept.drain(..).collect()
    }
}

/// How long the previous owner keeps messages after a handover: longer than a publish may
/// take to reach every node (a publish that takes longer is reported as not delivered).
const RELAY_OVERLAP: Duration =
    crate::peer_app::DELIVER_TIMEOUT.saturating_add(Duration::from_millis(500));

/// Least time between two flush requests of one session (bounds the peer traffic of a
/// moved session to about 20 requests a second during the overlap).
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Most direct deliveries held while waiting for the previous owner; past it they are
/// released without waiting (order across the move is then best effort).
const MAX_HELD: usize = 1024;

/// Most messages a previous owner keeps between two flushes (the oldest are dropped).
const MAX_KEPT: usize = 4096;

impl ConnState {
    /// Starts waiting on the previous owner (after a handover from `node`).
    pub(super) fn follow_upstream(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        node: tether_cluster::NodeId,
    ) {
        self.upstream = Some(Box::new(Upstream {
            node,
            since: Instant::now(),
            held: VecDeque::new(),
            flushing: false,
            last_flush: None,
            waiting: Vec::new(),
            queued: Vec::new(),
        }));
        // Ends the relay after the overlap even if no direct delivery comes.
        drop(myself.send_after(RELAY_OVERLAP, || ConnMsg::RelayCheck));
    }

    /// Holds a direct delivery until the previous owner has handed over everything older.
    pub(super) async fn hold(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        d: std::sync::Arc<super::Delivery>,
    ) {
        let Some(up) = self.upstream.as_mut() else {
            return self.accept(myself, &d).await;
        };
        if up.held.len() >= MAX_HELD {
            tracing::warn!(session_id = %self.auth.session_id, "too many messages held for the relay; releasing them");
            self.release_upstream(myself).await;
            return self.accept(myself, &d).await;
        }
        up.held.push_back(d);
        if !up.flushing {
            self.flush_soon(myself);
        }
    }

    /// Sends a flush request now, or schedules one if the last went out under
    /// `FLUSH_INTERVAL` ago.
    fn flush_soon(&mut self, myself: &ActorRef<ConnMsg>) {
        let Some(up) = self.upstream.as_ref() else {
            return;
        };
        match up.last_flush.map(|t| t.elapsed()) {
            Some(e) if e < FLUSH_INTERVAL => {
                drop(myself.send_after(FLUSH_INTERVAL - e, || ConnMsg::RelayCheck));
            }
            _ => self.request_flush(myself),
        }
    }

    /// Asks the previous owner for the messages it kept; the answer comes back as `Flushed`
    /// covering what is held now.
    fn request_flush(&mut self, myself: &ActorRef<ConnMsg>) {
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        up.flushing = true;
        up.last_flush = Some(Instant::now());
        let queued = std::mem::take(&mut up.queued);
        up.waiting.extend(queued);
        let count = up.held.len();
        let last = up.since.elapsed() >= RELAY_OVERLAP;
        let (ctx, node, sid, me, epoch) = (
            self.ctx.clone(),
            up.node,
            self.auth.session_id.clone(),
            myself.clone(),
            self.epoch,
        );
        tokio::spawn(async move {
            let answer = crate::peer_app::flush(&ctx, node, &sid, epoch, last).await;
            let _ = me.cast(ConnMsg::Flushed(Box::new(super::Flushed { count, answer })));
        });
    }

    /// The previous owner's answer: its kept messages first, then the deliveries held before
    /// the request; then the flush requests of a newer owner that this answer covers.
    pub(super) async fn on_flushed(&mut self, myself: &ActorRef<ConnMsg>, f: super::Flushed) {
        let super::Flushed { count, answer } = f;
        // Without an upstream (held deliveries were released meanwhile) the kept messages
        // are still taken: nothing may be lost.
        let (ready, waiting) = match self.upstream.as_mut() {
            Some(up) => {
                up.flushing = false;
                let n = count.min(up.held.len());
                (
                    up.held.drain(..n).collect(),
                    std::mem::take(&mut up.waiting),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        for m in answer.messages {
            if let Some(d) = m.into_delivery() {
                self.on_deliver(myself, &d, true).await;
            }
        }
        for d in ready {
            self.accept(myself, &d).await;
        }
        for (reply, last) in waiting {
            self.answer_flush(myself, reply, last).await;
        }
        if answer.ended {
            return self.release_upstream(myself).await;
        }
        if self.upstream.as_ref().is_some_and(|u| u.flush_due()) {
            self.flush_soon(myself);
        }
    }

    /// Flushes if one is due and none is out.
    pub(super) fn on_relay_check(&mut self, myself: &ActorRef<ConnMsg>) {
        if self.upstream.as_ref().is_some_and(|u| u.flush_due()) {
            self.flush_soon(myself);
        }
    }

    /// Stops waiting on the previous owner, releases everything held, in order, and answers
    /// the flush requests that waited on it.
    pub(super) async fn release_upstream(&mut self, myself: &ActorRef<ConnMsg>) {
        if let Some(up) = self.upstream.take() {
            let Upstream {
                held,
                waiting,
                queued,
                ..
            } = *up;
            for d in held {
                self.accept(myself, &d).await;
            }
            for (reply, last) in waiting.into_iter().chain(queued) {
                self.answer_flush(myself, reply, last).await;
            }
        }
    }

    /// Answers a flush request of the newer owner with everything kept for it (`last`: and
    /// ends).
    async fn answer_flush(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        reply: ractor::RpcReplyPort<super::FlushAnswer>,
        last: bool,
    ) {
        let messages = self.relay.as_mut().map(|r| r.take()).unwrap_or_default();
        let _ = reply.send(super::FlushAnswer {
            messages,
            ended: last || self.relay.is_none(),
        });
        if last {
            self.end(myself, CloseCode::SessionTakenOver, true).await;
        }
    }

    /// On the previous owner: a flush request from the new owner. Everything queued before
    /// the request was handled, so `kept` holds every message older than it, unless this
    /// actor still waits on its own upstream: then the answer waits for the next flush of it.
    pub(super) async fn on_flush(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        epoch: Option<u64>,
        last: bool,
        removed: bool,
        reply: ractor::RpcReplyPort<super::FlushAnswer>,
    ) {
        let relaying = self
            .relay
            .as_ref()
            .is_some_and(|r| epoch.is_none_or(|e| e == r.epoch));
        if !relaying {
            // Not relaying for that owner (this is the owner again, or relays for a newer
            // one): nothing will come for it.
            let _ = reply.send(super::FlushAnswer::ended());
            return;
        }
        if last && !removed {
            // Leave the directory: nothing new can reach this actor. Deliveries that found it
            // are queued already; the request goes behind them.
            self.ctx
                .directory
                .remove_actor(&self.auth.session_id, myself.get_id());
            let again = ConnMsg::Flush {
                epoch,
                last,
                removed: true,
                reply,
            };
            if let Err(e) = myself.cast(again) {
                tracing::warn!(error = %e, "could not queue the last flush");
            }
            return;
        }
        if epoch.is_none() {
            // A stale actor retired by a resume on this node: take what it has now.
            self.release_upstream(myself).await;
        }
        match self.upstream.as_mut() {
            Some(up) => {
                up.queued.push((reply, last));
                if !up.flushing {
                    self.flush_soon(myself);
                }
            }
            None => self.answer_flush(myself, reply, last).await,
        }
    }
}

impl Upstream {
    /// Whether a flush should go out: none is out, and deliveries or requests wait on it or
    /// the overlap is over.
    fn flush_due(&self) -> bool {
        !self.flushing
            && (!self.held.is_empty()
                || !self.queued.is_empty()
                || self.since.elapsed() >= RELAY_OVERLAP)
    }
}

/// Ids of the last messages offered to a session, to drop a message offered twice while
/// the session moves between nodes. Bounded.
#[derive(Default)]
pub struct RecentIds {
    order: VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

const RECENT_IDS: usize = 4096;

impl RecentIds {
    /// Records `id`; `false` if it was seen already.
    pub fn insert(&mut self, id: u64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    pub fn ids(&self) -> Vec<u64> {
        self.order.iter().copied().collect()
    }
}

/// How long a fenced-off owner keeps a session's state for the new owner to fetch.
const HANDOVER_LINGER: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(o: &Outbox) -> Vec<u64> {
        o.entries.iter().map(|e| e.seq).collect()
    }

    /// The outbox keeps the newest frames within its bounds and knows what it can replay.
    #[test]
    fn bounds_and_coverage() {
        let mut o = Outbox::new(1, 3, 1_000);
        for seq in 1..=5 {
            o.push(seq, Some("c.a".into()), format!("f{seq}"));
        }
        assert_eq!(seqs(&o), vec![3, 4, 5]);
        assert!(o.covers(2) && o.covers(4));
        assert!(
            !o.covers(1),
            "frame 2 was dropped, a client at 1 cannot recover"
        );
        let mut small = Outbox::new(1, 100, 10);
        small.push(1, None, "x".repeat(6));
        small.push(2, None, "y".repeat(6));
        assert_eq!(seqs(&small), vec![2]);
        assert!(small.covers(1) && !small.covers(0));
    }

    /// Acks trim what the client already has, without claiming anything was lost.
    #[test]
    fn ack_trims() {
        let mut o = Outbox::new(11, 100, 1_000_000);
        for seq in 11..=15 {
            o.push(seq, None, "f".into());
        }
        o.ack(13);
        assert_eq!(seqs(&o), vec![14, 15]);
        assert!(o.covers(13));
        assert_eq!(o.bytes, 2);
    }

    /// Only 41xx/1012/1013 keep a session for resume; 40xx end it.
    #[test]
    fn resumable_codes() {
        assert!(resumable(CloseCode::IdleTimeout) && resumable(CloseCode::ServiceRestart));
        assert!(!resumable(CloseCode::SessionRevoked) && !resumable(CloseCode::ProtocolError));
        assert!(!resumable(CloseCode::Normal));
    }
}
