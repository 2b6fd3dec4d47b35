//! `ChaosCluster`: real `tether` processes over mutual TLS where every peer link and every
//! client link goes through a [`FaultProxy`]. Node `i` advertises its peer proxy as its
//! address and binds its outbound peer connections to `127.0.0.<10+i>`, so the proxy in front
//! of each node knows which node dialed and the [`Net`] can cut any pair, either way.
//! Process faults (SIGKILL, SIGTERM's drain, SIGSTOP/SIGCONT, restart on the same data dir)
//! are recorded in the history like network faults. Each node's log goes to
//! `node-<id>.log` in its temp dir.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tether_tests::cluster::{make_certs, tls_lines};
use tether_tests::node::{NodeSpec, TestNode};

use crate::admin::Admin;
use crate::history::{Event, History};
use crate::net::{CLIENTS, Endpoint, Net};
use crate::proxy::{FaultProxy, Kind};
use crate::report::histories_dir;
use crate::scenario::Scenario;

/// Limits for chaos nodes: every client comes from 127.0.0.1 through a proxy, so the
/// per-IP limits are lifted; the rest keep the harness's short timeouts.
pub const CHAOS_LIMITS: &str =
    "max_connections_per_ip = 100000\nhandshakes_per_ip_per_sec = 100000";

/// One node with its two proxies.
pub struct ChaosNode {
    pub id: u64,
    pub node: TestNode,
    pub peer_proxy: FaultProxy,
    pub client_proxy: FaultProxy,
    pub log: PathBuf,
    /// `false` after `kill` until `restart`.
    pub running: bool,
    /// `true` between `stop` (SIGSTOP) and `cont`.
    pub stopped: bool,
}

impl ChaosNode {
    /// The WebSocket URL through the client proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/connect", self.client_proxy.addr())
    }

    /// The admin listener (direct: the operator is never partitioned).
    pub fn admin(&self) -> &str {
        &self.node.admin_addr
    }
}

/// Options for `ChaosCluster::start`.
#[derive(Clone, Debug)]
pub struct Options {
    pub voters: u64,
    pub learners: u64,
    /// Extra `[cluster]` lines for every node (e.g. isolation lease).
    pub cluster: String,
    /// Extra `[limits]` lines, after [`CHAOS_LIMITS`].
    pub limits: String,
    /// Extra `[session]`-free TOML appended to the tenant (rarely needed).
    pub extra_tenant: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            voters: 3,
            learners: 0,
            cluster: String::new(),
            limits: String::new(),
            extra_tenant: String::new(),
        }
    }
}

pub struct ChaosCluster {
    pub certs: tempfile::TempDir,
    pub nodes: Vec<ChaosNode>,
    pub net: Net,
    pub history: History,
    pub admin: Admin,
    /// `<scenario>-<seed>`: names the node logs kept when a test panics.
    pub label: String,
}

/// The source IP node `id` dials its peers from.
pub fn source_ip(id: u64) -> IpAddr {
    let octet = u8::try_from(10 + id).expect("node ids up to 245");
    IpAddr::from([127, 0, 0, octet])
}

