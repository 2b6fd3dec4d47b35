//! How a registry is opened: Raft timing profiles and everything `Registry::open` needs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::TransportConfig;
use crate::{NodeId, TetherNode};

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
