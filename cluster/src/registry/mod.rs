//! `Registry`: the handle the node uses to open, propose to, read and stop the registry.
//!
//! `open` wires the durable log, the state machine and the network into an openraft `Raft`.
//! The rest of the handle is split by concern:
//! - `config`: `RaftTiming` profiles and `RegistryConfig`;
//! - `error`: `RegistryError` and its conversions;
//! - `group_commit`: proposals on the leader stamped with the injected clock and committed
//!   in batches, and the leader's periodic `Expire`;
//! - `forward`: `propose` from any node (forwarded to the leader), the read barrier,
//!   node-level RPCs to a member, the peer service;
//! - `membership`: membership changes, `join`, the member list;
//! - `lease`: the isolation lease and fencing.

mod campaign;
mod config;
mod error;
mod forward;
mod group_commit;
mod lease;
mod membership;
mod versions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{RaftTiming, RegistryConfig};
pub use error::RegistryError;
pub use group_commit::{MAX_BATCH, PROPOSE_TIMEOUT};
pub use membership::Member;

use crate::clock::SharedClock;
use crate::command::RegistryEvent;
use crate::log_store::LogStore;
use crate::network::{PeerNetwork, PeerPool};
use crate::state::RegistryState;
use crate::state_machine::{EventSink, StateMachine};
use crate::{NodeId, Raft, TetherNode};
use error::wait_error;
use group_commit::{PROPOSAL_QUEUE, Proposal, batch_loop, expire_loop};

/// A proposal that committed and was applied on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub events: Vec<RegistryEvent>,
}

/// A point-in-time view of this node's Raft state, for `/readyz`, admin status and leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The last log index this node holds. openraft 0.9 does not publish the commit index in
    /// its metrics, so this is an upper bound of it; `applied_index` is a lower bound.
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// "leader" | "follower" | "learner" | "candidate" | "shutdown".
    pub role: &'static str,
    /// On the leader: ms since a quorum last acknowledged it (the basis of the isolation
    /// lease); `None` elsewhere.
    pub millis_since_quorum_ack: Option<u64>,
}

pub(crate) struct Inner {
    pub(crate) raft: Raft,
    machine: StateMachine,
    pub(crate) node_id: NodeId,
    pub(crate) node: TetherNode,
    pub(crate) clock: SharedClock,
    stop: watch::Sender<bool>,
    expirer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Proposals for the group-commit task ([`batch_loop`]).
    proposals: mpsc::Sender<Proposal>,
    pub(crate) pool: PeerPool,
    /// Base of `last_leader_contact_ms` (a monotonic clock, never the wall clock).
    pub(crate) started: tokio::time::Instant,
    /// Ms after `started` when a current leader last reached us; `u64::MAX` = never.
    pub(crate) last_leader_contact_ms: std::sync::atomic::AtomicU64,
}

