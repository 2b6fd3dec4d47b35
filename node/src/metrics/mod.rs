//! Prometheus metrics on `prometheus-client`: every family is registered at startup with
//! its `# HELP` and `# TYPE`, the label values the node knows are created at once (so a
//! counter reads 0 before its first event instead of being absent), and increments are
//! atomics (a family lookup takes a read lock, never a global mutex, and never allocates a
//! label string). `/metrics` serves the OpenMetrics text encoding.
//!
//! - this file: `Metrics`, its families, and `render`;
//! - `labels.rs`: the label sets and the label values created up front;
//! - `process.rs`: the process's own resident memory, open files and CPU time.

mod labels;
mod process;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use labels::{
    AdminRequest, Code, Event, IDP_OUTCOMES, IdpSignal, Kind, Outcome, REFUSED_REASONS, Reason,
    Rpc, TlsReload, Where,
};

/// Upper bounds (seconds) of the latency histograms: half a millisecond to five seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// Gauges read from elsewhere at scrape time (the registry, the isolation flag).
pub struct Snapshot {
    pub registry_sessions: i64,
    pub detached_sessions: i64,
    /// Channel subscriptions held by this node's sessions.
    pub subscriptions: i64,
    pub applied_index: i64,
    pub term: i64,
    pub is_leader: bool,
    pub isolated: bool,
    /// Total so far of `Registry::peer_identity_refusals`.
    pub peer_identity_refusals: u64,
}

pub struct Metrics {
    registry: Registry,
    connections: Gauge<i64, AtomicI64>,
    pub handshakes: Family<Outcome, Counter>,
    pub refused: Family<Reason, Counter>,
    pub admin_auth_failures: Family<Reason, Counter>,
    pub revocations: Family<Kind, Counter>,
    pub resumes: Family<Where, Counter>,
    pub closes: Family<Code, Counter>,
    pub isolation_changes: Family<Event, Counter>,
    pub idp_signals: Family<IdpSignal, Counter>,
    pub tls_reloads: Family<TlsReload, Counter>,
    pub accept_errors: Counter,
    pub actor_failures: Counter,
    pub protocol_errors: Counter,
    pub rate_limited: Counter,
    pub slow_consumers: Counter,
    pub audit_dropped: Counter,
    pub deliveries: Counter,
    pub trace_spans_dropped: Counter,
    peer_identity_refused: Counter,
    /// Bytes of frames kept in this node's outboxes for resume (the outboxes keep it).
    pub outbox_bytes: Gauge,
    commit: Histogram,
    pub handshake_seconds: Latencies<Outcome>,
    pub admin_request_seconds: Latencies<AdminRequest>,
    pub revocation_propagation_seconds: Latencies<Kind>,
    pub peer_rpc_seconds: Latencies<Rpc>,
    scrape: ScrapeGauges,
}

