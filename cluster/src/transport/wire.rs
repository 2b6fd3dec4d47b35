//! What travels on a peer connection: u32-length-prefixed frames whose payloads are
//! `crate::codec` encodings of [`Hello`] (once each way) and then [`Frame`]s.
//!
//! Public so tests (and debugging tools) can speak the protocol by hand.

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::TransportError;
use crate::NodeId;
use crate::codec;

/// Bumped whenever `Frame` or the app message enums change incompatibly.
pub const PROTOCOL_VERSION: u32 = 2;

/// First frame in each direction. Its layout is frozen across versions (a `u32` then a
/// `u64`) so that any two versions can at least tell each other they disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub node_id: NodeId,
}

/// Every frame after the hellos. `B` is the request body type on the way to the server and
/// the response body type on the way back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Encodes a value for sending, refusing it if it would not fit in a frame.
pub(super) fn encode_frame<T: Serialize>(
    value: &T,
    max_frame_bytes: usize,
) -> Result<Bytes, TransportError> {
    let bytes = codec::encode(value).map_err(|e| TransportError::Codec(e.to_string()))?;
    if bytes.len() > max_frame_bytes {
        return Err(TransportError::FrameTooLarge);
    }
    Ok(Bytes::from(bytes))
}

pub(super) fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, TransportError> {
    codec::decode(bytes).map_err(|e| TransportError::Codec(e.to_string()))
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

    /// A request round-trips through the frame encoding, and a body over the limit is
    /// refused before anything is sent.
    #[test]
    fn frames_round_trip_and_respect_the_limit() {
        let frame = Frame::Request {
            id: 7,
            body: "hi".to_string(),
        };
        let bytes = encode_frame(&frame, 1024).ok();
        let back = bytes.and_then(|b| decode_frame::<Frame<String>>(&b).ok());
        assert_eq!(back, Some(frame));
        let big = Frame::Request {
            id: 1,
            body: vec![0u8; 100],
        };
        assert!(matches!(
            encode_frame(&big, 50),
            Err(TransportError::FrameTooLarge)
        ));
    }
}
