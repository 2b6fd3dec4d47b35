//! The admin listener's accept loop: HTTP/1.1 (over TLS when `tls.admin_*` is set) with a
//! header-read timeout and a cap on open connections, so a client that connects and says
//! nothing (or a flood of them) can neither hold the probes' descriptors nor starve `/livez`.
//!
//! With `tls.admin_client_ca`, a connection without a verified client certificate reaches
//! only `/livez` and `/readyz` (the kubelet's probes carry none); everything else answers 401.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use crate::metrics::Metrics;
use crate::net::AcceptBackoff;
use crate::tls::ServerTls;

/// A request's headers must arrive within this, from the connection's start or the end of
/// the previous response on a kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 75\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"admin connection limit reached\"}}";

/// Serves `router` on `listener` until `stop`, with at most `max_connections` open.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    router: Router,
    max_connections: usize,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let anonymous = router.clone().layer(axum::middleware::from_fn(probes_only));
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let tcp = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    backoff.failed(&metrics, &e).await;
                    continue;
                }
            },
        };
        backoff.reset();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.refused("admin_full");
            // Over TLS a plaintext answer would be noise to the client: closing is the refusal.
            if tls.is_none() {
                tokio::spawn(refuse(tcp));
            }
            continue;
        };
        let Some(tls) = &tls else {
            let svc = TowerToHyperService::new(router.clone());
            let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), svc));
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
            continue;
        };
        // The handshake runs in the connection's task (bounded like a request's headers) so
        // a slow client cannot hold up the accept loop; graceful shutdown covers what
        // finished its handshake.
        let (acceptor, verifies) = (tls.acceptor(), tls.verifies_clients());
        let (router, anonymous, http) = (router.clone(), anonymous.clone(), http.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(stream)) => stream,
                _ => return,
            };
            let certified = stream.get_ref().1.peer_certificates().is_some();
            let router = if verifies && !certified {
                anonymous
            } else {
                router
            };
            let svc = TowerToHyperService::new(router);
            let _ = watcher
                .watch(http.serve_connection(TokioIo::new(stream), svc))
                .await;
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Without a client certificate: the probes, and 401 for everything else.
async fn probes_only(req: Request, next: Next) -> Response {
    match req.uri().path() {
        "/livez" | "/readyz" => next.run(req).await,
        _ => ApiError::unauthorized(
            "this endpoint needs a client certificate signed by tls.admin_client_ca",
        )
        .into_response(),
    }
}

/// Answers 503 without reading the request; bounded in time like every other write.
async fn refuse(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        tcp.write_all(FULL).await?;
        tcp.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canned refusal's content-length is its body's.
    #[test]
    fn refusal_is_well_formed() {
        let text = std::str::from_utf8(FULL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
