//! Tether benchmark program: starts release `tether` nodes on loopback, drives real
//! WebSocket clients (in process and in load-generator child processes), and reports tables,
//! JSON and SVG plots. Targets are reported as ratios, never asserted.
//!
//! # Layout
//! - `scenarios/`: one file per scenario (`revocation`, `memory`, `connect_rate`, `storm`,
//!   `fanout`) plus `sizes` (type sizes of the connection actor's messages) and
//!   `revocation_rtt` (root tier: the revocation scenario at 80 ms RTT, on
//!   `tether_chaos::netns`).
//! - `node`: `BenchNode`/`BenchCluster`, the release binary and the benchmark config.
//! - `ws`: a light client (source address, TLS, hello/resume, welcome) and `hold`.
//! - `pool`: many held clients in this process.
//! - `worker`: load-generator child processes (`tether-bench worker`).
//! - `admin`, `tokens`, `tls`: admin calls, tenant tokens, the `wss` certificate.
//! - `stats`, `report`, `plot`: percentiles, the table and JSON report, SVG CDFs.
//! - `machine`: `/proc` readers (CPU, kernel, load average, RSS).
//! - `bin/bare_ws.rs`: the bare tokio-tungstenite baseline server of the memory scenario.

pub mod admin;
pub mod machine;
pub mod node;
pub mod plot;
pub mod pool;
pub mod prom;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod tls;
pub mod tokens;
pub mod worker;
pub mod ws;

use std::path::PathBuf;

/// Sizes and options of a run (see `tether-bench --help`).
#[derive(Clone, Debug, clap::Args)]
pub struct Opts {
    /// Output directory for report.json, table.md, SVG plots and node logs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Revocation: connections held over the 3 nodes.
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// Revocation: session revocations issued one after another.
    #[arg(long, default_value_t = 1000)]
    pub revocations: usize,
    /// Revocation: logout-everywhere repetitions (one user with 20 sessions each).
    #[arg(long, default_value_t = 50)]
    pub logouts: usize,
    /// Revocation at 80 ms RTT (`revocation-rtt`, root tier): connections over the 3 regions.
    #[arg(long, default_value_t = 1000)]
    pub rtt_conns: usize,
    /// Revocation at 80 ms RTT: session revocations issued one after another.
    #[arg(long, default_value_t = 300)]
    pub rtt_revocations: usize,
    /// Revocation at 80 ms RTT: logout-everywhere repetitions (20 sessions each).
    #[arg(long, default_value_t = 10)]
    pub rtt_logouts: usize,
    /// Memory: connection counts at which RSS is read (ascending, comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![5000usize, 18000])]
    pub mem_steps: Vec<usize>,
    /// Memory: load-generator processes.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Connect rate: connections per variant.
    #[arg(long, default_value_t = 4000)]
    pub rate_conns: usize,
    /// Connect rate: connects in flight.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Reconnect storm: clients on the killed node.
    #[arg(long, default_value_t = 10_000)]
    pub storm_clients: usize,
    /// Reconnect storm: each client waits a random 0..this before its first resume.
    #[arg(long, default_value_t = 250)]
    pub storm_jitter_ms: u64,
    /// Fan-out: subscribers of the channel.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Fan-out: publishes (one at a time, each waiting for all its deliveries).
    #[arg(long, default_value_t = 50)]
    pub publishes: usize,
    /// IdP: back-channel logouts posted one after another (one held session each).
    #[arg(long, default_value_t = 500)]
    pub idp_signals: usize,
}

/// What every scenario gets.
pub struct Ctx {
    pub bin: PathBuf,
    pub out: PathBuf,
    pub opts: Opts,
    pub wss: tls::ServerCert,
}

impl Ctx {
    pub fn log_dir(&self, scenario: &str) -> PathBuf {
        self.out.join("logs").join(scenario)
    }
}
