//! What travels on a peer connection: u32-length-prefixed frames whose payloads are
//! `crate::codec` encodings of [`Hello`] (once each way) and then [`Frame`]s.
//!
//! Public so tests (and debugging tools) can speak the protocol by hand.

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::TransportError;
use crate::NodeId;
use crate::codec;

/// The newest peer protocol this build speaks. Bumped whenever a message changes
/// incompatibly; the previous version stays spoken (see [`WireMessage`]), so a rolling
/// upgrade mixes adjacent builds.
///
/// | version | change |
/// |---|---|
/// | 1 | first |
/// | 2 | `PeerRequest::App` carries the caller's `traceparent`; the `IdpSignal` command |
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest peer protocol this build still speaks.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// First frame in each direction. Its layout is frozen across versions (a `u32` then a
/// `u64`): `protocol` is the newest version the sender speaks, and both sides then use the
/// lower of the two ([`negotiate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub node_id: NodeId,
}

/// The version a connection speaks: the lower of the two sides' newest, if this build
/// still speaks it. Both sides compute the same answer from the two hellos.
pub fn negotiate(ours: u32, theirs: u32) -> Result<u32, String> {
    let common = ours.min(theirs);
    if common < MIN_PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks protocol versions up to {theirs}, we speak {MIN_PROTOCOL_VERSION}..={ours}"
        ));
    }
    Ok(common)
}

/// A message body as written on a connection of a given protocol version. Types whose
/// encoding never changed use [`plain_wire_message!`](crate::plain_wire_message).
pub trait WireMessage: Sized + Send + 'static {
    fn encode_for(&self, protocol: u32, out: &mut Vec<u8>) -> Result<(), codec::CodecError>;
    fn decode_for(bytes: &[u8], protocol: u32) -> Result<Self, codec::CodecError>;
}

/// Implements [`WireMessage`] as the plain `codec` encoding, the same in every version.
#[macro_export]
macro_rules! plain_wire_message {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::transport::wire::WireMessage for $t {
            fn encode_for(
                &self,
                _protocol: u32,
                out: &mut Vec<u8>,
            ) -> Result<(), $crate::codec::CodecError> {
                $crate::codec::encode_into(self, out)
            }
            fn decode_for(bytes: &[u8], _protocol: u32) -> Result<Self, $crate::codec::CodecError> {
                $crate::codec::decode(bytes)
            }
        }
    )+};
}

/// Every frame after the hellos. `B` is the request body type on the way to the server and
/// the response body type on the way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<B> {
    /// Client → server: a call; `id` is unique among the connection's outstanding calls.
    Request { id: u64, body: B },
    /// Server → client: the handler's answer to request `id`.
    Response { id: u64, body: B },
    /// Server → client: request `id` was received but cannot be answered.
    Failed { id: u64, reason: String },
    /// Client → server liveness probe on an idle connection.
    Ping,
    /// Server → client answer to `Ping`.
    Pong,
}

/// A frame without its body, in the layout of `Frame` as serde writes it (variant index,
/// fields): a frame is its head followed by the body's own encoding, byte for byte what
/// builds before [`WireMessage`] sent.
#[derive(Debug, Serialize, Deserialize)]
enum Head {
    Request { id: u64 },
    Response { id: u64 },
    Failed { id: u64, reason: String },
    Ping,
    Pong,
}

/// Byte stream under the frames: plain TCP or either side of a TLS session.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

pub type PeerFramed = Framed<Box<dyn PeerIo>, LengthDelimitedCodec>;

/// The frame codec: a big-endian u32 length, then that many bytes, at most `max_frame_bytes`.
/// A longer incoming frame is a read error, which closes the connection.
pub fn frame_codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// Encodes a frame for a connection of `protocol`, refusing it if it would not fit.
pub(super) fn encode_frame<B: WireMessage>(
    frame: &Frame<B>,
    protocol: u32,
    max_frame_bytes: usize,
) -> Result<Bytes, TransportError> {
    let (head, body) = match frame {
        Frame::Request { id, body } => (Head::Request { id: *id }, Some(body)),
        Frame::Response { id, body } => (Head::Response { id: *id }, Some(body)),
        Frame::Failed { id, reason } => (
            Head::Failed {
                id: *id,
                reason: reason.clone(),
            },
            None,
        ),
        Frame::Ping => (Head::Ping, None),
        Frame::Pong => (Head::Pong, None),
    };
    let codec_err = |e: codec::CodecError| TransportError::Codec(e.to_string());
    let mut bytes = codec::encode(&head).map_err(codec_err)?;
    if let Some(body) = body {
        body.encode_for(protocol, &mut bytes).map_err(codec_err)?;
    }
    if bytes.len() > max_frame_bytes {
        return Err(TransportError::FrameTooLarge);
    }
    Ok(Bytes::from(bytes))
}

