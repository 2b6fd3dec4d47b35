//! Wire frames of protocol `tether.v1`: what the client sends ([`Outgoing`]) and what it
//! understands from the server ([`Incoming`]). Unknown server fields are ignored, unknown
//! frame types parse as [`Incoming::Unknown`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `hello.resume`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Resume {
    pub session_id: String,
    pub resume_token: String,
    pub last_seq: u64,
}

/// `hello.client`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// Client → server frames.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Outgoing {
    Hello {
        #[serde(skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
        client: ClientInfo,
    },
    Refresh {
        id: u64,
        token: String,
    },
    Subscribe {
        id: u64,
        channel: String,
    },
    Unsubscribe {
        id: u64,
        channel: String,
    },
    Publish {
        id: u64,
        channel: String,
        data: Value,
    },
    Ack {
        seq: u64,
    },
}

impl Outgoing {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to an empty object anyway.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Server `welcome`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct Welcome {
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
    pub node: String,
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
}

/// The `error` object of a refused reply.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct ReplyError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Server → client frames.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Incoming {
    Welcome(Welcome),
    Reply {
        id: u64,
        ok: bool,
        #[serde(default)]
        error: Option<ReplyError>,
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

impl Incoming {
    /// Parses a text frame; `None` for anything that is not a frame this SDK understands.
    pub fn parse(text: &str) -> Option<Incoming> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_frames_and_tolerates_extras() {
        let w = Incoming::parse(
            r#"{"type":"welcome","session_id":"s","resume_token":"r","resumed":false,
            "recovered":false,"seq":0,"expires_at":5,"permissions":[],"node":"n1","region":"x",
            "heartbeat_ms":25000}"#,
        );
        assert!(
            matches!(w, Some(Incoming::Welcome(Welcome { ref session_id, .. })) if session_id == "s")
        );
        assert_eq!(
            Incoming::parse(r#"{"type":"future_thing","x":1}"#),
            Some(Incoming::Unknown)
        );
        assert_eq!(Incoming::parse("not json"), None);
        assert_eq!(
            Incoming::parse(r#"{"type":"event","seq":"x","channel":"c"}"#),
            None
        );
    }

    #[test]
    fn serializes_client_frames() {
        let h = Outgoing::Hello {
            resume: Some(Resume {
                session_id: "s".into(),
                resume_token: "r".into(),
                last_seq: 4,
            }),
            client: ClientInfo {
                name: "n".into(),
                version: "v".into(),
            },
        };
        let v: Value = serde_json::from_str(&h.to_json()).unwrap_or_default();
        assert_eq!(v["type"], "hello");
        assert_eq!(v["resume"]["last_seq"], 4);
        let a: Value =
            serde_json::from_str(&Outgoing::Ack { seq: 9 }.to_json()).unwrap_or_default();
        assert_eq!(a, serde_json::json!({"type":"ack","seq":9}));
    }
}
