//! JSON frames. Client frames are parsed strictly (unknown `type` or fields of the wrong type
//! are protocol errors); server frames are built by the node.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use tether_protocol::{
    MAX_CHANNEL_BYTES, MAX_CLIENT_FIELD_BYTES, MAX_RESUME_TOKEN_BYTES, MAX_SESSION_ID_BYTES,
};

/// Resume request in `hello.resume`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub session_id: String,
    pub resume_token: String,
    #[serde(default)]
    pub last_seq: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMeta {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// A frame sent by the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Hello {
        token: Option<String>,
        resume: Option<ResumeRequest>,
        client: Option<ClientMeta>,
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
        // Not `RawValue`: serde buffers internally tagged enums, which RawValue cannot survive.
        data: serde_json::Value,
    },
    Ack {
        seq: u64,
    },
}

impl ClientFrame {
    /// Parses a frame and bounds the fields the node keeps: an oversized client name would
    /// otherwise be written to the replicated log, and oversized ids cost lookups for nothing.
    /// Channel names are bounded here too; their grammar is checked by the handler, which
    /// answers `bad_channel`.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let frame: ClientFrame = serde_json::from_str(text).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                FrameError::NotJson
            } else {
                // serde's message names the bad field/variant; it never contains the payload.
                FrameError::Invalid(e.to_string())
            }
        })?;
        frame.check_bounds()?;
        Ok(frame)
    }

    fn check_bounds(&self) -> Result<(), FrameError> {
        let bound = |field: &'static str, value: Option<&str>, max: usize| match value {
            Some(v) if v.len() > max => Err(FrameError::TooLong { field, max }),
            _ => Ok(()),
        };
        match self {
            ClientFrame::Hello { resume, client, .. } => {
                if let Some(c) = client {
                    bound("client.name", c.name.as_deref(), MAX_CLIENT_FIELD_BYTES)?;
                    bound(
                        "client.version",
                        c.version.as_deref(),
                        MAX_CLIENT_FIELD_BYTES,
                    )?;
                }
                if let Some(r) = resume {
                    bound(
                        "resume.session_id",
                        Some(&r.session_id),
                        MAX_SESSION_ID_BYTES,
                    )?;
                    bound(
                        "resume.resume_token",
                        Some(&r.resume_token),
                        MAX_RESUME_TOKEN_BYTES,
                    )?;
                }
                Ok(())
            }
            ClientFrame::Subscribe { channel, .. }
            | ClientFrame::Unsubscribe { channel, .. }
            | ClientFrame::Publish { channel, .. } => {
                bound("channel", Some(channel), MAX_CHANNEL_BYTES)
            }
            ClientFrame::Refresh { .. } | ClientFrame::Ack { .. } => Ok(()),
        }
    }
}

/// Why a client frame was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame is not valid JSON")]
    NotJson,
    #[error("invalid frame: {0}")]
    Invalid(String),
    #[error("binary frames are not supported")]
    Binary,
    #[error("field `{field}` is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented client frame parses.
    #[test]
    fn parses_documented_frames() {
        let frames = [
            r#"{"type":"hello","token":"x","resume":{"session_id":"s","resume_token":"r","last_seq":41},"client":{"name":"ios","version":"1.4.0"}}"#,
            r#"{"type":"hello"}"#,
            r#"{"type":"refresh","id":7,"token":"t"}"#,
            r#"{"type":"subscribe","id":8,"channel":"chat.room1"}"#,
            r#"{"type":"unsubscribe","id":9,"channel":"chat.room1"}"#,
            r#"{"type":"publish","id":10,"channel":"chat.room1","data":{"a":[1,2]}}"#,
            r#"{"type":"ack","seq":57}"#,
        ];
        for f in frames {
            ClientFrame::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    /// Malformed frames are classified, never panic.
    #[test]
    fn rejects_malformed() {
        assert_eq!(ClientFrame::parse("{").unwrap_err(), FrameError::NotJson);
        assert_eq!(ClientFrame::parse("").unwrap_err(), FrameError::NotJson);
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"id":1}"#,
            r#"{"type":"subscribe","id":"x","channel":"a"}"#,
            r#"{"type":"subscribe","id":1}"#,
            r#"{"type":"ack","seq":-1}"#,
            r#"[1,2]"#,
            r#"{"type":"ack","seq":1,"extra":true}"#,
        ] {
            assert!(
                matches!(ClientFrame::parse(bad), Err(FrameError::Invalid(_))),
                "{bad}"
            );
        }
    }

    /// Oversized client name, version, resume ids and channel names are refused by field
    /// name, without echoing the value; fields at the limit pass.
    #[test]
    fn bounds_fields() {
        let long = |n: usize| "a".repeat(n);
        let cases = [
            (
                format!(r#"{{"type":"hello","client":{{"name":"{}"}}}}"#, long(65)),
                "client.name",
            ),
            (
                format!(
                    r#"{{"type":"hello","client":{{"version":"{}"}}}}"#,
                    long(65)
                ),
                "client.version",
            ),
            (
                format!(
                    r#"{{"type":"hello","resume":{{"session_id":"{}","resume_token":"r"}}}}"#,
                    long(65)
                ),
                "resume.session_id",
            ),
            (
                format!(
                    r#"{{"type":"hello","resume":{{"session_id":"s","resume_token":"{}"}}}}"#,
                    long(129)
                ),
                "resume.resume_token",
            ),
            (
                format!(r#"{{"type":"subscribe","id":1,"channel":"{}"}}"#, long(201)),
                "channel",
            ),
            (
                format!(
                    r#"{{"type":"unsubscribe","id":1,"channel":"{}"}}"#,
                    long(201)
                ),
                "channel",
            ),
            (
                format!(
                    r#"{{"type":"publish","id":1,"channel":"{}","data":1}}"#,
                    long(201)
                ),
                "channel",
            ),
        ];
        for (frame, field) in cases {
            match ClientFrame::parse(&frame) {
                Err(e @ FrameError::TooLong { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(field) && !msg.contains("aaaa"), "{msg}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let at_limit = format!(
            r#"{{"type":"hello","client":{{"name":"{}","version":"{}"}}}}"#,
            long(64),
            long(64)
        );
        assert!(ClientFrame::parse(&at_limit).is_ok());
    }

    /// Server frames serialize to the documented shapes.
    #[test]
    fn server_frames_shape() {
        let data = RawValue::from_string("{\"x\":1}".into()).unwrap();
        let ev = ServerFrame::Event {
            seq: 42,
            channel: "chat.room1",
            data: &data,
        }
        .to_json();
        assert_eq!(
            ev,
            r#"{"type":"event","seq":42,"channel":"chat.room1","data":{"x":1}}"#
        );
        assert_eq!(
            ServerFrame::ok(8).to_json(),
            r#"{"type":"reply","id":8,"ok":true}"#
        );
        let f = ServerFrame::fail(8, "forbidden", "no").to_json();
        assert_eq!(
            f,
            r#"{"type":"reply","id":8,"ok":false,"error":{"code":"forbidden","message":"no"}}"#
        );
    }
}
