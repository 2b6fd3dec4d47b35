//! `Registry`: the handle the node uses to open, propose to, read and stop the registry.
//!
//! It wires the durable log, the state machine and the network into an openraft `Raft`,
//! stamps proposals with the injected clock, and runs the leader's periodic `Expire`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::metrics::WaitError;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::codec::CodecError;
use crate::command::{Command, EntryMeta, Envelope, RegistryEvent};
use crate::log_store::LogStore;
use crate::network::{PeerNetwork, PeerPool};
use crate::state::RegistryState;
use crate::state_machine::StateMachine;
use crate::transport::TransportConfig;
use crate::{NodeId, Raft, TetherNode};

/// How long `propose` waits for commit + apply before giving up. Generous against a slow
/// fsync or an election in progress, short enough that an admin call does not hang forever.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Receives the events of every applied entry, on every node (leader, follower, learner).
///
/// Called from the state machine task after the registry lock is released, in log order.
/// It must not block (hand the events to a channel or actor): Raft applies nothing else
/// until it returns. It is also called while the log is replayed at startup, so events may
/// name sessions this process never owned.
pub trait EventSink: Send + Sync + 'static {
    fn on_applied(&self, meta: &EntryMeta, events: &[RegistryEvent]);
}

/// Raft timers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl RaftTiming {
    /// One data centre: sub-millisecond RTT, so a dead leader is replaced within ~0.6 s.
    pub fn lan() -> RaftTiming {
        RaftTiming {
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
        }
    }

    /// Voters in several regions: 100+ ms RTT and jitter would make LAN timeouts trigger
    /// needless elections. (openraft 0.9 has no pre-vote; the wide election range is what
    /// keeps a flapping link from deposing a healthy leader.)
    pub fn cross_region() -> RaftTiming {
        RaftTiming {
            heartbeat_ms: 300,
            election_min_ms: 1500,
            election_max_ms: 3000,
        }
    }
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming::lan()
    }
}

/// Everything `Registry::open` needs besides the clock and the sink.
#[derive(Clone)]
pub struct RegistryConfig {
    pub node_id: NodeId,
    pub node: TetherNode,
    /// Holds `raft-log.redb` and `snapshot.bin`.
    pub data_dir: PathBuf,
    pub timing: RaftTiming,
    /// Build a snapshot (and purge the log) after this many entries since the last one.
    pub snapshot_every: u64,
    /// How often the leader proposes `Command::Expire`.
    pub expire_interval: Duration,
    /// Peer transport settings (TLS, timeouts) used to reach other members.
    pub transport: Arc<TransportConfig>,
}

impl RegistryConfig {
    /// A config with LAN timing, a snapshot every 5000 entries and expiry every minute.
    pub fn new(node_id: NodeId, node: TetherNode, data_dir: PathBuf) -> RegistryConfig {
        RegistryConfig {
            node_id,
            node,
            data_dir,
            timing: RaftTiming::lan(),
            snapshot_every: 5000,
            expire_interval: Duration::from_secs(60),
            transport: Arc::new(TransportConfig::new(node_id, None)),
        }
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry storage: {0}")]
    Storage(String),
    #[error("not the registry leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("registry timed out")]
    Timeout,
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("registry failed: {0}")]
    Fatal(String),
}

impl From<crate::StorageError> for RegistryError {
    fn from(e: crate::StorageError) -> Self {
        RegistryError::Storage(e.to_string())
    }
}

pub(crate) struct Inner {
    pub(crate) raft: Raft,
    machine: StateMachine,
    pub(crate) node_id: NodeId,
    pub(crate) node: TetherNode,
    pub(crate) clock: SharedClock,
    stop: watch::Sender<bool>,
    expirer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
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
        let expirer = tokio::spawn(expire_loop(
            raft.clone(),
            clock.clone(),
            cfg.expire_interval,
            stopped,
        ));
        Ok(Registry {
            inner: Arc::new(Inner {
                raft,
                machine,
                node_id: cfg.node_id,
                node: cfg.node,
                clock,
                stop,
                expirer: tokio::sync::Mutex::new(Some(expirer)),
                pool,
                started: tokio::time::Instant::now(),
                last_leader_contact_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        })
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

    /// Proposes on this node, which must lead; `at_ms` is the original request's time. The
    /// entry is stamped with the later of that and this leader's clock, so a proposer whose
    /// clock lags cannot backdate an entry (a logout's `not_before` would let tokens issued
    /// before it back in); a proposer whose clock runs ahead only makes it stricter.
    pub(crate) async fn propose_here(
        &self,
        command: Command,
        traceparent: Option<String>,
        at_ms: u64,
    ) -> Result<Committed, RegistryError> {
        let at_ms = at_ms.max(self.inner.clock.now_ms());
        propose_at(&self.inner.raft, at_ms, command, traceparent).await
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

/// Proposes one command stamped with `at_ms`, bounded by [`PROPOSE_TIMEOUT`].
async fn propose_at(
    raft: &Raft,
    at_ms: u64,
    command: Command,
    traceparent: Option<String>,
) -> Result<Committed, RegistryError> {
    let envelope = Envelope {
        at_ms,
        traceparent,
        command,
    };
    let written = tokio::time::timeout(PROPOSE_TIMEOUT, raft.client_write(envelope))
        .await
        .map_err(|_| RegistryError::Timeout)?;
    match written {
        Ok(response) => Ok(Committed {
            index: response.log_id.index,
            events: response.data.events,
        }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Err(RegistryError::NotLeader {
                leader: forward.leader_id,
            })
        }
        Err(RaftError::APIError(e)) => Err(RegistryError::Unavailable(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(RegistryError::Fatal(e.to_string())),
    }
}

/// While this node leads, proposes `Expire` every `interval` so deny-list entries, tombstones
/// and stale sessions do not grow without bound. Only the leader proposes: followers would
/// just be refused, and one Expire per interval is enough for the whole cluster.
async fn expire_loop(
    raft: Raft,
    clock: SharedClock,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; nothing can have expired at startup, so skip it.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        if raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        // A failure (lost leadership, timeout) is retried at the next tick; nothing is lost.
        if let Err(e) = propose_at(&raft, clock.now_ms(), Command::Expire, None).await {
            tracing::debug!(error = %e, "registry expiry proposal failed");
        }
    }
}

fn wait_error(e: WaitError) -> RegistryError {
    match e {
        WaitError::Timeout(..) => RegistryError::Timeout,
        WaitError::ShuttingDown => RegistryError::Unavailable("raft is shutting down".into()),
    }
}
