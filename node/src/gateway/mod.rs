//! The client listener: accepts TCP (and TLS), upgrades to WebSocket, runs the `hello`
//! handshake, and hands admitted sessions to connection actors.

mod admit;
mod resume;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use ractor::ActorRef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::conn::SupervisorMsg;
use crate::context::NodeCtx;
use crate::limits::Limits;

pub use upgrade::origin_allowed;

/// Shared by every connection task of the client listener.
pub struct Gateway {
    pub ctx: Arc<NodeCtx>,
    pub limits: Arc<Limits>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub tls: Option<TlsAcceptor>,
}

impl Gateway {
    /// tungstenite's defaults (64 MiB messages, 128 KiB buffers) are far too generous for a
    /// gateway holding many idle connections of small JSON frames.
    fn ws_config(&self) -> WebSocketConfig {
        let max = self.ctx.conn.max_frame_bytes;
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(max.saturating_mul(4).max(64 * 1024))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }
}

/// Accepts client connections until `shutdown` fires.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let gw = gw.clone();
        tokio::spawn(async move { accept_one(gw, tcp, peer).await });
    }
}

async fn accept_one(gw: Arc<Gateway>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let slot = gw.limits.admit(peer.ip());
    match gw.tls.clone() {
        None => admit::handshake(gw, tcp, peer, slot).await,
        Some(acceptor) => {
            let t = gw.ctx.conn.upgrade_timeout;
            match tokio::time::timeout(t, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => admit::handshake(gw, tls, peer, slot).await,
                _ => gw.ctx.metrics.inc(
                    "tether_handshakes_total",
                    &[("outcome", "fail"), ("reason", "tls")],
                ),
            }
        }
    }
}

/// A stream the gateway can serve.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}
