//! `WsClient`: a real WebSocket client (tokio-tungstenite) with helpers that wait with deadlines.
//!
//! The helpers build their frames with `tether-protocol`'s [`ClientFrame`]. Frames are read
//! back as JSON values on purpose: the tests assert the wire text as `PROTOCOL.md` writes
//! it, independently of the Rust types both sides share.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tether_protocol::{BEARER_SUBPROTOCOL_PREFIX, ClientFrame, SUBPROTOCOL};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::DEADLINE;

/// How the token reaches the server.
#[derive(Clone, Copy, Debug)]
pub enum Carrier {
    Header,
    Subprotocol,
    Hello,
}

pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Result of waiting for the server to close.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

/// Upgrade request for `url` with the `tether.v1` subprotocol (plus a bearer subprotocol) and
/// optional Authorization/Origin headers.
pub fn request(
    url: &str,
    bearer_header: Option<&str>,
    bearer_proto: Option<&str>,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("client request");
    let mut protos = SUBPROTOCOL.to_owned();
    if let Some(t) = bearer_proto {
        protos.push_str(&format!(", {BEARER_SUBPROTOCOL_PREFIX}{t}"));
    }
    let h = req.headers_mut();
    h.insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&protos).expect("header"),
    );
    if let Some(t) = bearer_header {
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).expect("header"),
        );
    }
    if let Some(o) = origin {
        h.insert("origin", HeaderValue::from_str(o).expect("header"));
    }
    req
}

impl WsClient {
    /// Upgrades (no hello sent yet).
    pub async fn upgrade(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<WsClient, WsError> {
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| WsError::Io(std::io::Error::other("upgrade timed out")))??;
        Ok(WsClient { ws })
    }

    /// Connects with `token` on `carrier`, sends hello, and returns the client (welcome unread).
    pub async fn connect_with(url: &str, token: &str, carrier: Carrier) -> WsClient {
        let req = match carrier {
            Carrier::Header => request(url, Some(token), None, None),
            Carrier::Subprotocol => request(url, None, Some(token), None),
            Carrier::Hello => request(url, None, None, None),
        };
        let mut c = WsClient::upgrade(req).await.expect("upgrade");
        let hello = match carrier {
            Carrier::Hello => ClientFrame::Hello {
                token: Some(token.to_owned()),
                resume: None,
                client: None,
            },
            _ => ClientFrame::hello(None),
        };
        c.send(&hello).await;
        c
    }

