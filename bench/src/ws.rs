//! A light WebSocket client for load: one socket bound to a chosen 127.0.0.x source address
//! (so many connections do not run out of ephemeral ports on one address), optional TLS,
//! small buffers, `hello` (fresh or resume) and the `welcome`, every step under a deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_protocol::{ClientFrame, ServerMessage};
pub use tether_protocol::{ResumeRequest, Welcome};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

pub type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;
pub type Ws = WebSocketStream<Stream>;

/// Where to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// `url` is `ws://host:port/...` or `wss://...`; `tls` is required for `wss`.
    pub fn new(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> anyhow::Result<Endpoint> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("wss://"))
            .ok_or_else(|| anyhow::anyhow!("not a ws url: {url}"))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = hostport.parse()?;
        let tls = if url.starts_with("wss://") {
            Some(tls.ok_or_else(|| anyhow::anyhow!("wss needs a TLS config"))?)
        } else {
            None
        };
        Ok(Endpoint {
            url: url.to_owned(),
            addr,
            tls,
        })
    }
}

/// Why a connect failed, as a short label for error counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError(pub String);

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(kind: &str) -> impl Fn(String) -> ConnError + '_ {
    move |e| ConnError(format!("{kind}: {e}"))
}

/// Client-side buffers sized like the server's: a load generator holding 10k sockets in one
/// process should not reserve tungstenite's 128 KiB default per socket.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// TCP (from `src`), TLS if the endpoint says so, WebSocket upgrade with the token in the
/// `Authorization` header, `hello`, and the `welcome`; all within `within`.
pub async fn open(
    ep: &Endpoint,
    src: IpAddr,
    token: &str,
    resume: Option<&ResumeRequest>,
    within: Duration,
) -> Result<(Ws, Welcome), ConnError> {
    open_as(ep, src, token, resume, true, within).await
}

/// Like `open`; with `expect_welcome` false it returns right after sending `hello` (for the
/// bare baseline server, which never answers).
pub async fn open_as(
    ep: &Endpoint,
    src: IpAddr,
    token: &str,
    resume: Option<&ResumeRequest>,
    expect_welcome: bool,
    within: Duration,
) -> Result<(Ws, Welcome), ConnError> {
    let f = open_inner(ep, src, token, resume, expect_welcome);
    match tokio::time::timeout(within, f).await {
        Ok(r) => r,
        Err(_) => Err(ConnError("timeout".into())),
    }
}

/// TCP connect from `src` (port chosen by the kernel; `SO_REUSEADDR` so TIME_WAIT sockets
/// of earlier runs do not block the bind).
pub async fn tcp_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::new(src, 0))?;
    let tcp = sock.connect(to).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn open_inner(
    ep: &Endpoint,
    src: IpAddr,
    token: &str,
    resume: Option<&ResumeRequest>,
    expect_welcome: bool,
) -> Result<(Ws, Welcome), ConnError> {
    let tcp = tcp_from(src, ep.addr)
        .await
        .map_err(|e| ConnError(format!("tcp: {}", e.kind())))?;
    let stream: Stream = match &ep.tls {
        None => Either::Left(tcp),
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::IpAddress(ep.addr.ip().into());
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ConnError(format!("tls: {}", e.kind())))?;
            Either::Right(tls)
        }
    };
    let req = tether_tests::client::request(&ep.url, Some(token), None, None);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config()))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                ConnError(format!("http {}", r.status().as_u16()))
            }
            e => err("upgrade")(e.to_string()),
        })?;
    let hello = ClientFrame::hello(resume.cloned());
    ws.send(Message::text(hello.to_json()))
        .await
        .map_err(|e| err("send hello")(e.to_string()))?;
    if !expect_welcome {
        return Ok((ws, Welcome::default()));
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return match ServerMessage::parse(&t) {
                    Some(ServerMessage::Welcome(w)) => Ok((ws, w)),
                    other => Err(ConnError(format!(
                        "frame {}",
                        other.map_or("?", |m| m.kind())
                    ))),
                };
            }
            Some(Ok(Message::Close(c))) => {
                let code = c.map(|c| u16::from(c.code)).unwrap_or(1005);
                return Err(ConnError(format!("close {code}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(err("read")(e.to_string())),
            None => return Err(ConnError("eof before welcome".into())),
        }
    }
}

/// Subscribes to `channel` and waits for the `ok` reply (frames before it are dropped).
pub async fn subscribe(ws: &mut Ws, channel: &str, within: Duration) -> Result<(), ConnError> {
    let f = async {
        let frame = ClientFrame::Subscribe {
            id: 1,
            channel: channel.to_owned(),
        };
        ws.send(Message::text(frame.to_json()))
            .await
            .map_err(|e| err("send subscribe")(e.to_string()))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Some(ServerMessage::Reply { id: 1, ok, error }) =
                        ServerMessage::parse(&t)
                    {
                        return if ok {
                            Ok(())
                        } else {
                            let code = error.map(|e| e.code).unwrap_or_default();
                            Err(ConnError(format!("subscribe refused: {code}")))
                        };
                    }
                }
                Some(Ok(_)) => continue,
                _ => return Err(ConnError("socket ended before the reply".into())),
            }
        }
    };
    tokio::time::timeout(within, f)
        .await
        .unwrap_or_else(|_| Err(ConnError("subscribe timeout".into())))
}

