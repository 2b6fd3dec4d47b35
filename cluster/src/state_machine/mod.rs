//! The openraft state machine: runs `apply` on committed entries and keeps a durable snapshot.
//!
//! The registry lives in memory behind a std `RwLock`: the node's reads (admission checks,
//! status) are synchronous and short, and apply holds the write lock only for the pure
//! transition, never across an await. Events are handed to the `EventSink` after the lock is
//! released so a slow sink cannot block readers.
//!
//! The current snapshot is persisted to `<data_dir>/snapshot.bin`: after a snapshot the log is
//! purged, so a snapshot held only in memory would lose every purged entry on restart. The
//! file and the state in it carry a storage format (`format`); a file of the previous format
//! is rewritten in the current one when loaded.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::command::{Command, EntryMeta, RegistryEvent};
use crate::format::{self, FormatError};

mod file;

use crate::state::RegistryState;
use crate::{
    Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, codec,
};
pub use file::{SNAPSHOT_FILE, stored_format};
use file::{decode_state, load_snapshot, write_atomically};

/// Receives the events of every applied entry, on every node (leader, follower, learner).
///
/// Called from the state machine task after the registry lock is released, in log order.
/// It must not block (hand the events to a channel or actor): Raft applies nothing else
/// until it returns. It is also called while the log is replayed at startup, so events may
/// name sessions this process never owned.
pub trait EventSink: Send + Sync + 'static {
    /// The events of one proposal, with the `traceparent` it was proposed under. A group
    /// commit's entry arrives as one call per proposal, in order.
    fn on_applied(&self, meta: &EntryMeta, traceparent: Option<&str>, events: &[RegistryEvent]);
}

/// What a snapshot holds; the same triple the in-memory machine keeps under one lock, so a
/// snapshot can never pair a state with the wrong applied index.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Machine {
    state: RegistryState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The snapshot as stored on disk: openraft's metadata plus the encoded `Machine`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("snapshot task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A panic while holding the registry lock: the state may be half-applied, so stop.
    #[error("registry lock poisoned")]
    Poisoned,
}

struct Shared {
    machine: RwLock<Machine>,
    sink: Arc<dyn EventSink>,
    dir: PathBuf,
    /// Serializes snapshot builds and installs so two writers never race on the file.
    current: tokio::sync::Mutex<Option<StoredSnapshot>>,
    /// Makes snapshot ids unique within this process (openraft only needs them distinct).
    snapshot_seq: AtomicU64,
}

