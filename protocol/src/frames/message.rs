//! Server → client frames as a client reads them: owned, and tolerant. Unknown fields are
//! ignored and an unknown `type` parses as [`ServerMessage::Unknown`], so a node may add
//! to the protocol without breaking clients already shipped.

use serde::Deserialize;
use serde_json::Value;

use super::ErrorBody;

/// The `welcome` frame.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Welcome {
    pub session_id: String,
    #[serde(default)]
    pub resume_token: String,
    #[serde(default)]
    pub resumed: bool,
    #[serde(default)]
    pub recovered: bool,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
}

/// A frame received from the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome(Welcome),
    Reply {
        id: u64,
        ok: bool,
        #[serde(default)]
        error: Option<ErrorBody>,
    },
    Event {
        seq: u64,
        channel: String,
        #[serde(default)]
        data: Value,
    },
    Permissions {
        seq: u64,
        #[serde(default)]
        permissions: Vec<String>,
        #[serde(default)]
        version: u64,
        #[serde(default)]
        dropped: Vec<String>,
    },
    TokenExpiring {
        #[serde(default)]
        expires_at: Option<u64>,
    },
    Reconnect {
        #[serde(default)]
        after_ms: u64,
        #[serde(default)]
        reason: String,
    },
    Error {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    },
    #[serde(other)]
    Unknown,
}

impl ServerMessage {
    /// Parses a text frame; `None` for anything that is not a frame of this protocol.
    pub fn parse(text: &str) -> Option<ServerMessage> {
        serde_json::from_str(text).ok()
    }

    /// The frame's `type` as written on the wire (`unknown` for a type this crate does not
    /// know).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::Reply { .. } => "reply",
            ServerMessage::Event { .. } => "event",
            ServerMessage::Permissions { .. } => "permissions",
            ServerMessage::TokenExpiring { .. } => "token_expiring",
            ServerMessage::Reconnect { .. } => "reconnect",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Unknown => "unknown",
        }
    }

    /// The `seq` of an event or permissions frame: the frames a resume replays.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::Event { seq, .. } | ServerMessage::Permissions { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}