/// How a held connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server's close frame with this code, read at this instant.
    Closed(u16, Instant),
    /// The socket failed or ended without a close frame.
    Gone(Instant),
    /// `stop` fired; the client closed (1000) or dropped the socket.
    Stopped,
}

/// Called with each text frame a held connection reads.
pub type OnText = Arc<dyn Fn(&str) + Send + Sync>;

/// Reads (and so answers pings) until the server closes, the socket ends or `stop` fires;
/// at `stop` it sends a close frame with code 1000 (bounded by 2 s): the client leaves for
/// good, so the session ends instead of staying detached for its resume window.
pub async fn hold(mut ws: Ws, on_text: Option<OnText>, stop: CancellationToken) -> End {
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => {
                let bye = CloseFrame {
                    code: 1000.into(),
                    reason: "bench done".into(),
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(bye))).await;
                return End::Stopped;
            }
            m = ws.next() => m,
        };
        match m {
            Some(Ok(Message::Text(t))) => {
                if let Some(f) = &on_text {
                    f(&t);
                }
            }
            Some(Ok(Message::Close(c))) => {
                let at = Instant::now();
                let code = c
                    .map(|CloseFrame { code, .. }| u16::from(code))
                    .unwrap_or(1005);
                return End::Closed(code, at);
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return End::Gone(Instant::now()),
        }
    }
}

/// The source address of the `i`-th socket: from 127.0.0.`base` on, `per_ip` sockets each,
/// wrapping inside 127.0.0.2..=254.
pub fn source_ip(base: u8, i: usize, per_ip: usize) -> IpAddr {
    let k = i / per_ip.max(1);
    let last = 2 + (usize::from(base).saturating_sub(2) + k) % 253;
    IpAddr::from([127, 0, 0, last as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses advance every `per_ip` sockets and stay inside 127.0.0.2..=254.
    #[test]
    fn source_addresses() {
        assert_eq!(source_ip(2, 0, 1000).to_string(), "127.0.0.2");
        assert_eq!(source_ip(2, 999, 1000).to_string(), "127.0.0.2");
        assert_eq!(source_ip(2, 1000, 1000).to_string(), "127.0.0.3");
        assert_eq!(source_ip(50, 5000, 1000).to_string(), "127.0.0.55");
        assert_eq!(source_ip(54, 199_000, 1000).to_string(), "127.0.0.253");
        assert_eq!(source_ip(254, 1000, 1000).to_string(), "127.0.0.2");
    }

    /// `wss` endpoints need a TLS config; the socket address is taken from the URL.
    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::new("ws://127.0.0.1:7070/v1/connect", None).expect("ws");
        assert_eq!(e.addr.to_string(), "127.0.0.1:7070");
        assert!(e.tls.is_none());
        assert!(Endpoint::new("wss://127.0.0.1:7070/v1/connect", None).is_err());
        assert!(Endpoint::new("http://x", None).is_err());
    }
}
