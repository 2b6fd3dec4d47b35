//! The socket tasks of one connection: a reader feeding the actor and a writer draining the
//! bounded outbound queue, with a close path that bypasses the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ractor::ActorRef;
use std::collections::VecDeque;
use tokio::io::{AsyncRead, AsyncWrite};

use tether_protocol::CloseCode;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::ConnMsg;
use crate::limits::ConnSlot;

/// Frames read but not yet handled by the actor. Bounds the actor's mailbox from the socket side.
const FRAMES_IN_FLIGHT: usize = 32;

pub enum Outbound {
    Text(String),
    Ping,
}

/// The bounded outbound queue from the actor to the writer task. Unlike a tokio mpsc channel
/// (which allocates a 32-slot block when it is created) it holds no memory while empty, so
/// an idle connection pays nothing for it (docs/performance.md, memory).
pub struct OutQueue {
    shared: Arc<OutShared>,
}

/// The writer's side of [`OutQueue`].
pub struct OutReceiver {
    shared: Arc<OutShared>,
}

struct OutShared {
    state: std::sync::Mutex<OutState>,
    ready: Notify,
    capacity: usize,
}

#[derive(Default)]
struct OutState {
    frames: VecDeque<Outbound>,
    /// The actor's side was dropped: the writer ends once the queue is empty.
    closed: bool,
}

/// Capacity an emptied queue may keep; a burst's larger buffer is given back.
const OUT_KEEP: usize = 8;

fn out_queue(capacity: usize) -> (OutQueue, OutReceiver) {
    let shared = Arc::new(OutShared {
        state: std::sync::Mutex::new(OutState::default()),
        ready: Notify::new(),
        capacity,
    });
    (
        OutQueue {
            shared: shared.clone(),
        },
        OutReceiver { shared },
    )
}

impl OutShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        // Nothing panics while holding the lock; a poisoned one still holds valid frames.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl OutQueue {
    /// Queues `frame`, or gives it back if the queue is full (the client is not reading).
    pub fn try_send(&self, frame: Outbound) -> Result<(), Outbound> {
        {
            let mut s = self.shared.lock();
            if s.frames.len() >= self.shared.capacity {
                return Err(frame);
            }
            s.frames.push_back(frame);
        }
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
    }
}

impl OutReceiver {
    /// The next frame; `None` once the actor's side is gone and the queue is empty.
    /// Cancel-safe: a frame is only taken in the same poll that returns it.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            {
                let mut s = self.shared.lock();
                if let Some(frame) = s.frames.pop_front() {
                    if s.frames.is_empty() && s.frames.capacity() > OUT_KEEP {
                        s.frames.shrink_to(OUT_KEEP);
                    }
                    return Some(frame);
                }
                if s.closed {
                    return None;
                }
            }
            // A notify_one sent since the check above left a permit: this returns at once.
            self.shared.ready.notified().await;
        }
    }
}

/// The actor's side of the socket tasks.
pub struct IoHandles {
    pub out: OutQueue,
    pub close: Option<oneshot::Sender<CloseCode>>,
    pub writer: Option<JoinHandle<()>>,
    pub reader: Option<JoinHandle<()>>,
    /// Set once the actor is closing: the reader then discards frames until the socket ends.
    pub closing: Arc<AtomicBool>,
}

/// Starts the socket tasks once the actor exists (the reader needs the actor's address).
pub type IoStarter = Box<dyn FnOnce(ActorRef<ConnMsg>) -> IoHandles + Send>;

/// What the socket tasks need from the node's connection settings.
#[derive(Debug, Clone, Copy)]
pub struct IoConfig {
    /// Bound of the outbound queue.
    pub queue: usize,
    pub close_timeout: Duration,
    /// How often the reader sends the actor a `Tick` (heartbeat and idle checks).
    pub tick: Duration,
}

impl IoConfig {
    pub fn of(conn: &crate::context::ConnSettings) -> IoConfig {
        IoConfig {
            queue: conn.outbound_queue,
            close_timeout: conn.close_timeout,
            // Fine enough for both checks, coarse enough to cost nothing at idle.
            tick: (conn.heartbeat_interval / 2)
                .min(conn.idle_timeout / 4)
                .max(Duration::from_millis(50)),
        }
    }
}

/// Splits `ws` into reader and writer tasks bound to `actor`.
pub fn spawn_io<S>(
    ws: WebSocketStream<S>,
    actor: ActorRef<ConnMsg>,
    cfg: IoConfig,
    guard: ConnSlot,
) -> IoHandles
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = out_queue(cfg.queue.max(1));
    let (close_tx, close_rx) = oneshot::channel();
    let closing = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_loop(sink, out_rx, close_rx, cfg.close_timeout));
    let reader = tokio::spawn(read_loop(stream, actor, closing.clone(), cfg.tick, guard));
    IoHandles {
        out: out_tx,
        close: Some(close_tx),
        writer: Some(writer),
        reader: Some(reader),
        closing,
    }
}

