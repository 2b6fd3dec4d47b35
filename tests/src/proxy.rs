//! `Proxy`: an in-process TCP fault proxy for the client link. It listens on 127.0.0.1:0 and
//! forwards every connection to a target address, byte for byte. A test can cut every
//! current connection at once (both sides are closed without a WebSocket close frame, as a
//! mobile link that drops) and can make the proxy refuse new connections (each is accepted
//! and closed at once, before any byte is forwarded).
//!
//! Bounded: at most `MAX_CONNECTIONS` forwarded connections at a time (more are closed at
//! once), the upstream connect has a timeout, and dropping the `Proxy` stops the listener
//! and every connection task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Most connections forwarded at once; further ones are closed on accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// Limit for connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Shared {
    refusing: AtomicBool,
    /// Connections being forwarded now.
    open: AtomicUsize,
    /// Connections forwarded so far (accepted while not refusing and connected upstream).
    forwarded: AtomicUsize,
    /// Connections closed on accept because the proxy was refusing or full.
    refused: AtomicUsize,
}

/// A TCP proxy in front of one target address. Dropping it stops everything.
pub struct Proxy {
    addr: SocketAddr,
    target: String,
    shared: Arc<Shared>,
    /// Bumped by `cut`; every connection task ends when it changes or the sender is dropped.
    cuts: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared::default());
        let (cuts, _) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(
            listener,
            target.to_owned(),
            shared.clone(),
            cuts.clone(),
        ));
        Proxy {
            addr,
            target: target.to_owned(),
            shared,
            cuts,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `/v1/connect` WebSocket URL through this proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/connect", self.addr)
    }

    /// Cuts every current connection: both sockets are closed, no close frame is sent.
    pub fn cut(&self) {
        self.cuts.send_modify(|g| *g += 1);
    }

    /// While `true`, new connections are accepted and closed at once (nothing forwarded).
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections being forwarded now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections forwarded so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Connections closed on accept so far (refusing or full).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Wakes every connection task so it ends even if no cut is pending.
        self.cuts.send_modify(|g| *g += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    shared: Arc<Shared>,
    cuts: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if shared.refusing.load(Ordering::SeqCst)
            || shared.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS
        {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let mut cut = cuts.subscribe();
        cut.mark_unchanged();
        let target = target.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::select! {
                r = forward(client, &target, &shared) => r,
                _ = cut.changed() => Ok(()),
            };
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Forwards both directions until either side ends (or the task is dropped by a cut).
async fn forward(mut client: TcpStream, target: &str, shared: &Shared) -> std::io::Result<()> {
    let mut upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| std::io::Error::other("upstream connect timed out"))??;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
