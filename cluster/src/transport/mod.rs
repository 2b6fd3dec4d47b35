//! Peer transport: a generic, multiplexed request/response channel between nodes.
//!
//! # Layout
//! - `mod.rs` (this file): `TransportConfig`, `TransportError`, the server-side `Handler`.
//! - `tls`: `PeerTls`, the mutual-TLS configuration built from the cluster CA and node cert.
//! - `identity`: the node id a certificate binds, checked against the id a peer claims.
//! - `wire`: what travels on the socket (`Hello`, `Frame`, the length-delimited codec).
//! - `dial`: client side of connection setup (TCP connect, TLS, hello exchange).
//! - `backoff`: reconnect delays with jitter.
//! - `conn`: one live client connection (writer and reader tasks, pending calls by id).
//! - `client`: `PeerClient`, the per-peer handle that owns (re)connecting and `call`.
//! - `server`: `serve`, which accepts peers and runs the `Handler` for each request.
//!
//! # Protocol
//! After TCP (and TLS) the client sends a `Hello {protocol, node_id}` frame and the server
//! answers with its own; both then speak the lower of the two protocol versions (closing if
//! this build no longer speaks it), and a `node_id` that is not the one the sender's
//! certificate names (with TLS) closes the connection. Bodies are written for the
//! negotiated version (`wire::WireMessage`). Then the
//! client sends `Frame::Request {id, body}` and the server answers `Frame::Response {id, body}`
//! (or `Frame::Failed {id, reason}`) in any order, so many calls share one connection.
//!
//! Liveness: the client sends `Frame::Ping` every `ping_interval` and the server answers
//! `Frame::Pong`. Either side drops a connection on which nothing arrived for
//! `3 × ping_interval`, which is how a half-open TCP connection (peer host vanished without a
//! FIN) is noticed on an idle link instead of on the next call's timeout.

mod backoff;
mod client;
mod conn;
mod dial;
pub mod identity;
mod server;
mod tls;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub use client::PeerClient;
pub use server::serve;
pub use tls::PeerTls;

use crate::NodeId;

/// Everything the transport needs to know about this node, shared by its server and clients.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub node_id: NodeId,
    /// `None` means plaintext, which the node only allows with `insecure_peer = true`;
    /// `serve` logs a warning when it starts without TLS.
    pub tls: Option<PeerTls>,
    /// Bound on TCP connect; TLS and the hello exchange get [`HANDSHAKE_TIMEOUT`] on top.
    pub connect_timeout: Duration,
    /// Largest frame accepted or sent; a larger incoming frame closes the connection.
    /// Payloads are also bound by `codec::MAX_DECODE_BYTES` (64 MiB), so raising this
    /// above that buys nothing.
    pub max_frame_bytes: usize,
    /// Per connection: outstanding requests a client may have, and handler tasks a server
    /// runs at once for one peer.
    pub max_in_flight: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often an idle client pings; a connection silent for 3 × this is dropped.
    pub ping_interval: Duration,
    /// Local IP that outbound peer connections are bound to (`[cluster] peer_source_addr`);
    /// `None` lets the kernel choose. Lets a host with several addresses pick the one its
    /// firewall rules expect, and lets the chaos suite's fault proxy tell which node dialed.
    pub source_addr: Option<std::net::IpAddr>,
    /// Accept peer certificates that name no node id (`tls.peer_allow_missing_node_id`):
    /// only while migrating from certificates made before ids were bound to them.
    pub allow_missing_node_id: bool,
    /// Peer connections refused because the claimed node id was not the certificate's
    /// (both directions); the node exports it as a metric.
    pub identity_refusals: Arc<AtomicU64>,
    /// The newest peer protocol this node announces: [`wire::PROTOCOL_VERSION`] unless
    /// pinned lower (to test a mixed-version cluster with one build).
    pub max_protocol: u32,
}

/// How long a peer gets to finish TLS and the hello exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl TransportConfig {
    /// The defaults: 2 s connect, 64 MiB frames (openraft chunks snapshots, but append
    /// batches can still be large), 1024 calls in flight, backoff 50 ms .. 2 s, ping every 5 s.
    pub fn new(node_id: NodeId, tls: Option<PeerTls>) -> Self {
        TransportConfig {
            node_id,
            tls,
            connect_timeout: Duration::from_secs(2),
            max_frame_bytes: 64 * 1024 * 1024,
            max_in_flight: 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            ping_interval: Duration::from_secs(5),
            source_addr: None,
            allow_missing_node_id: false,
            identity_refusals: Arc::new(AtomicU64::new(0)),
            max_protocol: wire::PROTOCOL_VERSION,
        }
    }

    /// Silence after which a connection is presumed dead.
    fn idle_timeout(&self) -> Duration {
        self.ping_interval.saturating_mul(3)
    }
}

/// Why a call (or setting up TLS) failed. Callers match on it: openraft's network maps
/// `Unreachable` to its own `Unreachable` (back off) and everything else to `Network`.
#[derive(thiserror::Error, Debug, Clone)]
pub enum TransportError {
    /// Could not connect: refused, connect timeout, TLS handshake failed, hello refused
    /// (protocol version mismatch, unexpected node id), or still backing off after that.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// No answer within the call's timeout; the connection stays up for other calls.
    #[error("peer call timed out")]
    Timeout,
    /// The connection died while the call was outstanding.
    #[error("peer connection closed: {0}")]
    Closed(String),
    /// The encoded request is larger than `max_frame_bytes`; nothing was sent.
    #[error("frame larger than max_frame_bytes")]
    FrameTooLarge,
    #[error("peer codec: {0}")]
    Codec(String),
    /// Bad TLS material (unreadable PEM, no key, cert not matching the key).
    #[error("peer tls: {0}")]
    Tls(String),
    /// The peer received the request but could not answer it (handler panicked, response
    /// too large to send).
    #[error("peer failed the request: {0}")]
    Remote(String),
}

/// Server side: what the owner of the node answers. `Req`/`Resp` are the app's message enums.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Answers one request from node `from`. Runs in its own task, so a slow request does
    /// not hold up others on the same connection.
    fn handle(&self, from: NodeId, req: Req) -> impl Future<Output = Resp> + Send;
}
