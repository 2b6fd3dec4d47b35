//! One connection attempt: a token (cached or from the provider), the WebSocket upgrade,
//! `hello` (with `resume` when there is a session) and the `welcome`.

use futures_util::{SinkExt, StreamExt};
use tether_protocol::{ClientFrame, ClientMeta, ServerMessage, Welcome};
use tokio_tungstenite::tungstenite::Message;

use crate::driver::Ctx;
use crate::transport::{self, Ws};

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server closed the socket before `welcome` (e.g. 4001, 4004, 4111).
    Closed { code: u16, reason: String },
    /// Network, TLS, upgrade or timeout failure: try another endpoint.
    Io(String),
    /// The token provider failed.
    Token(String),
}

/// Gets a token the session can use now: the cached one, or a new one from the provider.
pub(crate) async fn token(ctx: &mut Ctx) -> Result<String, Failure> {
    if let Some(t) = ctx.session.usable_token(std::time::Duration::from_secs(5)) {
        return Ok(t.to_owned());
    }
    let fut = ctx.provider.token();
    let t = tokio::time::timeout(ctx.cfg.connect_timeout, fut)
        .await
        .map_err(|_| Failure::Token("token provider timed out".into()))?
        .map_err(Failure::Token)?;
    ctx.session.set_token(t.clone());
    Ok(t)
}

/// Connects to the current endpoint and waits for `welcome`.
pub(crate) async fn attempt(ctx: &mut Ctx) -> Result<(Ws, Welcome), Failure> {
    let token = token(ctx).await?;
    let endpoint = ctx.endpoint_url();
    tracing::debug!(endpoint, "tether-client: connecting");
    let mut ws = transport::open(&ctx.cfg, &endpoint, &token)
        .await
        .map_err(Failure::Io)?;
    let hello = ClientFrame::Hello {
        token: None,
        resume: ctx.session.resume(),
        client: Some(ClientMeta {
            name: Some(ctx.cfg.client_name.clone()),
            version: Some(ctx.cfg.client_version.clone()),
        }),
    };
    tokio::time::timeout(
        ctx.cfg.write_timeout,
        ws.send(Message::text(hello.to_json())),
    )
    .await
    .map_err(|_| Failure::Io(format!("{endpoint}: hello write timed out")))?
    .map_err(|e| Failure::Io(format!("{endpoint}: {e}")))?;
    let deadline = tokio::time::Instant::now() + ctx.cfg.connect_timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| Failure::Io(format!("{endpoint}: no welcome in time")))?;
        match msg {
            Some(Ok(Message::Text(t))) => match ServerMessage::parse(&t) {
                Some(ServerMessage::Welcome(w)) => return Ok((ws, w)),
                Some(ServerMessage::Error { code, message }) => {
                    tracing::debug!(code, message, "tether-client: error before welcome");
                }
                _ => tracing::debug!("tether-client: unexpected frame before welcome"),
            },
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                // Let tungstenite send the closing handshake reply, briefly.
                let _ = tokio::time::timeout(ctx.cfg.write_timeout, ws.close(None)).await;
                return Err(Failure::Closed { code, reason });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Failure::Io(format!("{endpoint}: {e}"))),
            None => return Err(Failure::Io(format!("{endpoint}: closed before welcome"))),
        }
    }
}
