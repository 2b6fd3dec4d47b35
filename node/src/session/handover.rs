//! After a cross-node handover: the new owner holds direct deliveries until its previous
//! owner, still subscribed as a relay, has flushed what reached it (ordered relay, duplicates
//! dropped by message id).

use std::collections::VecDeque;
use std::time::Duration;

use ractor::ActorRef;
use tether_protocol::CloseCode;
use tokio::time::Instant;

use super::ConnMsg;
use super::actor::ConnState;

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
    crate::session::publish::DELIVER_TIMEOUT.saturating_add(Duration::from_millis(500));

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
            let answer = crate::session::rpc::flush(&ctx, node, &sid, epoch, last).await;
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
/// the session moves between nodes. Bounded; allocated with the first id, so a session
/// that was never offered a message keeps only a pointer.
#[derive(Default)]
pub struct RecentIds(Option<Box<Recent>>);

#[derive(Default)]
struct Recent {
    order: VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

const RECENT_IDS: usize = 4096;

impl RecentIds {
    /// Records `id`; `false` if it was seen already.
    pub fn insert(&mut self, id: u64) -> bool {
        let r = self.0.get_or_insert_default();
        if !r.set.insert(id) {
            return false;
        }
        r.order.push_back(id);
        if r.order.len() > RECENT_IDS
            && let Some(old) = r.order.pop_front()
        {
            r.set.remove(&old);
        }
        true
    }

    pub fn ids(&self) -> Vec<u64> {
        self.0
            .as_ref()
            .map(|r| r.order.iter().copied().collect())
            .unwrap_or_default()
    }
}
