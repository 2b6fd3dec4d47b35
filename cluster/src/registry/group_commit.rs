//! Group commit: proposals made on the leader queue up and go into the log together, at most
//! `MAX_BATCH` to an entry with at most `BATCHES_IN_FLIGHT` entries being committed at once,
//! spaced by `COMMIT_SPACING` under load on a sole voter; and the leader's periodic `Expire`.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
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
/// Group commit under load, on a sole voter: once an entry has carried more than one
/// proposal, the next one starts no sooner than this after it, and the admissions and
/// session ends that arrive meanwhile join it. Each entry costs a log append, an fsync and
/// openraft's per-entry work whatever it carries, so under a steady churn fewer, fuller
/// entries cut the CPU per connect (peers harness churn, 1 node: 0.52 ms of CPU per connect
/// with entries back to back, 0.40 spaced by 2 ms, 0.36 by 5 ms; docs/performance.md). The
/// price is at most this much more wait for an admission under load. A proposal after a
/// quiet spell is not held back, nor any other command ([`Command::may_wait`]): it ends the
/// wait of those before it.
const COMMIT_SPACING: Duration = Duration::from_millis(5);
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
/// arrive while the slots are busy, or (on a sole voter) within [`COMMIT_SPACING`] of the
/// last entry, share one log append and one fsync.
pub(super) async fn batch_loop(
    raft: Raft,
    mut queued: mpsc::Receiver<Proposal>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    // When the last entry started, if it carried company.
    let mut busy_since: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            next = queued.recv() => match next {
                Some(p) => p,
                None => return,
            },
        };
        let alone = sole_voter(&raft);
        let slots_per_batch = if alone { BATCHES_IN_FLIGHT as u32 } else { 1 };
        let Ok(slot) = slots.clone().acquire_many_owned(slots_per_batch).await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if let Some(started) = busy_since.filter(|_| alone) {
            wait_for_company(&mut queued, &mut batch, started + COMMIT_SPACING).await;
        }
        busy_since = (batch.len() > 1).then(Instant::now);
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

/// Adds the proposals that arrive until `until` to `batch`, unless it is full or holds one
/// that must not wait.
async fn wait_for_company(
    queued: &mut mpsc::Receiver<Proposal>,
    batch: &mut Vec<Proposal>,
    until: Instant,
) {
    let urgent = |p: &Proposal| !p.item.command.may_wait();
    if batch.iter().any(urgent) {
        return;
    }
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    while batch.len() < MAX_BATCH {
        tokio::select! {
            _ = &mut deadline => return,
            next = queued.recv() => match next {
                Some(p) => {
                    let stop = urgent(&p);
                    batch.push(p);
                    if stop {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// Whether this node is the only voter. A batch then takes every slot: batches in flight
/// overlap one entry's replication round trip with the next one's append, and with no
/// replication to overlap they only split what would be one fsync into several, since
/// openraft appends one entry at a time (peers harness churn, 1 node: 0.27 ms of CPU per
/// connect with 4 in flight, 0.23 with 1, and a lower latency too; docs/performance.md).
/// Entries are spaced only then, too: with voters to replicate to, the round trip spaces
/// them already (spacing on 3 voters was not measured; docs/performance.md, "Not done").
fn sole_voter(raft: &Raft) -> bool {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count()
        <= 1
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

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(command: Command) -> Proposal {
        Proposal {
            at_ms: 0,
            item: Batched {
                traceparent: None,
                command,
            },
            reply: oneshot::channel().0,
        }
    }

    fn close(id: &str) -> Proposal {
        proposal(Command::CloseSession {
            session_id: id.into(),
            epoch: None,
        })
    }

    fn revoke(id: &str) -> Proposal {
        proposal(Command::RevokeSession {
            session_id: id.into(),
            reason: String::new(),
        })
    }

    // Paused time: a wait that runs to its deadline moves the clock there, one cut short
    // leaves it where it was.

    #[tokio::test(start_paused = true)]
    async fn connection_proposals_wait_for_company_until_the_deadline() {
        let (tx, mut rx) = mpsc::channel(8);
        let start = Instant::now();
        let until = start + COMMIT_SPACING;
        tokio::spawn(async move {
            tokio::time::sleep(COMMIT_SPACING / 2).await;
            let _ = tx.send(close("b")).await;
            tokio::time::sleep(COMMIT_SPACING).await;
            let _ = tx.send(close("late")).await;
        });
        let mut batch = vec![close("a")];
        wait_for_company(&mut rx, &mut batch, until).await;
        assert_eq!(Instant::now(), until);
        assert_eq!(
            batch.len(),
            2,
            "the proposal that came in time joins, the late one not"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_proposal_that_takes_access_away_ends_the_wait() {
        let (tx, mut rx) = mpsc::channel(8);
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = tx.send(revoke("x")).await;
            let _ = tx.send(close("after")).await;
        });
        let mut batch = vec![close("a")];
        wait_for_company(&mut rx, &mut batch, start + Duration::from_secs(60)).await;
        assert_eq!(Instant::now(), start + Duration::from_millis(1));
        assert_eq!(batch.len(), 2);
        assert!(!batch[1].item.command.may_wait());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holding_a_revocation_does_not_wait() {
        let (_tx, mut rx) = mpsc::channel(8);
        let start = Instant::now();
        let mut batch = vec![close("a"), revoke("x")];
        wait_for_company(&mut rx, &mut batch, start + Duration::from_secs(60)).await;
        assert_eq!(Instant::now(), start);
        assert_eq!(batch.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_does_not_wait() {
        let (_tx, mut rx) = mpsc::channel(8);
        let start = Instant::now();
        let mut batch: Vec<_> = (0..MAX_BATCH).map(|i| close(&i.to_string())).collect();
        wait_for_company(&mut rx, &mut batch, start + Duration::from_secs(60)).await;
        assert_eq!(Instant::now(), start);
    }
}
