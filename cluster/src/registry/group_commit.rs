//! Group commit: proposals made on the leader queue up and go into the log together, at most
//! `MAX_BATCH` to an entry with at most `BATCHES_IN_FLIGHT` entries being committed at once;
//! and the leader's periodic `Expire`.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::Instrument;

use super::error::shutting_down;
use super::{Committed, Registry, RegistryError};
use crate::clock::SharedClock;
use crate::command::{Batched, Command, Envelope};
use crate::{Applied, Raft};

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
pub(super) const PROPOSAL_QUEUE: usize = 4096;

impl Registry {
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
        self.check_supported(&command)?;
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
}

/// A proposal waiting for the group-commit task.
pub(super) struct Proposal {
    /// Already the later of the proposer's and this leader's clock.
    at_ms: u64,
    item: Batched,
    reply: oneshot::Sender<Result<Committed, RegistryError>>,
}

/// Group commit. Takes the next proposal, waits for a free slot of [`BATCHES_IN_FLIGHT`], and
/// commits it together with every proposal that queued up meanwhile (at most
/// [`MAX_BATCH`]). Under light load a proposal finds a free slot and an empty queue and is
/// committed alone, as its own entry, with no added wait; under load the proposals that
/// arrive while the slots are busy share one log append and one fsync.
pub(super) async fn batch_loop(
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
        let Ok(slot) = slots
            .clone()
            .acquire_many_owned(slots_per_batch(&raft))
            .await
        else {
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
        // One span per entry, in the trace of its first proposal (a span has one parent; each
        // proposal's own trace continues in the apply spans on every node).
        let span = tracing::info_span!("registry.commit", proposals = batch.len());
        crate::trace::follow(&span, batch[0].item.traceparent.as_deref());
        tokio::spawn(
            async move {
                commit_batch(&raft, batch).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// Slots one batch takes: all of them when this node is the only voter. Batches in flight
/// overlap one entry's replication round trip with the next one's append; with no
/// replication to overlap they only split what would be one fsync into several, since
/// openraft appends one entry at a time (peers harness churn, 1 node: 0.27 ms of CPU per
/// connect with 4 in flight, 0.23 with 1, and a lower latency too; docs/performance.md).
fn slots_per_batch(raft: &Raft) -> u32 {
    let voters = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    if voters <= 1 {
        BATCHES_IN_FLIGHT as u32
    } else {
        1
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
pub(super) async fn expire_loop(
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
