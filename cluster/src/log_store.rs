//! The durable Raft log and vote, in a redb file (`<data_dir>/raft-log.redb`).
//!
//! Raft's safety rests on two promises to peers: "I voted for X in term T" and "I hold these
//! entries". Both must survive a crash, so `save_vote`, `append`, `truncate` and `purge`
//! commit with `Durability::Immediate` (fsync) before they return or report completion.
//!
//! redb calls block on disk I/O, so each runs on `spawn_blocking`: an fsync can take
//! milliseconds and must not stall the runtime threads that drive heartbeats and sockets.
//! Entries are encoded/decoded on the async side via `codec`, so the blocking closures only
//! move bytes.
//!
//! The meta table's `format` key holds the storage format (`crate::format`). A log without
//! it was written in format 1; opening stamps the current one.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::{codec, format};

/// Log index → encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// `VOTE`/`COMMITTED`/`LAST_PURGED` → encoded value.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";
const FORMAT: &str = "format";

/// Log file name inside the data directory.
pub const LOG_FILE: &str = "raft-log.redb";

/// Why a storage call failed, before it is mapped into openraft's `StorageError` (which
/// records *what* was being read or written).
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error(transparent)]
    Redb(#[from] DbError),
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error("storage task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A redb error, boxed: `redb::Error` is large and would bloat every `Result` on the hot
/// path. Converts from each of redb's per-call error types so closures can use `?`.
#[derive(Debug, thiserror::Error)]
#[error("redb: {0}")]
struct DbError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for DbError {
    fn from(e: E) -> Self {
        DbError(Box::new(e.into()))
    }
}

/// redb's page cache for the log. redb's default (1 GiB) kept every written page in memory:
/// about 15 KiB per session opened, measured by the benchmark's memory scenario. Replication
/// reads recent entries, which this covers many times over.
const LOG_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Durable log store; cheap to clone (the reader handed to replication tasks is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The committed id last saved, encoded, until a write transaction carries it to disk
    /// (see `save_committed`).
    committed: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl LogStore {
    /// Opens (or creates) `<data_dir>/raft-log.redb`, makes sure both tables exist, so
    /// later read transactions never see a missing table, and stamps the current storage
    /// format. Callers check [`LogStore::stored_format`] first: this writes.
    pub async fn open(data_dir: &Path) -> Result<LogStore, StorageError> {
        let path = data_dir.join(LOG_FILE);
        let stamp = codec::encode(&format::CURRENT)
            .map_err(|e| StorageIOError::<crate::NodeId>::write_logs(&e))?;
        let db = blocking(move || {
            let db = redb::Builder::new()
                .set_cache_size(LOG_CACHE_BYTES)
                .create(path)?;
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(ENTRIES)?;
            // Format 2 kept format 1's entry and meta encodings: migrating is the stamp.
            txn.open_table(META)?.insert(FORMAT, stamp.as_slice())?;
            txn.commit()?;
            Ok(db)
        })
        .await
        .map_err(|e| StorageIOError::<crate::NodeId>::write_logs(&e))?;
        Ok(LogStore {
            db: Arc::new(db),
            committed: Arc::default(),
        })
    }

    /// The storage format of the log in `data_dir` (`None`: no log yet; format 1 if it has
    /// no stamp), read without a write transaction, so a node can refuse a newer log before
    /// changing it.
    pub fn stored_format(data_dir: &Path) -> Result<Option<u32>, String> {
        let path = data_dir.join(LOG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        #[derive(Debug, thiserror::Error)]
        #[error("unreadable storage format stamp")]
        struct BadStamp;
        let read = || -> Result<Option<u32>, Box<dyn std::error::Error>> {
            let db = Database::open(&path).map_err(DbError::from)?;
            let txn = db.begin_read().map_err(DbError::from)?;
            let table = match txn.open_table(META) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => {
                    return Ok(Some(format::UNVERSIONED));
                }
                Err(e) => return Err(Box::new(DbError::from(e))),
            };
            Ok(Some(match table.get(FORMAT).map_err(DbError::from)? {
                Some(stamp) => codec::decode(stamp.value()).map_err(|_| BadStamp)?,
                None => format::UNVERSIONED,
            }))
        };
        read().map_err(|e| format!("{}: {e}", path.display()))
    }

    async fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, Fault> {
        let db = self.db.clone();
        let bytes = blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(META)?;
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        })
        .await?;
        Ok(bytes.map(|b| codec::decode(&b)).transpose()?)
    }

    /// Writes one meta value durably (fsync) in its own transaction, with the pending
    /// committed id.
    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Fault> {
        let bytes = codec::encode(value)?;
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(key, bytes.as_slice())?;
                if let Some(bytes) = &committed {
                    meta.insert(COMMITTED, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_range(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, Fault> {
        let db = self.db.clone();
        let raw = blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            let mut out = Vec::new();
            for item in table.range(range)? {
                let (_, v) = item?;
                out.push(v.value().to_vec());
            }
            Ok(out)
        })
        .await?;
        raw.iter()
            .map(|b| codec::decode(b).map_err(Fault::from))
            .collect()
    }

    async fn log_state(&self) -> Result<LogState<TypeConfig>, Fault> {
        let last_purged: Option<LogId> = self.read_meta(LAST_PURGED).await?;
        let db = self.db.clone();
        let last_raw = blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            Ok(table.last()?.map(|(_, v)| v.value().to_vec()))
        })
        .await?;
        let last = match last_raw {
            Some(bytes) => Some(codec::decode::<Entry>(&bytes)?.log_id),
            // Everything was purged: the last log id is the last purged one.
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn write_entries(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), Fault> {
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            {
                if let Some(bytes) = &committed {
                    txn.open_table(META)?.insert(COMMITTED, bytes.as_slice())?;
                }
                let mut table = txn.open_table(ENTRIES)?;
                for (index, bytes) in &entries {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Deletes entries in `range`; if `purged` is given, records it as the last purged id in
    /// the same transaction so the log state never shows a hole without its explanation.
    async fn delete_range(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<LogId>,
    ) -> Result<(), Fault> {
        let purged = purged.map(|id| codec::encode(&id)).transpose()?;
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            {
                let mut meta = txn.open_table(META)?;
                if let Some(bytes) = &purged {
                    meta.insert(LAST_PURGED, bytes.as_slice())?;
                }
                if let Some(bytes) = &committed {
                    meta.insert(COMMITTED, bytes.as_slice())?;
                }
                drop(meta);
                txn.open_table(ENTRIES)?.retain_in(range, |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

impl LogStore {
    fn pending_committed(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        // Nothing panics while holding the lock; a poisoned one still holds a valid id.
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The committed id saved since the last write, for that write to carry.
    fn take_committed(&self) -> Option<Vec<u8>> {
        self.pending_committed().take()
    }
}

/// Runs a redb closure on the blocking pool.
async fn blocking<R, F>(f: F) -> Result<R, Fault>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, DbError> + Send + 'static,
{
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn owned_range<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let entries = self.read_range(owned_range(&range)).await;
        entries.map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state()
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable (fsync) before returning: a vote forgotten in a crash could let this node vote
    /// twice in one term and elect two leaders.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let written = self.write_meta(VOTE, vote).await;
        written.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Kept in memory and written by the next append, truncate or purge, in its transaction:
    /// losing the committed id in a crash only means openraft re-learns it from the leader
    /// (or re-commits), so it needs neither an fsync nor a transaction of its own, which cost
    /// a blocking-pool round trip and a redb commit per entry (docs/performance.md).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = codec::encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        *self.pending_committed() = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let pending = self.pending_committed().clone();
        let committed: Result<Option<Option<LogId>>, Fault> = match pending {
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(Fault::from),
            None => self.read_meta(COMMITTED).await,
        };
        committed
            .map(Option::flatten)
            .map_err(|e| StorageIOError::read(&e).into())
    }

    /// Durable (fsync) before `log_io_completed`: openraft counts this node toward a quorum
    /// for these entries once the callback fires, so they must already be on disk.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            encoded.push((entry.log_id.index, bytes));
        }
        self.write_entries(encoded)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    /// Durable before returning: conflicting entries resurrected by a crash could be
    /// re-reported to a leader as matching its log.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let range = (Bound::Included(log_id.index), Bound::Unbounded);
        let deleted = self.delete_range(range, None).await;
        deleted.map_err(|e| StorageIOError::write_logs(&e).into())
    }

    /// Durable before returning, and `last_purged` is written in the same transaction as the
    /// deletion, so after a crash the log never starts past an unrecorded purge point.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let range = (Bound::Unbounded, Bound::Included(log_id.index));
        let deleted = self.delete_range(range, Some(log_id)).await;
        deleted.map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// The vote, committed id, entries and purge point survive closing and reopening the file;
    /// a committed id saved last is written by the next write.
    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 1);
        {
            let mut store = LogStore::open(dir.path()).await.unwrap();
            store.save_vote(&vote).await.unwrap();
            store
                .write_entries(
                    (1..=5)
                        .map(|i| (i, codec::encode(&blank(3, i)).unwrap()))
                        .collect(),
                )
                .await
                .unwrap();
            store
                .save_committed(Some(blank(3, 4).log_id))
                .await
                .unwrap();
            store.purge(blank(3, 2).log_id).await.unwrap();
        }
        let id = |i| Some(blank(3, i).log_id);
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), id(4));
        // A committed id goes to disk with the next write, not on its own.
        store.save_committed(id(5)).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), id(5));
        drop(store);
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), id(4));
        store.save_committed(id(5)).await.unwrap();
        let entry = codec::encode(&blank(3, 6)).unwrap();
        store.write_entries(vec![(6, entry)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), id(5));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(blank(3, 2).log_id));
        assert_eq!(state.last_log_id, Some(blank(3, 6).log_id));
        let entries = store.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
    }

    /// A corrupt entry on disk is a storage error, not a panic.
    #[tokio::test]
    async fn corrupt_entry_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        store
            .write_entries(vec![(1, vec![0xFB, 0xFF])])
            .await
            .unwrap();
        assert!(store.try_get_log_entries(1..2).await.is_err());
        assert!(store.get_log_state().await.is_err());
    }
}
