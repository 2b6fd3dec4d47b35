//! Root tier: every node in its own network namespace, so faults act on real packets and real
//! clocks rather than on an in-process proxy. Enabled by `TETHER_CHAOS_NETNS=1` (root, with
//! iproute2, nftables and libfaketime); without it the tests print a skip line and pass.
//!
//! # Topology
//! Run `X` (a free number in 1..=250, claimed with a file under `/run/tether-chaos-netns`)
//! owns the namespaces `tch<X>br` (a bridge `br0`) and `tch<X>n<i>` (node `i`, `eth0` =
//! `10.77.X.i/24`, veth to the bridge). The test process stays in the host namespace and gets
//! one veth into the bridge, `tch<X>h` = `10.77.X.254/24`, so clients and admin calls reach
//! the nodes directly; that is the only thing added to the host namespace, and it goes with the
//! run. Nodes listen on fixed ports of their own address (client 7070, admin 7071, peer 7072).
//!
//! # Faults
//! - **Partitions** (`partition`, `cut_one_way`, `heal`): nftables rules in the receiving
//!   node's namespace (`prerouting`, before conntrack) drop packets by source address, so the
//!   sender sees silence, not errors. Links that go through a latency relay (below) are cut
//!   in the relay instead, which holds their bytes until `heal` (as TCP would retransmit).
//! - **Latency** between regions (`Link`): the kernels this runs on have no `sch_netem`
//!   (`tc qdisc add … netem` answers "unknown qdisc"), so the delay is added by an L4 relay
//!   in the test process: an nftables DNAT rule in the sending namespace sends each
//!   cross-region peer connection to a relay listener on the host address, which forwards
//!   every chunk `one_way` (plus jitter, plus a retransmission timeout for "lost" chunks)
//!   later, in both directions, keeping order. Nodes in one region talk directly.
//! - **Clock skew** (`faketime_env`): libfaketime preloaded into one node's process moves its
//!   wall clock only (`FAKETIME_DONT_FAKE_MONOTONIC=1`), so timers are unaffected and JWT and
//!   entry times move, as a skewed host clock would.
//!
//! # Cleanup
//! `Net`'s `Drop` (which also runs when a test panics) kills what still runs in its
//! namespaces, deletes them and the host veth, and releases the claim. `Net::new` first sweeps
//! namespaces whose claim belongs to a dead process (an earlier run that was killed).
//!
//! # Layout
//! - this file: `Net` (namespaces, links, cuts), `Link`, `faketime_env`, `enabled`, the seed.
//! - `relay`: the latency relay.
//! - `cluster`: `NetCluster`, `tether` processes on a `Net`.
//! - `client`: connects and admin calls retried past 4111/503; recorded events.
//! - `host`: the `ip`/`nft` commands, the run claim and the stale sweep.

pub mod client;
mod cluster;
mod host;
mod relay;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

pub use cluster::NetCluster;
use host::{claim_run, nft, preflight, quiet, remove_namespace, sh, sweep_stale};

/// Set (to anything but `0`) to run the root tier.
pub const ENV: &str = "TETHER_CHAOS_NETNS";

/// Fixed listener ports on every node's own address.
pub const CLIENT_PORT: u16 = 7070;
pub const ADMIN_PORT: u16 = 7071;
pub const PEER_PORT: u16 = 7072;

const NFT_TABLE: &str = "tether_chaos";

/// Whether the root tier runs; prints the skip line when it does not.
pub fn enabled() -> bool {
    let on = std::env::var(ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if !on {
        // Straight to stdout: libtest captures `println!` of passing tests.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "skipped: {ENV} not set");
    }
    on
}

/// Delay added to traffic between two regions, per direction.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub one_way: Duration,
    /// Up to this much more, uniformly (never reordering).
    pub jitter: Duration,
    /// Share of chunks that cost an extra retransmission timeout (200 ms), as a lost segment
    /// would over TCP.
    pub loss: f64,
}

impl Link {
    /// The cross-region profile: 80 ms round trip, a little jitter, no loss.
    pub fn cross_region() -> Link {
        Link {
            one_way: Duration::from_millis(40),
            jitter: Duration::from_millis(4),
            loss: 0.0,
        }
    }

    pub fn rtt(&self) -> Duration {
        self.one_way * 2
    }

    /// When a chunk read now may leave: after `prev` (order is kept) and after the delay.
    fn due(
        &self,
        now: tokio::time::Instant,
        prev: tokio::time::Instant,
        rng: &mut impl Rng,
    ) -> tokio::time::Instant {
        let mut d = self.one_way;
        if !self.jitter.is_zero() {
            d += self.jitter.mul_f64(rng.random::<f64>());
        }
        if self.loss > 0.0 && rng.random::<f64>() < self.loss {
            d += Duration::from_millis(200);
        }
        (now + d).max(prev)
    }
}

/// Directed node pairs `(from, to)` (0-based) whose traffic is dropped.
pub(crate) type Blocked = Arc<Mutex<BTreeSet<(usize, usize)>>>;

/// One node's namespace.
#[derive(Clone, Debug)]
pub struct NsNode {
    pub ns: String,
    pub ip: Ipv4Addr,
    pub region: String,
}

