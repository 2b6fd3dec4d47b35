//! `Registry`: the handle the node uses to open, propose to, read and stop the registry.
//!
//! It wires the durable log, the state machine and the network into an openraft `Raft`,
//! stamps proposals with the injected clock, group-commits the proposals that queue up on
//! the leader, and runs the leader's periodic `Expire`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::metrics::WaitError;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::codec::CodecError;
use crate::command::{Batched, Command, EntryMeta, Envelope, RegistryEvent};
use crate::log_store::LogStore;
use crate::network::{PeerNetwork, PeerPool};
use crate::state::RegistryState;
use crate::state_machine::StateMachine;
use crate::transport::TransportConfig;
use crate::{Applied, NodeId, Raft, TetherNode};

/// How long `propose` waits for commit + apply before giving up. Generous against a slow
/// fsync or an election in progress, short enough that an admin call does not hang forever.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Group commit: at most this many proposals go into one log entry.
pub const MAX_BATCH: usize = 128;
/// Group commit: at most this many entries of proposals are being committed at once; while
/// they are, further proposals queue and go into the next entry together. (openraft 0.9
/// appends and fsyncs each client write on its own, so one entry per proposal caps a node at
/// one admission per fsync plus per-entry work, about 1000/s here.)
const BATCHES_IN_FLIGHT: usize = 4;
/// Group commit: proposals waiting for a free slot, at most. A full queue makes proposers
/// wait (within their [`PROPOSE_TIMEOUT`]).
const PROPOSAL_QUEUE: usize = 4096;

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

impl RegistryError {
    /// The same error for another proposer of a failed group commit.
    fn for_another(&self) -> RegistryError {
        match self {
            RegistryError::Storage(s) => RegistryError::Storage(s.clone()),
            RegistryError::NotLeader { leader } => RegistryError::NotLeader { leader: *leader },
            RegistryError::Timeout => RegistryError::Timeout,
            RegistryError::Unavailable(s) => RegistryError::Unavailable(s.clone()),
            RegistryError::Codec(e) => RegistryError::Storage(e.to_string()),
            RegistryError::Fatal(s) => RegistryError::Fatal(s.clone()),
        }
    }
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
                proposals,
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
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let (reply, answer) = oneshot::channel();
        let proposal = Proposal {
            at_ms: at_ms.max(self.inner.clock.now_ms()),
            item: Batched {
                traceparent,
                command,
            },
            reply,
        };
        match tokio::time::timeout_at(deadline, self.inner.proposals.send(proposal)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(shutting_down()),
            Err(_) => return Err(RegistryError::Timeout),
        }
        // The commit itself is bounded by PROPOSE_TIMEOUT once its entry is proposed; this
        // outer bound only guards against a lost answer.
        match tokio::time::timeout_at(deadline + PROPOSE_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(shutting_down()),
            Err(_) => Err(RegistryError::Timeout),
        }
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

fn shutting_down() -> RegistryError {
    RegistryError::Unavailable("the registry is shutting down".into())
}

/// A proposal waiting for the group-commit task.
struct Proposal {
    /// Already the later of the proposer's and this leader's clock.
    at_ms: u64,
    item: Batched,
    reply: oneshot::Sender<Result<Committed, RegistryError>>,
}

/// Group commit. Takes the next proposal, waits for one of [`BATCHES_IN_FLIGHT`] slots, and
/// commits it together with every proposal that queued up meanwhile (at most
/// [`MAX_BATCH`]). Under light load a proposal finds a free slot and an empty queue and is
/// committed alone, as its own entry, with no added wait; under load the proposals that
/// arrive while the slots are busy share one log append and one fsync.
async fn batch_loop(
    raft: Raft,
    mut queued: mpsc::Receiver<Proposal>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let first = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            next = queued.recv() => match next {
                Some(p) => p,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit_batch(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Commits `batch` as one entry (a lone proposal as itself, several as a `Command::Batch`
/// stamped with the latest of their times) and answers each proposer.
async fn commit_batch(raft: &Raft, mut batch: Vec<Proposal>) {
    let at_ms = batch.iter().map(|p| p.at_ms).max().unwrap_or_default();
    if batch.len() == 1 {
        let Some(p) = batch.pop() else { return };
        let result = propose_at(raft, at_ms, p.item.command, p.item.traceparent).await;
        // The proposer may have given up (its request was cancelled): nothing to tell.
        let _ = p.reply.send(result);
        return;
    }
    let (items, replies): (Vec<Batched>, Vec<_>) =
        batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let count = items.len();
    let envelope = Envelope {
        at_ms,
        traceparent: None,
        command: Command::Batch(items),
    };
    match propose_entry(raft, envelope).await {
        Ok((index, applied)) if applied.parts.len() == count => {
            let mut events = applied.events.into_iter();
            for (reply, part) in replies.into_iter().zip(applied.parts) {
                let events = events.by_ref().take(part as usize).collect();
                let _ = reply.send(Ok(Committed { index, events }));
            }
        }
        Ok((index, applied)) => {
            tracing::error!(
                index,
                proposals = count,
                parts = applied.parts.len(),
                "a group commit's answer does not match its proposals"
            );
            for reply in replies {
                let e = RegistryError::Fatal(format!("entry {index}: batch answer mismatch"));
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.for_another()));
            }
        }
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
    let (index, applied) = propose_entry(raft, envelope).await?;
    Ok(Committed {
        index,
        events: applied.events,
    })
}

/// Proposes one entry, bounded by [`PROPOSE_TIMEOUT`]; its log index and what applying it
/// yielded.
async fn propose_entry(raft: &Raft, envelope: Envelope) -> Result<(u64, Applied), RegistryError> {
    let written = tokio::time::timeout(PROPOSE_TIMEOUT, raft.client_write(envelope))
        .await
        .map_err(|_| RegistryError::Timeout)?;
    match written {
        Ok(response) => Ok((response.log_id.index, response.data)),
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
