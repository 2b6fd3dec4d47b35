//! `FaultProxy`: an in-process TCP proxy in front of one node's peer or client listener.
//! Every accepted connection is tagged with its link (`from` → the proxy's node): for a peer
//! proxy `from` is the node whose source IP dialed (`cluster.peer_source_addr`), for a
//! client proxy it is [`CLIENTS`]. Each direction then obeys the [`Net`] fault of its link.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections at once, 64 chunks of 16 KiB queued per
//! direction (then TCP pushes back), the upstream connect times out, and dropping the proxy
//! ends the listener and every connection task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::net::{CLIENTS, Endpoint, Net};

/// Most connections a proxy forwards at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 8192;
const CHUNK: usize = 16 * 1024;
const QUEUE_CHUNKS: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy stands in front of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A node's peer listener: the source IP tells which node dialed.
    Peer,
    /// A node's client listener: every connection comes from [`CLIENTS`].
    Client,
}

#[derive(Default)]
struct Stats {
    open: AtomicUsize,
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

/// A fault proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    node: Endpoint,
    target: Arc<Mutex<Option<String>>>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
    /// Dropped with the proxy: every connection task ends.
    _alive: watch::Sender<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 for node `node`; connections wait for `set_target`.
    pub async fn start(net: &Net, node: Endpoint, kind: Kind) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let target = Arc::new(Mutex::new(None));
        let stats = Arc::new(Stats::default());
        let (alive, alive_rx) = watch::channel(());
        let task = tokio::spawn(accept_loop(
            listener,
            net.clone(),
            node,
            kind,
            target.clone(),
            stats.clone(),
            alive_rx,
        ));
        FaultProxy {
            addr,
            node,
            target,
            stats,
            task,
            _alive: alive,
        }
    }

    /// The address to dial instead of the node's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn node(&self) -> Endpoint {
        self.node
    }

    /// Where connections are forwarded (the node's real listener).
    pub fn set_target(&self, target: &str) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target.to_owned());
    }

    /// Connections forwarded now.
    pub fn open(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (forwarded or not).
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed on accept (refused, dropped, or over the limit).
    pub fn refused(&self) -> usize {
        self.stats.refused.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    net: Net,
    node: Endpoint,
    kind: Kind,
    target: Arc<Mutex<Option<String>>>,
    stats: Arc<Stats>,
    alive: watch::Receiver<()>,
) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        let from = match kind {
            Kind::Peer => net.source(peer.ip()),
            Kind::Client => CLIENTS,
        };
        let fault = net.fault(from, node);
        let dropped = fault.drop_new > 0.0 && net.random() < fault.drop_new;
        if fault.refuse_new || dropped || stats.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            stats.refused.fetch_add(1, Ordering::SeqCst);
            let _ = sock.set_zero_linger();
            drop(sock);
            continue;
        }
        stats.open.fetch_add(1, Ordering::SeqCst);
        let link = Link {
            net: net.clone(),
            from,
            to: node,
        };
        let target = target.clone();
        let stats = stats.clone();
        let mut alive = alive.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = link.run(sock, &target) => {}
                _ = alive.changed() => {}
            }
            stats.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Link {
    net: Net,
    from: Endpoint,
    to: Endpoint,
}

impl Link {
    /// Waits while `from` → `to` is stalled (a SYN that would not get through).
    async fn wait_open(&self, from: Endpoint, to: Endpoint) {
        let mut w = self.net.watch();
        while self.net.fault(from, to).stalled {
            if w.changed().await.is_err() {
                return;
            }
        }
    }

    async fn run(self, mut client: TcpStream, target: &Mutex<Option<String>>) {
        let generation = self.net.reset_generation(self.from, self.to);
        self.wait_open(self.from, self.to).await;
        let target = target.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(target) = target else { return };
        let Ok(Ok(mut upstream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target)).await
        else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let reset = {
            let (cr, cw) = client.split();
            let (ur, uw) = upstream.split();
            let up = pump(&self, self.from, self.to, cr, uw);
            let down = pump(&self, self.to, self.from, ur, cw);
            tokio::select! {
                _ = async { tokio::join!(up, down) } => false,
                _ = self.reset_signal(generation) => true,
            }
        };
        if reset {
            let _ = client.set_zero_linger();
            let _ = upstream.set_zero_linger();
        }
    }

