//! Builds a node from its config and already-bound listeners, runs it until `shutdown`.
//!
//! Library code never binds: `main` (or a test) binds, possibly to port 0, and passes the
//! listeners in. The admin API runs on its own runtime thread so probes and revocations are
//! answered even when the client listener saturates the main runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use tether_cluster::clock::SharedClock;
use tether_cluster::command::Command;
use tether_cluster::{RaftTiming, Registry, RegistryConfig, TetherNode};
use tether_protocol::CloseCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::audit::{Audit, AuditSink};
use crate::auth::{AdminVerifier, AuthSettings, Authenticator};
use crate::config::{AuditSinkKind, Config, Timing};
use crate::context::{ConnSettings, NodeCtx};
use crate::gateway::{self, Edge, Gateway};
use crate::limits::{LimitSettings, Limits};
use crate::metrics::Metrics;
use crate::net::TrustedProxies;
use crate::session::directory::SessionDirectory;
use crate::session::dispatch::Dispatcher;
use crate::session::rpc::PeerApp;
use crate::session::{ConnMsg, SessionSupervisor};
use crate::{isolation, peer, tls};

/// Listeners bound by the caller.
pub struct Listeners {
    pub client: std::net::TcpListener,
    pub admin: std::net::TcpListener,
    pub peer: std::net::TcpListener,
}

/// How long a joining node keeps trying its seeds before giving up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a draining leader waits for another voter to take over.
const LEADER_HANDOVER: Duration = Duration::from_secs(4);

/// How long shutdown waits for connections to close before stopping the registry.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn conn_settings(c: &Config) -> ConnSettings {
    let l = &c.limits;
    ConnSettings {
        auth_timeout: Duration::from_secs(l.auth_timeout_secs),
        idle_timeout: Duration::from_secs(l.idle_timeout_secs),
        heartbeat_interval: Duration::from_secs(l.heartbeat_interval_secs),
        upgrade_timeout: Duration::from_secs(l.upgrade_timeout_secs),
        max_frame_bytes: l.max_frame_bytes,
        max_protocol_errors: l.max_protocol_errors,
        outbound_queue: l.outbound_queue,
        messages_per_sec: l.messages_per_conn_per_sec,
        rate_limit_strikes: l.rate_limit_strikes,
        max_subscriptions: l.max_subscriptions_per_conn as usize,
        max_sessions_per_user: l.max_connections_per_user,
        max_detached_per_user: c.session.max_detached_per_user,
        refresh_window_secs: c.auth.refresh_window_secs,
        allow_query_token: c.auth.allow_query_token,
        close_timeout: Duration::from_secs(2),
        resume_window: Duration::from_secs(c.session.resume_window_secs),
        outbox_max_messages: c.session.outbox_max_messages,
        outbox_max_bytes: c.session.outbox_max_bytes,
    }
}

