//! The first moments of a client socket: whose it is (PROXY protocol header, trusted proxy),
//! whether a limit refuses it, and refusing it at once when one does. A refused socket never
//! waits for its HTTP request: it is answered (plaintext) or closed (TLS) right away, so one
//! source opening silent sockets cannot hold the node's descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sniff::{Route, sniff};
use super::{ClientStream, Gateway, admit, upgrade};
use crate::limits::{ConnSlot, LimitError};
use crate::net::read_proxy_header;

/// See [`super::Edge::refusing`].
pub(super) const MAX_REFUSING: usize = 64;
/// A refusal is written within this, or the socket is just closed.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// After the refusal, the client's request is read (and dropped) until it closes, this long
/// at most: closing with its request unread would send a reset, which can destroy the
/// answer before the client reads it.
const REFUSE_LINGER: Duration = Duration::from_millis(250);
/// A load balancer sends its PROXY header at once.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn accept_one(gw: Arc<Gateway>, mut tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let (slot, client) = match classify(&gw, &mut tcp, peer).await {
        Ok(x) => x,
        Err(reason) => return refused(&gw, reason),
    };
    let slot = match slot {
        Ok(s) => s,
        Err(e) => {
            refused(&gw, e.reason());
            // Over TLS an HTTP answer would need a handshake first: the refusal is the close.
            if gw.tls.is_none() {
                refuse_now(&gw, tcp, e).await;
            }
            return;
        }
    };
    match gw.tls.clone() {
        None => route(gw, tcp, client, slot).await,
        Some(tls) => {
            let t = gw.ctx.conn.upgrade_timeout;
            match tokio::time::timeout(t, tls.acceptor().accept(tcp)).await {
                Ok(Ok(tls)) => route(gw, tls, client, slot).await,
                _ => super::handshake_failed(&gw.ctx, "tls"),
            }
        }
    }
}

/// Hands the socket to the WebSocket handshake or to the IdP endpoints, by its request line.
async fn route<S: ClientStream>(gw: Arc<Gateway>, stream: S, client: SocketAddr, slot: ConnSlot) {
    match sniff(stream, gw.ctx.conn.upgrade_timeout).await {
        Ok((Route::WebSocket, stream)) => admit::handshake(gw, stream, client, slot).await,
        Ok((Route::Idp, stream)) => crate::idp::serve(gw, stream, client, slot).await,
        Err(_) => super::handshake_failed(&gw.ctx, "upgrade"),
    }
}

/// Counts a refusal at accept, also as a failed handshake (as it was counted when limits
/// were checked after the request).
fn refused(gw: &Gateway, reason: &'static str) {
    gw.ctx.metrics.refused(reason);
    super::handshake_failed(&gw.ctx, reason);
}

/// Finds the client of the socket and takes its slot. A socket from a trusted proxy keeps a
/// node-wide slot only: its request's forwarded headers name the client (see `admit`).
/// `Err(reason)`: the PROXY header was missing or malformed.
async fn classify(
    gw: &Gateway,
    tcp: &mut TcpStream,
    peer: SocketAddr,
) -> Result<(Result<ConnSlot, LimitError>, SocketAddr), &'static str> {
    let edge = &gw.edge;
    if !edge.proxy_protocol {
        let slot = if edge.trusted_proxies.contains(peer.ip()) {
            gw.limits.reserve()
        } else {
            gw.limits.admit(peer.ip())
        };
        return Ok((slot, peer));
    }
    // The header read holds a node-wide slot, so even a stream of silent sockets to a
    // PROXY-protocol listener stays within max_connections and the header timeout.
    let mut slot = match gw.limits.reserve() {
        Ok(s) => s,
        Err(e) => return Ok((Err(e), peer)),
    };
    let client = match read_proxy_header(tcp, PROXY_HEADER_TIMEOUT).await {
        Ok(Some(addr)) => addr,
        Ok(None) => peer,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "refused: PROXY protocol header");
            return Err("proxy_header");
        }
    };
    if edge.trusted_proxies.contains(client.ip()) {
        return Ok((Ok(slot), client));
    }
    Ok((slot.attribute(client.ip(), true).map(|_| slot), client))
}

/// Answers 429/503 without waiting for the request, then closes.
async fn refuse_now(gw: &Gateway, mut tcp: TcpStream, e: LimitError) {
    let Ok(_permit) = gw.edge.refusing.try_acquire() else {
        return;
    };
    let answer = upgrade::limit_response_bytes(e);
    if !matches!(
        tokio::time::timeout(REFUSE_WRITE_TIMEOUT, tcp.write_all(&answer)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, tcp.shutdown()).await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSE_LINGER, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
