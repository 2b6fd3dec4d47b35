//! Commands proposed to the registry log, the metadata apply sees, and the events it yields.

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::tenant::TenantConfig;

/// What a Raft entry carries: a command plus the proposer's wall time and trace context.
///
/// `at_ms` is stamped once, by the proposer, and then replicated; apply uses it as "now" so
/// every node computes the same state. No node's local clock is read inside apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub at_ms: u64,
    /// W3C `traceparent` of the request that proposed this entry, if any.
    pub traceparent: Option<String>,
    pub command: Command,
}

impl std::fmt::Display for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.command.name(), self.at_ms)
    }
}

/// Data about the entry being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Raft log index of the entry.
    pub index: u64,
    /// Wall time stamped by the proposer (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Client metadata reported in `hello.client`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClientInfo {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Admission of a new session; re-checked inside apply against the state at this log position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub session_id: String,
    pub tenant: String,
    pub user: String,
    pub jti: Option<String>,
    /// Token `iat` (seconds). Tokens without `iat` are refused before proposing.
    pub iat: u64,
    /// Token `exp` (seconds).
    pub exp: u64,
    /// Node that owns the connection.
    pub node: NodeId,
    pub client: ClientInfo,
    /// Impersonating actor (`act.sub`), if any.
    pub act: Option<String>,
    /// The IdP session id the token carried (the tenant's `idp.sid_claim`).
    pub sid: Option<String>,
    /// Cluster-wide cap on attached sessions of this user (detached ones are bounded by
    /// `max_detached_per_user` instead); 0 = unlimited. Carried in the command (not read from
    /// local config) so apply stays deterministic.
    pub max_sessions_per_user: u32,
    /// Detached sessions the user may keep; admitting while over it ends the user's oldest
    /// detached sessions (in this entry, so every node ends the same ones). 0 = unlimited.
    pub max_detached_per_user: u32,
    /// SHA-256 (hex) of the resume token handed to the client in `welcome`.
    pub resume_hash: String,
}

/// A resume: `node` takes the session over (same node or another), fenced by epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindSession {
    pub session_id: String,
    pub tenant: String,
    pub user: String,
    /// SHA-256 (hex) of the resume token the client presented.
    pub resume_hash: String,
    /// SHA-256 (hex) of the new resume token (rotated at every resume).
    pub new_resume_hash: String,
    pub node: NodeId,
    /// The token presented with the resume (admission is re-checked for it).
    pub jti: Option<String>,
    pub iat: u64,
    pub exp: u64,
    /// Its IdP session id.
    pub sid: Option<String>,
    /// The cap on the user's attached sessions, as in `OpenSession`: re-attaching may not
    /// take the user over it.
    pub max_sessions_per_user: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    OpenSession(OpenSession),
    /// The connection ended normally (client close, network drop, token expiry).
    CloseSession {
        session_id: String,
        /// The closing owner's epoch: a close from an owner that was fenced off by a later
        /// `BindSession` is ignored. `None`: unconditional.
        epoch: Option<u64>,
    },
    RevokeSession {
        session_id: String,
        reason: String,
    },
    /// Ends every session of the user and sets `not_before`: tokens issued earlier are dead.
    LogoutUser {
        tenant: String,
        user: String,
        reason: String,
    },
    /// Deny-lists a token id until its `exp` (seconds).
    RevokeToken {
        tenant: String,
        jti: String,
        exp: u64,
    },
    SetPermissions {
        tenant: String,
        user: String,
        permissions: Vec<String>,
    },
    /// Back to the permissions in each session's token.
    ClearPermissions {
        tenant: String,
        user: String,
    },
    DisableTenant {
        tenant: String,
    },
    EnableTenant {
        tenant: String,
    },
    PutTenant(TenantConfig),
    DeleteTenant {
        tenant: String,
    },
    /// Garbage collection proposed by the leader: drops deny-list entries past their `exp`
    /// and revoked-session tombstones older than the retention, judged at the entry's time.
    Expire,
    /// A live session presented a new token in-band; re-checked like an admission.
    RefreshSession {
        session_id: String,
        jti: Option<String>,
        iat: u64,
        exp: u64,
        /// The new token's IdP session id.
        sid: Option<String>,
    },
    /// The connection dropped without ending the session: it stays resumable for
    /// `resume_window_ms` after this entry.
    DetachSession {
        session_id: String,
        resume_window_ms: u64,
        /// The detaching owner's epoch (a stale owner's detach is ignored).
        epoch: u64,
    },
    BindSession(BindSession),
    /// A signal from the tenant's identity provider, verified by the node that received it.
    IdpSignal(IdpSignal),
    /// Group commit: proposals that queued up on the leader while earlier entries were being
    /// written, committed as one entry (one log append, one fsync). Applied in order, each at
    /// the entry's `at_ms`; each proposer gets back its own events ([`crate::Applied::parts`]).
    /// A `Batch` inside a `Batch` is ignored.
    Batch(Vec<Batched>),
}

/// A back-channel logout token or a Security Event Token, as what it asks for. Applied all or
/// nothing: a `jti` already applied changes nothing ([`RegistryEvent::IdpSignalReplayed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpSignal {
    pub tenant: String,
    /// The token's `jti`, remembered until `keep_until` (seconds since the epoch).
    pub jti: String,
    pub keep_until: u64,
    /// In order; a SET may carry several events.
    pub actions: Vec<IdpAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdpAction {
    /// Ends (4004) the live sessions whose token carried IdP session id `sid` (only `user`'s
    /// when given) and denies that sid at connect, refresh and resume for `deny_secs`.
    EndIdpSession {
        sid: String,
        user: Option<String>,
        deny_secs: u64,
    },
    /// As [`Command::LogoutUser`] (4005).
    LogoutUser { user: String },
    /// As [`Command::SetPermissions`].
    SetPermissions {
        user: String,
        permissions: Vec<String>,
    },
}

