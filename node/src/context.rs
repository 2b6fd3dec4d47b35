//! `NodeCtx`: the shared, read-mostly services every connection and admin request uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tether_cluster::clock::SharedClock;
use tether_cluster::{NodeId, Registry};

use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::session::directory::SessionDirectory;

/// Connection-level settings resolved from `[limits]`, `[auth]` and `[session]`.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub auth_timeout: Duration,
    pub idle_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub upgrade_timeout: Duration,
    pub max_frame_bytes: usize,
    pub max_protocol_errors: u32,
    pub outbound_queue: usize,
    pub messages_per_sec: u32,
    pub rate_limit_strikes: u32,
    pub max_subscriptions: usize,
    pub max_sessions_per_user: u32,
    /// `session.max_detached_per_user`; `None`: twice the user's attached cap.
    pub max_detached_per_user: Option<u32>,
    pub refresh_window_secs: u64,
    pub allow_query_token: bool,
    /// How long a close handshake may take before the socket is simply dropped.
    pub close_timeout: Duration,
    /// How long a detached session stays resumable (zero: no resume).
    pub resume_window: Duration,
    pub outbox_max_messages: usize,
    pub outbox_max_bytes: usize,
}

/// Everything shared by the gateway, the connection actors, the dispatcher and the admin API.
pub struct NodeCtx {
    pub node_id: NodeId,
    /// Node name shown to clients (`welcome.node`), `n<id>`.
    pub node_name: String,
    pub region: String,
    pub registry: Registry,
    pub directory: Arc<SessionDirectory>,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    pub clock: SharedClock,
    pub conn: ConnSettings,
    /// Set while the node is cut off from the registry (fail closed).
    pub isolation: Isolation,
}

/// Whether the node is cut off from the registry, read by the gateway and `/readyz`, set by
/// the isolation monitor (`isolation.rs`). Starts isolated: a node has not proven it reaches
/// a quorum until the monitor's first check says so.
pub struct Isolation {
    isolated: AtomicBool,
}

impl Default for Isolation {
    fn default() -> Self {
        Isolation {
            isolated: AtomicBool::new(true),
        }
    }
}

impl Isolation {
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Acquire)
    }

    /// Records the monitor's verdict; returns the previous one.
    pub(crate) fn set(&self, isolated: bool) -> bool {
        self.isolated.swap(isolated, Ordering::AcqRel)
    }
}

/// Registry view used by the authenticator to find tenant configs.
pub struct RegistryTenants<'a>(pub &'a Registry);

impl crate::auth::TenantLookup for RegistryTenants<'_> {
    fn tenant_config(&self, id: &str) -> Option<tether_cluster::tenant::TenantConfig> {
        self.0.read(|s| s.tenant(id).map(|t| t.config.clone()))
    }
}