    /// Connects with a header token and returns the welcome frame.
    pub async fn connect(url: &str, token: &str) -> (WsClient, Value) {
        let mut c = WsClient::connect_with(url, token, Carrier::Header).await;
        let w = c.next_json().await;
        assert_eq!(w["type"], "welcome", "expected welcome, got {w}");
        (c, w)
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&frame.to_json()).await;
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::text(s)).await.expect("send");
    }

    /// Next JSON text frame (pings are answered by tungstenite while reading).
    pub async fn next_json(&mut self) -> Value {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            let m = tokio::time::timeout_at(end, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match m {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON frame"),
                Some(Ok(Message::Close(c))) => panic!("closed while waiting for a frame: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error while waiting for a frame: {e}"),
                None => panic!("socket ended while waiting for a frame"),
            }
        }
    }

    /// Next frame of `type`, skipping others.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Reads until the server's close frame (frames before it are returned too).
    pub async fn closed_within(&mut self, within: Duration) -> (Closed, Vec<Value>) {
        let end = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            let m = tokio::time::timeout_at(end, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match m {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return (
                        Closed {
                            code: code.into(),
                            reason: reason.to_string(),
                        },
                        frames,
                    );
                }
                Some(Ok(Message::Close(None))) => {
                    return (
                        Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                        frames,
                    );
                }
                Some(Ok(Message::Text(t))) => {
                    frames.push(serde_json::from_str(&t).unwrap_or(Value::Null))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before a close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Like `closed_within`, but `None` if no close frame arrived in time; frames read on the
    /// way are appended to `frames`.
    pub async fn try_closed_within(
        &mut self,
        within: Duration,
        frames: &mut Vec<Value>,
    ) -> Option<Closed> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let m = tokio::time::timeout_at(end, self.ws.next()).await.ok()?;
            match m {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return Some(Closed {
                        code: code.into(),
                        reason: reason.to_string(),
                    });
                }
                Some(Ok(Message::Text(t))) => {
                    frames.push(serde_json::from_str(&t).unwrap_or(Value::Null))
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    pub async fn closed(&mut self) -> Closed {
        self.closed_within(DEADLINE).await.0
    }

    /// The server's close frame, read from the raw socket up to its end without writing a
    /// byte: for a client that must stay silent (tungstenite would answer the queued pings
    /// while reading, and a pong written after the server dropped the socket fails the read
    /// before the close frame is seen). Plain `ws://` only.
    pub async fn silent_close(self) -> Option<Closed> {
        use tokio::io::AsyncReadExt;
        let MaybeTlsStream::Plain(mut tcp) = self.ws.into_inner() else {
            return None;
        };
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut bytes)).await;
        if !matches!(read, Ok(Ok(_))) {
            return None;
        }
        // Server frames are unmasked: opcode, 7-bit length (126: 16-bit, 127: 64-bit), data.
        let mut at = 0;
        while at + 2 <= bytes.len() {
            let opcode = bytes[at] & 0x0f;
            let (len, head) = match bytes[at + 1] & 0x7f {
                126 => (
                    usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                    4,
                ),
                127 => return None,
                n => (usize::from(n), 2),
            };
            let data = bytes.get(at + head..at + head + len)?;
            if opcode == 0x8 && data.len() >= 2 {
                return Some(Closed {
                    code: u16::from_be_bytes([data[0], data[1]]),
                    reason: String::from_utf8_lossy(&data[2..]).into_owned(),
                });
            }
            at += head + len;
        }
        None
    }

    /// Sends a request frame and returns the reply with its `id`.
    pub async fn request(&mut self, frame: ClientFrame) -> Value {
        let id = match &frame {
            ClientFrame::Refresh { id, .. }
            | ClientFrame::Subscribe { id, .. }
            | ClientFrame::Unsubscribe { id, .. }
            | ClientFrame::Publish { id, .. } => *id,
            other => panic!("not a request: {other:?}"),
        };
        self.send(&frame).await;
        loop {
            let v = self.next_json().await;
            if v["type"] == "reply" && v["id"] == id {
                return v;
            }
        }
    }

    /// Sends an in-band `refresh` with `token` and returns its reply.
    pub async fn refresh(&mut self, token: &str, id: u64) -> Value {
        self.request(ClientFrame::Refresh {
            id,
            token: token.to_owned(),
        })
        .await
    }

    pub async fn subscribe(&mut self, channel: &str, id: u64) -> Value {
        self.request(ClientFrame::Subscribe {
            id,
            channel: channel.to_owned(),
        })
        .await
    }
}

impl WsClient {
    /// Upgrades over a TCP connection from the local address `src` (any 127.0.0.0/8 address
    /// reaches a loopback listener), so tests can act as several client IPs.
    pub async fn upgrade_from(
        src: std::net::IpAddr,
        server: &str,
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<WsClient, WsError> {
        let server: std::net::SocketAddr = server
            .parse()
            .map_err(|e| WsError::Io(std::io::Error::other(format!("{server}: {e}"))))?;
        let connect = async {
            let tcp = tcp_from(src, server).await?;
            let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp)).await?;
            Ok::<_, WsError>(WsClient { ws })
        };
        tokio::time::timeout(DEADLINE, connect)
            .await
            .map_err(|_| WsError::Io(std::io::Error::other("upgrade timed out")))?
    }

    /// Closes from the client side and reads until the server has closed too.
    pub async fn close_and_drain(mut self) {
        let _ = self.ws.close(None).await;
        let end = tokio::time::Instant::now() + DEADLINE;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(end, self.ws.next()).await {}
    }
}

/// A TCP connection to `server` from the local address `src` (IPv4).
pub async fn tcp_from(
    src: std::net::IpAddr,
    server: std::net::SocketAddr,
) -> std::io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(std::net::SocketAddr::new(src, 0))?;
    sock.connect(server).await
}

/// The HTTP status of a refused upgrade, or `None` if it was not refused at the HTTP level.
pub fn refused_status(r: &Result<WsClient, WsError>) -> Option<u16> {
    match r {
        Err(WsError::Http(resp)) => Some(resp.status().as_u16()),
        _ => None,
    }
}
