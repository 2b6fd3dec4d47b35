//! `NetCluster`: real `tether` processes over mutual TLS, one per namespace of a `Net`.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;
use tether_tests::admin::call;
use tether_tests::cluster::tls_lines;
use tether_tests::node::{NodeSpec, TestNode, tether_bin};

use super::{ADMIN_PORT, CLIENT_PORT, Net, PEER_PORT};

/// A cluster on a `Net`. Fields drop in order: the nodes are killed before the namespaces go.
pub struct NetCluster {
    pub nodes: Vec<TestNode>,
    pub certs: tempfile::TempDir,
    pub net: Net,
}

impl NetCluster {
    /// Starts one node per namespace (ids 1..=n; the first `voters` vote), node 1 bootstrapping
    /// and the others joining through it. `cluster` lines go into every `[cluster]` section
    /// (e.g. `timing = "cross-region"`), `limits` into `[limits]` (and may open later sections);
    /// `env(i)` is the extra environment of node `i` (0-based), e.g. `faketime_env`.
    pub async fn start(
        net: Net,
        voters: usize,
        cluster: &str,
        limits: &str,
        env: impl Fn(usize) -> Vec<(String, String)>,
    ) -> NetCluster {
        let certs = tempfile::tempdir().expect("tempdir");
        make_certs(&net, certs.path());
        let seed = format!("{}:{PEER_PORT}", net.nodes[0].ip);
        let mut c = NetCluster {
            nodes: Vec::new(),
            certs,
            net,
        };
        for i in 0..c.net.len() {
            let id = i as u64 + 1;
            let ip = c.net.nodes[i].ip;
            let spec = NodeSpec {
                id,
                region: c.net.nodes[i].region.clone(),
                cluster: format!("join = [\"{seed}\"]\nvoter = {}\n{cluster}", i < voters),
                tls: tls_lines(c.certs.path(), id),
                limits: limits.to_owned(),
                listen: [CLIENT_PORT, ADMIN_PORT, PEER_PORT].map(|p| format!("{ip}:{p}")),
                wrapper: c.net.wrapper(i),
                env: env(i),
                ..Default::default()
            };
            c.nodes.push(TestNode::create(&spec));
        }
        // One at a time: the seed bootstraps, then each node joins once the previous one is
        // ready. (Starting the joiners together stalled a LAN cluster once: the leader lost its
        // quorum lease during the second voter's membership change and stayed fenced.)
        for n in &mut c.nodes {
            n.spawn_no_wait().await;
            wait_ready(n, JOIN_DEADLINE).await;
        }
        c
    }

    /// Node `id` (1-based, as in the cluster).
    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// `GET /v1/cluster` as node `id` sees it.
    pub async fn view(&self, id: u64) -> Value {
        call(self.node(id), "GET", "/v1/cluster", None).await.body
    }

    /// The leader as node `id` sees it, waiting up to `within` for one other than `not`.
    pub async fn leader_other_than(&self, id: u64, not: Option<u64>, within: Duration) -> u64 {
        tether_tests::wait_for("a leader", within, || async move {
            self.view(id).await["leader"]
                .as_u64()
                .filter(|l| Some(*l) != not)
        })
        .await
    }

    /// Waits until every node answers `/readyz` 200, each within `within`.
    pub async fn wait_all_ready(&self, within: Duration) {
        join_all(self.nodes.iter().map(|n| wait_ready(n, within))).await;
    }

    /// Panics if a node process has exited (a crash, not a kill by the test).
    pub fn assert_alive(&mut self) {
        for n in &mut self.nodes {
            assert_eq!(n.try_exit(), None, "node {} exited", n.id);
        }
    }
}

/// How long a node may take to join: two membership changes and a catch-up, each a few round
/// trips and fsyncs, on a loaded 2-core machine (the harness's 20 s is for one healthy node).
const JOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `node` answers `/readyz` 200.
async fn wait_ready(node: &TestNode, within: Duration) {
    let url = node.admin_url("/readyz");
    let http = reqwest::Client::new();
    let what = format!("node {} ready", node.id);
    tether_tests::wait_for(&what, within, || {
        let req = http.get(&url).timeout(Duration::from_secs(2)).send();
        async move {
            req.await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
}

/// A dev CA and a certificate per node (binding its node id) whose SANs are every node
/// address.
fn make_certs(net: &Net, dir: &std::path::Path) {
    let mut cmd = std::process::Command::new(tether_bin());
    cmd.args(["certs", "--out"]).arg(dir);
    for i in 1..=net.len() {
        cmd.args(["--node", &format!("n{i}"), "--node-id", &i.to_string()]);
    }
    for n in &net.nodes {
        cmd.args(["--san", &n.ip.to_string()]);
    }
    let out = cmd.output().expect("running tether certs");
    assert!(
        out.status.success(),
        "tether certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
