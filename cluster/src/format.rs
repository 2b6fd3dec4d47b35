//! Storage format versions of the data directory: the Raft log (a `format` key in its meta
//! table), the snapshot file and the registry state inside it (each a magic and a version
//! in front of the bincode). A node reads its own format and the one before it, migrating
//! on load, and refuses anything newer without writing a byte, so a downgrade (or a data
//! dir from a newer build) stops the node instead of being misread.
//!
//! | format | written by | what changed |
//! |---|---|---|
//! | 1 | builds before versions | nothing was versioned: bare bincode everywhere |
//! | 2 | this build | the stamps and headers below; entries and state encode as in 1 |
//!
//! When an encoding changes, bump [`CURRENT`], keep decoding the previous format (a frozen
//! copy of its types if need be), and commit a data dir it wrote under `tests/fixtures/`.

/// The format this build writes.
pub const CURRENT: u32 = 2;
/// The oldest format this build reads (and migrates).
pub const OLDEST: u32 = 1;
/// What a file without a version is: written before versions existed.
pub const UNVERSIONED: u32 = 1;

const SNAPSHOT_MAGIC: &[u8; 8] = b"TTHRSNAP";
const STATE_MAGIC: &[u8; 8] = b"TTHRSTAT";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "{what} is in storage format {found}, newer than this build's {CURRENT}: it was written \
         by a newer Tether. Refusing to open it; nothing was changed. Run that build again, or \
         restore a backup this build made"
    )]
    Newer { what: String, found: u32 },
    #[error(
        "{what} is in storage format {found}, older than the oldest this build reads \
         ({OLDEST}); upgrade through an intermediate release"
    )]
    TooOld { what: String, found: u32 },
}

/// Accepts `found` if this build reads it.
pub fn check(what: &str, found: u32) -> Result<(), FormatError> {
    let what = what.to_owned();
    match found {
        f if f > CURRENT => Err(FormatError::Newer { what, found }),
        f if f < OLDEST => Err(FormatError::TooOld { what, found }),
        _ => Ok(()),
    }
}

/// The snapshot file's bytes: magic, version, then `body`.
pub fn wrap_snapshot(body: &[u8]) -> Vec<u8> {
    wrap(SNAPSHOT_MAGIC, body)
}

/// The snapshot file's format and body; a file without the magic is format 1.
pub fn unwrap_snapshot(bytes: &[u8]) -> (u32, &[u8]) {
    unwrap(SNAPSHOT_MAGIC, bytes)
}

/// The registry state's bytes (stored in the snapshot, and sent to peers that install it).
pub fn wrap_state(body: &[u8]) -> Vec<u8> {
    wrap(STATE_MAGIC, body)
}

pub fn unwrap_state(bytes: &[u8]) -> (u32, &[u8]) {
    unwrap(STATE_MAGIC, bytes)
}

fn wrap(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&CURRENT.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Format-1 bytes are bare bincode. A snapshot file of format 1 starts with an `Option` tag
/// (0 or 1), never the magic. A format-1 state starts with its tenant count and the first
/// tenant id's length: it would take exactly 84 tenants, the first one's id 84 bytes long
/// and beginning `HRSTAT`, to look like a header.
fn unwrap<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> (u32, &'a [u8]) {
    match bytes.strip_prefix(magic.as_slice()) {
        Some(rest) if rest.len() >= 4 => {
            let (version, body) = rest.split_at(4);
            let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
            (version, body)
        }
        _ => (UNVERSIONED, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is wrapped unwraps to the current format and the same body; bare bytes are
    /// format 1; newer and older formats are refused.
    #[test]
    fn headers_round_trip_and_versions_are_checked() {
        let wrapped = wrap_snapshot(b"body");
        assert_eq!(unwrap_snapshot(&wrapped), (CURRENT, b"body".as_slice()));
        assert_eq!(unwrap_state(&wrap_state(b"")), (CURRENT, b"".as_slice()));
        assert_eq!(
            unwrap_snapshot(b"\x01\x02"),
            (UNVERSIONED, b"\x01\x02".as_slice())
        );
        // The state magic is not the snapshot's.
        assert_eq!(unwrap_snapshot(&wrap_state(b"x")).0, UNVERSIONED);
        assert!(check("log", CURRENT).is_ok() && check("log", OLDEST).is_ok());
        assert!(
            matches!(check("log", CURRENT + 1), Err(FormatError::Newer { found, .. }) if found == CURRENT + 1)
        );
        assert!(matches!(check("log", 0), Err(FormatError::TooOld { .. })));
    }
}
