//! What the actor and its socket task share: the bounded outbound queue, the close request
//! that bypasses it, and the deadline the task's timer fires. One lock and one waker: the
//! socket task is the only one that waits on it, and an idle connection keeps nothing
//! allocated here but the link itself (docs/performance.md, memory).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tether_protocol::CloseCode;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub enum Outbound {
    Text(String),
    Ping,
}

/// Capacity an emptied queue may keep; a burst's larger buffer is given back.
const OUT_KEEP: usize = 8;

/// One connection's link between its actor and its socket task. Socket-end messages carry
/// it, so the actor can tell the connection attached now from one it replaced.
pub struct Link {
    state: Mutex<LinkState>,
    capacity: usize,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct LinkState {
    frames: VecDeque<Outbound>,
    /// Asked by the actor: send this close frame before anything still queued, then tell
    /// the actor it was written.
    close: Option<(CloseCode, oneshot::Sender<()>)>,
    /// The actor let go of the connection without a close: write what is queued, then end.
    released: bool,
    /// When to send the actor `ConnMsg::Deadline` with this generation.
    deadline: Option<(Instant, u64)>,
    waker: Option<Waker>,
    /// The socket task has ended: nobody will write a close frame any more.
    ended: bool,
}

/// What the socket task is asked to do next.
pub(super) enum Control {
    Close(CloseCode, oneshot::Sender<()>),
    /// Released and nothing left to write.
    Released,
}

impl Link {
    pub(super) fn new(capacity: usize) -> Arc<Link> {
        Arc::new(Link {
            state: Mutex::new(LinkState::default()),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // Nothing panics while holding the lock; a poisoned one still holds valid frames.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes the socket task.
    fn update(&self, f: impl FnOnce(&mut LinkState)) {
        let waker = {
            let mut s = self.lock();
            f(&mut s);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queues `frame`, or gives it back if the queue is full (the client is not reading).
    pub(super) fn try_send(&self, frame: Outbound) -> Result<(), Outbound> {
        let mut frame = Some(frame);
        self.update(|s| {
            if s.frames.len() < self.capacity {
                s.frames.extend(frame.take());
            }
        });
        frame.map_or(Ok(()), Err)
    }

    /// Asks the task to send `code` past the queue; returns once the frame is written, the
    /// task has ended, or `wait` passed.
    pub(super) async fn close(&self, code: CloseCode, wait: Duration) {
        if let Some(written) = self.request_close(code) {
            let _ = tokio::time::timeout(wait, written).await;
        }
    }

    /// Asks the task to send `code` past the queue; the receiver hears when it is written
    /// (or is dropped if the task ends first). `None` if the task has ended already.
    pub(super) fn request_close(&self, code: CloseCode) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        let mut asked = false;
        self.update(|s| {
            if !s.ended {
                s.close = Some((code, tx));
                asked = true;
            }
        });
        asked.then_some(rx)
    }

    /// Called by the socket task as it ends. Why: a client whose close or failed write ended
    /// the task leaves a `ClientGone` in the actor's mailbox, and anything handled before it
    /// (a takeover, a revocation) must not wait for a close frame nobody will write; an
    /// actor blocked that way could not answer a new owner's handover in time (a resume
    /// lost its backlog in tests/drain.rs).
    pub(super) fn task_ended(&self) {
        let mut s = self.lock();
        s.ended = true;
        // Dropping the sender ends a close wait at once.
        s.close = None;
    }

    pub(super) fn release(&self) {
        self.update(|s| s.released = true);
    }

    pub(super) fn set_deadline(&self, deadline: Option<(Instant, u64)>) {
        self.update(|s| s.deadline = deadline);
    }

    /// The deadline, if it is due at `now` (taken: it fires once).
    pub(super) fn take_due_deadline(&self, now: Instant) -> Option<u64> {
        let mut s = self.lock();
        match s.deadline {
            Some((at, generation)) if at <= now => {
                s.deadline = None;
                Some(generation)
            }
            _ => None,
        }
    }

    /// For the socket task: a close request first; then, if the task is writing (`next`),
    /// the next frame into its slot unless the slot still holds one; then a release once
    /// nothing is left to write. Registers the task's waker otherwise. `deadline` is set to
    /// the deadline now armed.
    pub(super) fn poll_control(
        &self,
        cx: &mut Context<'_>,
        next: Option<&mut Option<Outbound>>,
        deadline: &mut Option<Instant>,
    ) -> Poll<Control> {
        let mut s = self.lock();
        *deadline = s.deadline.map(|(at, _)| at);
        if let Some((code, ack)) = s.close.take() {
            return Poll::Ready(Control::Close(code, ack));
        }
        let writing = match next {
            Some(slot) => {
                if slot.is_none() {
                    *slot = s.frames.pop_front();
                    if s.frames.is_empty() && s.frames.capacity() > OUT_KEEP {
                        s.frames.shrink_to(OUT_KEEP);
                    }
                }
                slot.is_some()
            }
            None => false,
        };
        if s.released && !writing {
            return Poll::Ready(Control::Released);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn text(o: Option<Outbound>) -> Option<String> {
        match o {
            Some(Outbound::Text(t)) => Some(t),
            Some(Outbound::Ping) => Some("ping".into()),
            None => None,
        }
    }

    /// The next frame, or what the link asks instead.
    async fn next(link: &Link) -> Result<Option<String>, &'static str> {
        let mut out = None;
        let mut deadline = None;
        poll_fn(
            |cx| match link.poll_control(cx, Some(&mut out), &mut deadline) {
                Poll::Ready(Control::Close(..)) => Poll::Ready(Err("close")),
                Poll::Ready(Control::Released) => Poll::Ready(Ok(None)),
                Poll::Pending if out.is_some() => Poll::Ready(Ok(text(out.take()))),
                Poll::Pending => Poll::Pending,
            },
        )
        .await
    }

    /// Bounded, in order, drained before a release is reported; a close request comes
    /// before anything queued.
    #[tokio::test]
    async fn the_queue_is_bounded_ordered_and_drains_before_the_release() {
        let link = Link::new(2);
        assert!(link.try_send(Outbound::Text("a".into())).is_ok());
        assert!(link.try_send(Outbound::Ping).is_ok());
        assert!(matches!(
            link.try_send(Outbound::Text("c".into())),
            Err(Outbound::Text(t)) if t == "c"
        ));
        assert_eq!(next(&link).await, Ok(Some("a".into())));
        assert!(link.try_send(Outbound::Text("d".into())).is_ok());
        link.release();
        assert_eq!(next(&link).await, Ok(Some("ping".into())));
        // Nothing acknowledges this close here: it gives up after its wait, the request stays.
        link.close(CloseCode::Normal, Duration::from_millis(10))
            .await;
        assert_eq!(next(&link).await, Err("close"));
        assert_eq!(next(&link).await, Ok(Some("d".into())));
        assert_eq!(next(&link).await, Ok(None));
    }

    /// A waiting task wakes for a frame queued later; an emptied queue gives a burst's
    /// buffer back; a deadline is handed out once it is due, and only once.
    #[tokio::test]
    async fn the_task_wakes_for_frames_and_the_queue_shrinks() {
        let link = Link::new(1000);
        let task = {
            let link = link.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Ok(Some(t)) = next(&link).await {
                    got.push(t);
                }
                (got, link.lock().frames.capacity())
            })
        };
        tokio::task::yield_now().await;
        for i in 0..200 {
            assert!(link.try_send(Outbound::Text(i.to_string())).is_ok());
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        link.release();
        let (got, capacity) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ends")
            .expect("no panic");
        let want: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        assert!(capacity <= OUT_KEEP, "capacity {capacity} kept");

        let now = Instant::now();
        link.set_deadline(Some((now + Duration::from_secs(5), 7)));
        assert_eq!(link.take_due_deadline(now), None);
        assert_eq!(
            link.take_due_deadline(now + Duration::from_secs(5)),
            Some(7)
        );
        assert_eq!(link.take_due_deadline(now + Duration::from_secs(6)), None);
    }
}
