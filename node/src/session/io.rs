//! The socket task of one connection: it reads frames for the actor, writes what the actor
//! queued on its [`Link`], sends the close frame past the queue, and fires the heartbeat
//! tick and the token's deadline. One task and one timer per connection: an idle
//! connection's cost is mostly its tasks (docs/performance.md, memory).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use ractor::ActorRef;
use tether_protocol::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::ConnMsg;
use super::link::{Control, Link, Outbound};
use crate::limits::ConnSlot;

/// Frames read but not yet handled by the actor. Bounds the actor's mailbox from the socket side.
const FRAMES_IN_FLIGHT: usize = 32;

/// The actor's side of the socket task. Dropping it lets the connection go: the task writes
/// what is queued, then ends.
pub struct IoHandles {
    link: Arc<Link>,
}

impl IoHandles {
    /// Queues `frame`, or gives it back if the queue is full (the client is not reading).
    pub fn try_send(&self, frame: Outbound) -> Result<(), Outbound> {
        self.link.try_send(frame)
    }

    /// Sends `code` past the queue and waits (at most `wait`) until it is written.
    pub async fn close(&self, code: CloseCode, wait: Duration) {
        self.link.close(code, wait).await
    }

    /// Asks for `code` past the queue and lets the connection go without waiting: the
    /// socket task writes it (bounded by `close_timeout`) on its own.
    pub fn close_and_let_go(self, code: CloseCode) {
        drop(self.link.request_close(code));
    }

    /// `ConnMsg::Deadline { generation }` at `at`; `None` cancels it.
    pub fn set_deadline(&self, deadline: Option<(Instant, u64)>) {
        self.link.set_deadline(deadline)
    }

    /// Whether a socket-end message came from this connection.
    pub fn is(&self, link: &Arc<Link>) -> bool {
        Arc::ptr_eq(&self.link, link)
    }
}

impl Drop for IoHandles {
    fn drop(&mut self) {
        self.link.release();
    }
}

/// Starts the socket task once the actor exists (the task needs the actor's address).
pub type IoStarter = Box<dyn FnOnce(ActorRef<ConnMsg>) -> IoHandles + Send>;

/// What the socket task needs from the node's connection settings.
#[derive(Debug, Clone, Copy)]
pub struct IoConfig {
    /// Bound of the outbound queue.
    pub queue: usize,
    pub close_timeout: Duration,
    /// How often the task sends the actor a `Tick` (heartbeat and idle checks).
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

/// Starts the socket task of `ws`, bound to `actor`.
pub fn spawn_io<S>(
    ws: WebSocketStream<S>,
    actor: ActorRef<ConnMsg>,
    cfg: IoConfig,
    guard: ConnSlot,
) -> IoHandles
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let link = Link::new(cfg.queue);
    tokio::spawn(run(Task {
        ws,
        link: link.clone(),
        actor,
        close_timeout: cfg.close_timeout,
        tick: cfg.tick,
        _guard: guard,
        permits: Arc::new(Semaphore::new(FRAMES_IN_FLIGHT)),
        phase: Phase::Open,
        out: None,
        flush: false,
        next_tick: Instant::now() + cfg.tick,
        held: None,
    }));
    IoHandles { link }
}

/// Where the connection is in its life.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Frames flow both ways; ticks and the deadline fire.
    Open,
    /// The socket ended (or sent a close, or a frame too big) and the actor was told: wait
    /// for its close request or release, until then.
    Reported(Instant),
    /// The close frame is written, or the actor let go: read only to see the client's close
    /// reply, until then.
    Closing(Instant),
}

type PermitWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// What woke the task.
enum Event {
    Control(Control),
    Read(Option<Result<Message, WsError>>),
    Timer,
    Permit(Result<OwnedSemaphorePermit, AcquireError>),
    /// A write failed: the socket is gone.
    Failed,
}

/// The task's state between events.
struct Task<S> {
    ws: WebSocketStream<S>,
    link: Arc<Link>,
    actor: ActorRef<ConnMsg>,
    close_timeout: Duration,
    tick: Duration,
    /// The connection's place in the per-IP and node-wide counts, freed when the task ends.
    _guard: ConnSlot,
    permits: Arc<Semaphore>,
    phase: Phase,
    /// The frame taken from the queue and not yet accepted by the socket.
    out: Option<Outbound>,
    flush: bool,
    next_tick: Instant,
    /// A text frame read while `FRAMES_IN_FLIGHT` were unhandled, and the wait for a permit.
    held: Option<(Utf8Bytes, PermitWait)>,
}

