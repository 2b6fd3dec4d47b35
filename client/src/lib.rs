//! Rust client SDK for Tether, the clustered WebSocket gateway.
//!
//! ```no_run
//! use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};
//!
//! # async fn demo() -> Result<(), tether_client::ClientError> {
//! let cfg = ClientConfig::new(["ws://127.0.0.1:7070/v1/connect"]);
//! let client = Client::connect(cfg, StaticToken("<jwt>".into())).await?;
//! let mut events = client.events().expect("first call");
//! client.subscribe("chat.room1").await?;
//! client.publish("chat.room1", serde_json::json!({"text": "hi"})).await?;
//! while let Some(ev) = events.recv().await {
//!     if let ClientEvent::Event { seq, channel, data } = ev {
//!         println!("{seq} {channel} {data}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The client speaks protocol `tether.v1` (see `docs/protocol.md`), sends the token as
//! `Authorization: Bearer`, refreshes it in-band before it expires, reconnects with
//! full-jitter exponential backoff according to the close code, resumes the session with
//! the highest `seq` seen, drops duplicate events, and fails over between endpoints.
//! `docs/client.md` has the reconnect policy table.
//!
//! # Layout
//!
//! | file | responsibility |
//! |---|---|
//! | `client.rs` | [`Client`]: the handle; requests with timeouts; `close` |
//! | `config.rs` | [`ClientConfig`]: endpoints, timeouts, backoff, buffer bounds; validation |
//! | `token.rs` | [`TokenProvider`], [`StaticToken`], [`token_fn`]; reading a JWT's `exp` |
//! | `event.rs` | [`ClientEvent`] and the [`Events`] stream |
//! | `error.rs` | [`ClientError`] |
//! | `driver.rs` | background task: first connect, reconnect loop, failover |
//! | `handshake.rs` | one attempt: token, upgrade, `hello` (+ `resume`), `welcome` |
//! | `conn.rs` | one live connection: frames, delivery, acks, replies, refresh, advice |
//! | `session.rs` | state kept across connections: session, `last_seq`, subscriptions, token |
//! | `refresh.rs` | when to refresh the token in-band; the provider call in progress |
//! | `pending.rs` | requests in flight and their replies |
//! | `policy.rs` | close code → action, full-jitter backoff |
//! | `transport.rs` | TCP/TLS + WebSocket upgrade with `tether.v1` and the bearer header |

#![deny(missing_docs)]

mod client;
mod config;
mod conn;
mod driver;
mod error;
mod event;
mod handshake;
mod pending;
mod policy;
mod refresh;
mod session;
mod token;
mod transport;

pub use client::Client;
pub use config::ClientConfig;
pub use error::ClientError;
pub use event::{ClientEvent, Events};
pub use session::ResumeState;
pub use token::{FnToken, StaticToken, TokenFuture, TokenProvider, token_fn};
