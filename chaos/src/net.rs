//! `Net`: the fault table shared by every fault proxy of a scenario. A link is an ordered
//! pair of endpoints (`from`, `to`): node ids, or [`CLIENTS`] for the test's WebSocket
//! clients. Each direction of each proxied connection looks its link up before it forwards
//! a chunk, so a fault applies at once to open connections and to new ones.
//!
//! What a fault means on a TCP proxy (bytes cannot be lost inside a stream without breaking
//! it, so "loss" is modelled as a stall, which is what TCP makes of a lossy or cut path):
//! - `stalled`: nothing is forwarded in that direction (held, then the sender is pushed back
//!   by TCP); a new connection on the link is not connected upstream until it lifts. A
//!   partition stalls both directions, a one-way partition one.
//! - `delay` (+ random `jitter`): each chunk is held that long; order is kept.
//! - `bytes_per_sec`: throttle.
//! - `refuse_new`: new connections are accepted and closed at once (like a refused SYN);
//!   `drop_new`: the same with a probability.
//! - `reset(a, b)`: every open connection between `a` and `b` is closed with an RST.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::watch;

use crate::history::{Event, History};

/// A node id, or [`CLIENTS`].
pub type Endpoint = u64;
/// The test process's WebSocket clients (node ids start at 1).
pub const CLIENTS: Endpoint = 0;
/// A connection from an address no node is bound to.
pub const UNKNOWN: Endpoint = u64::MAX;

/// The fault on one direction of one link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkFault {
    pub stalled: bool,
    pub delay: Duration,
    pub jitter: Duration,
    pub bytes_per_sec: Option<u64>,
    pub refuse_new: bool,
    /// Probability in [0, 1] that a new connection is closed at once.
    pub drop_new: f64,
}

#[derive(Default)]
struct Table {
    faults: HashMap<(Endpoint, Endpoint), LinkFault>,
    /// Reset generation per unordered pair (smaller endpoint first).
    resets: HashMap<(Endpoint, Endpoint), u64>,
    /// Which node binds its outbound peer connections to which source IP.
    sources: HashMap<IpAddr, Endpoint>,
}

struct Inner {
    table: Mutex<Table>,
    /// Bumped on every change, so stalled connections re-check their link.
    changed: watch::Sender<u64>,
    rng: Mutex<StdRng>,
    history: History,
}

/// The shared fault table. Clones share it.
#[derive(Clone)]
pub struct Net {
    inner: Arc<Inner>,
}

fn pair(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
    (a.min(b), a.max(b))
}

