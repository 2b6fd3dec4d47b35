//! The transport tests' harness: a request/response pair, a test handler, a server on
//! 127.0.0.1 and a dev PKI.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_cluster::NodeId;
use tether_cluster::certs::{NodeCert, write_dev_pki};
use tether_cluster::transport::{Handler, PeerClient, PeerTls, TransportConfig, serve};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Req {
    Echo(String),
    Hang,
    Panic,
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Resp {
    Echo { text: String, from: NodeId },
    Len(usize),
}

tether_cluster::plain_wire_message!(Req, Resp);

#[derive(Default)]
pub struct TestHandler {
    calls: AtomicUsize,
}

impl Handler<Req, Resp> for TestHandler {
    async fn handle(&self, from: NodeId, req: Req) -> Resp {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match req {
            Req::Echo(text) => Resp::Echo { text, from },
            Req::Hang => std::future::pending().await,
            Req::Panic => panic!("handler panics on purpose"),
            Req::Blob(bytes) => Resp::Len(bytes.len()),
        }
    }
}

pub type Client = PeerClient<Req, Resp>;

pub const CALL: Duration = Duration::from_secs(5);

pub fn config(node_id: NodeId, tls: Option<PeerTls>) -> TransportConfig {
    let mut cfg = TransportConfig::new(node_id, tls);
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(100);
    cfg
}

pub struct Server {
    pub addr: SocketAddr,
    pub handler: Arc<TestHandler>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start(cfg: TransportConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Server::start_on(listener, cfg)
    }

    pub fn start_on(listener: TcpListener, cfg: TransportConfig) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let handler = Arc::new(TestHandler::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve::<Req, Resp, _>(
            listener,
            Arc::new(cfg),
            handler.clone(),
            shutdown.clone(),
        ));
        Server {
            addr,
            handler,
            shutdown,
            task,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("serve task");
    }

    pub fn calls(&self) -> usize {
        self.handler.calls.load(Ordering::SeqCst)
    }
}

pub fn client(cfg: TransportConfig, addr: impl ToString) -> Client {
    PeerClient::new(Arc::new(cfg), addr.to_string(), None)
}

/// A certificate for `name` (reachable as 127.0.0.1) binding node id `id`.
pub fn node_cert(name: &str, id: Option<NodeId>) -> NodeCert {
    NodeCert {
        name: name.into(),
        id,
        sans: vec!["127.0.0.1".to_string(), "localhost".to_string()],
    }
}

/// A dev PKI for nodes `a` (node 1) and `b` (node 2) in `dir`.
pub fn pki(dir: &Path) {
    let nodes = [node_cert("a", Some(1)), node_cert("b", Some(2))];
    write_dev_pki(dir, &nodes, false).expect("dev pki");
}

pub fn tls(dir: &Path, node: &str) -> PeerTls {
    PeerTls::from_pem_files(
        &dir.join("ca.pem"),
        &dir.join(format!("{node}.pem")),
        &dir.join(format!("{node}-key.pem")),
    )
    .expect("peer tls")
}

pub fn echo(text: &str, from: NodeId) -> Resp {
    Resp::Echo {
        text: text.into(),
        from,
    }
}
