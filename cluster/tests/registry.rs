//! A single-node `Registry` on a temp dir: bootstrap, propose, events, restart recovery.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tether_cluster::clock::{Clock, ManualClock, SharedClock};
use tether_cluster::command::{Command, EntryMeta, RegistryEvent};
use tether_cluster::state_machine::SNAPSHOT_FILE;
use tether_cluster::tenant::TenantConfig;
use tether_cluster::{EventSink, Registry, RegistryConfig, RegistryError, TetherNode};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const NOW_MS: u64 = 1_700_000_000_000;

/// Forwards every applied batch to the test.
struct ChannelSink(mpsc::UnboundedSender<(EntryMeta, Vec<RegistryEvent>)>);

impl EventSink for ChannelSink {
    fn on_applied(&self, meta: &EntryMeta, _trace: Option<&str>, events: &[RegistryEvent]) {
        // The receiver may be gone at the end of a test; nothing to do about it then.
        let _ = self.0.send((*meta, events.to_vec()));
    }
}

fn config(dir: &Path, snapshot_every: u64) -> RegistryConfig {
    let node = TetherNode {
        addr: "127.0.0.1:0".into(),
        region: "test".into(),
    };
    let mut cfg = RegistryConfig::new(1, node, dir.to_path_buf());
    cfg.snapshot_every = snapshot_every;
    cfg
}

async fn open(
    cfg: RegistryConfig,
) -> (
    Registry,
    Arc<ManualClock>,
    mpsc::UnboundedReceiver<(EntryMeta, Vec<RegistryEvent>)>,
) {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (tx, rx) = mpsc::unbounded_channel();
    let shared: SharedClock = clock.clone();
    let registry = Registry::open(cfg, shared, Arc::new(ChannelSink(tx)))
        .await
        .unwrap();
    registry.bootstrap_if_new().await.unwrap();
    registry.wait_for_leader(WAIT).await.unwrap();
    (registry, clock, rx)
}

fn put_tenant() -> Command {
    Command::PutTenant(TenantConfig {
        id: "acme".into(),
        ..TenantConfig::default()
    })
}

fn revoke_token() -> Command {
    Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j1".into(),
        exp: NOW_MS / 1000 + 3600,
    }
}

/// Waits until this node has applied `index` (after a restart the log is re-applied).
async fn wait_applied(registry: &Registry, index: u64) {
    registry
        .raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .unwrap();
}

/// A revoked jti survives a restart by replaying the durable log.
#[tokio::test]
async fn revoked_token_survives_restart_via_log() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _clock, _rx) = open(config(dir.path(), 5000)).await;
    registry.propose(put_tenant()).await.unwrap();
    let revoked = registry.propose(revoke_token()).await.unwrap();
    assert!(registry.read(|s| s.is_jti_revoked("acme", "j1")));
    registry.shutdown().await.unwrap();
    drop(registry);

    let (registry, _clock, _rx) = open(config(dir.path(), 5000)).await;
    wait_applied(&registry, revoked.index).await;
    assert!(registry.read(|s| s.is_jti_revoked("acme", "j1")));
    assert!(!dir.path().join(SNAPSHOT_FILE).exists());
    registry.shutdown().await.unwrap();
}

/// A revoked jti survives a restart after a snapshot purged its log entry.
#[tokio::test]
async fn revoked_token_survives_restart_via_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _clock, _rx) = open(config(dir.path(), 3)).await;
    registry.propose(put_tenant()).await.unwrap();
    let revoked = registry.propose(revoke_token()).await.unwrap();
    for user in ["a", "b", "c", "d", "e", "f"] {
        let cmd = Command::SetPermissions {
            tenant: "acme".into(),
            user: user.into(),
            permissions: vec!["sub:x".into()],
        };
        registry.propose(cmd).await.unwrap();
    }
    registry
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= revoked.index),
            "revoke entry purged",
        )
        .await
        .unwrap();
    registry.shutdown().await.unwrap();
    drop(registry);
    assert!(dir.path().join(SNAPSHOT_FILE).exists());

    let (registry, _clock, _rx) = open(config(dir.path(), 3)).await;
    let first = registry.raft().metrics().borrow().purged.map(|p| p.index);
    assert!(
        first >= Some(revoked.index),
        "log still starts before the revoke: {first:?}"
    );
    assert!(registry.read(|s| s.is_jti_revoked("acme", "j1")));
    assert!(registry.read(|s| s.user_perms_version("acme", "f")) > 0);
    registry.shutdown().await.unwrap();
}

/// The sink gets each entry's events with its index and the proposer's clock time, and
/// `propose` returns the same events.
#[tokio::test]
async fn event_sink_receives_events() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, clock, mut rx) = open(config(dir.path(), 5000)).await;
    clock.set_ms(NOW_MS + 42);
    let committed = registry.propose(put_tenant()).await.unwrap();
    assert_eq!(
        committed.events,
        vec![RegistryEvent::TenantUpdated {
            tenant: "acme".into()
        }]
    );
    let (meta, events) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        meta,
        EntryMeta {
            index: committed.index,
            at_ms: clock.now_ms()
        }
    );
    assert_eq!(events, committed.events);
    registry.shutdown().await.unwrap();
}

/// The leader proposes Expire on its own every `expire_interval`.
#[tokio::test]
async fn leader_proposes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 5000);
    cfg.expire_interval = Duration::from_millis(50);
    let (registry, _clock, mut rx) = open(cfg).await;
    let expired = tokio::time::timeout(WAIT, async {
        while let Some((_, events)) = rx.recv().await {
            if matches!(events[..], [RegistryEvent::Expired { .. }]) {
                return true;
            }
        }
        false
    });
    assert!(expired.await.unwrap());
    registry.shutdown().await.unwrap();
}