/// One proposal inside a [`Command::Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batched {
    /// W3C `traceparent` of the request that proposed it, if any.
    pub traceparent: Option<String>,
    pub command: Command,
}

impl Command {
    /// The oldest peer protocol whose builds can apply this command (see
    /// `transport::wire::PROTOCOL_VERSION`): it is not proposed while a member speaks less.
    pub fn min_protocol(&self) -> u32 {
        match self {
            Command::IdpSignal(_) => 2,
            _ => 1,
        }
    }

    /// An admission or a session's end: they arrive in bulk under churn and may wait a moment
    /// to share a commit (`registry::group_commit`). Everything else is committed at once:
    /// what takes access away, an operator's call, and a session moving between connections
    /// (detach, resume), which a reconnecting client and its missed messages wait on.
    pub fn may_wait(&self) -> bool {
        matches!(self, Command::OpenSession(_) | Command::CloseSession { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Command::OpenSession(_) => "open_session",
            Command::CloseSession { .. } => "close_session",
            Command::RevokeSession { .. } => "revoke_session",
            Command::LogoutUser { .. } => "logout_user",
            Command::RevokeToken { .. } => "revoke_token",
            Command::SetPermissions { .. } => "set_permissions",
            Command::ClearPermissions { .. } => "clear_permissions",
            Command::DisableTenant { .. } => "disable_tenant",
            Command::EnableTenant { .. } => "enable_tenant",
            Command::PutTenant(_) => "put_tenant",
            Command::DeleteTenant { .. } => "delete_tenant",
            Command::RefreshSession { .. } => "refresh_session",
            Command::DetachSession { .. } => "detach_session",
            Command::BindSession(_) => "bind_session",
            Command::IdpSignal(_) => "idp_signal",
            Command::Expire => "expire",
            Command::Batch(_) => "batch",
        }
    }
}

/// Why apply refused an `OpenSession`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Denial {
    UnknownTenant,
    TenantDisabled,
    /// `iat < user.not_before`.
    LoggedOut,
    TokenRevoked,
    /// The session id is revoked (tombstone).
    SessionRevoked,
    /// The session id is already live.
    SessionExists,
    TooManySessions,
    /// No resumable session matches (unknown id, wrong token or subject, window passed).
    ResumeUnknown,
    /// The token's IdP session was logged out at the IdP.
    IdpSessionEnded,
}

/// A session touched by an event, with the node that owns its connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRef {
    pub session_id: String,
    pub node: NodeId,
}

/// What applying one entry changed, for dispatch to connection actors and for the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryEvent {
    SessionOpened {
        session: SessionRef,
        tenant: String,
        user: String,
    },
    AdmissionDenied {
        session_id: String,
        reason: Denial,
    },
    SessionClosed {
        session_id: String,
    },
    /// A `RefreshSession` was admitted.
    SessionRefreshed {
        session_id: String,
    },
    SessionDetached {
        session_id: String,
    },
    /// A detached session was ended to make room under `max_detached_per_user`: its owner
    /// drops what it kept for a resume, and a resume of it starts a fresh session.
    SessionEvicted {
        session: SessionRef,
    },
    /// `session.node` now owns the session at `epoch`; `previous_node` must close any
    /// connection it still has for it (4009).
    SessionBound {
        session: SessionRef,
        previous_node: NodeId,
        epoch: u64,
    },
    /// Close with 4004.
    SessionRevoked {
        session: SessionRef,
        reason: String,
    },
    /// Close every listed session with 4005.
    UserLoggedOut {
        tenant: String,
        user: String,
        not_before: u64,
        sessions: Vec<SessionRef>,
    },
    /// Close every listed session (holders of that jti) with 4004.
    TokenRevoked {
        tenant: String,
        jti: String,
        sessions: Vec<SessionRef>,
    },
    /// `permissions: None` means "back to token claims".
    PermissionsChanged {
        tenant: String,
        user: String,
        permissions: Option<Vec<String>>,
        version: u64,
        sessions: Vec<SessionRef>,
    },
    /// Close every listed session with 4006.
    TenantDisabled {
        tenant: String,
        sessions: Vec<SessionRef>,
    },
    TenantEnabled {
        tenant: String,
    },
    TenantUpdated {
        tenant: String,
    },
    /// Close every listed session with 4006.
    TenantDeleted {
        tenant: String,
        sessions: Vec<SessionRef>,
    },
    Expired {
        jtis: usize,
        tombstones: usize,
        /// IdP sid denials and signal jtis.
        idp: usize,
    },
    /// An IdP signal was applied; the events of its actions precede this one.
    IdpSignalApplied {
        tenant: String,
        jti: String,
    },
    /// An IdP signal whose `jti` was applied before: nothing changed.
    IdpSignalReplayed {
        tenant: String,
        jti: String,
    },
    /// Apply found nothing to act on (unknown session, user, tenant): the proposer answers 404.
    NotFound {
        what: String,
    },
}

impl RegistryEvent {
    /// Sessions whose connections must be closed or told about this event.
    pub fn sessions(&self) -> Vec<&SessionRef> {
        match self {
            RegistryEvent::SessionRevoked { session, .. } => vec![session],
            RegistryEvent::UserLoggedOut { sessions, .. }
            | RegistryEvent::TokenRevoked { sessions, .. }
            | RegistryEvent::PermissionsChanged { sessions, .. }
            | RegistryEvent::TenantDisabled { sessions, .. }
            | RegistryEvent::TenantDeleted { sessions, .. } => sessions.iter().collect(),
            _ => Vec::new(),
        }
    }
}