/// Runs the node until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listeners: Listeners,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let directory = Arc::new(SessionDirectory::default());
    let dispatcher = Dispatcher::new(config.node.id, directory.clone(), metrics.clone());
    let timing = match config.cluster.timing {
        Timing::Lan => RaftTiming::lan(),
        Timing::CrossRegion => RaftTiming::cross_region(),
    };
    let advertise = match &config.cluster.advertise {
        Some(a) => a.clone(),
        None => listeners.peer.local_addr()?.to_string(),
    };
    let registry_node_addr = advertise.clone();
    let node = TetherNode {
        addr: advertise,
        region: config.node.region.clone(),
    };
    let (transport, serve_peers) = peer::transport_config(&config)?;
    let mut rc = RegistryConfig::new(config.node.id, node, config.node.data_dir.clone());
    rc.timing = timing;
    rc.snapshot_every = config.raft.snapshot_every;
    rc.expire_interval = Duration::from_secs(config.session.expire_interval_secs);
    rc.transport = transport.clone();
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("creating data dir {}", config.node.data_dir.display()))?;
    let registry = Registry::open(rc, clock.clone(), dispatcher.clone())
        .await
        .context("opening the registry")?;

    let settings = AuthSettings {
        leeway_secs: config.auth.leeway_secs,
        tenant_claim: config.auth.tenant_claim.clone(),
        max_token_bytes: config.auth.max_token_bytes,
    };
    let admin_keys: Vec<_> = config.admin.keys.iter().map(|k| k.to_key_spec()).collect();
    let admin_verifier = AdminVerifier::new(
        &admin_keys,
        clock.clone(),
        config.auth.leeway_secs,
        config.auth.admin_max_token_lifetime_secs,
    )
    .context("admin keys")?;
    let node_name = format!("n{}", config.node.id);
    let sink = match config.audit.sink {
        AuditSinkKind::Stdout => AuditSink::Stdout,
        AuditSinkKind::File => AuditSink::File {
            path: config.audit.path.clone(),
            max_bytes: config.audit.max_bytes,
            max_files: config.audit.max_files,
        },
    };
    let audit = Audit::start(sink, &node_name, clock.clone(), metrics.clone())
        .with_context(|| format!("opening the audit log {}", config.audit.path.display()))?;
    let ctx = Arc::new(NodeCtx {
        node_id: config.node.id,
        node_name,
        region: config.node.region.clone(),
        registry: registry.clone(),
        directory,
        auth: Authenticator::new(settings, clock.clone()),
        metrics: metrics.clone(),
        audit,
        clock,
        conn: conn_settings(&config),
        isolation: Default::default(),
    });

    let listener_tls = tls::ListenerTls::load(&config.tls)?;
    let tls_stop = CancellationToken::new();
    let tls_task = tokio::spawn(tls::reload::watch(
        listener_tls.reloadables(transport.tls.as_ref()),
        metrics.clone(),
        tls::reload::POLL,
        tls_stop.clone(),
    ));

    // The admin API (probes first of all) answers from here on: `/livez` while joining,
    // `/readyz` false until the node serves.
    let ready = Arc::new(AtomicBool::new(false));
    let admin_state = Arc::new(AdminState {
        ctx: ctx.clone(),
        admin: admin_verifier,
        dispatch: dispatcher.log.clone(),
        ready: ready.clone(),
        allow_http_jwks: config.auth.allow_http_jwks,
    });
    let admin_stop = CancellationToken::new();
    let admin_thread = spawn_admin(
        listeners.admin,
        listener_tls.admin.clone(),
        admin::router(admin_state),
        config.admin.max_connections as usize,
        metrics.clone(),
        admin_stop.clone(),
    )?;

    // Peers must be served before joining: the leader replicates to us while we join.
    let peer_stop = CancellationToken::new();
    let peer_task = if serve_peers {
        let app = Arc::new(PeerApp {
            ctx: ctx.clone(),
            dispatch: dispatcher.log.clone(),
        });
        let service = Arc::new(registry.peer_service(app));
        listeners.peer.set_nonblocking(true)?;
        let l = TcpListener::from_std(listeners.peer)?;
        Some(tokio::spawn(tether_cluster::transport::serve(
            l,
            transport,
            service,
            peer_stop.clone(),
        )))
    } else {
        tracing::info!(
            "peer listener disabled: no [tls] peer_* files and insecure_peer = false (single node)"
        );
        drop(listeners.peer);
        None
    };
    // The node listed FIRST in its own `join` (ordinal 0 of a StatefulSet, say) is the seed:
    // it bootstraps when it has no state, like a node with no `join` at all.
    // Only the FIRST entry may bootstrap: two seeds with empty data dirs would otherwise form
    // two clusters.
    let is_seed = config.cluster.join.first() == Some(&registry_node_addr);
    if config.cluster.join.is_empty() || is_seed {
        registry
            .bootstrap_if_new()
            .await
            .context("bootstrapping the registry")?;
    } else {
        tracing::info!(seeds = ?config.cluster.join, voter = config.cluster.voter, "joining the cluster");
        registry
            .join(&config.cluster.join, config.cluster.voter, JOIN_TIMEOUT)
            .await
            .context("joining the cluster through cluster.join")?;
    }
    registry
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("waiting for a leader")?;
    // A restarted node's state machine may not have applied its whole log yet (openraft
    // re-applies only up to the commit index it had saved): without this, the reaper below
    // could miss a session whose admission committed just before a crash, and the isolation
    // monitor would later detach it instead of ending it.
    registry
        .catch_up(Duration::from_secs(30))
        .await
        .context("catching up with the registry's log")?;
    sync_tenants(&registry, &config).await?;
    crate::session::reap::reap_orphans(&ctx, crate::session::reap::Reap::Close).await;
    let (supervisor, supervisor_join) = Actor::spawn(None, SessionSupervisor, ctx.clone())
        .await
        .context("starting the session supervisor")?;

    let l = &config.limits;
    let limits = Arc::new(Limits::new(LimitSettings {
        max_connections: l.max_connections as usize,
        max_per_ip: l.max_connections_per_ip,
        max_pending_per_ip: l.max_pending_upgrades_per_ip,
        handshakes_per_ip_per_sec: l.handshakes_per_ip_per_sec,
        ipv6_prefix_len: l.ipv6_prefix_len,
    }));
    let trusted_proxies = TrustedProxies::parse(&config.listen.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("listen.trusted_proxies: {e}"))?;
    let gw = Arc::new(Gateway {
        ctx: ctx.clone(),
        limits: limits.clone(),
        supervisor: supervisor.clone(),
        tls: listener_tls.client.clone(),
        edge: Edge::new(trusted_proxies, config.listen.proxy_protocol),
    });
    listeners.client.set_nonblocking(true)?;
    let client_listener = TcpListener::from_std(listeners.client)?;
    let accepting = CancellationToken::new();
    let gateway_task = tokio::spawn(gateway::serve(client_listener, gw, accepting.clone()));

    let gc_limits = limits.clone();
    let gc = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            gc_limits.gc();
        }
    });
    let (lease_ms, grace_ms) = config.cluster.isolation_ms();
    let iso_stop = CancellationToken::new();
    let iso_task = tokio::spawn(isolation::monitor(
        ctx.clone(),
        Duration::from_millis(lease_ms),
        Duration::from_millis(grace_ms),
        iso_stop.clone(),
    ));
    ready.store(true, Ordering::Release);
    tracing::info!(node = ctx.node_id, "node ready");

    shutdown.cancelled().await;
    tracing::info!("shutting down: draining");
    ready.store(false, Ordering::Release);
    accepting.cancel();
    let _ = gateway_task.await;
    // The lease monitor stops first: it would lift the fence drain() puts on a leader.
    iso_stop.cancel();
    let _ = iso_task.await;
    drain(
        &ctx,
        &metrics,
        Duration::from_secs(config.session.drain_secs),
    )
    .await;
    for (_, e) in ctx.directory.all() {
        let _ = e.actor.cast(ConnMsg::Close {
            code: CloseCode::ServiceRestart,
            registry: false,
            cause: tracing::Span::current(),
        });
    }
    // 1012 detaches each session (resumable on another node): wait until no connection is
    // attached any more, bounded by the grace.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let mut check = tokio::time::interval(Duration::from_millis(20));
    while metrics.connections() > 0 && tokio::time::Instant::now() < deadline {
        check.tick().await;
    }
    // Sessions resumed elsewhere fetch their state from here (handover); give the stragglers
    // that got 1012 a moment to do so before the actors go.
    let ids: Vec<String> = ctx.directory.all().into_iter().map(|(s, _)| s).collect();
    ctx.directory
        .wait_gone(&ids, tokio::time::Instant::now() + SHUTDOWN_GRACE)
        .await;
    // Let the Detach/CloseSession proposals of those connections commit before Raft stops.
    let _ = tokio::time::timeout(Duration::from_secs(2), registry.propose(Command::Expire)).await;
    gc.abort();
    supervisor.stop(None);
    let _ = supervisor_join.await;
    admin_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || admin_thread.join()).await;
    tls_stop.cancel();
    let _ = tls_task.await;
    registry.shutdown().await.context("stopping the registry")?;
    peer_stop.cancel();
    if let Some(t) = peer_task {
        let _ = t.await;
    }
    Ok(())
}