impl Net {
    /// A healthy network; `seed` drives jitter and `drop_new`; faults go to `history`.
    pub fn new(seed: u64, history: History) -> Net {
        let (changed, _) = watch::channel(0);
        Net {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::default()),
                changed,
                rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x6e65_745f_6661_756c)),
                history,
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.inner.changed.send_modify(|g| *g += 1);
    }

    fn fault_event(&self, kind: &str, what: String) {
        self.inner.history.record(Event::Fault {
            kind: kind.into(),
            what,
        });
    }

    /// Declares that node `node` dials its peers from `ip`.
    pub fn set_source(&self, ip: IpAddr, node: Endpoint) {
        self.table().sources.insert(ip, node);
    }

    /// The node that dials from `ip`, or [`UNKNOWN`].
    pub fn source(&self, ip: IpAddr) -> Endpoint {
        self.table().sources.get(&ip).copied().unwrap_or(UNKNOWN)
    }

    /// The current fault of the `from` → `to` direction.
    pub fn fault(&self, from: Endpoint, to: Endpoint) -> LinkFault {
        self.table()
            .faults
            .get(&(from, to))
            .cloned()
            .unwrap_or_default()
    }

    /// The reset generation of the link between `a` and `b`.
    pub fn reset_generation(&self, a: Endpoint, b: Endpoint) -> u64 {
        self.table().resets.get(&pair(a, b)).copied().unwrap_or(0)
    }

    /// A receiver that sees every change of the table.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// A random number in [0, 1) from the seeded generator.
    pub fn random(&self) -> f64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random()
    }

    /// A seed for one connection's own generator (jitter).
    pub fn conn_seed(&self) -> u64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random()
    }

    /// Changes the `from` → `to` fault with `f` (no history entry; the named helpers write one).
    pub fn update(&self, from: Endpoint, to: Endpoint, f: impl FnOnce(&mut LinkFault)) {
        f(self.table().faults.entry((from, to)).or_default());
        self.changed();
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[Endpoint], b: &[Endpoint]) {
        {
            let mut t = self.table();
            for &x in a {
                for &y in b {
                    t.faults.entry((x, y)).or_default().stalled = true;
                    t.faults.entry((y, x)).or_default().stalled = true;
                }
            }
        }
        self.changed();
        self.fault_event("partition", format!("{a:?} | {b:?}"));
    }

    /// Cuts `node` off from every endpoint in `others` (both ways).
    pub fn isolate(&self, node: Endpoint, others: &[Endpoint]) {
        let others: Vec<_> = others.iter().copied().filter(|o| *o != node).collect();
        self.partition(&[node], &others);
    }

    /// Stalls only the `from` → `to` direction.
    pub fn one_way(&self, from: Endpoint, to: Endpoint) {
        self.update(from, to, |f| f.stalled = true);
        self.fault_event("one_way", format!("{from} -> {to} stalled"));
    }

    /// Adds `delay` ± `jitter` on both directions between `a` and `b`.
    pub fn delay(&self, a: Endpoint, b: Endpoint, delay: Duration, jitter: Duration) {
        for (x, y) in [(a, b), (b, a)] {
            self.update(x, y, |f| {
                f.delay = delay;
                f.jitter = jitter;
            });
        }
        self.fault_event("delay", format!("{a} <-> {b}: {delay:?} ± {jitter:?}"));
    }

    /// Closes every open connection between `a` and `b` with an RST.
    pub fn reset(&self, a: Endpoint, b: Endpoint) {
        *self.table().resets.entry(pair(a, b)).or_default() += 1;
        self.changed();
        self.fault_event("reset", format!("{a} <-> {b}"));
    }

    /// Removes every fault (resets already done stay done) and records a `Heal`.
    pub fn heal(&self) {
        self.table().faults.clear();
        self.changed();
        self.inner.history.record(Event::Heal {
            what: "network healed".into(),
        });
    }

    /// Whether any fault is set.
    pub fn is_healthy(&self) -> bool {
        self.table()
            .faults
            .values()
            .all(|f| *f == LinkFault::default())
    }
}

/// The majorities ring of `nodes` (Jepsen's nemesis): each node keeps its two ring
/// neighbours, so with 5 nodes every node sees a majority (itself + 2) but no two nodes see
/// the same one. Returns the pairs to cut.
pub fn majorities_ring_cuts(nodes: &[Endpoint]) -> Vec<(Endpoint, Endpoint)> {
    let n = nodes.len();
    let mut cuts = Vec::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let d = (j - i).min(n - (j - i));
            if d > 1 {
                cuts.push((nodes[i], nodes[j]));
            }
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition stalls both directions, a one-way partition one, and heal clears both.
    #[test]
    fn partition_one_way_and_heal() {
        let net = Net::new(1, History::new());
        net.partition(&[1], &[2, 3]);
        assert!(net.fault(1, 2).stalled && net.fault(3, 1).stalled);
        assert!(!net.fault(2, 3).stalled);
        net.heal();
        assert!(net.is_healthy());
        net.one_way(2, 3);
        assert!(net.fault(2, 3).stalled && !net.fault(3, 2).stalled);
    }

    /// With 5 nodes the ring keeps each node's two neighbours and cuts the 5 other pairs.
    #[test]
    fn majorities_ring_of_five() {
        let cuts = majorities_ring_cuts(&[1, 2, 3, 4, 5]);
        assert_eq!(cuts, vec![(1, 3), (1, 4), (2, 4), (2, 5), (3, 5)]);
    }
}
