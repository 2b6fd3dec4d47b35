//! Client → server frames. The node parses them strictly (unknown `type` or fields of the
//! wrong type are protocol errors); clients serialize the same type, so the two cannot drift.

use serde::{Deserialize, Serialize};

use crate::{
    MAX_CHANNEL_BYTES, MAX_CLIENT_FIELD_BYTES, MAX_RESUME_TOKEN_BYTES, MAX_SESSION_ID_BYTES,
};

/// `hello.resume`: the session to take up again and the last event the client has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub session_id: String,
    pub resume_token: String,
    #[serde(default)]
    pub last_seq: u64,
}

/// `hello.client`: what the client says it is (logged and audited, bounded in length).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumeRequest>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// A `hello` with nothing but the optional resume request (the token rides on the
    /// upgrade request's header or subprotocol).
    pub fn hello(resume: Option<ResumeRequest>) -> ClientFrame {
        ClientFrame::Hello {
            token: None,
            resume,
            client: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses a frame and bounds the fields the node keeps: an oversized client name would
    /// otherwise be written to the replicated log, and oversized ids cost lookups for nothing.
    /// Channel names are bounded here too; their grammar is checked by the node's handler,
    /// which answers `bad_channel`.
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
