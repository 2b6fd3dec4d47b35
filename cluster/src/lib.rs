//! Tether's session registry, replicated with openraft.
//!
//! # Layout
//! - `clock`: wall time behind a trait (proposers stamp entries with it; apply never reads it).
//! - `tenant`: tenant configuration as replicated in the registry.
//! - `command`: `Envelope`/`Command` (what a log entry carries), `EntryMeta`, `RegistryEvent`.
//! - `codec`: the only user of bincode (`encode`/`decode` with a size limit).
//! - `format`: storage format versions of the log, the snapshot file and the state in it.
//! - `state`: `RegistryState`, the replicated registry, and the read helpers the node uses.
//! - `apply`: the pure, deterministic `apply(state, command, meta) -> events`.
//! - `log_store`: the durable Raft log and vote on redb (fsync before acknowledging).
//! - `state_machine`: openraft state machine around `apply`, with a durable snapshot file,
//!   and `EventSink`, which receives every applied entry's events.
//! - `registry/`: `Registry`, the node's handle: open, bootstrap, group commit, `propose` from
//!   any node (forwarded to the leader), reads and the read barrier, membership and `join`,
//!   the isolation lease, leadership hand-over on drain, campaigning once a silent leader's
//!   lease is out, the mixed-version gate; with `RaftTiming`, `RegistryConfig` and
//!   `RegistryError`.
//! - `rpc`: the messages between nodes (Raft RPCs, forwarded writes, membership changes,
//!   opaque node-level `App` requests).
//! - `transport/`: the peer transport, one multiplexed mutual-TLS (or plaintext) connection
//!   per peer with request ids and a timeout on every call.
//! - `network`: the openraft network over that transport (connect failures → `Unreachable`).
//! - `peer_service`: the server side: answers Raft RPCs, forwarded writes and membership
//!   changes, and hands `App` requests to the node.
//! - `certs`: the dev PKI behind `tether certs` (cluster CA and node certificates).
//! - `trace`: the W3C `traceparent` of the current span, and a span following a remote one:
//!   how a trace crosses the log and the peer RPCs.
//!
//! This file also holds `declare_raft_types!` and the aliases, so no other file spells
//! openraft's generics.

pub mod apply;
pub mod certs;
pub mod clock;
pub mod codec;
pub mod command;
pub mod format;
pub mod log_store;
pub mod network;
pub mod peer_service;
pub mod registry;
pub mod rpc;
pub mod state;
pub mod state_machine;
pub mod tenant;
pub mod trace;
pub mod transport;

pub use apply::{apply, apply_entry};
pub use registry::{
    Committed, Member, RaftTiming, Registry, RegistryConfig, RegistryError, RegistryStatus,
};
pub use state::RegistryState;
pub use state_machine::EventSink;

/// Node ids are unique `u64`s across the cluster (`[node].id`).
pub type NodeId = u64;

/// What the cluster knows about a member, replicated in the membership config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TetherNode {
    /// Peer listener address (`host:port`).
    pub addr: String,
    pub region: String,
}

impl std::fmt::Display for TetherNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.addr, self.region)
    }
}

/// The response of applying one entry: the events it yielded (possibly none).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub events: Vec<command::RegistryEvent>,
    /// For a [`command::Command::Batch`]: how many of `events` each proposal yielded, in
    /// order; empty for any other entry.
    #[serde(default)]
    pub parts: Vec<u32>,
}

openraft::declare_raft_types!(
    /// openraft type configuration of the registry.
    pub TypeConfig:
        D = command::Envelope,
        R = Applied,
        NodeId = NodeId,
        Node = TetherNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Membership = openraft::Membership<NodeId, TetherNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, TetherNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, TetherNode>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, TetherNode>;
pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;
