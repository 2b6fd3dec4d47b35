//! `TestCluster`: several `tether` processes on loopback forming one cluster over mutual TLS
//! (certificates made by `tether certs`), node 1 bootstrapping and the others joining.

use std::process::Command;

use serde_json::Value;

use crate::admin::call;
use crate::node::{NodeSpec, TestNode, tether_bin};

pub struct TestCluster {
    pub certs: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
}

/// `[tls]` lines for node `id` using the certificates in `dir`.
pub fn tls_lines(dir: &std::path::Path, id: u64) -> String {
    let d = dir.display();
    format!(
        "peer_ca = \"{d}/ca.pem\"\npeer_cert = \"{d}/n{id}.pem\"\npeer_key = \"{d}/n{id}-key.pem\""
    )
}

/// Makes a dev CA and certificates for nodes n1..=n`count` (node ids 1..=`count`) in `dir`
/// with `tether certs`.
pub fn make_certs(dir: &std::path::Path, count: u64) {
    certs_for(dir, 1..=count);
}

/// (Re)issues the certificate of node `id` (`n<id>.pem`) in `dir`, signed by the CA there.
pub fn issue_cert(dir: &std::path::Path, id: u64) {
    certs_for(dir, id..=id);
}

fn certs_for(dir: &std::path::Path, ids: std::ops::RangeInclusive<u64>) {
    let mut cmd = Command::new(tether_bin());
    cmd.args(["certs", "--out"]).arg(dir);
    for id in ids {
        cmd.args(["--node", &format!("n{id}"), "--node-id", &id.to_string()]);
    }
    let out = cmd.output().expect("running tether certs");
    assert!(
        out.status.success(),
        "tether certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCluster {
    /// Starts `voters` voters and `learners` learners; `limits` lines go to every node.
    pub async fn start(voters: u64, learners: u64, limits: &str) -> TestCluster {
        Self::start_with_env(voters, learners, limits, &[]).await
    }

    /// [`TestCluster::start`] with `env` set on every node process.
    pub async fn start_with_env(
        voters: u64,
        learners: u64,
        limits: &str,
        env: &[(String, String)],
    ) -> TestCluster {
        Self::start_shaped(voters, learners, |spec| {
            spec.limits = limits.to_owned();
            spec.env = env.to_vec();
        })
        .await
    }

    /// Starts `voters` voters and `learners` learners, each node's spec passed through
    /// `shape` (which sees its `id`) before it starts.
    pub async fn start_shaped(
        voters: u64,
        learners: u64,
        shape: impl Fn(&mut NodeSpec),
    ) -> TestCluster {
        let certs = tempfile::tempdir().expect("tempdir");
        let total = voters + learners;
        make_certs(certs.path(), total);
        let mut nodes = Vec::new();
        let mut first = NodeSpec {
            id: 1,
            region: "region-1".into(),
            tls: tls_lines(certs.path(), 1),
            ..Default::default()
        };
        shape(&mut first);
        nodes.push(TestNode::start_spec(&first).await);
        let seed = nodes[0].peer_addr.clone();
        for id in 2..=total {
            let mut spec = NodeSpec {
                id,
                region: format!("region-{}", 1 + (id - 1) % 3),
                cluster: format!("join = [\"{seed}\"]\nvoter = {}", id <= voters),
                tls: tls_lines(certs.path(), id),
                ..Default::default()
            };
            shape(&mut spec);
            nodes.push(TestNode::start_spec(&spec).await);
        }
        TestCluster { certs, nodes }
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// `GET /v1/cluster` as seen by node `id`.
    pub async fn view(&self, id: u64) -> Value {
        call(self.node(id), "GET", "/v1/cluster", None).await.body
    }

    /// The leader as seen by node `id`, waiting until one is known.
    pub async fn leader(&self, id: u64) -> u64 {
        crate::wait_for("a leader", crate::DEADLINE, || async move {
            self.view(id).await["leader"].as_u64()
        })
        .await
    }

    /// Waits until every node has applied the log up to `index` (a mutation's
    /// `commit_index`): a commit answers once a majority holds it, not once all have applied.
    pub async fn applied_everywhere(&self, index: u64) {
        for n in &self.nodes {
            crate::wait_for(
                "the commit applied on every node",
                crate::DEADLINE,
                || async {
                    let view = self.view(n.id).await;
                    let own = view["nodes"].as_array()?.iter().find(|m| m["id"] == n.id)?;
                    (own["applied_index"].as_u64()? >= index).then_some(())
                },
            )
            .await;
        }
    }
}
