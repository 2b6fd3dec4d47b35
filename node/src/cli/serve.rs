//! `tether serve`: load the config (or set up dev mode), bind, run until SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tether_cluster::clock::SystemClock;
use tokio_util::sync::CancellationToken;

use super::{EXIT_CONFIG, default_data_dir};
use crate::config::Config;
use crate::dev;
use crate::server::{self, Listeners};

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file (also TETHER_CONFIG). Without one: dev mode.
    #[arg(long, env = "TETHER_CONFIG")]
    config: Option<PathBuf>,
    /// Validate this config file and exit (0 valid, 2 invalid).
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("TETHER_"))
        .collect()
}

pub fn run(args: ServeArgs) -> ExitCode {
    let env = env_map();
    if let Some(path) = args.check_config {
        return match Config::load(Some(&path), &env) {
            Ok(config) => {
                let hard = crate::net::nofile_hard_limit();
                if let Some(w) = crate::net::capacity_warning(config.limits.max_connections, hard) {
                    eprintln!("tether: warning: {w}");
                }
                println!("config ok: {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tether: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let dev_mode = args.config.is_none();
    let mut config = match Config::load(args.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.node.id_from_hostname {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .unwrap_or_default();
        match crate::config::id_from_hostname(host.trim()) {
            Some(id) => config.node.id = id,
            None => {
                eprintln!(
                    "tether: invalid config key `node.id_from_hostname`: host name {:?} has no trailing -<ordinal>",
                    host.trim()
                );
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let who = crate::telemetry::Identity {
        node_id: config.node.id,
        region: &config.node.region,
    };
    let telemetry = match crate::telemetry::init(&who, |k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(how) = telemetry.exporting() {
        tracing::info!("exporting traces over {how}");
    }
    // Every client socket is a descriptor: take all the process may have.
    let fds = crate::net::raise_nofile_limit();
    tracing::info!(
        soft_before = ?fds.soft_before,
        soft = ?fds.soft,
        hard = ?fds.hard,
        "open-file limit (None = unlimited)"
    );
    if let Some(w) = crate::net::capacity_warning(config.limits.max_connections, fds.hard) {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(serve(&mut config, dev_mode));
    drop(rt);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e:#}");
            // A data dir of a format this build cannot read is a configuration problem
            // (wrong build for these files), like a bad config: exit 2.
            let format = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<tether_cluster::RegistryError>(),
                    Some(tether_cluster::RegistryError::Format(_))
                )
            });
            if format {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn serve(config: &mut Config, dev_mode: bool) -> anyhow::Result<()> {
    let client = std::net::TcpListener::bind(&config.listen.client)
        .map_err(|e| anyhow::anyhow!("binding listen.client {}: {e}", config.listen.client))?;
    let admin = std::net::TcpListener::bind(&config.listen.admin)
        .map_err(|e| anyhow::anyhow!("binding listen.admin {}: {e}", config.listen.admin))?;
    let peer = std::net::TcpListener::bind(&config.listen.peer)
        .map_err(|e| anyhow::anyhow!("binding listen.peer {}: {e}", config.listen.peer))?;
    let client_addr = client.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let peer_addr = peer.local_addr()?;
    let scheme = if config.tls.client_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    if dev_mode {
        if config.node.data_dir.as_os_str().is_empty() {
            config.node.data_dir = default_data_dir();
        }
        let mut keys = dev::load_or_create(&config.node.data_dir)?;
        keys.admin_url = Some(format!("http://{admin_addr}"));
        dev::save(&config.node.data_dir, &keys)?;
        dev::apply(config, &keys);
        print_dev_banner(config, &keys, &client_addr.to_string(), scheme);
    }
    // One machine-readable line; the test harness reads the bound ports from it.
    println!("tether listening client={client_addr} admin={admin_addr} peer={peer_addr}");
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        s.cancel();
    });
    server::run(
        config.clone(),
        Listeners {
            client,
            admin,
            peer,
        },
        Arc::new(SystemClock),
        shutdown,
    )
    .await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_dev_banner(config: &Config, keys: &dev::DevKeys, client: &str, scheme: &str) {
    let claims = crate::auth::TokenClaims::new(dev::DEV_TENANT, "alice")
        .tenant_claim(config.auth.tenant_claim.clone())
        .ttl_secs(3600)
        .permissions(["sub:chat.*", "pub:chat.*"])
        .to_json(&SystemClock);
    let token = crate::auth::mint_hs256(&keys.tenant_secret, dev::DEV_TENANT_KID, &claims);
    let token = token.unwrap_or_else(|e| format!("<could not mint: {e}>"));
    println!(
        "tether dev mode: single node, data in {}",
        config.node.data_dir.display()
    );
    println!(
        "  tenant `dev` (HS256, kid `dev`); keys in {}",
        dev::path(&config.node.data_dir).display()
    );
    println!("  sample token for alice (1h, sub/pub chat.*):\n    {token}");
    println!(
        "  connect: websocat -H 'Authorization: Bearer {token}' --protocol tether.v1 {scheme}://{client}/v1/connect"
    );
    println!("  then send: {{\"type\":\"hello\"}}");
}
