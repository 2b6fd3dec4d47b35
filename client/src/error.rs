//! [`ClientError`]: everything a [`crate::Client`] call can fail with.

/// An error returned by [`crate::Client`] methods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The [`crate::ClientConfig`] is unusable (no endpoint, bad URL, `wss` without TLS, ...).
    #[error("invalid client config: {0}")]
    Config(String),
    /// The token provider failed; the message is the provider's.
    #[error("token provider failed: {0}")]
    Token(String),
    /// No endpoint accepted a connection; the message describes the last failure.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The server closed the session with a close code the SDK does not reconnect on
    /// (40xx, see `docs/client.md`). The client is finished.
    #[error("closed by server: {code} {reason}")]
    Closed {
        /// WebSocket close code, e.g. 4004.
        code: u16,
        /// Close reason, the code's name (e.g. `session_revoked`).
        reason: String,
    },
    /// The server answered a request with `ok:false`.
    #[error("request refused: {code}: {message}")]
    Refused {
        /// The server's error code, e.g. `forbidden`.
        code: String,
        /// The server's human-readable message.
        message: String,
    },
    /// No reply arrived within [`crate::ClientConfig::request_timeout`].
    #[error("request timed out")]
    Timeout,
    /// The connection dropped before the reply arrived. The request may or may not have
    /// been applied; retry if it is idempotent (subscribe, unsubscribe are).
    #[error("connection lost before the reply")]
    ConnectionLost,
    /// The client was closed with [`crate::Client::close`] or stopped after a terminal close.
    #[error("client is closed")]
    Shutdown,
}