/// A set of namespaces joined by a bridge; see the module docs.
pub struct Net {
    pub run: u8,
    pub nodes: Vec<NsNode>,
    link: Option<Link>,
    blocked: Blocked,
    relays: Vec<tokio::task::JoinHandle<()>>,
    /// Namespaces created so far (the bridge first), for cleanup of a half-built net too.
    created: Vec<String>,
    host_link: Option<String>,
    claim: PathBuf,
}

impl Net {
    /// One namespace per entry of `regions` (node `i + 1` in `regions[i]`); with `link`,
    /// traffic between nodes of different regions is delayed by it. Needs a tokio runtime
    /// (the relays run on it).
    pub async fn new(regions: &[&str], link: Option<Link>, seed: u64) -> Net {
        preflight();
        sweep_stale();
        let (run, claim) = claim_run();
        let br = format!("tch{run}br");
        let mut net = Net {
            run,
            nodes: Vec::new(),
            link,
            blocked: Arc::default(),
            relays: Vec::new(),
            created: Vec::new(),
            host_link: None,
            claim,
        };
        sh(&["ip", "netns", "add", &br]);
        net.created.push(br.clone());
        sh(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        for (i, region) in regions.iter().enumerate() {
            let ns = format!("tch{run}n{}", i + 1);
            let ip = Ipv4Addr::new(10, 77, run, (i + 1) as u8);
            sh(&["ip", "netns", "add", &ns]);
            net.created.push(ns.clone());
            let port = format!("v{}", i + 1);
            sh(&[
                "ip", "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            sh(&["ip", "-n", &br, "link", "set", &port, "master", "br0", "up"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            nft(
                &ns,
                &format!(
                    "table ip {NFT_TABLE} {{\n\
                     chain cut {{ type filter hook prerouting priority -300; policy accept; }}\n\
                     chain latency {{ type nat hook output priority -100; policy accept; }}\n}}\n"
                ),
            );
            net.nodes.push(NsNode {
                ns,
                ip,
                region: (*region).to_owned(),
            });
        }
        let host = format!("tch{run}h");
        sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "host", "netns", &br,
        ]);
        net.host_link = Some(host.clone());
        sh(&[
            "ip", "-n", &br, "link", "set", "host", "master", "br0", "up",
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.host_ip()),
            "dev",
            &host,
        ]);
        sh(&["ip", "link", "set", &host, "up"]);
        if let Some(link) = link {
            net.start_relays(link, seed).await;
        }
        net
    }

    /// The test process's address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.run, 254)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `ip netns exec <ns>`: run in front of a program to start it in node `i`'s namespace.
    pub fn wrapper(&self, i: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.nodes[i].ns]
            .map(str::to_owned)
            .to_vec()
    }

    /// The configured inter-region delay, if any.
    pub fn link(&self) -> Option<Link> {
        self.link
    }

    /// Drops traffic between every node of `a` and every node of `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut_one_way(x, y);
                self.cut_one_way(y, x);
            }
        }
    }

    /// Drops the packets node `from` sends to node `to` (0-based); the other way still works.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let rule = format!(
            "add rule ip {NFT_TABLE} cut ip saddr {} drop\n",
            self.nodes[from].ip
        );
        nft(&self.nodes[to].ns, &rule);
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to));
    }

    /// Removes every cut.
    pub fn heal(&self) {
        for n in &self.nodes {
            nft(&n.ns, &format!("flush chain ip {NFT_TABLE} cut\n"));
        }
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// A relay per node that has peers in another region, and the DNAT rules that send those
    /// peers' connections to it.
    async fn start_relays(&mut self, link: Link, seed: u64) {
        let sources: Vec<(Ipv4Addr, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.ip, i))
            .collect();
        for (to, node) in self.nodes.clone().iter().enumerate() {
            let remote: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].region != node.region)
                .collect();
            if remote.is_empty() {
                continue;
            }
            let target = SocketAddr::from((node.ip, PEER_PORT));
            let (port, task) = relay::spawn(
                self.host_ip(),
                target,
                to,
                sources.clone(),
                link,
                self.blocked.clone(),
                seed ^ ((to as u64) << 32),
            )
            .await;
            self.relays.push(task);
            for from in remote {
                let rule = format!(
                    "add rule ip {NFT_TABLE} latency ip daddr {} tcp dport {PEER_PORT} dnat to {}:{port}\n",
                    node.ip,
                    self.host_ip()
                );
                nft(&self.nodes[from].ns, &rule);
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for r in &self.relays {
            r.abort();
        }
        for ns in self.created.iter().rev() {
            remove_namespace(ns);
        }
        if let Some(h) = &self.host_link {
            let _ = quiet(&["ip", "link", "del", h]);
        }
        let _ = std::fs::remove_file(&self.claim);
    }
}

/// Environment that makes libfaketime shift a process's wall clock by `skew_secs` (monotonic
/// time untouched).
pub fn faketime_env(skew_secs: i64) -> Vec<(String, String)> {
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libfaketime is missing (apt-get install faketime)");
    vec![
        ("LD_PRELOAD".into(), lib.into()),
        ("FAKETIME".into(), format!("{skew_secs:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}