/// Graceful drain: a leader first hands leadership to another voter (so the cluster keeps
/// admitting and its clients can resume elsewhere at once), then every client is asked to
/// reconnect elsewhere at a jittered time spread over the drain window, and the drain waits
/// (bounded by the window) for them to go. Whoever is left gets 1012 afterwards.
async fn drain(ctx: &Arc<NodeCtx>, metrics: &Metrics, window: Duration) {
    if ctx.registry.status().leader == Some(ctx.node_id) {
        tracing::info!("draining the leader: handing leadership over");
        ctx.registry.step_down(LEADER_HANDOVER).await;
    }
    if window.is_zero() {
        return;
    }
    let window_ms = window.as_millis() as u64;
    for (_, e) in ctx.directory.all() {
        // Leave the last tenth of the window for stragglers to reconnect before 1012.
        let after_ms = rand::random_range(0..(window_ms * 9 / 10).max(1));
        let _ = e.actor.cast(ConnMsg::Drain { after_ms });
    }
    let deadline = tokio::time::Instant::now() + window;
    let mut check = tokio::time::interval(Duration::from_millis(50));
    while metrics.connections() > 0 && tokio::time::Instant::now() < deadline {
        check.tick().await;
    }
}

/// Config-file tenants are bootstrapped into the registry (replicated from then on); a config
/// tenant that differs from the registry's copy is re-put, so the file stays authoritative for
/// the tenants it names. Tenants created over the API are left alone.
async fn sync_tenants(registry: &Registry, config: &Config) -> anyhow::Result<()> {
    for t in &config.tenants {
        let want = t.to_tenant_config();
        let have = registry.read(|s| s.tenant(&want.id).map(|r| r.config.clone()));
        if have.as_ref() != Some(&want) {
            registry
                .propose(Command::PutTenant(want))
                .await
                .with_context(|| format!("bootstrapping tenant {}", t.id))?;
        }
    }
    Ok(())
}

fn spawn_admin(
    listener: std::net::TcpListener,
    tls: Option<Arc<tls::ServerTls>>,
    router: axum::Router,
    max_connections: usize,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = std::thread::Builder::new()
        .name("tether-admin".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(l) = TcpListener::from_std(listener) else {
                    tracing::error!("admin listener unusable");
                    return;
                };
                admin::listener::serve(l, tls, router, max_connections, metrics, stop).await;
            });
        })?;
    Ok(handle)
}
