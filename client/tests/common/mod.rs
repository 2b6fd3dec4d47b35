//! A scriptable in-test Tether server (tokio-tungstenite on 127.0.0.1:0) and helpers that
//! wait with deadlines. Each accepted connection is handed to the test as a [`ServerConn`].
#![allow(dead_code, clippy::result_large_err)] // tungstenite's accept callback type

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tether_client::{ClientConfig, ClientEvent, Events};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Longest wait for anything expected to happen.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub url: String,
    conns: mpsc::Receiver<ServerConn>,
}

pub struct ServerConn {
    ws: WebSocketStream<TcpStream>,
    /// The `Authorization` header of the upgrade.
    pub auth: Option<String>,
    /// The offered `Sec-WebSocket-Protocol`.
    pub protocol: Option<String>,
    /// When the upgrade completed.
    pub at: Instant,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let seen = Arc::new(Mutex::new((None, None)));
                    let seen2 = seen.clone();
                    let cb = move |req: &Request, mut resp: Response| {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        *seen2.lock().expect("lock") =
                            (h("authorization"), h("sec-websocket-protocol"));
                        resp.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static("tether.v1"),
                        );
                        Ok(resp)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                        let (auth, protocol) = seen.lock().expect("lock").clone();
                        let _ = tx
                            .send(ServerConn {
                                ws,
                                auth,
                                protocol,
                                at: Instant::now(),
                            })
                            .await;
                    }
                });
            }
        });
        TestServer {
            url: format!("ws://{addr}/v1/connect"),
            conns: rx,
        }
    }

    /// The next connection from the client.
    pub async fn next_conn(&mut self) -> ServerConn {
        tokio::time::timeout(DEADLINE, self.conns.recv())
            .await
            .expect("timed out waiting for a connection")
            .expect("server stopped")
    }

    /// `true` if no connection arrives within `d`.
    pub async fn no_conn_within(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.conns.recv()).await.is_err()
    }

    /// Accepts the next connection, reads its hello and welcomes it as a new session.
    pub async fn accept(&mut self, sid: &str) -> (ServerConn, Value) {
        let mut c = self.next_conn().await;
        let hello = c.recv_type("hello").await;
        c.welcome(sid, false).await;
        (c, hello)
    }
}

impl ServerConn {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("server send");
    }

    pub async fn welcome(&mut self, sid: &str, resumed: bool) {
        self.welcome_with(sid, resumed, json!(null)).await;
    }

    pub async fn welcome_with(&mut self, sid: &str, resumed: bool, expires_at: Value) {
        self.send(
            json!({"type":"welcome","session_id":sid,"resume_token":format!("rt-{sid}"),
            "resumed":resumed,"recovered":resumed,"seq":0,"expires_at":expires_at,
            "permissions":["sub:chat.*"],"node":"n1","region":"local","heartbeat_ms":25000}),
        )
        .await;
    }

    pub async fn event(&mut self, seq: u64, channel: &str) {
        self.send(json!({"type":"event","seq":seq,"channel":channel,"data":{"n":seq}}))
            .await;
    }

    /// Next JSON text frame from the client.
    pub async fn recv(&mut self) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let m = tokio::time::timeout_at(end, self.ws.next())
                .await
                .expect("timed out waiting for a client frame");
            match m {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON"),
                Some(Ok(Message::Close(c))) => panic!("client closed: {c:?}"),
                Some(Ok(_)) => continue,
                other => panic!("client socket ended: {other:?}"),
            }
        }
    }

    /// Next client frame of type `ty`, skipping others (acks, ...).
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Closes with `code` (the reason is the code's name in Tether; any text here).
    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        // Drain until the client answered the close.
        let end = Instant::now() + DEADLINE;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(end, self.ws.next()).await {}
    }

    /// Waits until the client closes; returns its close code.
    pub async fn client_close_code(&mut self) -> Option<u16> {
        let end = Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(end, self.ws.next())
                .await
                .expect("no close in time")
            {
                Some(Ok(Message::Close(c))) => return c.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }
}

/// A config with short backoff and timeouts for tests.
pub fn config(urls: &[&str]) -> ClientConfig {
    let mut c = ClientConfig::new(urls.iter().copied());
    c.client_name = "test".into();
    c.client_version = "9.9".into();
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.connect_timeout = Duration::from_secs(3);
    c.request_timeout = Duration::from_secs(3);
    c
}

/// The next event matching `pred`, skipping others, within [`DEADLINE`].
pub async fn wait_event(events: &mut Events, pred: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    let end = Instant::now() + DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(end, events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event stream ended");
        if pred(&ev) {
            return ev;
        }
    }
}

/// The `seq` of the next `Event`, skipping other kinds.
pub async fn next_seq(events: &mut Events) -> u64 {
    match wait_event(events, |e| matches!(e, ClientEvent::Event { .. })).await {
        ClientEvent::Event { seq, .. } => seq,
        _ => unreachable!(),
    }
}