/// Feeds the actor the socket's frames, and a `Tick` every `tick` while the socket lives
/// (a timer here instead of a timer task per actor: one task less per connection).
async fn read_loop<S>(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    actor: ActorRef<ConnMsg>,
    closing: Arc<AtomicBool>,
    tick: Duration,
    _guard: ConnSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let permits = Arc::new(Semaphore::new(FRAMES_IN_FLIGHT));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            item = stream.next() => match item {
                Some(item) => item,
                None => break,
            },
            _ = ticks.tick() => {
                if actor.cast(ConnMsg::Tick).is_err() {
                    return;
                }
                continue;
            }
        };
        if closing.load(Ordering::Relaxed) {
            // Keep reading only to see the client's close reply; nothing else matters now.
            match item {
                Ok(Message::Close(_)) | Err(_) => break,
                _ => continue,
            }
        }
        let msg = match item {
            Ok(Message::Text(t)) => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                ConnMsg::Frame(t, permit)
            }
            Ok(Message::Binary(_)) => ConnMsg::Binary,
            Ok(Message::Pong(_)) | Ok(Message::Ping(_)) => ConnMsg::Activity,
            // A normal close means the client is leaving; any other code (1001 going away,
            // an app backgrounded) keeps the session resumable.
            Ok(Message::Close(Some(f))) if u16::from(f.code) == 1000 => {
                ConnMsg::ClientClosed(closing.clone())
            }
            Ok(Message::Close(_)) => ConnMsg::ClientGone(closing.clone()),
            Ok(Message::Frame(_)) => continue,
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                ConnMsg::TooBig(closing.clone())
            }
            Err(_) => ConnMsg::ClientGone(closing.clone()),
        };
        let last = matches!(
            msg,
            ConnMsg::ClientGone(_) | ConnMsg::ClientClosed(_) | ConnMsg::TooBig(_)
        );
        if actor.cast(msg).is_err() || last {
            return;
        }
    }
    // Once the actor is closing this connection (or replaced it) its end is no news.
    if !closing.load(Ordering::Relaxed) {
        let _ = actor.cast(ConnMsg::ClientGone(closing));
    }
}

type Sink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, Message>;

async fn write_loop<S>(
    mut sink: Sink<S>,
    mut rx: OutReceiver,
    mut close_rx: oneshot::Receiver<CloseCode>,
    close_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = tokio::select! {
            biased;
            code = &mut close_rx => {
                if let Ok(code) = code {
                    send_close(&mut sink, code, close_timeout).await;
                }
                return;
            }
            next = rx.recv() => next,
        };
        let msg = match next {
            Some(Outbound::Text(t)) => Message::text(t),
            Some(Outbound::Ping) => Message::Ping(Default::default()),
            None => return,
        };
        // A client that stopped reading blocks this send; a close request must still win.
        tokio::select! {
            biased;
            code = &mut close_rx => {
                if let Ok(code) = code {
                    send_close(&mut sink, code, close_timeout).await;
                }
                return;
            }
            r = sink.send(msg) => if r.is_err() { return },
        }
    }
}

async fn send_close<S>(sink: &mut Sink<S>, code: CloseCode, close_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: code.code().into(),
        reason: code.name().into(),
    };
    // Bounded: a client that never reads gets its socket dropped instead.
    let _ = tokio::time::timeout(close_timeout, sink.send(Message::Close(Some(frame)))).await;
}

/// Closes a socket that never got an actor (handshake failures).
pub async fn close_raw<S>(ws: &mut WebSocketStream<S>, code: CloseCode, close_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: code.code().into(),
        reason: code.name().into(),
    };
    let _ = tokio::time::timeout(close_timeout, ws.close(Some(frame))).await;
    // Give the client a moment to answer the close, so it reads our frame before the FIN.
    let _ = tokio::time::timeout(close_timeout, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(o: Option<Outbound>) -> Option<String> {
        match o {
            Some(Outbound::Text(t)) => Some(t),
            Some(Outbound::Ping) => Some("ping".into()),
            None => None,
        }
    }

    /// Bounded, in order, drained before it reports the actor's side gone.
    #[tokio::test]
    async fn out_queue_is_bounded_ordered_and_drains_before_closing() {
        let (tx, mut rx) = out_queue(2);
        assert!(tx.try_send(Outbound::Text("a".into())).is_ok());
        assert!(tx.try_send(Outbound::Ping).is_ok());
        assert!(matches!(
            tx.try_send(Outbound::Text("c".into())),
            Err(Outbound::Text(t)) if t == "c"
        ));
        assert_eq!(text(rx.recv().await).as_deref(), Some("a"));
        assert!(tx.try_send(Outbound::Text("d".into())).is_ok());
        drop(tx);
        assert_eq!(text(rx.recv().await).as_deref(), Some("ping"));
        assert_eq!(text(rx.recv().await).as_deref(), Some("d"));
        assert_eq!(text(rx.recv().await), None);
    }

    /// A waiting writer wakes for a frame queued later, and for the actor's side going away;
    /// an emptied queue gives a burst's buffer back.
    #[tokio::test]
    async fn out_queue_wakes_the_writer_and_shrinks() {
        let (tx, mut rx) = out_queue(1000);
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = text(rx.recv().await) {
                got.push(t);
            }
            (got, rx.shared.lock().frames.capacity())
        });
        tokio::task::yield_now().await;
        for i in 0..200 {
            assert!(tx.try_send(Outbound::Text(i.to_string())).is_ok());
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        let (got, capacity) = tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer ends")
            .expect("no panic");
        let want: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        assert!(capacity <= OUT_KEEP, "capacity {capacity} kept");
    }
}
