//! `BenchNode`: one release `tether serve` process with a benchmark config (limits raised,
//! default timeouts); `BenchCluster` (three of them over mutual TLS) is in `cluster`.
//!
//! Unlike the test harness's `TestNode`, this one exposes the pid (for `/proc` RSS), uses the
//! release binary and keeps its stderr in a log file under the output dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tether_tests::tokens::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::tls::ServerCert;

mod cluster;
pub use cluster::{BenchCluster, make_peer_certs};

/// Path of the release `tether` binary: `TETHER_BIN`, else `target/release/tether` after a
/// `cargo build --release` (cheap when up to date; if the build fails, an existing binary is
/// used with a warning, since others may be editing the node while a benchmark runs).
pub fn tether_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("TETHER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bin = target.join("release").join("tether");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the release tether binary (set TETHER_BIN to skip)...");
    let ok = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "tether-node",
            "--bin",
            "tether",
        ])
        .current_dir(&root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if bin.exists() {
            eprintln!(
                "warning: cargo build failed; using the existing {}",
                bin.display()
            );
        } else {
            bail!(
                "building tether failed and {} does not exist",
                bin.display()
            );
        }
    }
    Ok(bin)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// What differs between benchmark nodes.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    pub id: u64,
    /// `[cluster]` lines.
    pub cluster: String,
    /// Directory of `tether certs` output, for mutual TLS between peers.
    pub peer_certs: Option<PathBuf>,
    /// Serve `wss` with this certificate.
    pub wss: Option<ServerCert>,
}

/// Multi-line TOML string holding a PEM.
fn toml_pem(pem: &str) -> String {
    format!("\"\"\"\n{pem}\"\"\"")
}

/// The config: both tenant keys (HS256 `k1`, ES256 `ec1`), one admin key, every per-IP and
/// per-node limit lifted so that loopback load from a few addresses is not refused, and the
/// default timeouts (heartbeat 25 s, idle 60 s) so idle connections stay idle.
pub fn config_toml(data_dir: &Path, spec: &NodeSpec) -> String {
    let mut tls = String::new();
    if let Some(d) = &spec.peer_certs {
        let d = d.display();
        let id = spec.id;
        tls.push_str(&format!(
            "peer_ca = \"{d}/ca.pem\"\npeer_cert = \"{d}/n{id}.pem\"\npeer_key = \"{d}/n{id}-key.pem\"\n"
        ));
    }
    if let Some(c) = &spec.wss {
        tls.push_str(&format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            c.cert.display(),
            c.key.display()
        ));
    }
    format!(
        r#"
[node]
id = {id}
region = "bench-{id}"
data_dir = "{data}"

[listen]
client = "127.0.0.1:0"
admin = "127.0.0.1:0"
peer = "127.0.0.1:0"

[cluster]
{cluster}

[tls]
{tls}

[limits]
max_connections = 200000
max_connections_per_ip = 200000
max_pending_upgrades_per_ip = 200000
handshakes_per_ip_per_sec = 1000000
max_connections_per_user = 50
upgrade_timeout_secs = 30
auth_timeout_secs = 30

[[admin.keys]]
kid = "{ADMIN_KID}"
alg = "HS256"
secret = "{ADMIN_SECRET}"

[[tenants]]
id = "{TENANT}"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]

[[tenants.keys]]
kid = "{TENANT_KID}"
alg = "HS256"
secret = "{TENANT_SECRET}"

[[tenants.keys]]
kid = "{EC_KID}"
alg = "ES256"
public_key_pem = {ec}
"#,
        id = spec.id,
        data = data_dir.display(),
        cluster = spec.cluster,
        ec = toml_pem(EC_PUBLIC_PEM),
    )
}

pub struct BenchNode {
    pub id: u64,
    _dir: tempfile::TempDir,
    child: Option<Child>,
    pub pid: u32,
    pub client_addr: String,
    pub admin_addr: String,
    pub peer_addr: String,
    pub tls: bool,
    /// Lines the node printed on stdout after its listening line (audit records).
    pub stdout_lines: Arc<AtomicU64>,
}

impl BenchNode {
    /// Starts a node and waits until `/readyz` answers 200 (up to `ready_within`).
    pub async fn start(
        bin: &Path,
        spec: &NodeSpec,
        log_dir: &Path,
        ready_within: Duration,
    ) -> anyhow::Result<BenchNode> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("tether.toml");
        std::fs::write(&config, config_toml(&dir.path().join("data"), spec))?;
        std::fs::create_dir_all(log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("node-{}.log", spec.id)))?;
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env(
                "TETHER_LOG",
                std::env::var("TETHER_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let pid = child.id().context("node pid")?;
        let out = child.stdout.take().context("node stdout")?;
        let mut lines = BufReader::new(out).lines();
        let listening = tokio::time::timeout(ready_within, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("tether listening ") {
                    return Some(rest.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .with_context(|| format!("node {} did not print its listening line", spec.id))?;
        let stdout_lines = Arc::new(AtomicU64::new(0));
        let count = stdout_lines.clone();
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(_)) = lines.next_line().await {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        let field = |k: &str| {
            listening
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let node = BenchNode {
            id: spec.id,
            _dir: dir,
            child: Some(child),
            pid,
            client_addr: field("client="),
            admin_addr: field("admin="),
            peer_addr: field("peer="),
            tls: spec.wss.is_some(),
            stdout_lines,
        };
        node.wait_ready(ready_within).await?;
        Ok(node)
    }

    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.admin_addr);
        let end = tokio::time::Instant::now() + within;
        loop {
            let ok = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() >= end {
                bail!("node {} not ready within {within:?}", self.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/connect", self.client_addr)
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
        }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self, http: &reqwest::Client) -> Option<String> {
        http.get(format!("http://{}/metrics", self.admin_addr))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// The Raft commit (propose to apply) histogram of this node.
    pub async fn commit_histogram(&self, http: &reqwest::Client) -> Vec<(f64, u64)> {
        let text = self.metrics_text(http).await.unwrap_or_default();
        crate::prom::buckets(&text, "tether_raft_commit_seconds")
    }

    /// A gauge or counter from `/metrics` (first sample of `name`, any labels).
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = self.metrics_text(http).await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}
