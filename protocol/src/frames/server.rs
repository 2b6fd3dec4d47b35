//! Server → client frames as the node writes them. They borrow: a fan-out serializes one
//! event per recipient, and the payload is already JSON (`RawValue`), so nothing is copied.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `error` object of a refused reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// A frame sent by the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        session_id: &'a str,
        resume_token: &'a str,
        resumed: bool,
        recovered: bool,
        seq: u64,
        expires_at: u64,
        permissions: &'a [String],
        node: &'a str,
        region: &'a str,
        heartbeat_ms: u64,
    },
    Reply {
        id: u64,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    Event {
        seq: u64,
        channel: &'a str,
        data: &'a RawValue,
    },
    Permissions {
        seq: u64,
        permissions: &'a [String],
        version: u64,
        dropped: &'a [String],
    },
    TokenExpiring {
        expires_at: u64,
    },
    Reconnect {
        after_ms: u64,
        reason: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }

    pub fn ok(id: u64) -> ServerFrame<'static> {
        ServerFrame::Reply {
            id,
            ok: true,
            error: None,
        }
    }

    pub fn fail(id: u64, code: &str, message: &str) -> ServerFrame<'static> {
        ServerFrame::Reply {
            id,
            ok: false,
            error: Some(ErrorBody {
                code: code.to_owned(),
                message: message.to_owned(),
            }),
        }
    }
}
