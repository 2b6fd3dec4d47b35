//! `PeerClient`: the handle a node keeps per peer address. It owns at most one connection,
//! dials it on demand, and remembers failures so a dead peer is retried with backoff instead
//! of being hammered by every call.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::conn::Conn;
use super::dial::{Dialed, dial};
use super::wire::WireMessage;
use super::{TransportConfig, TransportError};
use crate::NodeId;

/// Client side: one persistent connection per peer address, reconnecting with backoff;
/// concurrent calls are multiplexed over it by request id. Cheap to clone.
pub struct PeerClient<Req, Resp> {
    inner: Arc<Inner<Resp>>,
    // `fn(Req)`: the client sends `Req`s but never stores one, so it stays Send + Sync.
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> Clone for PeerClient<Req, Resp> {
    fn clone(&self) -> Self {
        PeerClient {
            inner: self.inner.clone(),
            _req: PhantomData,
        }
    }
}

/// A dial in progress, shared by every call that arrives while it runs.
type Dialing<Resp> = Shared<BoxFuture<'static, Result<Arc<Conn<Resp>>, TransportError>>>;

struct Inner<Resp> {
    cfg: Arc<TransportConfig>,
    addr: String,
    peer_id: Option<NodeId>,
    slot: Mutex<Slot<Resp>>,
}

struct Slot<Resp> {
    conn: Option<Arc<Conn<Resp>>>,
    /// The node id and protocol version of the latest connection, kept after it closes.
    negotiated: Option<(NodeId, u32)>,
    dialing: Option<Dialing<Resp>>,
    backoff: Backoff,
}

impl<Req, Resp> PeerClient<Req, Resp>
where
    Req: WireMessage,
    Resp: WireMessage,
{
    /// A client for the peer listening on `peer_addr` (`host:port`; with TLS the host must
    /// be a SAN of the peer's certificate). With `peer_id`, a peer announcing a different
    /// node id in its hello is refused. Nothing is dialed until the first call.
    pub fn new(cfg: Arc<TransportConfig>, peer_addr: String, peer_id: Option<NodeId>) -> Self {
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        PeerClient {
            inner: Arc::new(Inner {
                cfg,
                addr: peer_addr,
                peer_id,
                slot: Mutex::new(Slot {
                    conn: None,
                    negotiated: None,
                    dialing: None,
                    backoff,
                }),
            }),
            _req: PhantomData,
        }
    }

    pub fn peer_addr(&self) -> &str {
        &self.inner.addr
    }

    /// The node id and protocol version negotiated on the latest connection (live or
    /// not): what the peer spoke when last reached.
    pub fn negotiated(&self) -> Option<(NodeId, u32)> {
        self.inner.slot().negotiated
    }

    /// Sends `req` and waits for the response, all within `timeout` (connecting included).
    ///
    /// Errors: `Unreachable` if no connection could be made within the timeout or the peer
    /// is in backoff after a failed attempt (then it returns at once); `Timeout` if the
    /// request was sent but not answered in time (the connection stays up); `Closed` if the
    /// connection died meanwhile (the next call reconnects).
    pub async fn call(&self, req: Req, timeout: Duration) -> Result<Resp, TransportError> {
        let deadline = Instant::now() + timeout;
        let conn = match Inner::connection(&self.inner)? {
            Ready::Conn(conn) => conn,
            Ready::Dialing(dialing) => match timeout_at(deadline, dialing).await {
                Ok(result) => result?,
                // The dial carries on in its own task and its outcome is remembered.
                Err(_) => {
                    return Err(TransportError::Unreachable(format!(
                        "{}: not connected within the call timeout of {timeout:?}",
                        self.inner.addr
                    )));
                }
            },
        };
        conn.call(req, deadline).await
    }
}

enum Ready<Resp> {
    Conn(Arc<Conn<Resp>>),
    Dialing(Dialing<Resp>),
}

impl<Resp: WireMessage> Inner<Resp> {
    // A std mutex: it guards a few fields and is never held across an await.
    fn slot(&self) -> MutexGuard<'_, Slot<Resp>> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live connection, or the dial that will produce it, or a fast `Unreachable` while
    /// backing off.
    fn connection(this: &Arc<Self>) -> Result<Ready<Resp>, TransportError> {
        let mut slot = this.slot();
        if let Some(conn) = &slot.conn {
            if conn.is_alive() {
                return Ok(Ready::Conn(conn.clone()));
            }
            slot.conn = None;
        }
        if let Some(dialing) = &slot.dialing {
            return Ok(Ready::Dialing(dialing.clone()));
        }
        slot.backoff
            .check(Instant::now())
            .map_err(TransportError::Unreachable)?;
        let dialing = Self::start_dial(this.clone());
        slot.dialing = Some(dialing.clone());
        Ok(Ready::Dialing(dialing))
    }

    /// Dials in a task of its own, so that the attempt (and its success or failure) is
    /// recorded even if every caller waiting on it times out first.
    fn start_dial(this: Arc<Self>) -> Dialing<Resp> {
        let task = tokio::spawn(async move {
            let result = dial(&this.cfg, &this.addr, this.peer_id).await;
            this.record(result)
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(TransportError::Unreachable(format!(
                    "dial task failed: {e}"
                )))
            })
        }
        .boxed()
        .shared()
    }

    fn record(&self, result: Result<Dialed, String>) -> Result<Arc<Conn<Resp>>, TransportError> {
        let mut slot = self.slot();
        slot.dialing = None;
        match result {
            Ok(dialed) => {
                slot.backoff.succeeded();
                let protocol = dialed.protocol;
                slot.negotiated = Some((dialed.node_id, protocol));
                let conn = Conn::start(dialed, &self.cfg, &self.addr);
                slot.conn = Some(conn.clone());
                info!(peer = %self.addr, protocol, "connected to peer");
                Ok(conn)
            }
            Err(reason) => {
                let first = slot.backoff.failures() == 0;
                let delay = slot.backoff.failed(Instant::now(), reason.clone());
                // One warning per outage, not one per retry of a peer that stays down.
                if first {
                    warn!(peer = %self.addr, %reason, retry_in = ?delay, "cannot reach peer");
                } else {
                    debug!(peer = %self.addr, %reason, retry_in = ?delay, "cannot reach peer");
                }
                Err(TransportError::Unreachable(reason))
            }
        }
    }
}
