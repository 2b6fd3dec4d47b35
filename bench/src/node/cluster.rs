//! `BenchCluster`: three (or `count`) release nodes over mutual TLS, with certificates made
//! by `tether certs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{BenchNode, NodeSpec};
use crate::tls::ServerCert;

/// Makes the peer CA and certificates for n1..=n`count` with `tether certs`.
pub fn make_peer_certs(bin: &Path, dir: &Path, count: u64) -> anyhow::Result<()> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["certs", "--out"]).arg(dir);
    for id in 1..=count {
        cmd.args(["--node", &format!("n{id}"), "--node-id", &id.to_string()]);
    }
    let out = cmd.output().context("running tether certs")?;
    if !out.status.success() {
        bail!("tether certs: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Three (or `count`) voters over mutual TLS; node 1 bootstraps, the others join it.
pub struct BenchCluster {
    _certs: tempfile::TempDir,
    pub nodes: Vec<BenchNode>,
}

impl BenchCluster {
    pub async fn start(
        bin: &Path,
        count: u64,
        wss: Option<&ServerCert>,
        log_dir: &Path,
    ) -> anyhow::Result<BenchCluster> {
        let certs = tempfile::tempdir()?;
        make_peer_certs(bin, certs.path(), count)?;
        let mut nodes = Vec::new();
        let within = Duration::from_secs(60);
        for id in 1..=count {
            let cluster = match nodes.first() {
                None => String::new(),
                Some(first) => {
                    let first: &BenchNode = first;
                    format!("join = [\"{}\"]\nvoter = true", first.peer_addr)
                }
            };
            let spec = NodeSpec {
                id,
                cluster,
                peer_certs: Some(certs.path().to_owned()),
                wss: wss.cloned(),
            };
            nodes.push(BenchNode::start(bin, &spec, log_dir, within).await?);
        }
        let c = BenchCluster {
            _certs: certs,
            nodes,
        };
        c.wait_voters(count as usize, within).await?;
        Ok(c)
    }

    /// Waits until node 1 reports a leader and `voters` voters that have applied the same
    /// index as the leader's commit (so joins and promotions are done).
    async fn wait_voters(&self, voters: usize, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let end = tokio::time::Instant::now() + within;
        loop {
            if let Ok(v) = crate::admin::get(&http, &self.nodes[0].admin_addr, "/v1/cluster").await
            {
                let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
                let n_voters = nodes
                    .iter()
                    .filter(|n| matches!(n["role"].as_str(), Some("leader" | "follower")))
                    .count();
                if !v["leader"].is_null() && n_voters >= voters {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= end {
                bail!("cluster did not form {voters} voters within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader's id as node 1 sees it.
    pub async fn leader(&self) -> Option<u64> {
        let http = reqwest::Client::new();
        let v = crate::admin::get(&http, &self.nodes[0].admin_addr, "/v1/cluster")
            .await
            .ok()?;
        v["leader"].as_u64()
    }
}