impl ChaosCluster {
    /// Starts the nodes one by one (node 1 bootstraps, the others join through node 1's
    /// proxy) and waits until each is ready.
    pub async fn start(opts: &Options, s: &Scenario) -> ChaosCluster {
        let (net, history) = (&s.net, &s.history);
        let certs = tempfile::tempdir().expect("tempdir");
        let total = opts.voters + opts.learners;
        make_certs(certs.path(), total);
        let mut peer_proxies = Vec::new();
        for id in 1..=total {
            net.set_source(source_ip(id), id);
            peer_proxies.push(FaultProxy::start(net, id, Kind::Peer).await);
        }
        let seed = peer_proxies[0].addr().to_string();
        let mut nodes = Vec::new();
        for (peer_proxy, id) in peer_proxies.into_iter().zip(1..) {
            let join = if id == 1 {
                String::new()
            } else {
                format!("join = [\"{seed}\"]\nvoter = {}", id <= opts.voters)
            };
            let spec = NodeSpec {
                id,
                region: format!("region-{}", 1 + (id - 1) % 3),
                cluster: format!(
                    "{join}\nadvertise = \"{}\"\npeer_source_addr = \"{}\"\n{}",
                    peer_proxy.addr(),
                    source_ip(id),
                    opts.cluster
                ),
                tls: tls_lines(certs.path(), id),
                limits: format!("{CHAOS_LIMITS}\n{}", opts.limits),
                extra_tenant: opts.extra_tenant.clone(),
                ..Default::default()
            };
            let mut node = TestNode::create(&spec);
            let log = node.dir.path().join(format!("node-{id}.log"));
            node.stderr_file = Some(log.clone());
            node.spawn_no_wait().await;
            peer_proxy.set_target(&node.peer_addr);
            let client_proxy = FaultProxy::start(net, id, Kind::Client).await;
            client_proxy.set_target(&node.client_addr);
            node.wait_ready().await;
            s.phase(&format!("n{id} ready"));
            node.pin_ports();
            nodes.push(ChaosNode {
                id,
                node,
                peer_proxy,
                client_proxy,
                log,
                running: true,
                stopped: false,
            });
        }
        ChaosCluster {
            certs,
            nodes,
            net: net.clone(),
            history: history.clone(),
            admin: Admin::new(history),
            label: format!("{}-{}", s.name, s.seed),
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &ChaosNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    fn node_mut(&mut self, id: u64) -> &mut ChaosNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    fn fault(&self, kind: &str, what: String) {
        self.history.record(Event::Fault {
            kind: kind.into(),
            what,
        });
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).node.kill();
        self.node_mut(id).running = false;
        self.node_mut(id).stopped = false;
        self.fault("kill", format!("SIGKILL n{id}"));
    }

    /// SIGTERM: the node drains (its clients are told to reconnect elsewhere, spread over
    /// the drain window) and then exits.
    pub fn drain(&self, id: u64) {
        self.node(id).node.signal_term();
        self.fault("drain", format!("SIGTERM n{id}: drain and exit"));
    }

    /// Waits up to `within` for node `id`'s process to exit; its exit status.
    pub async fn exited(&mut self, id: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let end = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.node_mut(id).node.try_exit() {
                self.node_mut(id).running = false;
                return Some(status);
            }
            if tokio::time::Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts a killed node on its data dir and ports; does not wait for it to be ready.
    pub async fn restart(&mut self, id: u64) {
        let n = self.node_mut(id);
        n.node.spawn_no_wait().await;
        n.running = true;
        self.fault("restart", format!("restart n{id} on its data dir"));
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn stop(&mut self, id: u64) {
        assert!(self.node(id).node.signal("STOP"), "SIGSTOP n{id}");
        self.node_mut(id).stopped = true;
        self.fault("stop", format!("SIGSTOP n{id}"));
    }

    /// SIGCONT.
    pub fn cont(&mut self, id: u64) {
        assert!(self.node(id).node.signal("CONT"), "SIGCONT n{id}");
        self.node_mut(id).stopped = false;
        self.fault("cont", format!("SIGCONT n{id}"));
    }

    /// Every node's view of the leader, from `GET /v1/cluster` on each running node
    /// (recorded); `None` where it has none or did not answer.
    pub async fn leaders(&self) -> Vec<(u64, Option<u64>)> {
        let mut out = Vec::new();
        for n in self.nodes.iter().filter(|n| n.running && !n.stopped) {
            let leader = self
                .admin
                .cluster(n.id, n.admin())
                .await
                .body()
                .and_then(|b| b["leader"].as_u64());
            out.push((n.id, leader));
        }
        out
    }

    /// Waits until the running nodes in `among` agree on one leader from `among`.
    pub async fn agreed_leader(&self, among: &[u64], within: Duration) -> Option<u64> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let views = self.leaders().await;
            let mut seen: Vec<Option<u64>> = views
                .iter()
                .filter(|(id, _)| among.contains(id))
                .map(|(_, l)| *l)
                .collect();
            seen.dedup();
            if let [Some(l)] = seen[..]
                && among.contains(&l)
            {
                return Some(l);
            }
            if tokio::time::Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every endpoint a partition may separate from `ids`: the other nodes.
    pub fn others(&self, ids: &[u64]) -> Vec<Endpoint> {
        self.ids()
            .into_iter()
            .filter(|i| !ids.contains(i))
            .collect()
    }

    /// Cuts the client links of `id` (both ways).
    pub fn cut_clients(&self, id: u64) {
        self.net.partition(&[CLIENTS], &[id]);
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.node(id).log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ChaosCluster {
    /// Stopped nodes are continued first so nothing stays frozen if SIGKILL were delayed;
    /// `TestNode`'s own drop then SIGKILLs and reaps each process.
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The temp dirs go with the nodes: keep the logs of a failed run.
            let dir = histories_dir();
            let _ = std::fs::create_dir_all(&dir);
            for n in &self.nodes {
                let _ = std::fs::copy(&n.log, dir.join(format!("{}-n{}.log", self.label, n.id)));
            }
        }
        for n in &mut self.nodes {
            if n.stopped {
                n.node.signal("CONT");
            }
            n.node.kill();
        }
    }
}
