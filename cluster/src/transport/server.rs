//! Server side: accepts peer connections, runs the TLS and hello handshakes, then answers
//! each request in its own task through the node's `Handler`.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::bytes::Bytes;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::conn::WRITE_QUEUE;
use super::wire::{
    Frame, Hello, PeerFramed, PeerIo, WireMessage, decode_frame, encode_frame, frame_codec,
    negotiate, recv_hello, send_hello,
};
use super::{HANDSHAKE_TIMEOUT, Handler, TransportConfig, identity};
use crate::NodeId;

/// Accepts peer connections on an already-bound listener until `shutdown`; each request is
/// handled in its own task, responses are written back with the request id. Returns once
/// the listener is closed and every peer connection has ended.
pub async fn serve<Req, Resp, H>(
    listener: TcpListener,
    cfg: Arc<TransportConfig>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) where
    Req: WireMessage,
    Resp: WireMessage,
    H: Handler<Req, Resp>,
{
    if cfg.tls.is_none() {
        warn!(
            "PEER TRANSPORT IS PLAINTEXT (insecure_peer = true): peers are not authenticated \
             and Raft traffic can be read and forged by anyone on the network"
        );
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Reap finished connections so the set does not grow with every peer that came
            // and went.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    // Taken per connection, so a reloaded certificate serves new handshakes.
                    let acceptor = cfg.tls.as_ref().map(|t| TlsAcceptor::from(t.server()));
                    connections.spawn(connection(
                        tcp,
                        addr,
                        cfg.clone(),
                        acceptor,
                        handler.clone(),
                        shutdown.child_token(),
                    ));
                }
                Err(e) => {
                    // Usually out of file descriptors: pause instead of spinning on it.
                    warn!(error = %e, "peer accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    // Connection tasks watch child tokens of `shutdown`, so they are already winding down.
    while connections.join_next().await.is_some() {}
}

/// One peer connection, from handshake to close.
async fn connection<Req, Resp, H>(
    tcp: TcpStream,
    addr: SocketAddr,
    cfg: Arc<TransportConfig>,
    acceptor: Option<TlsAcceptor>,
    handler: Arc<H>,
    stop: CancellationToken,
) where
    Req: WireMessage,
    Resp: WireMessage,
    H: Handler<Req, Resp>,
{
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(peer = %addr, error = %e, "set_nodelay failed");
    }
    let handshake = tokio::select! {
        _ = stop.cancelled() => return,
        result = timeout(HANDSHAKE_TIMEOUT, handshake(tcp, acceptor, &cfg)) => result,
    };
    let (framed, from, protocol) = match handshake {
        Ok(Ok(ready)) => ready,
        Ok(Err(reason)) => {
            warn!(peer = %addr, %reason, "refused peer connection");
            return;
        }
        Err(_) => {
            warn!(peer = %addr, timeout = ?HANDSHAKE_TIMEOUT, "peer handshake timed out");
            return;
        }
    };
    debug!(peer = %addr, node = from, "peer connected");
    let (sink, stream) = framed.split();
    let (out, rx) = mpsc::channel(WRITE_QUEUE);
    // The writer is raced against `stop` so a write blocked on a peer that stopped reading
    // is abandoned when the connection ends.
    let writer_stop = stop.clone();
    let writer = tokio::spawn(async move {
        tokio::select! {
            _ = writer_stop.cancelled() => {}
            result = write_loop(sink, rx) => if let Err(e) = result {
                debug!(error = %e, "peer write failed");
            },
        }
        writer_stop.cancel();
    });
    let reader = Reader {
        from,
        protocol,
        cfg: cfg.clone(),
        handler,
        out,
        permits: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
        stop: stop.clone(),
    };
    let reason = tokio::select! {
        _ = stop.cancelled() => "shutting down or write failed".to_string(),
        reason = reader.run(stream) => reason,
    };
    debug!(peer = %addr, node = from, %reason, "peer connection closed");
    // Cancels the handler tasks still running for this peer and stops the writer.
    stop.cancel();
    if let Err(e) = writer.await {
        debug!(error = %e, "peer writer task failed");
    }
}

/// TLS (when configured) and the hello exchange; returns the framed stream, the peer's node
/// id and the negotiated protocol version, or why the peer was refused.
async fn handshake(
    tcp: TcpStream,
    acceptor: Option<TlsAcceptor>,
    cfg: &TransportConfig,
) -> Result<(PeerFramed, NodeId, u32), String> {
    // The client's certificate, when TLS is on: it must name the id the hello claims.
    let (io, cert): (Box<dyn PeerIo>, _) = match acceptor {
        Some(acceptor) => {
            let stream = acceptor
                .accept(tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            let cert = identity::presented(stream.get_ref().1);
            (Box::new(stream), Some(cert))
        }
        None => (Box::new(tcp), None),
    };
    let mut framed = Framed::new(io, frame_codec(cfg.max_frame_bytes));
    let theirs = recv_hello(&mut framed).await?;
    // A claim the certificate does not back gets no hello back: the impostor learns nothing
    // about this node, and its dial fails as unreachable.
    if let Some(cert) = cert {
        identity::check(cfg, cert.as_ref(), theirs.node_id)?;
    }
    // Answer even a mismatched version, so the client can report what it met.
    let ours = Hello {
        protocol: cfg.max_protocol,
        node_id: cfg.node_id,
    };
    send_hello(&mut framed, ours).await?;
    let protocol = negotiate(cfg.max_protocol, theirs.protocol)
        .map_err(|e| format!("peer node {}: {e}", theirs.node_id))?;
    Ok((framed, theirs.node_id, protocol))
}

async fn write_loop(
    mut sink: SplitSink<PeerFramed, Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    while let Some(first) = rx.recv().await {
        // Batch responses that are already queued into one flush.
        sink.feed(first).await?;
        while let Ok(more) = rx.try_recv() {
            sink.feed(more).await?;
        }
        sink.flush().await?;
    }
    Ok(())
}

struct Reader<H> {
    from: NodeId,
    protocol: u32,
    cfg: Arc<TransportConfig>,
    handler: Arc<H>,
    out: mpsc::Sender<Bytes>,
    /// At most `max_in_flight` handler tasks per peer; beyond that the reader stops reading,
    /// which pushes back on the client through TCP.
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

impl<H> Reader<H> {
    /// Reads requests until the connection fails (returns why).
    async fn run<Req, Resp>(&self, mut stream: SplitStream<PeerFramed>) -> String
    where
        Req: WireMessage,
        Resp: WireMessage,
        H: Handler<Req, Resp>,
    {
        let idle = self.cfg.idle_timeout();
        loop {
            let bytes = match timeout(idle, stream.next()).await {
                Ok(Some(Ok(bytes))) => bytes,
                // Includes a frame over `max_frame_bytes`: the codec refuses it unread.
                Ok(Some(Err(e))) => return format!("read: {e}"),
                Ok(None) => return "closed by peer".into(),
                Err(_) => return format!("nothing received for {idle:?}"),
            };
            match decode_frame::<Req>(&bytes, self.protocol) {
                Ok(Frame::Request { id, body }) => {
                    let Ok(permit) = self.permits.clone().acquire_owned().await else {
                        return "request permits closed".into();
                    };
                    self.spawn_handler(id, body, permit);
                }
                Ok(Frame::Ping) => {
                    let pong = encode_frame(&Frame::<Resp>::Pong, self.protocol, usize::MAX);
                    if let Ok(pong) = pong
                        && self.out.send(pong).await.is_err()
                    {
                        return "writer gone".into();
                    }
                }
                Ok(Frame::Response { .. } | Frame::Failed { .. } | Frame::Pong) => {
                    return "protocol violation: the client sent a response".into();
                }
                // Without the id we cannot answer just this request: the stream is suspect.
                Err(e) => {
                    warn!(node = self.from, error = %e, "undecodable request from peer");
                    return format!("undecodable frame: {e}");
                }
            }
        }
    }

    fn spawn_handler<Req, Resp>(&self, id: u64, body: Req, permit: OwnedSemaphorePermit)
    where
        Req: WireMessage,
        Resp: WireMessage,
        H: Handler<Req, Resp>,
    {
        let handler = self.handler.clone();
        let out = self.out.clone();
        let stop = self.stop.clone();
        let (from, max, protocol) = (self.from, self.cfg.max_frame_bytes, self.protocol);
        tokio::spawn(async move {
            let _permit = permit;
            // A panicking handler answers `Failed` instead of leaving the caller to time out.
            let answer = AssertUnwindSafe(handler.handle(from, body)).catch_unwind();
            let frame = tokio::select! {
                _ = stop.cancelled() => return,
                answer = answer => match answer {
                    Ok(resp) => encode_frame(&Frame::Response { id, body: resp }, protocol, max)
                        .or_else(|e| {
                            warn!(node = from, id, error = %e, "cannot send response to peer");
                            encode_frame(&failed::<Resp>(id, e.to_string()), protocol, max)
                        }),
                    Err(_) => {
                        let failed = failed::<Resp>(id, "handler panicked".into());
                        encode_frame(&failed, protocol, max)
                    }
                },
            };
            // A send error means the connection is gone; nobody is left to tell.
            if let Ok(frame) = frame {
                let _ = out.send(frame).await;
            }
        });
    }
}

fn failed<Resp>(id: u64, reason: String) -> Frame<Resp> {
    Frame::Failed { id, reason }
}
