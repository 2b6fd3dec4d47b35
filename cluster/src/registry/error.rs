//! `RegistryError` and its conversions from the layers below (storage, openraft waits,
//! the peer transport, a remote node's answer).

use openraft::metrics::WaitError;

use crate::NodeId;
use crate::codec::CodecError;
use crate::rpc::RemoteError;
use crate::transport::TransportError;

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
    /// The data dir is in a storage format this build does not read; nothing was changed.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
}

impl RegistryError {
    /// The same error for another proposer of a failed group commit.
    pub(super) fn for_another(&self) -> RegistryError {
        match self {
            RegistryError::Storage(s) => RegistryError::Storage(s.clone()),
            RegistryError::NotLeader { leader } => RegistryError::NotLeader { leader: *leader },
            RegistryError::Timeout => RegistryError::Timeout,
            RegistryError::Unavailable(s) => RegistryError::Unavailable(s.clone()),
            RegistryError::Codec(e) => RegistryError::Storage(e.to_string()),
            RegistryError::Fatal(s) => RegistryError::Fatal(s.clone()),
            RegistryError::Format(e) => RegistryError::Format(e.clone()),
        }
    }
}

impl From<crate::StorageError> for RegistryError {
    fn from(e: crate::StorageError) -> Self {
        RegistryError::Storage(e.to_string())
    }
}

impl From<RegistryError> for RemoteError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotLeader { leader } => RemoteError::NotLeader { leader },
            RegistryError::Timeout => RemoteError::Timeout,
            other => RemoteError::Failed(other.to_string()),
        }
    }
}

impl From<RemoteError> for RegistryError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::NotLeader { leader } => RegistryError::NotLeader { leader },
            RemoteError::Timeout => RegistryError::Timeout,
            RemoteError::Failed(m) => RegistryError::Unavailable(m),
        }
    }
}

pub(super) fn transport_error(e: TransportError) -> RegistryError {
    match e {
        TransportError::Timeout => RegistryError::Timeout,
        other => RegistryError::Unavailable(format!("peer: {other}")),
    }
}

pub(super) fn shutting_down() -> RegistryError {
    RegistryError::Unavailable("the registry is shutting down".into())
}

pub(super) fn wait_error(e: WaitError) -> RegistryError {
    match e {
        WaitError::Timeout(..) => RegistryError::Timeout,
        WaitError::ShuttingDown => RegistryError::Unavailable("raft is shutting down".into()),
    }
}
