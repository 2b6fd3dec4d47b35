//! The client wire protocol: frames (JSON text) and close codes.

pub mod close;
pub mod frames;

pub use close::CloseCode;
pub use frames::{ClientFrame, ErrorBody, FrameError, ResumeRequest, ServerFrame};

/// The WebSocket subprotocol every client must offer.
pub const SUBPROTOCOL: &str = "tether.v1";
/// Prefix of the subprotocol that carries a bearer token (browsers cannot set headers).
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "tether.bearer.";
/// The only path that upgrades.
pub const CONNECT_PATH: &str = "/v1/connect";