/// The registry handle; clones share one Raft instance.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl Registry {
    /// Opens the log and snapshot in `cfg.data_dir` (creating it) and starts Raft.
    pub async fn open(
        cfg: RegistryConfig,
        clock: SharedClock,
        sink: Arc<dyn EventSink>,
    ) -> Result<Registry, RegistryError> {
        tokio::fs::create_dir_all(&cfg.data_dir)
            .await
            .map_err(|e| RegistryError::Storage(format!("{}: {e}", cfg.data_dir.display())))?;
        check_formats(&cfg.data_dir)?;
        let log = LogStore::open(&cfg.data_dir).await?;
        let machine = StateMachine::open(&cfg.data_dir, sink).await?;
        let config = Config {
            cluster_name: "tether".into(),
            heartbeat_interval: cfg.timing.heartbeat_ms,
            election_timeout_min: cfg.timing.election_min_ms,
            election_timeout_max: cfg.timing.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            // Keep some entries after a snapshot so a follower that is a little behind can
            // catch up from the log instead of downloading the whole registry.
            max_in_snapshot_log_to_keep: (cfg.snapshot_every / 2).min(1000),
            ..Config::default()
        }
        .validate()
        .map_err(|e| RegistryError::Fatal(format!("raft config: {e}")))?;
        let pool = PeerPool::new(cfg.transport.clone());
        let raft = Raft::new(
            cfg.node_id,
            Arc::new(config),
            PeerNetwork { pool: pool.clone() },
            log,
            machine.clone(),
        )
        .await
        .map_err(|e| RegistryError::Fatal(e.to_string()))?;

        let (stop, stopped) = watch::channel(false);
        let (proposals, queued) = mpsc::channel(PROPOSAL_QUEUE);
        tokio::spawn(batch_loop(raft.clone(), queued, stopped.clone()));
        let expirer = tokio::spawn(expire_loop(
            raft.clone(),
            clock.clone(),
            cfg.expire_interval,
            stopped.clone(),
        ));
        let registry = Registry {
            inner: Arc::new(Inner {
                raft,
                machine,
                node_id: cfg.node_id,
                node: cfg.node,
                clock,
                stop,
                expirer: tokio::sync::Mutex::new(Some(expirer)),
                proposals,
                pool,
                started: tokio::time::Instant::now(),
                last_leader_contact_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        };
        tokio::spawn(campaign::campaign_loop(
            registry.clone(),
            cfg.timing,
            stopped,
        ));
        Ok(registry)
    }

    /// Initialize a one-voter cluster with this node if the log/vote are empty; no-op otherwise.
    pub async fn bootstrap_if_new(&self) -> Result<(), RegistryError> {
        let raft = &self.inner.raft;
        if raft
            .is_initialized()
            .await
            .map_err(|e| RegistryError::Fatal(e.to_string()))?
        {
            return Ok(());
        }
        let members = BTreeMap::from([(self.inner.node_id, self.inner.node.clone())]);
        match raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Someone (a concurrent call, or a leader that reached us first) got there before.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(RegistryError::Unavailable(e.to_string())),
        }
    }

    /// Waits until this node knows a leader, returning its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, RegistryError> {
        let metrics = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(wait_error)?;
        metrics.current_leader.ok_or(RegistryError::Timeout)
    }

    /// Runs `f` on this node's copy of the registry (as of its last applied entry).
    pub fn read<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        self.inner.machine.read(f)
    }

    pub fn status(&self) -> RegistryStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        RegistryStatus {
            node_id: self.inner.node_id,
            leader: m.current_leader,
            term: m.current_term,
            commit_index: m.last_log_index,
            applied_index: m.last_applied.map(|id| id.index),
            role: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Candidate => "candidate",
                ServerState::Shutdown => "shutdown",
            },
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }

    /// Peer connections refused (both directions) because a peer claimed a node id its
    /// certificate does not name.
    pub fn peer_identity_refusals(&self) -> u64 {
        let refusals = &self.inner.pool.transport().identity_refusals;
        refusals.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Stops the expiry task and Raft. Idempotent.
    pub async fn shutdown(&self) -> Result<(), RegistryError> {
        self.inner.stop.send_replace(true);
        if let Some(task) = self.inner.expirer.lock().await.take() {
            // The task exits at its next select; a panic in it must not stop the shutdown.
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "registry expiry task failed");
            }
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| RegistryError::Fatal(e.to_string()))
    }
}

/// Refuses a data dir whose log or snapshot is in a format this build does not read, before
/// anything is opened for writing.
fn check_formats(dir: &std::path::Path) -> Result<(), RegistryError> {
    let log = LogStore::stored_format(dir).map_err(RegistryError::Storage)?;
    let snapshot = crate::state_machine::stored_format(dir)
        .map_err(|e| RegistryError::Storage(format!("{}: {e}", dir.display())))?;
    if let Some(found) = log {
        crate::format::check(
            &dir.join(crate::log_store::LOG_FILE).display().to_string(),
            found,
        )?;
    }
    if let Some(found) = snapshot {
        let file = dir.join(crate::state_machine::SNAPSHOT_FILE);
        crate::format::check(&file.display().to_string(), found)?;
    }
    Ok(())
}
