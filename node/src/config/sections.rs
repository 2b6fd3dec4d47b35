//! The scalar config sections (`[node]`, `[listen]`, …) and their defaults.
//!
//! Every section is `deny_unknown_fields` so a misspelt key is an error rather than a
//! silently ignored setting, and `default` so a file only needs the keys it changes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::keys::KeySection;

/// `[node]`: who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Unique in the cluster, > 0 (openraft node ids; 0 reads as "unset" in logs).
    pub id: u64,
    pub region: String,
    pub data_dir: PathBuf,
    /// Take the id from the host name's trailing ordinal plus one (`tether-0` → 1,
    /// `tether-2` → 3), as a Kubernetes StatefulSet names its pods. Overrides `id`.
    pub id_from_hostname: bool,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            id: 1,
            region: "local".to_owned(),
            data_dir: PathBuf::from("./tether-data"),
            id_from_hostname: false,
        }
    }
}

/// The node id encoded in a StatefulSet-style host name: trailing `-<ordinal>`, plus one.
pub fn id_from_hostname(hostname: &str) -> Option<u64> {
    let host = hostname.split('.').next()?;
    let (_, ordinal) = host.rsplit_once('-')?;
    ordinal.parse::<u64>().ok()?.checked_add(1)
}

/// `[listen]`: `host:port` strings (IPv6 hosts in brackets). Kept as strings, not
/// `SocketAddr`, so a host name such as `localhost:7070` is allowed and resolved at bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenSection {
    pub client: String,
    pub admin: String,
    pub peer: String,
    /// CIDRs of the load balancers in front of the client listener. From these peers the
    /// client address is taken from `X-Forwarded-For` / `Forwarded` (the rightmost address
    /// not in this set); from any other peer those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// Every client connection starts with a PROXY protocol v1 or v2 header (TCP load
    /// balancers); its source address is the client's.
    pub proxy_protocol: bool,
}

impl Default for ListenSection {
    fn default() -> Self {
        Self {
            client: "127.0.0.1:7070".to_owned(),
            admin: "127.0.0.1:7071".to_owned(),
            peer: "127.0.0.1:7072".to_owned(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
        }
    }
}

/// Raft timing profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// Short heartbeats and election timeouts for nodes in one data centre.
    #[default]
    Lan,
    /// Longer timeouts that tolerate cross-region round trips.
    CrossRegion,
}

/// `[cluster]`: how this node finds and joins the Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Peer addresses of existing members; empty bootstraps a new cluster.
    pub join: Vec<String>,
    pub voter: bool,
    pub timing: Timing,
    /// Plaintext peer links (dev/test only).
    pub insecure_peer: bool,
    /// Peer address other members use to reach this node (`host:port`). Default: the bound
    /// `listen.peer` address (with its real port when it was 0).
    pub advertise: Option<String>,
    /// Local IP that outbound peer connections are bound to (e.g. `"10.0.0.5"`). Default:
    /// chosen by the kernel. For hosts with several addresses, and for the chaos suite, which
    /// runs each node on its own loopback address so its fault proxy knows who dialed.
    pub peer_source_addr: Option<String>,
    /// Past this long without a working registry (no quorum ack as leader, no leader contact
    /// otherwise) the node refuses new connections and resumes. Default: by `timing`.
    pub isolation_lease_ms: Option<u64>,
    /// This long after the lease ran out the node closes its clients with 4111.
    pub isolation_grace_ms: Option<u64>,
    /// Announce at most this peer protocol version (default: the newest this build
    /// speaks). For testing a mixed-version cluster with one build.
    pub peer_protocol_max: Option<u32>,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            join: Vec::new(),
            voter: true,
            timing: Timing::Lan,
            insecure_peer: false,
            advertise: None,
            peer_source_addr: None,
            isolation_lease_ms: None,
            isolation_grace_ms: None,
            peer_protocol_max: None,
        }
    }
}

impl ClusterSection {
    /// (lease, grace) in ms. LAN: 1000 + 1500, so a cut-off node stops serving revoked
    /// sessions within 2.5 s (plus one 100 ms check) — an election takes 0.3-0.6 s, so a
    /// healthy cluster never trips it. Cross-region: 4000 + 3000, above the 1.5-3 s elections.
    pub fn isolation_ms(&self) -> (u64, u64) {
        let (lease, grace) = match self.timing {
            Timing::Lan => (1000, 1500),
            Timing::CrossRegion => (4000, 3000),
        };
        (
            self.isolation_lease_ms.unwrap_or(lease),
            self.isolation_grace_ms.unwrap_or(grace),
        )
    }
}

/// `[tls]`: paths to PEM files. Existence is checked when they are loaded, not here, so
/// `--check-config` can run on a machine that does not hold the secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// HTTPS on the admin listener (both or neither).
    pub admin_cert: Option<PathBuf>,
    pub admin_key: Option<PathBuf>,
    /// With it, admin requests other than `/livez` and `/readyz` need a client certificate
    /// signed by this CA (on top of the admin token); probes stay open for the kubelet.
    pub admin_client_ca: Option<PathBuf>,
    pub peer_ca: Option<PathBuf>,
    /// `{node_id}` in `peer_cert` and `peer_key` is replaced by this node's id, so the pods of
    /// a StatefulSet, which share one config, each read their own certificate.
    pub peer_cert: Option<PathBuf>,
    pub peer_key: Option<PathBuf>,
    /// Accept peer certificates without a `urn:tether:node:<id>` SAN URI (each such
    /// connection is logged as a warning). Only to migrate a cluster whose certificates
    /// predate node ids; with it any holder of a cluster certificate can claim any node id.
    pub peer_allow_missing_node_id: bool,
}

