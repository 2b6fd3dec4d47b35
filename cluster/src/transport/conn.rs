//! One live client connection: a writer task, a reader task, and the calls waiting for
//! their responses, keyed by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::dial::Dialed;
use super::wire::{Frame, PeerFramed, WireMessage, decode_frame, encode_frame};
use super::{TransportConfig, TransportError};

/// Frames queued for the writer; beyond this, callers wait (backpressure on a slow socket).
pub(super) const WRITE_QUEUE: usize = 128;

type Reply<Resp> = oneshot::Sender<Result<Resp, TransportError>>;

pub(super) struct Conn<Resp> {
    out: mpsc::Sender<Bytes>,
    pending: Arc<Pending<Resp>>,
    /// Bounds outstanding calls (`max_in_flight`), so a stalled peer cannot make us queue
    /// unbounded work.
    permits: Semaphore,
    next_id: AtomicU64,
    max_frame_bytes: usize,
    /// The protocol version negotiated in the hellos, which every frame is written in.
    protocol: u32,
    /// Cancelled when either task ends or the `Conn` is dropped; stops both tasks.
    stop: CancellationToken,
}

impl<Resp: WireMessage> Conn<Resp> {
    /// Takes over a connection that has completed its hello and starts its two tasks.
    pub(super) fn start(dialed: Dialed, cfg: &TransportConfig, addr: &str) -> Arc<Self> {
        let Dialed {
            framed, protocol, ..
        } = dialed;
        let (sink, stream) = framed.split();
        let (out, rx) = mpsc::channel(WRITE_QUEUE);
        let pending = Arc::new(Pending::default());
        let stop = CancellationToken::new();
        // The tasks hold the pending map and the token, never the `Conn`: dropping the last
        // `Conn` handle must be able to stop them.
        tokio::spawn(writer::<Resp>(
            sink,
            rx,
            protocol,
            cfg.ping_interval,
            pending.clone(),
            stop.clone(),
        ));
        tokio::spawn(reader(
            stream,
            protocol,
            cfg.idle_timeout(),
            pending.clone(),
            stop.clone(),
            addr.to_string(),
        ));
        Arc::new(Conn {
            out,
            pending,
            permits: Semaphore::new(cfg.max_in_flight.max(1)),
            next_id: AtomicU64::new(0),
            max_frame_bytes: cfg.max_frame_bytes,
            protocol,
            stop,
        })
    }

    pub(super) fn is_alive(&self) -> bool {
        !self.stop.is_cancelled()
    }

    /// Sends one request and waits for its response until `deadline`.
    pub(super) async fn call<Req: WireMessage>(
        &self,
        req: Req,
        deadline: Instant,
    ) -> Result<Resp, TransportError> {
        let _permit = match timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(self.pending.closed_error()),
            Err(_) => return Err(TransportError::Timeout),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Frame::Request { id, body: req };
        let bytes = encode_frame(&frame, self.protocol, self.max_frame_bytes)?;
        let rx = self.pending.insert(id)?;
        // Whatever happens next (timeout, caller dropped), the id must leave the map.
        let _forget = Forget {
            pending: &self.pending,
            id,
        };
        match timeout_at(deadline, self.out.send(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.pending.closed_error()),
            Err(_) => return Err(TransportError::Timeout),
        }
        match timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.pending.closed_error()),
            Err(_) => Err(TransportError::Timeout),
        }
    }
}

impl<Resp> Drop for Conn<Resp> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Calls waiting for a response. Once closed, it refuses new calls and has failed all old
/// ones, so no call can slip in after the reader is gone and wait for nothing.
struct Pending<Resp> {
    inner: Mutex<PendingInner<Resp>>,
}

struct PendingInner<Resp> {
    waiting: HashMap<u64, Reply<Resp>>,
    closed: Option<String>,
}

impl<Resp> Default for Pending<Resp> {
    fn default() -> Self {
        Pending {
            inner: Mutex::new(PendingInner {
                waiting: HashMap::new(),
                closed: None,
            }),
        }
    }
}

