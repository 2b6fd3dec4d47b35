//! The client listener: accepts TCP (and TLS), upgrades to WebSocket, runs the `hello`
//! handshake, and hands admitted sessions to connection actors.

mod accept;
mod admit;
mod resume;
mod sniff;
mod start;
mod upgrade;

use std::sync::Arc;

use ractor::ActorRef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::context::NodeCtx;
use crate::limits::Limits;
use crate::net::{AcceptBackoff, TrustedProxies};
use crate::session::SupervisorMsg;

pub use upgrade::origin_allowed;

/// Shared by every connection task of the client listener.
pub struct Gateway {
    pub ctx: Arc<NodeCtx>,
    pub limits: Arc<Limits>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    pub edge: Edge,
}

/// Where client connections come from: `listen.trusted_proxies` and `listen.proxy_protocol`.
pub struct Edge {
    pub trusted_proxies: TrustedProxies,
    pub proxy_protocol: bool,
    /// Sockets being answered 429/503 at once; past this bound a refused socket is closed
    /// without an answer, so refusing can never cost more than this many descriptors.
    pub refusing: Semaphore,
}

impl Edge {
    pub fn new(trusted_proxies: TrustedProxies, proxy_protocol: bool) -> Self {
        Edge {
            trusted_proxies,
            proxy_protocol,
            refusing: Semaphore::new(accept::MAX_REFUSING),
        }
    }
}

impl Gateway {
    /// tungstenite's defaults (64 MiB messages, 128 KiB buffers) are far too generous for a
    /// gateway holding many idle connections of small JSON frames. The read buffer grows to
    /// hold a larger frame (read 512 bytes a call); an idle socket keeps only what its
    /// largest frame needed: 4 KiB here cost 3 KiB per idle connection (docs/performance.md).
    fn ws_config(&self) -> WebSocketConfig {
        let max = self.ctx.conn.max_frame_bytes;
        WebSocketConfig::default()
            .read_buffer_size(512)
            .write_buffer_size(0)
            .max_write_buffer_size(max.saturating_mul(4).max(64 * 1024))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }
}

tokio::task_local! {
    /// When the handshake this task runs began (for `tether_handshake_seconds`).
    static HANDSHAKE_STARTED: tokio::time::Instant;
}

/// Counts a failed handshake by `reason`, times it, and marks its span with the reason.
fn handshake_failed(ctx: &NodeCtx, reason: &'static str) {
    ctx.metrics.handshake_failed(reason);
    handshake_done(ctx, crate::metrics::Outcome::fail(reason));
    tracing::Span::current().record("outcome", reason);
}

/// Records how long the handshake of this task took, with its outcome.
fn handshake_done(ctx: &NodeCtx, outcome: crate::metrics::Outcome) {
    if let Ok(started) = HANDSHAKE_STARTED.try_with(|t| *t) {
        ctx.metrics
            .handshake_seconds
            .get_or_create(&outcome)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Accepts client connections until `shutdown` fires.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    backoff.failed(&gw.ctx.metrics, &e).await;
                    continue;
                }
            },
        };
        backoff.reset();
        let gw = gw.clone();
        tokio::spawn(async move { accept::accept_one(gw, tcp, peer).await });
    }
}

/// A stream the gateway can serve.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}
