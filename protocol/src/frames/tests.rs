use serde_json::Value;
use serde_json::value::RawValue;

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

/// What a client serializes is what the node parses back, field for field.
#[test]
fn client_frames_round_trip() {
    let frames = [
        ClientFrame::Hello {
            token: Some("t".into()),
            resume: Some(ResumeRequest {
                session_id: "s".into(),
                resume_token: "r".into(),
                last_seq: 4,
            }),
            client: Some(ClientMeta {
                name: Some("n".into()),
                version: Some("v".into()),
            }),
        },
        ClientFrame::hello(None),
        ClientFrame::Refresh {
            id: 1,
            token: "t".into(),
        },
        ClientFrame::Subscribe {
            id: 2,
            channel: "c".into(),
        },
        ClientFrame::Unsubscribe {
            id: 3,
            channel: "c".into(),
        },
        ClientFrame::Publish {
            id: 4,
            channel: "c".into(),
            data: serde_json::json!({"x": [1, "y"]}),
        },
        ClientFrame::Ack { seq: 9 },
    ];
    for f in frames {
        let json = f.to_json();
        assert_eq!(ClientFrame::parse(&json), Ok(f), "{json}");
    }
    assert_eq!(ClientFrame::hello(None).to_json(), r#"{"type":"hello"}"#);
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

/// Every frame the node writes is read back by a client as the same frame: the writer's
/// and the reader's definitions cannot drift apart unnoticed.
#[test]
fn server_frames_read_back() {
    let perms = vec!["chat.*".to_owned()];
    let dropped = vec!["chat.secret".to_owned()];
    let data = RawValue::from_string("{\"n\":7}".into()).unwrap();
    let cases = [
        (
            ServerFrame::Welcome {
                session_id: "s",
                resume_token: "r",
                resumed: true,
                recovered: false,
                seq: 3,
                expires_at: 99,
                permissions: &perms,
                node: "n1",
                region: "eu",
                heartbeat_ms: 25_000,
            },
            ServerMessage::Welcome(Welcome {
                session_id: "s".into(),
                resume_token: "r".into(),
                resumed: true,
                recovered: false,
                seq: 3,
                expires_at: Some(99),
                permissions: perms.clone(),
                node: "n1".into(),
                region: "eu".into(),
                heartbeat_ms: Some(25_000),
            }),
        ),
        (
            ServerFrame::fail(5, "forbidden", "no"),
            ServerMessage::Reply {
                id: 5,
                ok: false,
                error: Some(ErrorBody {
                    code: "forbidden".into(),
                    message: "no".into(),
                }),
            },
        ),
        (
            ServerFrame::Event {
                seq: 4,
                channel: "chat.a",
                data: &data,
            },
            ServerMessage::Event {
                seq: 4,
                channel: "chat.a".into(),
                data: serde_json::json!({"n": 7}),
            },
        ),
        (
            ServerFrame::Permissions {
                seq: 5,
                permissions: &perms,
                version: 2,
                dropped: &dropped,
            },
            ServerMessage::Permissions {
                seq: 5,
                permissions: perms.clone(),
                version: 2,
                dropped: dropped.clone(),
            },
        ),
        (
            ServerFrame::TokenExpiring { expires_at: 10 },
            ServerMessage::TokenExpiring {
                expires_at: Some(10),
            },
        ),
        (
            ServerFrame::Reconnect {
                after_ms: 250,
                reason: "drain",
            },
            ServerMessage::Reconnect {
                after_ms: 250,
                reason: "drain".into(),
            },
        ),
        (
            ServerFrame::Error {
                code: "bad_frame",
                message: "m",
            },
            ServerMessage::Error {
                code: "bad_frame".into(),
                message: "m".into(),
            },
        ),
    ];
    for (written, read) in cases {
        let json = written.to_json();
        let kind: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(kind["type"], read.kind(), "{json}");
        assert_eq!(ServerMessage::parse(&json), Some(read), "{json}");
    }
}

/// A client tolerates what a newer node may add, and refuses what is not a frame.
#[test]
fn messages_tolerate_extras() {
    let w = ServerMessage::parse(r#"{"type":"welcome","session_id":"s","future":1}"#);
    assert!(
        matches!(w, Some(ServerMessage::Welcome(Welcome { ref session_id, .. })) if session_id == "s")
    );
    assert_eq!(
        ServerMessage::parse(r#"{"type":"future_thing","x":1}"#),
        Some(ServerMessage::Unknown)
    );
    assert_eq!(ServerMessage::parse("not json"), None);
    assert_eq!(
        ServerMessage::parse(r#"{"type":"event","seq":"x","channel":"c"}"#),
        None
    );
    let ev = ServerMessage::parse(r#"{"type":"event","seq":8,"channel":"c"}"#);
    assert_eq!(ev.as_ref().and_then(ServerMessage::seq), Some(8));
    let v: Value = serde_json::from_str(&ClientFrame::Ack { seq: 9 }.to_json()).unwrap();
    assert_eq!(v, serde_json::json!({"type":"ack","seq":9}));
}