    /// Resolves when the link between `from` and `to` is reset after `generation`.
    async fn reset_signal(&self, generation: u64) {
        let mut w = self.net.watch();
        while self.net.reset_generation(self.from, self.to) == generation {
            if w.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Forwards `rd` to `wr` under the `from` → `to` fault until `rd` ends, then half-closes.
async fn pump<R, W>(link: &Link, from: Endpoint, to: Endpoint, mut rd: R, mut wr: W)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async {
        let mut rng = StdRng::seed_from_u64(link.net.conn_seed());
        let mut last_due = Instant::now();
        while let Some((read_at, bytes)) = rx.recv().await {
            link.wait_open(from, to).await;
            let f = link.net.fault(from, to);
            let jitter = if f.jitter.is_zero() {
                Duration::ZERO
            } else {
                f.jitter.mul_f64(rng.random::<f64>())
            };
            // Never before an earlier chunk: delay keeps the byte order of a stream.
            let due = (read_at + f.delay + jitter).max(last_due);
            last_due = due;
            tokio::time::sleep_until(due).await;
            if let Some(bps) = f.bytes_per_sec.filter(|b| *b > 0) {
                let secs = bytes.len() as f64 / bps as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    async fn echo_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> bool {
        if s.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(
            tokio::time::timeout(within, s.read_exact(&mut buf)).await,
            Ok(Ok(4))
        )
    }

    /// Bytes flow; a one-way stall holds them until heal (then they arrive, in order); a
    /// delay is applied; a reset closes the connection; refusing closes new ones at once.
    #[tokio::test]
    async fn stall_delay_reset_refuse() {
        let net = Net::new(7, History::new());
        let p = FaultProxy::start(&net, 1, Kind::Client).await;
        p.set_target(&echo_server().await);
        let mut s = TcpStream::connect(p.addr()).await.expect("connect");
        assert!(round_trip(&mut s, Duration::from_secs(5)).await);

        net.one_way(1, CLIENTS);
        assert!(!round_trip(&mut s, Duration::from_millis(300)).await);
        net.heal();
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("held bytes arrive after heal")
            .expect("read");
        assert_eq!(&buf, b"ping");

        net.delay(CLIENTS, 1, Duration::from_millis(200), Duration::ZERO);
        let t = Instant::now();
        assert!(round_trip(&mut s, Duration::from_secs(5)).await);
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        net.heal();

        net.reset(CLIENTS, 1);
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("reset is seen");
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");

        net.update(CLIENTS, 1, |f| f.refuse_new = true);
        let mut s = TcpStream::connect(p.addr()).await.expect("connect");
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("refused at once");
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        assert_eq!(p.refused(), 1);
    }

    /// A peer proxy tags a connection by its source IP: a partition of that node stalls it
    /// while a connection from another source still flows.
    #[tokio::test]
    async fn peer_links_are_told_apart_by_source_ip() {
        let net = Net::new(7, History::new());
        net.set_source("127.0.0.12".parse().expect("ip"), 2);
        net.set_source("127.0.0.13".parse().expect("ip"), 3);
        let p = FaultProxy::start(&net, 1, Kind::Peer).await;
        p.set_target(&echo_server().await);
        let from = |ip: &str| {
            let ip: std::net::IpAddr = ip.parse().expect("ip");
            let addr = p.addr();
            async move {
                let sock = tokio::net::TcpSocket::new_v4().expect("socket");
                sock.bind(SocketAddr::new(ip, 0)).expect("bind");
                sock.connect(addr).await.expect("connect")
            }
        };
        let mut a = from("127.0.0.12").await;
        let mut b = from("127.0.0.13").await;
        net.partition(&[1], &[2]);
        assert!(!round_trip(&mut a, Duration::from_millis(300)).await);
        assert!(round_trip(&mut b, Duration::from_secs(5)).await);
    }
}
