//! `snapshot.bin`: written atomically, read in any storage format this build reads, and
//! migrated to the current one when it is older.

use std::io::Write;
use std::path::Path;

use super::{Fault, Machine, StoredSnapshot};
use crate::{codec, format};

/// Snapshot file name inside the data directory.
pub const SNAPSHOT_FILE: &str = "snapshot.bin";

/// Replaces `snapshot.bin` so that a crash leaves either the old or the new file, never a
/// torn one: write a temp file, fsync it, rename over, fsync the directory (the rename itself
/// is only durable once the directory entry is).
pub(super) fn write_atomically(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

pub(super) fn load_snapshot(dir: &Path) -> Result<Option<(StoredSnapshot, Machine)>, Fault> {
    let bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (version, body) = format::unwrap_snapshot(&bytes);
    format::check(&format!("{}", dir.join(SNAPSHOT_FILE).display()), version)?;
    let mut stored: StoredSnapshot = codec::decode_snapshot(body)?;
    let mut machine = decode_state("the state in snapshot.bin", &stored.data)?;
    machine.last_applied = stored.meta.last_log_id;
    machine.membership = stored.meta.last_membership.clone();
    if version < format::CURRENT {
        // Format 2 kept the encodings of format 1 and added the headers: migrating is
        // writing them. (A later format that changes an encoding re-encodes here.)
        stored.data = format::wrap_state(&codec::encode(&machine)?);
        write_atomically(dir, &format::wrap_snapshot(&codec::encode(&stored)?))?;
        tracing::info!(
            from = version,
            to = format::CURRENT,
            "snapshot file migrated"
        );
    }
    Ok(Some((stored, machine)))
}

/// The registry state of a snapshot, in any format this build reads.
pub(super) fn decode_state(what: &str, bytes: &[u8]) -> Result<Machine, Fault> {
    let (version, body) = format::unwrap_state(bytes);
    format::check(what, version)?;
    Ok(codec::decode_snapshot(body)?)
}

/// The storage format of `<dir>/snapshot.bin` (`None`: there is none), read without
/// changing anything, so a node can refuse a newer data dir before touching it.
pub fn stored_format(dir: &Path) -> std::io::Result<Option<u32>> {
    match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => Ok(Some(format::unwrap_snapshot(&bytes).0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
