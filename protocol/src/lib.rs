//! Tether's wire protocol, the parts the node and every client must agree on.
//!
//! # Layout
//! - `close`: the close codes with their reason strings, and what a client does after each
//!   ([`Reconnect`]); the node closes with them, the SDKs act on them.
//! - `frames/`: the JSON frames: [`ClientFrame`] (built by clients, parsed strictly by the
//!   node), [`ServerFrame`] (written by the node) and [`ServerMessage`] (the same frames as
//!   a client reads them).
//! - this file: the subprotocol, the bearer-subprotocol prefix, the connect path, and the
//!   bounds the node puts on client fields.

mod close;
mod frames;

pub use close::{CloseCode, Reconnect, reconnect_after};
pub use frames::{
    ClientFrame, ClientMeta, ErrorBody, FrameError, ResumeRequest, ServerFrame, ServerMessage,
    Welcome,
};

/// The WebSocket subprotocol every client must offer (and the server echoes).
pub const SUBPROTOCOL: &str = "tether.v1";
/// Prefix of the subprotocol that carries a bearer token (browsers cannot set headers).
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "tether.bearer.";
/// The only path that upgrades.
pub const CONNECT_PATH: &str = "/v1/connect";

/// Longest `hello.client.name` and `hello.client.version`, in bytes.
pub const MAX_CLIENT_FIELD_BYTES: usize = 64;
/// Longest `hello.resume.session_id` (the node issues 32 hex characters).
pub const MAX_SESSION_ID_BYTES: usize = 64;
/// Longest `hello.resume.resume_token` (the node issues 43 base64url characters).
pub const MAX_RESUME_TOKEN_BYTES: usize = 128;
/// Longest channel name (and permission pattern), in bytes.
pub const MAX_CHANNEL_BYTES: usize = 200;
