//! Peer transport over real sockets on 127.0.0.1: round trips, multiplexing, timeouts, refusals, reconnects and protocol limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use tether_cluster::codec;
use tether_cluster::transport::TransportError;
use tether_cluster::transport::wire::{Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, frame_codec};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

mod common;

use common::*;

/// A TCP forwarder that counts the connections it accepted.
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

/// A hand-driven connection that has sent `hello` and read the server's answer.
async fn raw_hello(
    addr: SocketAddr,
    hello: Hello,
) -> (Framed<TcpStream, LengthDelimitedCodec>, Hello) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(tcp, frame_codec(1 << 20));
    let bytes = codec::encode(&hello).expect("encode hello");
    framed.send(Bytes::from(bytes)).await.expect("send hello");
    let reply = framed
        .next()
        .await
        .expect("hello reply")
        .expect("read hello");
    (framed, codec::decode(&reply).expect("decode hello"))
}

/// A plaintext call reaches the handler, which sees the caller's node id, and comes back.
#[tokio::test]
async fn plaintext_echo_round_trip() {
    let server = Server::start(config(1, None)).await;
    let c = client(config(2, None), server.addr);
    let resp = c.call(Req::Echo("hi".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("hi", 2));
    server.stop().await;
}

/// 1000 concurrent calls share one connection and each gets its own answer.
#[tokio::test]
async fn thousand_concurrent_calls_on_one_connection() {
    let server = Server::start(config(1, None)).await;
    let (proxy, connections) = counting_proxy(server.addr).await;
    let c = client(config(2, None), proxy);
    let calls = (0..1000).map(|i| {
        let c = c.clone();
        async move { (i, c.call(Req::Echo(format!("m{i}")), CALL).await) }
    });
    for (i, resp) in join_all(calls).await {
        assert_eq!(resp.expect("call"), echo(&format!("m{i}"), 2));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.calls(), 1000);
    server.stop().await;
}

/// A handler that never answers yields `Timeout`, and the same connection keeps serving.
#[tokio::test]
async fn unanswered_call_times_out_and_connection_stays_usable() {
    let server = Server::start(config(1, None)).await;
    let (proxy, connections) = counting_proxy(server.addr).await;
    let c = client(config(2, None), proxy);
    let hung = c.call(Req::Hang, Duration::from_millis(200)).await;
    assert!(matches!(hung, Err(TransportError::Timeout)), "{hung:?}");
    let resp = c.call(Req::Echo("after".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("after", 2));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    server.stop().await;
}

/// After the server restarts on the same address, the client reconnects by itself.
#[tokio::test]
async fn client_reconnects_after_server_restart() {
    let server = Server::start(config(1, None)).await;
    let addr = server.addr;
    let c = client(config(2, None), addr);
    c.call(Req::Echo("before".into()), CALL)
        .await
        .expect("first call");
    server.stop().await;

    let down = c.call(Req::Echo("down".into()), CALL).await;
    assert!(
        matches!(
            down,
            Err(TransportError::Closed(_) | TransportError::Unreachable(_))
        ),
        "{down:?}"
    );
    let listener = TcpListener::bind(addr).await.expect("rebind same port");
    let server = Server::start_on(listener, config(1, None));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.call(Req::Echo("again".into()), CALL).await {
            Ok(resp) => {
                assert_eq!(resp, echo("again", 2));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(
                    matches!(
                        e,
                        TransportError::Unreachable(_) | TransportError::Closed(_)
                    ),
                    "{e:?}"
                );
                // Polling interval while the client's backoff (≤ 100 ms here) runs out.
                sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("no reconnect within the deadline: {e:?}"),
        }
    }
    server.stop().await;
}

/// A closed port is `Unreachable` quickly; a second call inside the backoff fails fast
/// without dialing, even though the port is open by then.
#[tokio::test]
async fn closed_port_is_unreachable_and_backoff_fails_fast() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut cfg = config(2, None);
    cfg.backoff_min = Duration::from_secs(30);
    cfg.backoff_max = Duration::from_secs(30);
    let c = client(cfg, addr);
    let started = Instant::now();
    let err = c.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(_))),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let server = Server::start_on(
        TcpListener::bind(addr).await.expect("rebind"),
        config(1, None),
    );
    let err = c.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(ref m)) if m.contains("backing off")),
        "{err:?}"
    );
    assert_eq!(server.calls(), 0);
    server.stop().await;
}

/// A frame over `max_frame_bytes` closes that connection; the server keeps serving others,
/// and a client refuses to send an oversized request at all.
#[tokio::test]
async fn oversized_frame_closes_the_connection_only() {
    let mut cfg = config(1, None);
    cfg.max_frame_bytes = 1024;
    let server = Server::start(cfg).await;
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        node_id: 7,
    };
    let (mut raw, _) = raw_hello(server.addr, hello).await;
    let mut oversized = 4096u32.to_be_bytes().to_vec();
    oversized.extend(vec![0u8; 4096]);
    // The server may close before taking all the bytes: a write error is fine too.
    let _ = raw.get_mut().write_all(&oversized).await;
    let next = timeout(Duration::from_secs(5), raw.next()).await;
    assert!(
        matches!(next, Ok(None | Some(Err(_)))),
        "connection not closed"
    );

    let mut small = config(2, None);
    small.max_frame_bytes = 1024;
    let c = client(small, server.addr);
    let too_big = c.call(Req::Blob(vec![1; 2048]), CALL).await;
    assert!(
        matches!(too_big, Err(TransportError::FrameTooLarge)),
        "{too_big:?}"
    );
    let resp = c.call(Req::Blob(vec![1; 100]), CALL).await;
    assert_eq!(resp.expect("call"), Resp::Len(100));
    server.stop().await;
}