impl<Resp> Pending<Resp> {
    // A std mutex: it is held for a map operation, never across an await.
    fn lock(&self) -> MutexGuard<'_, PendingInner<Resp>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(
        &self,
        id: u64,
    ) -> Result<oneshot::Receiver<Result<Resp, TransportError>>, TransportError> {
        let mut inner = self.lock();
        if let Some(reason) = &inner.closed {
            return Err(TransportError::Closed(reason.clone()));
        }
        let (tx, rx) = oneshot::channel();
        inner.waiting.insert(id, tx);
        Ok(rx)
    }

    fn complete(&self, id: u64, result: Result<Resp, TransportError>) {
        match self.lock().waiting.remove(&id) {
            // The caller may have given up in the meantime; then nobody wants the result.
            Some(reply) => drop(reply.send(result)),
            None => debug!(id, "response for a call that already gave up"),
        }
    }

    /// Fails every waiting call; the first reason given is the one reported.
    fn close(&self, reason: String) {
        let waiting = {
            let mut inner = self.lock();
            inner.closed.get_or_insert(reason);
            std::mem::take(&mut inner.waiting)
        };
        let error = self.closed_error();
        for (_, reply) in waiting {
            drop(reply.send(Err(error.clone())));
        }
    }

    fn closed_error(&self) -> TransportError {
        let reason = self.lock().closed.clone();
        TransportError::Closed(reason.unwrap_or_else(|| "connection closed".into()))
    }
}

struct Forget<'a, Resp> {
    pending: &'a Pending<Resp>,
    id: u64,
}

impl<Resp> Drop for Forget<'_, Resp> {
    fn drop(&mut self) {
        self.pending.lock().waiting.remove(&self.id);
    }
}

async fn writer<Resp: WireMessage>(
    sink: SplitSink<PeerFramed, Bytes>,
    rx: mpsc::Receiver<Bytes>,
    protocol: u32,
    ping_interval: Duration,
    pending: Arc<Pending<Resp>>,
    stop: CancellationToken,
) {
    // Racing the whole loop against `stop` (not just the wait for work) matters: a write
    // blocked on a peer that stopped reading must be abandoned too, or it pins the socket.
    let reason = tokio::select! {
        _ = stop.cancelled() => "connection dropped".to_string(),
        result = write_loop::<Resp>(sink, rx, protocol, ping_interval) => match result {
            Ok(()) => "client dropped".to_string(),
            Err(e) => format!("write: {e}"),
        },
    };
    pending.close(reason);
    stop.cancel();
}

async fn write_loop<Resp: WireMessage>(
    mut sink: SplitSink<PeerFramed, Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    protocol: u32,
    ping_interval: Duration,
) -> std::io::Result<()> {
    let ping =
        encode_frame(&Frame::<Resp>::Ping, protocol, usize::MAX).map_err(std::io::Error::other)?;
    let mut ticker = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(first) = msg else { return Ok(()) };
                // Batch whatever else is queued into one flush (one TLS record, one syscall).
                sink.feed(first).await?;
                while let Ok(more) = rx.try_recv() {
                    sink.feed(more).await?;
                }
                sink.flush().await?;
            }
            _ = ticker.tick() => sink.send(ping.clone()).await?,
        }
    }
}

async fn reader<Resp: WireMessage>(
    stream: SplitStream<PeerFramed>,
    protocol: u32,
    idle: Duration,
    pending: Arc<Pending<Resp>>,
    stop: CancellationToken,
    addr: String,
) {
    let reason = tokio::select! {
        _ = stop.cancelled() => "connection dropped".to_string(),
        reason = read_loop(stream, protocol, idle, &pending) => reason,
    };
    debug!(peer = %addr, %reason, "peer connection closed");
    pending.close(reason);
    stop.cancel();
}

/// Completes calls until the connection fails; returns why it did.
async fn read_loop<Resp: WireMessage>(
    mut stream: SplitStream<PeerFramed>,
    protocol: u32,
    idle: Duration,
    pending: &Pending<Resp>,
) -> String {
    loop {
        let bytes = match timeout(idle, stream.next()).await {
            Ok(Some(Ok(bytes))) => bytes,
            Ok(Some(Err(e))) => return format!("read: {e}"),
            Ok(None) => return "closed by peer".into(),
            Err(_) => return format!("nothing received for {idle:?}"),
        };
        match decode_frame::<Resp>(&bytes, protocol) {
            Ok(Frame::Response { id, body }) => pending.complete(id, Ok(body)),
            Ok(Frame::Failed { id, reason }) => {
                pending.complete(id, Err(TransportError::Remote(reason)));
            }
            Ok(Frame::Pong) => {}
            Ok(Frame::Request { .. } | Frame::Ping) => {
                return "protocol violation: the server sent a request".into();
            }
            // Without the id we cannot fail just one call: the stream is suspect.
            Err(e) => return format!("undecodable frame: {e}"),
        }
    }
}