/// Proposing on a node that is not (yet) part of a cluster is NotLeader, not a hang.
#[tokio::test]
async fn propose_before_bootstrap_is_not_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let clock: SharedClock = Arc::new(ManualClock::new(NOW_MS));
    let registry = Registry::open(config(dir.path(), 5000), clock, Arc::new(ChannelSink(tx)))
        .await
        .unwrap();
    let err = registry.propose(put_tenant()).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotLeader { leader: None }),
        "{err:?}"
    );
    let status = registry.status();
    assert_eq!((status.node_id, status.leader), (1, None));
    // An uninitialized node has no role in any cluster yet (openraft reports it as a
    // learner or, briefly after start, a follower).
    assert!(
        matches!(status.role, "learner" | "follower"),
        "{}",
        status.role
    );
    registry.shutdown().await.unwrap();
}

/// Status reports this node as the leader of a bootstrapped one-voter cluster, a second
/// bootstrap is a no-op, and shutdown is idempotent.
#[tokio::test]
async fn status_and_idempotent_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _clock, _rx) = open(config(dir.path(), 5000)).await;
    registry.bootstrap_if_new().await.unwrap();
    let committed = registry.propose(put_tenant()).await.unwrap();
    let status = registry.status();
    assert_eq!((status.leader, status.role), (Some(1), "leader"));
    assert!(status.applied_index >= Some(committed.index));
    assert!(status.commit_index >= status.applied_index);
    registry.shutdown().await.unwrap();
    registry.shutdown().await.unwrap();
}

/// Proposals that arrive together are group-committed: 400 concurrent revocations take far
/// fewer log entries than 400, each proposer gets back exactly its own event, and every one
/// of them is applied (and survives a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_are_group_committed() {
    const N: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let (registry, _clock, _rx) = open(config(dir.path(), 100_000)).await;
    let first = registry.propose(put_tenant()).await.unwrap().index;
    let proposals = (0..N).map(|i| {
        let registry = registry.clone();
        tokio::spawn(async move {
            let cmd = Command::RevokeToken {
                tenant: "acme".into(),
                jti: format!("j{i}"),
                exp: NOW_MS / 1000 + 3600,
            };
            (i, registry.propose(cmd).await)
        })
    });
    let mut last = first;
    for p in proposals.collect::<Vec<_>>() {
        let (i, committed) = p.await.unwrap();
        let committed = committed.unwrap();
        assert_eq!(
            committed.events,
            vec![RegistryEvent::TokenRevoked {
                tenant: "acme".into(),
                jti: format!("j{i}"),
                sessions: Vec::new(),
            }],
            "proposal {i}"
        );
        assert!(committed.index > first);
        last = last.max(committed.index);
    }
    let entries = last - first;
    assert!(
        entries < N as u64 / 2,
        "{N} concurrent proposals took {entries} entries: not group-committed"
    );
    let revoked = |registry: &Registry| {
        registry.read(|s| {
            (0..N)
                .filter(|i| s.is_jti_revoked("acme", &format!("j{i}")))
                .count()
        })
    };
    assert_eq!(revoked(&registry), N);
    registry.shutdown().await.unwrap();
    drop(registry);
    let (registry, _clock, _rx) = open(config(dir.path(), 100_000)).await;
    wait_applied(&registry, last).await;
    assert_eq!(revoked(&registry), N);
    registry.shutdown().await.unwrap();
}

/// Opens a registry on `dir`, shuts it down, and reads back the log's storage format.
async fn start_and_stop(dir: &Path) -> Result<Option<u32>, String> {
    let (registry, _, _) = open(config(dir, 1000)).await;
    registry.shutdown().await.unwrap();
    drop(registry);
    tether_cluster::log_store::LogStore::stored_format(dir)
}

/// A log stamped with a newer storage format is refused by `Registry::open` with a
/// `Format` error before anything writes to it; a log without a stamp (format 1) opens and
/// is stamped with the current format.
#[tokio::test]
async fn newer_log_format_is_refused_untouched() {
    use tether_cluster::format;
    use tether_cluster::log_store::{LOG_FILE, LogStore};
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(start_and_stop(dir.path()).await, Ok(Some(format::CURRENT)));

    let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    let stamp = |value: Option<u32>| {
        let db = redb::Database::open(dir.path().join(LOG_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(meta).unwrap();
            match value {
                Some(v) => {
                    let bytes = tether_cluster::codec::encode(&v).unwrap();
                    table.insert("format", bytes.as_slice()).unwrap();
                }
                None => {
                    table.remove("format").unwrap();
                }
            }
        }
        txn.commit().unwrap();
    };
    stamp(Some(format::CURRENT + 1));
    let before = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(NOW_MS));
    let (tx, _rx) = mpsc::unbounded_channel();
    let refused = Registry::open(config(dir.path(), 1000), clock, Arc::new(ChannelSink(tx))).await;
    assert!(
        matches!(refused, Err(RegistryError::Format(format::FormatError::Newer { found, .. })) if found == format::CURRENT + 1)
    );
    assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), before);

    stamp(None);
    assert_eq!(
        LogStore::stored_format(dir.path()),
        Ok(Some(format::UNVERSIONED))
    );
    assert_eq!(start_and_stop(dir.path()).await, Ok(Some(format::CURRENT)));
}
