//! Tether gateway node. The client wire protocol (frames, close codes, the subprotocol and
//! field bounds) is the `tether-protocol` crate, shared with the SDK and the test clients.
//!
//! # Layout
//! - `cli`: the `tether` command line (`serve`, `token`, `admin`); `main.rs` only calls it.
//! - `server`: builds a node from config + already-bound listeners and runs it.
//! - `config`: the TOML config, `TETHER_…` env overrides, validation naming the bad key.
//! - `dev`: dev mode (generated tenant/admin keys kept in the data dir).
//! - `context`: `NodeCtx`, the services shared by connections, dispatcher and admin API,
//!   and the `Isolation` flag the isolation monitor sets.
//! - `gateway`: client listener: upgrade, token carriers, `hello`, admission through the log.
//! - `session`: everything about a live session on this node: the connection actor (ractor),
//!   its socket tasks and supervisor, the outbox and resume, the cross-node handover, the
//!   session directory, the dispatcher of applied registry events, the orphan reaper, publish
//!   fan-out and the node-level RPCs between nodes.
//! - `auth`: JWT verification per tenant (inline keys, JWKS), admin tokens, minting for dev.
//! - `perms`: the `sub:`/`pub:` permission grammar and channel matching.
//! - `admin`: the admin HTTP API, probes and `/metrics`.
//! - `limits`: connection caps, pending upgrades and handshake rate per IP.
//! - `net`: the client's real address (PROXY protocol, forwarded headers of trusted
//!   proxies, IPv6 prefixes) and the open-file limit.
//! - `metrics`, `audit`: Prometheus text and the JSON audit log.
//! - `tls`: TLS of the client (`wss`) and admin listeners; certificate reload (peer too).
//! - `peer`: peer transport settings (the node-level RPCs are `session::rpc`).
//! - `isolation`: the registry lease; fail closed (4111) when cut off from the quorum.
//! - `telemetry`: logs to stderr, and OTLP trace export switched on by `OTEL_*`.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod dev;
pub mod gateway;
pub mod idp;
pub mod isolation;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod peer;
pub mod perms;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tls;