/// The frame in `bytes`, read as a connection of `protocol` writes it.
pub(super) fn decode_frame<B: WireMessage>(
    bytes: &[u8],
    protocol: u32,
) -> Result<Frame<B>, TransportError> {
    let codec_err = |e: codec::CodecError| TransportError::Codec(e.to_string());
    let (head, used) = codec::decode_prefix::<Head>(bytes).map_err(codec_err)?;
    let rest = &bytes[used..];
    let body = || B::decode_for(rest, protocol).map_err(codec_err);
    let bodiless = |frame| match rest.is_empty() {
        true => Ok(frame),
        false => Err(TransportError::Codec(format!(
            "{} bytes after a frame without a body",
            rest.len()
        ))),
    };
    match head {
        Head::Request { id } => Ok(Frame::Request { id, body: body()? }),
        Head::Response { id } => Ok(Frame::Response { id, body: body()? }),
        Head::Failed { id, reason } => bodiless(Frame::Failed { id, reason }),
        Head::Ping => bodiless(Frame::Ping),
        Head::Pong => bodiless(Frame::Pong),
    }
}

/// Sends our hello. Errors are strings: the caller decides how to classify them.
pub(super) async fn send_hello(framed: &mut PeerFramed, hello: Hello) -> Result<(), String> {
    let bytes = codec::encode(&hello).map_err(|e| format!("encoding hello: {e}"))?;
    framed
        .send(Bytes::from(bytes))
        .await
        .map_err(|e| format!("sending hello: {e}"))
}

/// Reads the peer's hello (any protocol version; the caller compares).
pub(super) async fn recv_hello(framed: &mut PeerFramed) -> Result<Hello, String> {
    match framed.next().await {
        Some(Ok(bytes)) => codec::decode(&bytes).map_err(|e| format!("bad hello: {e}")),
        Some(Err(e)) => Err(format!("reading hello: {e}")),
        None => Err("closed before hello".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::plain_wire_message!(String);

    /// A frame is its head then its body: the same bytes serde wrote for the whole `Frame`
    /// before bodies were versioned, so older builds read it.
    #[test]
    fn frames_keep_the_serde_layout() {
        #[derive(Serialize)]
        enum Whole {
            Request { id: u64, body: String },
        }
        let old = codec::encode(&Whole::Request {
            id: 9,
            body: "hi".into(),
        });
        let frame = Frame::Request {
            id: 9,
            body: "hi".to_string(),
        };
        let new = encode_frame(&frame, PROTOCOL_VERSION, 1024).map(|b| b.to_vec());
        assert_eq!(old.ok(), new.ok());
    }

    /// Both sides agree on the lower version; one below what we still speak is refused.
    #[test]
    fn versions_negotiate_down() {
        assert_eq!(negotiate(2, 1), Ok(1));
        assert_eq!(negotiate(1, 2), Ok(1));
        assert_eq!(negotiate(2, 7), Ok(2));
        assert!(negotiate(2, 0).is_err());
    }

    /// A request round-trips through the frame encoding, and a body over the limit is
    /// refused before anything is sent.
    #[test]
    fn frames_round_trip_and_respect_the_limit() {
        let frame = Frame::Request {
            id: 7,
            body: "hi".to_string(),
        };
        let bytes = encode_frame(&frame, PROTOCOL_VERSION, 1024).ok();
        let back = bytes.and_then(|b| decode_frame::<String>(&b, PROTOCOL_VERSION).ok());
        assert_eq!(back, Some(frame));
        let big = Frame::Request {
            id: 1,
            body: "x".repeat(100),
        };
        assert!(matches!(
            encode_frame(&big, PROTOCOL_VERSION, 50),
            Err(TransportError::FrameTooLarge)
        ));
    }
}