/// The registry state machine; cheap to clone (the snapshot builder is a clone).
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine in `data_dir`, loading `snapshot.bin` if present.
    pub async fn open(
        data_dir: &Path,
        sink: Arc<dyn EventSink>,
    ) -> Result<StateMachine, StorageError> {
        let dir = data_dir.to_path_buf();
        let load_dir = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load_snapshot(&load_dir))
            .await
            .map_err(Fault::from)
            .and_then(|r| r)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let (machine, current) = match loaded {
            Some((stored, machine)) => (machine, Some(stored)),
            None => (Machine::default(), None),
        };
        Ok(StateMachine {
            shared: Arc::new(Shared {
                machine: RwLock::new(machine),
                sink,
                dir,
                current: tokio::sync::Mutex::new(current),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` on the current registry state.
    ///
    /// A poisoned lock is read anyway: a panic in apply has already failed the Raft core
    /// (apply returns an error on the next entry), and readers only need a best-effort view.
    pub fn read<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        let guard = self
            .shared
            .machine
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&guard.state)
    }

    fn apply_batch(&self, entries: Vec<Entry>) -> Result<Vec<Applied>, Fault> {
        let mut responses = Vec::with_capacity(entries.len());
        let mut metas = Vec::with_capacity(entries.len());
        // Per entry, the traceparent of each proposal in it (one, or a group commit's).
        let mut traces: Vec<Vec<Option<String>>> = Vec::with_capacity(entries.len());
        {
            let mut machine = self.shared.machine.write().map_err(|_| Fault::Poisoned)?;
            for entry in entries {
                machine.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {
                        responses.push(Applied::default());
                        metas.push(None);
                    }
                    EntryPayload::Normal(envelope) => {
                        let meta = EntryMeta {
                            index: entry.log_id.index,
                            at_ms: envelope.at_ms,
                        };
                        tracing::debug!(
                            index = meta.index,
                            command = envelope.command.name(),
                            traceparent = envelope.traceparent.as_deref(),
                            "apply"
                        );
                        let applied =
                            crate::apply::apply_entry(&mut machine.state, &envelope.command, &meta);
                        responses.push(applied);
                        metas.push(Some(meta));
                        traces.push(match envelope.command {
                            Command::Batch(items) => {
                                items.into_iter().map(|b| b.traceparent).collect()
                            }
                            _ => vec![envelope.traceparent],
                        });
                    }
                    EntryPayload::Membership(membership) => {
                        machine.membership = StoredMembership::new(Some(entry.log_id), membership);
                        responses.push(Applied::default());
                        metas.push(None);
                    }
                }
            }
        }
        let mut traces = traces.into_iter();
        for (meta, applied) in metas.iter().zip(&responses) {
            let Some(meta) = meta else { continue };
            let entry_traces = traces.next().unwrap_or_default();
            if applied.parts.is_empty() {
                if !applied.events.is_empty() {
                    let tp = entry_traces.into_iter().next().flatten();
                    self.shared
                        .sink
                        .on_applied(meta, tp.as_deref(), &applied.events);
                }
                continue;
            }
            let mut rest = applied.events.as_slice();
            for (part, tp) in applied.parts.iter().zip(entry_traces) {
                let (events, after) = rest.split_at((*part as usize).min(rest.len()));
                rest = after;
                if !events.is_empty() {
                    self.shared.sink.on_applied(meta, tp.as_deref(), events);
                }
            }
        }
        Ok(responses)
    }

    async fn build(&self) -> Result<Snapshot<TypeConfig>, Fault> {
        // Hold the snapshot slot across encode and persist so a concurrent install cannot
        // interleave its file write with ours.
        let mut current = self.shared.current.lock().await;
        let (data, last_applied, membership) = {
            let machine = self.shared.machine.read().map_err(|_| Fault::Poisoned)?;
            (
                format::wrap_state(&codec::encode(&*machine)?),
                machine.last_applied,
                machine.membership.clone(),
            )
        };
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("--{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.persist(&stored).await?;
        let snapshot = Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        };
        *current = Some(stored);
        Ok(snapshot)
    }

    async fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), Fault> {
        let decoded = decode_state("the snapshot sent by the leader", &data)?;
        // openraft's metadata is authoritative for what the snapshot covers.
        let machine = Machine {
            state: decoded.state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let mut current = self.shared.current.lock().await;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // Persist before swapping state: if the write fails, nothing changed.
        self.persist(&stored).await?;
        *self.shared.machine.write().map_err(|_| Fault::Poisoned)? = machine;
        *current = Some(stored);
        Ok(())
    }

    async fn persist(&self, stored: &StoredSnapshot) -> Result<(), Fault> {
        let bytes = format::wrap_snapshot(&codec::encode(stored)?);
        let dir = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &bytes)).await??;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.build()
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let machine = self
            .shared
            .machine
            .read()
            .map_err(|_| StorageIOError::read_state_machine(&Fault::Poisoned))?;
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.apply_batch(entries)
            .map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let installed = self.install(meta, snapshot.into_inner()).await;
        installed.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.shared.current.lock().await;
        Ok(current.as_ref().map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::command::{Command, Envelope, RegistryEvent};
    use crate::tenant::TenantConfig;

    struct Discard;

    impl EventSink for Discard {
        fn on_applied(&self, _meta: &EntryMeta, _trace: Option<&str>, _events: &[RegistryEvent]) {}
    }

    async fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        StateMachine::open(dir, Arc::new(Discard)).await
    }

    /// A built snapshot is on disk and the next open starts from it (state and applied id).
    #[tokio::test]
    async fn snapshot_is_persisted_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path()).await.unwrap();
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), 7);
        let put = Command::PutTenant(TenantConfig {
            id: "acme".into(),
            ..TenantConfig::default()
        });
        let envelope = Envelope {
            at_ms: 5,
            traceparent: None,
            command: put,
        };
        let applied = sm
            .apply([Entry {
                log_id,
                payload: EntryPayload::Normal(envelope),
            }])
            .await;
        assert_eq!(applied.unwrap()[0].events.len(), 1);
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        drop(sm);

        let mut sm = open(dir.path()).await.unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id));
        assert!(sm.read(|s| s.tenant("acme").is_some()));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id));
    }

    /// A corrupt snapshot file fails the open instead of panicking or silently starting empty.
    #[tokio::test]
    async fn corrupt_snapshot_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), [0xFB, 0xFF, 0x00]).unwrap();
        assert!(open(dir.path()).await.is_err());
    }
}
