//! Opening one WebSocket: TCP (+ TLS for `wss://`), the upgrade with subprotocol
//! `tether.v1` and `Authorization: Bearer`, all within `connect_timeout`.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::ClientConfig;

/// The subprotocol Tether requires.
pub(crate) use tether_protocol::SUBPROTOCOL;

/// A byte stream a WebSocket runs over (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open client WebSocket.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// Opens a WebSocket to `endpoint` carrying `token`. The error is a one-line description
/// (it never contains the token).
pub(crate) async fn open(cfg: &ClientConfig, endpoint: &str, token: &str) -> Result<Ws, String> {
    tokio::time::timeout(cfg.connect_timeout, open_inner(cfg, endpoint, token))
        .await
        .map_err(|_| format!("{endpoint}: connect timed out"))?
}

async fn open_inner(cfg: &ClientConfig, endpoint: &str, token: &str) -> Result<Ws, String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("{endpoint}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{endpoint}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{endpoint}: no port"))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if url.scheme() == "wss" {
        let tls = cfg
            .tls
            .clone()
            .ok_or_else(|| format!("{endpoint}: wss:// needs ClientConfig::tls"))?;
        Box::new(
            tls_connect(tls, &host, tcp)
                .await
                .map_err(|e| format!("{endpoint}: {e}"))?,
        )
    } else {
        Box::new(tcp)
    };

    let mut req = endpoint
        .into_client_request()
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let headers = req.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| format!("{endpoint}: token is not a valid header value"))?;
    headers.insert("authorization", bearer);

    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(cfg.max_frame_bytes);
    ws_cfg.max_frame_size = Some(cfg.max_frame_bytes);
    let (ws, resp) = tokio_tungstenite::client_async_with_config(req, stream, Some(ws_cfg))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!(
                    "{endpoint}: upgrade refused with HTTP {}",
                    r.status().as_u16()
                )
            }
            e => format!("{endpoint}: {e}"),
        })?;
    let proto = resp.headers().get("sec-websocket-protocol");
    if proto.and_then(|p| p.to_str().ok()) != Some(SUBPROTOCOL) {
        return Err(format!(
            "{endpoint}: server did not accept subprotocol {SUBPROTOCOL}"
        ));
    }
    Ok(ws)
}

async fn tls_connect(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("bad TLS server name: {e}"))?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}
