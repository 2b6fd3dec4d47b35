//! The one place bincode is used: encoding of log entries, votes and snapshots.
//!
//! Keeping bincode behind two functions means a format change (or a bincode upgrade) touches
//! one file, and every decode gets the same size limit.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest value `decode` accepts. Log entries, votes and RPC payloads are tiny; the limit
/// exists so corrupt or hostile bytes (a huge length prefix) cannot make us allocate without
/// bound before noticing they are garbage.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// Largest snapshot `decode_snapshot` accepts. A snapshot holds the whole registry, which
/// grows with live sessions (~200 B each), so it gets a higher but still finite ceiling.
pub const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The bytes held a complete value followed by junk: treat as corruption, not success.
    #[error("decode: {extra} trailing bytes after the value")]
    TrailingBytes { extra: usize },
}

/// Encodes `value` with bincode's standard (varint, little endian) configuration.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())?;
    Ok(())
}

/// Decodes a value from the front of `bytes`; returns it and how many bytes it took (the
/// rest is the caller's, e.g. a frame body after its header).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    let config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();
    Ok(bincode::serde::decode_from_slice(bytes, config)?)
}

/// Decodes a value written by [`encode`], refusing anything above [`MAX_DECODE_BYTES`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();
    let (value, read) = bincode::serde::decode_from_slice(bytes, config)?;
    check_consumed(bytes.len(), read)?;
    Ok(value)
}

/// Decodes a snapshot written by [`encode`], refusing anything above [`MAX_SNAPSHOT_BYTES`].
pub fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>();
    let (value, read) = bincode::serde::decode_from_slice(bytes, config)?;
    check_consumed(bytes.len(), read)?;
    Ok(value)
}

fn check_consumed(len: usize, read: usize) -> Result<(), CodecError> {
    if read == len {
        Ok(())
    } else {
        Err(CodecError::TrailingBytes {
            extra: len.saturating_sub(read),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Envelope};

    /// An envelope survives an encode/decode round trip unchanged.
    #[test]
    fn round_trip() {
        let env = Envelope {
            at_ms: 42,
            traceparent: Some("00-abc-def-01".into()),
            command: Command::RevokeToken {
                tenant: "t".into(),
                jti: "j".into(),
                exp: 9,
            },
        };
        let bytes = encode(&env).unwrap();
        assert_eq!(decode::<Envelope>(&bytes).unwrap(), env);
    }

    /// A length prefix claiming more than the limit is refused instead of allocated.
    #[test]
    fn huge_length_prefix_is_refused() {
        // Varint tag 253 = "u64 follows": a Vec<u8> claiming u64::MAX bytes, then nothing.
        let bytes = [253, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode_snapshot::<Vec<u8>>(&bytes).is_err());
    }

    /// Garbage and trailing bytes are errors, never a silently accepted value.
    #[test]
    fn garbage_is_an_error() {
        assert!(decode::<Envelope>(&[0xFB, 0x01]).is_err());
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
    }
}
