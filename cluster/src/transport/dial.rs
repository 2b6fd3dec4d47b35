//! Client side of connection setup: TCP connect, TLS as the cluster CA dictates, and the
//! hello exchange. Every failure here means "unreachable" to the caller.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, lookup_host};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;
use tracing::debug;

use super::wire::{Hello, PeerFramed, PeerIo, frame_codec, negotiate, recv_hello, send_hello};
use super::{HANDSHAKE_TIMEOUT, TransportConfig, identity, tls};
use crate::NodeId;

/// A connection past its hellos: the stream, the negotiated protocol version and the node
/// at the other end.
pub(super) struct Dialed {
    pub framed: PeerFramed,
    pub protocol: u32,
    pub node_id: NodeId,
}

/// Opens a connection to `addr` and checks the peer's hello. `expect` is the node id the
/// caller believes lives there; a different one is refused (a stale address after a
/// reshuffle must not deliver Raft messages to the wrong node).
pub(super) async fn dial(
    cfg: &TransportConfig,
    addr: &str,
    expect: Option<NodeId>,
) -> Result<Dialed, String> {
    let tcp = match timeout(cfg.connect_timeout, connect(addr, cfg.source_addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connect to {addr}: {e}")),
        Err(_) => {
            return Err(format!(
                "connect to {addr}: timed out after {:?}",
                cfg.connect_timeout
            ));
        }
    };
    // Raft RPCs are small and latency-bound: do not let Nagle hold them back.
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(peer = addr, error = %e, "set_nodelay failed");
    }
    match timeout(HANDSHAKE_TIMEOUT, handshake(cfg, addr, expect, tcp)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{addr}: TLS/hello handshake timed out after {HANDSHAKE_TIMEOUT:?}"
        )),
    }
}

/// TCP connect to `addr`, from `source` (port chosen by the kernel) when it is set.
async fn connect(addr: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for target in lookup_host(addr).await? {
        // Only targets of the source's family can be reached from it.
        if target.is_ipv4() != source.is_ipv4() {
            continue;
        }
        let socket = if source.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of the family of source {source}"),
        )
    }))
}

async fn handshake(
    cfg: &TransportConfig,
    addr: &str,
    expect: Option<NodeId>,
    tcp: TcpStream,
) -> Result<Dialed, String> {
    // The server's certificate, when TLS is on: it must name the id its hello claims.
    let (io, cert): (Box<dyn PeerIo>, _) = match &cfg.tls {
        Some(peer_tls) => {
            let name = tls::server_name(addr).map_err(|e| e.to_string())?;
            let stream = TlsConnector::from(peer_tls.client())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{addr}: TLS handshake failed: {e}"))?;
            let cert = identity::presented(stream.get_ref().1);
            (Box::new(stream), Some(cert))
        }
        None => (Box::new(tcp), None),
    };
    let mut framed = Framed::new(io, frame_codec(cfg.max_frame_bytes));
    let ours = Hello {
        protocol: cfg.max_protocol,
        node_id: cfg.node_id,
    };
    // With TLS 1.3 the server checks our certificate after our side of the handshake has
    // completed, so a rejected client certificate shows up here, as a fatal alert on read.
    send_hello(&mut framed, ours)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let theirs = recv_hello(&mut framed)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let protocol =
        negotiate(cfg.max_protocol, theirs.protocol).map_err(|e| format!("{addr}: {e}"))?;
    if let Some(expected) = expect
        && theirs.node_id != expected
    {
        return Err(format!(
            "{addr}: peer is node {}, expected node {expected}",
            theirs.node_id
        ));
    }
    if let Some(cert) = cert {
        identity::check(cfg, cert.as_ref(), theirs.node_id).map_err(|e| format!("{addr}: {e}"))?;
    }
    Ok(Dialed {
        framed,
        protocol,
        node_id: theirs.node_id,
    })
}
