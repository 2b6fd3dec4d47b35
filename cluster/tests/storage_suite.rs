//! openraft's storage conformance suite against the redb log store and the state machine.

use std::sync::Arc;

use openraft::StorageIOError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;
use tether_cluster::command::{EntryMeta, RegistryEvent};
use tether_cluster::log_store::LogStore;
use tether_cluster::state_machine::StateMachine;
use tether_cluster::{EventSink, StorageError, TypeConfig};

struct Discard;

impl EventSink for Discard {
    fn on_applied(&self, _meta: &EntryMeta, _trace: Option<&str>, _events: &[RegistryEvent]) {}
}

/// Builds each store pair in a fresh temp dir; the `TempDir` guard deletes it afterwards.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let log = LogStore::open(dir.path()).await?;
        let machine = StateMachine::open(dir.path(), Arc::new(Discard)).await?;
        Ok((dir, log, machine))
    }
}

/// The log store and state machine pass every check of `Suite::test_all`.
#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