impl<S> Drop for Task<S> {
    fn drop(&mut self) {
        self.link.task_ended();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Task<S> {
    fn poll_event(&mut self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>) -> Poll<Event> {
        let open = self.phase == Phase::Open;
        let mut deadline = None;
        if !matches!(self.phase, Phase::Closing(_)) {
            loop {
                let next = open.then_some(&mut self.out);
                if let Poll::Ready(c) = self.link.poll_control(cx, next, &mut deadline) {
                    return Poll::Ready(Event::Control(c));
                }
                let Some(frame) = self.out.take() else { break };
                match self.ws.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        let msg = match frame {
                            Outbound::Text(t) => Message::text(t),
                            Outbound::Ping => Message::Ping(Default::default()),
                        };
                        if self.ws.start_send_unpin(msg).is_err() {
                            return Poll::Ready(Event::Failed);
                        }
                        self.flush = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
                    Poll::Pending => {
                        self.out = Some(frame);
                        break;
                    }
                }
            }
        }
        if self.flush {
            match self.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
                Poll::Pending => {}
            }
        }
        let wake_at = match self.phase {
            Phase::Open => deadline.map_or(self.next_tick, |d| d.min(self.next_tick)),
            Phase::Reported(until) | Phase::Closing(until) => until,
        };
        if timer.deadline() != wake_at {
            timer.as_mut().reset(wake_at);
        }
        if timer.poll_unpin(cx).is_ready() {
            return Poll::Ready(Event::Timer);
        }
        if let Some((_, wait)) = &mut self.held {
            return wait.poll_unpin(cx).map(Event::Permit);
        }
        if matches!(self.phase, Phase::Reported(_)) {
            return Poll::Pending;
        }
        self.ws.poll_next_unpin(cx).map(Event::Read)
    }
}

/// The socket task: runs until the connection is closed and its close reply read, the
/// socket fails, or the actor is gone. An `async move` block rather than an `async fn`: an
/// async fn keeps its arguments beside the locals they move into, the 328-byte socket
/// twice (docs/performance.md, memory).
#[allow(clippy::manual_async_fn)] // the point, above
fn run<S>(mut t: Task<S>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let timer = tokio::time::sleep_until(t.next_tick);
        tokio::pin!(timer);
        loop {
            let event = poll_fn(|cx| t.poll_event(cx, timer.as_mut())).await;
            let now = Instant::now();
            let msg = match (event, t.phase) {
                (Event::Control(Control::Close(code, ack)), _) => {
                    t.out = None;
                    Box::pin(send_close(&mut t.ws, code, t.close_timeout)).await;
                    let _ = ack.send(());
                    t.phase = Phase::Closing(Instant::now() + t.close_timeout);
                    continue;
                }
                (Event::Control(Control::Released), _) => {
                    t.phase = Phase::Closing(now + t.close_timeout);
                    continue;
                }
                (Event::Failed, Phase::Open) => ConnMsg::ClientGone(t.link.clone()),
                (Event::Failed, _) => return,
                (Event::Timer, Phase::Open) => {
                    if now >= t.next_tick {
                        t.next_tick = now + t.tick;
                        if t.actor.cast(ConnMsg::Tick).is_err() {
                            return;
                        }
                    }
                    match t.link.take_due_deadline(now) {
                        Some(generation) => ConnMsg::Deadline { generation },
                        None => continue,
                    }
                }
                // Reported or closing, and the time for it is up.
                (Event::Timer, _) => return,
                (Event::Permit(p), _) => match (t.held.take(), p) {
                    (Some((text, _)), Ok(permit)) => ConnMsg::Frame(text, permit),
                    _ => return,
                },
                (Event::Read(item), Phase::Closing(_)) => match item {
                    // The client's close reply, or the socket's end: done.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                },
                (Event::Read(item), _) => match item {
                    Some(Ok(Message::Text(text))) => match t.permits.clone().try_acquire_owned() {
                        Ok(permit) => ConnMsg::Frame(text, permit),
                        Err(_) => {
                            t.held = Some((text, Box::pin(t.permits.clone().acquire_owned())));
                            continue;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => ConnMsg::Binary,
                    Some(Ok(Message::Pong(_) | Message::Ping(_))) => ConnMsg::Activity,
                    Some(Ok(Message::Frame(_))) => continue,
                    // A normal close means the client is leaving; any other code (1001 going
                    // away, an app backgrounded) keeps the session resumable.
                    Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1000 => {
                        ConnMsg::ClientClosed(t.link.clone())
                    }
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        ConnMsg::TooBig(t.link.clone())
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        ConnMsg::ClientGone(t.link.clone())
                    }
                },
            };
            let ends = matches!(
                msg,
                ConnMsg::ClientGone(_) | ConnMsg::ClientClosed(_) | ConnMsg::TooBig(_)
            );
            if t.actor.cast(msg).is_err() {
                return;
            }
            if ends {
                // The actor answers with a close (sent from here) or by letting go.
                t.phase = Phase::Reported(now + t.close_timeout * 2);
            }
        }
    }
}

async fn send_close<S>(ws: &mut WebSocketStream<S>, code: CloseCode, close_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: code.code().into(),
        reason: code.name().into(),
    };
    // Bounded: a client that never reads gets its socket dropped instead.
    let _ = tokio::time::timeout(close_timeout, ws.send(Message::Close(Some(frame)))).await;
}

/// Closes a socket that never got an actor (handshake failures).
pub async fn close_raw<S>(ws: &mut WebSocketStream<S>, code: CloseCode, close_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_close(ws, code, close_timeout).await;
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