impl TlsSection {
    /// `(peer_ca, peer_cert, peer_key)` with `{node_id}` replaced, when all three are set.
    pub fn peer_files(&self, node_id: u64) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let own = |p: &PathBuf| {
            PathBuf::from(
                p.to_string_lossy()
                    .replace("{node_id}", &node_id.to_string()),
            )
        };
        match (&self.peer_ca, &self.peer_cert, &self.peer_key) {
            (Some(ca), Some(cert), Some(key)) => Some((ca.clone(), own(cert), own(key))),
            _ => None,
        }
    }
}

/// `[auth]`: client token verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Clock skew tolerated on `exp`/`nbf`, ≤ 300.
    pub leeway_secs: u64,
    /// Name of the claim carrying the tenant id.
    pub tenant_claim: String,
    /// `token_expiring` is sent this long before `exp`.
    pub refresh_window_secs: u64,
    /// Accept `?token=` on the upgrade URL (off: URLs end up in proxy logs).
    pub allow_query_token: bool,
    /// Longest accepted JWT, 512..=65536.
    pub max_token_bytes: usize,
    /// Allow `http://` tenant `jwks_uri`s (dev and tests); otherwise only `https://`.
    pub allow_http_jwks: bool,
    /// Admin tokens whose `exp - iat` is longer than this (or without `iat`) are refused.
    pub admin_max_token_lifetime_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            tenant_claim: "tid".to_owned(),
            refresh_window_secs: 60,
            allow_query_token: false,
            max_token_bytes: 8192,
            allow_http_jwks: false,
            admin_max_token_lifetime_secs: 86_400,
        }
    }
}

/// `[limits]`: per-node connection and traffic limits. All must be > 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub auth_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// Must be < `idle_timeout_secs`, or a healthy idle client would be cut off.
    pub heartbeat_interval_secs: u64,
    /// 1024..=16 MiB.
    pub max_frame_bytes: usize,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub max_connections_per_user: u32,
    pub handshakes_per_ip_per_sec: u32,
    pub messages_per_conn_per_sec: u32,
    pub max_protocol_errors: u32,
    /// Frames queued per connection before it counts as a slow consumer.
    pub outbound_queue: usize,
    /// The HTTP upgrade must complete within this (anti-slowloris).
    pub upgrade_timeout_secs: u64,
    pub max_subscriptions_per_conn: u32,
    /// One-second windows over the message rate before close 4108.
    pub rate_limit_strikes: u32,
    /// Sockets from one address that have not finished their HTTP upgrade yet; more are
    /// answered 429 at once, without waiting for their request.
    pub max_pending_upgrades_per_ip: u32,
    /// IPv6 clients are counted per prefix of this length for the per-IP limits (one host
    /// usually holds a whole /64).
    pub ipv6_prefix_len: u8,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            auth_timeout_secs: 5,
            idle_timeout_secs: 60,
            heartbeat_interval_secs: 25,
            max_frame_bytes: 65536,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            max_connections_per_user: 50,
            handshakes_per_ip_per_sec: 50,
            messages_per_conn_per_sec: 100,
            max_protocol_errors: 3,
            outbound_queue: 256,
            upgrade_timeout_secs: 10,
            max_subscriptions_per_conn: 100,
            rate_limit_strikes: 3,
            max_pending_upgrades_per_ip: 32,
            ipv6_prefix_len: 64,
        }
    }
}

/// `[session]`: resumable sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// How long a dropped connection's session stays resumable (0 disables resume).
    pub resume_window_secs: u64,
    /// How often expired sessions are swept from the registry.
    pub expire_interval_secs: u64,
    /// Bounds of the per-session outbox kept for resume (frames, bytes); past them the oldest
    /// frames are dropped and a resume reports `recovered: false`.
    pub outbox_max_messages: usize,
    pub outbox_max_bytes: usize,
    /// On SIGTERM: clients are told to reconnect at jittered times over this window, then
    /// the remaining ones get 1012. 0 skips the advisories.
    pub drain_secs: u64,
    /// Detached (resumable) sessions one user may keep; admitting one more ends the user's
    /// oldest detached session. Absent: twice `limits.max_connections_per_user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_detached_per_user: Option<u32>,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            resume_window_secs: 120,
            expire_interval_secs: 60,
            outbox_max_messages: 1000,
            outbox_max_bytes: 1024 * 1024,
            drain_secs: 30,
            max_detached_per_user: None,
        }
    }
}

/// `[raft]`: log compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Build a snapshot after this many applied entries.
    pub snapshot_every: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        Self {
            snapshot_every: 5000,
        }
    }
}

/// `[audit]`: where the audit lines go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// `stdout` or `file`.
    pub sink: AuditSinkKind,
    /// The audit file with `sink = "file"`; rotated files are `<path>.1` (newest) to
    /// `<path>.<max_files>`.
    pub path: PathBuf,
    /// Size past which the file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept beside the current one.
    pub max_files: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSinkKind {
    #[default]
    Stdout,
    File,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            sink: AuditSinkKind::Stdout,
            path: PathBuf::new(),
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// `[admin]`: keys that sign admin tokens (`[[admin.keys]]`) and the listener's connection cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub keys: Vec<KeySection>,
    /// Open connections to the admin listener; more are answered 503 and closed at once.
    pub max_connections: u32,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_connections: 256,
        }
    }
}
