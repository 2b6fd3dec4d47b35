//! The latency relay: an L4 forwarder in the test process that delays each chunk of a
//! cross-region peer connection by the region link's delay, in both directions.
//!
//! It stands in for `tc netem`, which the kernels here lack. Chunks keep their order (a chunk
//! never leaves before the one read before it), a cut (`Net::cut_one_way`) holds a direction's
//! bytes until the heal, and reading stops while 64 chunks wait, so TCP pushes back on the
//! sender as a full link would.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Blocked, Link};

/// Listens on `host:0` and forwards each accepted connection to `target` (node `to`). The
/// source node is found by the peer address among `sources`; anything else is refused.
/// Returns the port and the accept task (aborting it ends every connection it carries).
pub(crate) async fn spawn(
    host: Ipv4Addr,
    target: SocketAddr,
    to: usize,
    sources: Vec<(Ipv4Addr, usize)>,
    link: Link,
    blocked: Blocked,
    seed: u64,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((host, 0))
        .await
        .expect("binding a latency relay");
    let port = listener.local_addr().expect("relay address").port();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        let mut n = 0u64;
        loop {
            let Ok((inbound, peer)) = listener.accept().await else {
                continue;
            };
            let from = sources.iter().find(|(ip, _)| peer.ip() == *ip).map(|s| s.1);
            let Some(from) = from else { continue };
            n += 1;
            let conn_seed = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let blocked = blocked.clone();
            conns.spawn(async move {
                let connect =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target));
                let Ok(Ok(outbound)) = connect.await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_r, in_w) = inbound.into_split();
                let (out_r, out_w) = outbound.into_split();
                let there = pump(in_r, out_w, (from, to), link, blocked.clone(), conn_seed);
                let back = pump(out_r, in_w, (to, from), link, blocked, conn_seed ^ 1);
                tokio::join!(there, back);
            });
            // Reap finished connections so the set does not grow with every redial.
            while conns.try_join_next().is_some() {}
        }
    });
    (port, task)
}

/// Copies `r` to `w`, each chunk leaving `link`'s delay after it was read and only while the
/// direction `dir` is not cut; EOF is passed on (as a FIN) the same way.
async fn pump(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    dir: (usize, usize),
    link: Link,
    blocked: Blocked,
    seed: u64,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(64);
    let reader = async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut prev = Instant::now();
        loop {
            let mut buf = vec![0u8; 16 * 1024];
            let n = r.read(&mut buf).await.unwrap_or(0);
            prev = link.due(Instant::now(), prev, &mut rng);
            let chunk = (n > 0).then(|| {
                buf.truncate(n);
                buf
            });
            let end = chunk.is_none();
            if tx.send((prev, chunk)).await.is_err() || end {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            while blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&dir)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let Some(chunk) = chunk else {
                let _ = w.shutdown().await;
                return;
            };
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}
