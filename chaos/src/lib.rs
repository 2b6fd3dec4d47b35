//! Chaos suite: real `tether` processes behind in-process fault proxies, process faults,
//! a recorded history of everything clients and the operator saw, and invariant checkers
//! that read that history. Scenarios live in `tests/` (one file each) and run under
//! `cargo test -p tether-chaos`; see `docs/chaos.md`.
//!
//! # Layout
//! - `history`: `History` (append-only, bounded, JSON) and its `Event`s.
//! - `net`: `Net`, the fault table (partitions, one-way, delay, throttle, refuse, reset).
//! - `proxy`: `FaultProxy`, the TCP proxy that applies the `Net` to one node's listener.
//! - `client`: `Conn` and `Session`, WebSocket clients that record what they see, and
//!   `SdkClient`, a client driven by the Rust SDK and recorded the same way.
//! - `admin`: `Admin`, recorded admin API calls that never panic.
//! - `idp`: the identity provider's signals (back-channel logout, SET), recorded the same way.
//! - `cluster`: `ChaosCluster`, nodes wired through proxies; SIGKILL/SIGTERM/SIGSTOP/restart.
//! - `checkers`: the six invariants, one per file, and `check_all`.
//! - `scenario`: `Scenario` (seed, serial run, checks, summary row, dump on failure).
//! - `report`: the summary rows and table.
//! - `workload`: sessions, retries, probes and liveness shared by the scenarios.

pub mod admin;
pub mod checkers;
pub mod client;
pub mod cluster;
pub mod history;
pub mod idp;
pub mod net;
pub mod netns;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod workload;