/// Each side announces its newest protocol version and both speak the lower one, so a
/// build pinned to the previous version and a current one talk (either way round); a peer
/// older than the oldest version we speak is refused in both directions.
#[tokio::test]
async fn protocol_versions_negotiate_down_and_too_old_is_refused() {
    let mut old = config(1, None);
    old.max_protocol = MIN_PROTOCOL_VERSION;
    let server = Server::start(old.clone()).await;
    let new_client = client(config(2, None), server.addr);
    let resp = new_client.call(Req::Echo("down".into()), CALL).await;
    assert_eq!(resp.expect("new client, old server"), echo("down", 2));
    server.stop().await;
    let server = Server::start(config(1, None)).await;
    let mut old_client = old;
    old_client.node_id = 2;
    let old_client = client(old_client, server.addr);
    let resp = old_client.call(Req::Echo("up".into()), CALL).await;
    assert_eq!(resp.expect("old client, new server"), echo("up", 2));
    assert_eq!(old_client.negotiated(), Some((1, MIN_PROTOCOL_VERSION)));

    let ancient = Hello {
        protocol: MIN_PROTOCOL_VERSION - 1,
        node_id: 7,
    };
    let (mut raw, reply) = raw_hello(server.addr, ancient).await;
    assert_eq!(reply.protocol, PROTOCOL_VERSION);
    let next = timeout(Duration::from_secs(5), raw.next()).await;
    assert!(
        matches!(next, Ok(None | Some(Err(_)))),
        "connection not closed"
    );
    assert_eq!(server.calls(), 1);
    server.stop().await;

    // A fake server that answers with a version older than we speak.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let mut framed = Framed::new(tcp, frame_codec(1 << 20));
        let _ = framed.next().await;
        let hello = Hello {
            protocol: MIN_PROTOCOL_VERSION - 1,
            node_id: 1,
        };
        let bytes = codec::encode(&hello).expect("encode");
        let _ = framed.send(Bytes::from(bytes)).await;
        let _ = framed.next().await;
    });
    let err = client(config(2, None), addr)
        .call(Req::Echo("x".into()), CALL)
        .await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(ref m)) if m.contains("protocol version")),
        "{err:?}"
    );
}

/// A panicking handler answers `Remote` instead of leaving the caller to time out.
#[tokio::test]
async fn handler_panic_is_a_remote_error() {
    let server = Server::start(config(1, None)).await;
    let c = client(config(2, None), server.addr);
    let err = c.call(Req::Panic, CALL).await;
    assert!(matches!(err, Err(TransportError::Remote(_))), "{err:?}");
    let resp = c.call(Req::Echo("still".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("still", 2));
    server.stop().await;
}

/// A peer that completes the hello and then goes silent (a half-open connection) is
/// noticed through missing pongs: the outstanding call fails `Closed` long before its
/// timeout.
#[tokio::test]
async fn silent_peer_is_detected_by_pings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let mut framed = Framed::new(tcp, frame_codec(1 << 20));
        let _ = framed.next().await;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            node_id: 1,
        };
        let bytes = codec::encode(&hello).expect("encode");
        let _ = framed.send(Bytes::from(bytes)).await;
        // Read and ignore everything: requests and pings alike go unanswered.
        while let Some(Ok(_)) = framed.next().await {}
    });
    let mut cfg = config(2, None);
    cfg.ping_interval = Duration::from_millis(50);
    let started = Instant::now();
    let err = client(cfg, addr)
        .call(Req::Echo("x".into()), Duration::from_secs(30))
        .await;
    assert!(
        matches!(err, Err(TransportError::Closed(ref m)) if m.contains("nothing received")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// With `source_addr` set, outbound connections come from that address (the chaos suite's
/// fault proxy tells the dialing node by it) and calls still go through.
#[tokio::test]
async fn outbound_connections_bind_the_source_addr() {
    let server = Server::start(config(1, None)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let front = listener.local_addr().expect("addr");
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let target = server.addr;
    tokio::spawn(async move {
        let Ok((mut inbound, from)) = listener.accept().await else {
            return;
        };
        let _ = seen_tx.send(from.ip());
        if let Ok(mut outbound) = TcpStream::connect(target).await {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
    });
    let mut cfg = config(2, None);
    cfg.source_addr = Some("127.0.0.7".parse().expect("ip"));
    let resp = client(cfg, front).call(Req::Echo("src".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("src", 2));
    let seen = timeout(CALL, seen_rx).await.expect("accepted").expect("ip");
    assert_eq!(seen.to_string(), "127.0.0.7");
    server.stop().await;
}