/// Gauges set from a [`Snapshot`] and the process just before each scrape.
#[derive(Default)]
struct ScrapeGauges {
    registry_sessions: Gauge,
    detached_sessions: Gauge,
    subscriptions: Gauge,
    applied_index: Gauge,
    term: Gauge,
    is_leader: Gauge,
    isolated: Gauge,
    resident_bytes: Gauge,
    open_fds: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            connections: Gauge::default(),
            handshakes: Family::default(),
            refused: Family::default(),
            admin_auth_failures: Family::default(),
            revocations: Family::default(),
            resumes: Family::default(),
            closes: Family::default(),
            isolation_changes: Family::default(),
            idp_signals: Family::default(),
            tls_reloads: Family::default(),
            accept_errors: Counter::default(),
            actor_failures: Counter::default(),
            protocol_errors: Counter::default(),
            rate_limited: Counter::default(),
            slow_consumers: Counter::default(),
            audit_dropped: Counter::default(),
            deliveries: Counter::default(),
            trace_spans_dropped: Counter::default(),
            peer_identity_refused: Counter::default(),
            outbox_bytes: Gauge::default(),
            commit: latency(),
            handshake_seconds: Family::new_with_constructor(latency),
            admin_request_seconds: Family::new_with_constructor(latency),
            revocation_propagation_seconds: Family::new_with_constructor(latency),
            peer_rpc_seconds: Family::new_with_constructor(latency),
            scrape: ScrapeGauges::default(),
        };
        labels::create_known(&m);
        m.register();
        m
    }

    fn register(&mut self) {
        // The library ends every HELP text with a period.
        let r = &mut self.registry;
        let build = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            (
                "commit",
                option_env!("TETHER_GIT_COMMIT").unwrap_or("unknown"),
            ),
        ]);
        r.register("tether_build", "The running build", build);
        r.register(
            "tether_connections",
            "Live client connections on this node",
            self.connections.clone(),
        );
        r.register(
            "tether_handshakes",
            "Client handshakes by outcome and reason (`ok` or why it failed)",
            self.handshakes.clone(),
        );
        r.register("tether_connections_refused", "Connections refused before they cost anything, by the limit or check that refused them", self.refused.clone());
        r.register(
            "tether_admin_auth_failures",
            "Admin requests with a refused token, by reason",
            self.admin_auth_failures.clone(),
        );
        r.register(
            "tether_revocations",
            "Revocations applied on this node, by kind (session, logout, token, tenant)",
            self.revocations.clone(),
        );
        r.register(
            "tether_idp_signals",
            "Identity-provider signals received, by kind (backchannel_logout, ssf) and outcome",
            self.idp_signals.clone(),
        );
        r.register(
            "tether_resumes",
            "Resumes answered by this node, by where the session came from",
            self.resumes.clone(),
        );
        r.register(
            "tether_closes",
            "Connections this node closed, by close code",
            self.closes.clone(),
        );
        r.register(
            "tether_isolation",
            "Isolation changes: the registry lease lost (`isolated`) or regained (`recovered`)",
            self.isolation_changes.clone(),
        );
        r.register(
            "tether_accept_errors",
            "Failed accepts on the client or admin listener (e.g. out of descriptors)",
            self.accept_errors.clone(),
        );
        r.register(
            "tether_actor_failures",
            "Connection actors that failed (panicked) and were cleaned up by the supervisor",
            self.actor_failures.clone(),
        );
        r.register(
            "tether_protocol_errors",
            "Client frames refused as bad",
            self.protocol_errors.clone(),
        );
        r.register(
            "tether_rate_limited",
            "Client frames refused by the message rate limit",
            self.rate_limited.clone(),
        );
        r.register(
            "tether_slow_consumers",
            "Connections dropped because their outbound queue stayed full",
            self.slow_consumers.clone(),
        );
        r.register(
            "tether_audit_dropped",
            "Audit lines dropped (queue full or a failed write)",
            self.audit_dropped.clone(),
        );
        r.register(
            "tether_deliveries",
            "Published messages handed to local connections",
            self.deliveries.clone(),
        );
        r.register(
            "tether_trace_spans_dropped",
            "Spans whose OTLP export failed",
            self.trace_spans_dropped.clone(),
        );
        r.register(
            "tether_tls_reloads",
            "Certificate reloads after their files changed or on SIGHUP, by TLS config and outcome (failed: the previous certificate stays)",
            self.tls_reloads.clone(),
        );
        r.register(
            "tether_peer_identity_refused",
            "Peer connections refused because the claimed node id is not the one the peer's certificate names",
            self.peer_identity_refused.clone(),
        );
        r.register(
            "tether_outbox_bytes",
            "Bytes of frames this node's sessions keep for a resume",
            self.outbox_bytes.clone(),
        );
        r.register(
            "tether_raft_commit_seconds",
            "Propose-to-apply latency of registry writes made on this node",
            self.commit.clone(),
        );
        r.register(
            "tether_handshake_seconds",
            "Accept to welcome (or refusal), by outcome",
            self.handshake_seconds.clone(),
        );
        r.register(
            "tether_admin_request_seconds",
            "Admin API requests, by route and status",
            self.admin_request_seconds.clone(),
        );
        r.register(
            "tether_revocation_propagation_seconds",
            "Admin call to every owning connection closed (`?wait=closed`), by kind",
            self.revocation_propagation_seconds.clone(),
        );
        r.register(
            "tether_peer_rpc_seconds",
            "Node-to-node calls made by this node, by call",
            self.peer_rpc_seconds.clone(),
        );
        let g = &self.scrape;
        r.register(
            "tether_registry_sessions",
            "Live sessions in the registry (cluster-wide)",
            g.registry_sessions.clone(),
        );
        r.register(
            "tether_detached_sessions",
            "Detached (resumable) sessions in the registry (cluster-wide)",
            g.detached_sessions.clone(),
        );
        r.register(
            "tether_subscriptions",
            "Channel subscriptions held by this node's sessions",
            g.subscriptions.clone(),
        );
        r.register(
            "tether_raft_applied_index",
            "Last applied Raft log index",
            g.applied_index.clone(),
        );
        r.register("tether_raft_term", "Current Raft term", g.term.clone());
        r.register(
            "tether_raft_is_leader",
            "1 if this node leads",
            g.is_leader.clone(),
        );
        r.register(
            "tether_isolated",
            "1 while this node is cut off from the registry quorum (fail closed)",
            g.isolated.clone(),
        );
        r.register(
            "tether_process_resident_memory_bytes",
            "Resident memory of the node process",
            g.resident_bytes.clone(),
        );
        r.register(
            "tether_process_open_fds",
            "Open file descriptors of the node process",
            g.open_fds.clone(),
        );
        r.register(
            "tether_process_cpu_seconds",
            "CPU time (user + system) of the node process",
            g.cpu_seconds.clone(),
        );
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    pub fn connections(&self) -> i64 {
        self.connections.get()
    }

    /// A handshake that failed for `reason`.
    pub fn handshake_failed(&self, reason: &'static str) {
        self.handshakes.get_or_create(&Outcome::fail(reason)).inc();
    }

    pub fn tls_reloaded(&self, listener: &'static str, outcome: &'static str) {
        let labels = TlsReload { listener, outcome };
        self.tls_reloads.get_or_create(&labels).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    pub fn observe_commit(&self, d: Duration) {
        self.commit.observe(d.as_secs_f64());
    }

    /// OpenMetrics text, with the scrape-time gauges set from `s` and the process.
    pub fn render(&self, s: &Snapshot) -> String {
        let g = &self.scrape;
        g.registry_sessions.set(s.registry_sessions);
        g.detached_sessions.set(s.detached_sessions);
        g.subscriptions.set(s.subscriptions);
        g.applied_index.set(s.applied_index);
        g.term.set(s.term);
        g.is_leader.set(i64::from(s.is_leader));
        g.isolated.set(i64::from(s.isolated));
        let p = process::read();
        g.resident_bytes.set(p.resident_bytes);
        g.open_fds.set(p.open_fds);
        g.cpu_seconds.set(p.cpu_seconds);
        let spans = crate::telemetry::SPANS_DROPPED.load(Ordering::Relaxed);
        let seen = self.trace_spans_dropped.get();
        self.trace_spans_dropped.inc_by(spans.saturating_sub(seen));
        let refused = self.peer_identity_refused.get();
        self.peer_identity_refused
            .inc_by(s.peer_identity_refusals.saturating_sub(refused));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests;
