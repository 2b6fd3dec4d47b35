//! Test harness: spawns real `tether` processes on loopback (port 0) and drives them with real
//! WebSocket clients and the real admin API. Tokens are minted here with jsonwebtoken, not
//! with the node's code, so a bug in the node's token handling cannot hide in the tests.
//!
//! # Layout
//! - `node`: `TestNode`, a `tether serve` child process on a temp data dir.
//! - `config`: `NodeSpec` and the TOML config a test node runs with.
//! - `client`: `WsClient`, a WebSocket client with frame/close helpers and deadlines.
//! - `tokens`: test keys and token minting.
//! - `admin`: admin API calls.
//! - `proxy`: `Proxy`, an in-process TCP fault proxy that can cut the client link.
//! - `cluster`: `TestCluster`, several nodes forming one cluster over mutual TLS.
//! - `drain_load`: SDK sessions that record what they saw, and a steady publisher (drain).
//! - `otlp`: `Receiver`, a real OTLP trace receiver (HTTP or gRPC, `opentelemetry-proto`).
//! - `idp`: the harness as an identity provider: JWKS server, logout tokens, SETs, posts.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod config;
pub mod drain_load;
pub mod idp;
pub mod node;
pub mod otlp;
pub mod proxy;
pub mod tokens;

use std::time::Duration;

/// Generous deadline for anything a healthy node does "at once", on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some` or `deadline` passes.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
