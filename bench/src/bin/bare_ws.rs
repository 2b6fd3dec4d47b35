//! Baseline for the memory scenario: a bare tokio-tungstenite server that accepts
//! WebSocket connections (replying `tether.v1`), reads and drops their frames, and holds them.
//! Same buffer settings as the gateway (4 KiB read buffer, no write buffer).
//!
//! `bare_ws [--tls CERT_PEM KEY_PEM]` prints `listening ADDR` and runs until killed.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The gateway's settings (`node/src/gateway/mod.rs`), so the two hold the same buffers.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Answers with the `tether.v1` subprotocol the client asks for. The signature (and its
/// large error type) is tungstenite's callback contract.
#[allow(clippy::result_large_err)]
fn add_protocol(_: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    resp.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tether.v1"),
    );
    Ok(resp)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: S) {
    let cb = add_protocol;
    // Boxed so that the handshake's state does not stay inline in every connection's
    // long-lived task: tokio sizes a task by its largest state, and an unboxed TLS and
    // WebSocket handshake made each idle connection's task about 11 KiB (heaptrack).
    let handshake = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        s,
        cb,
        Some(ws_config()),
    ));
    let Ok(mut ws) = handshake.await else {
        return;
    };
    while let Some(Ok(_)) = ws.next().await {}
}

fn acceptor(cert: &str, key: &str) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::fs::read(key)?.as_slice())?
        .ok_or_else(|| anyhow::anyhow!("no key in {key}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tls = match args.as_slice() {
        [flag, cert, key] if flag == "--tls" => Some(acceptor(cert, key)?),
        [] => None,
        _ => anyhow::bail!("usage: bare_ws [--tls CERT_PEM KEY_PEM]"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(tcp).await,
                Some(a) => {
                    if let Ok(s) = Box::pin(a.accept(tcp)).await {
                        serve(s).await;
                    }
                }
            }
        });
    }
}
