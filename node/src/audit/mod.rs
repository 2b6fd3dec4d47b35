//! The audit log: one JSON line per security-relevant event, never containing a token.
//!
//! Lines go through a bounded channel to a writer thread, so a slow disk cannot stall a
//! connection; if the channel is full, or the write fails, the line is dropped and counted
//! (`tether_audit_dropped_total`), which the operator sees in `/metrics`. The sink is stdout
//! or a size-rotated file (`[audit]`, `file.rs`).

mod file;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tether_cluster::clock::SharedClock;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use file::RotatingFile;

const QUEUE: usize = 4096;

/// One audit record. `kind` is one of: auth_ok, auth_fail, refresh_ok, refresh_fail, revoke,
/// logout, token_revoke, permissions, tenant, impersonation, publish, admin_auth_fail,
/// membership, idp_signal.
#[derive(Debug, Serialize, Default)]
pub struct AuditRecord<'a> {
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    /// Impersonating actor (`act.sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<&'a str>,
    /// Operator (`sub` of the admin token) for admin actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_index: Option<u64>,
    /// The channel an admin publish went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// An IdP signal's IdP session id, event, issuer and token id (`idp_signal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<&'a str>,
}

#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<String>,
    node: Arc<str>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts_ms: u64,
    audit: &'a AuditRecord<'a>,
    node: &'a str,
}

/// Where audit lines go.
pub enum AuditSink {
    Stdout,
    /// Rotated past `max_bytes`, keeping `max_files` rotated files.
    File {
        path: PathBuf,
        max_bytes: u64,
        max_files: u32,
    },
}

enum Out {
    Stdout(std::io::Stdout),
    File(RotatingFile),
}

impl Out {
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => {
                let mut s = s.lock();
                s.write_all(lines)?;
                s.flush()
            }
            Out::File(f) => f.write_lines(lines),
        }
    }
}

/// Lines written together at most: what the queue holds when the writer wakes, up to this.
const BATCH_BYTES: usize = 64 * 1024;
/// How long the writer lets lines gather after a write. Waking per line cost a context
/// switch per admission; a line still reaches the sink within this.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

impl Audit {
    /// Opens the sink (an audit file that cannot be opened is an error: the node does not
    /// start without its audit trail) and starts the writer thread.
    ///
    /// A thread of its own, not a task: tokio's stdout and file handles make two trips to
    /// the blocking pool per line (write, flush), a third of the node's futex calls under
    /// connect churn (docs/performance.md, connect cost). The thread writes whatever has queued
    /// since it last wrote in one call, at most every [`GATHER`], and ends when the last
    /// `Audit` is dropped.
    pub fn start(
        sink: AuditSink,
        node: &str,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Audit> {
        let mut out = match sink {
            AuditSink::Stdout => Out::Stdout(std::io::stdout()),
            AuditSink::File {
                path,
                max_bytes,
                max_files,
            } => Out::File(RotatingFile::open(&path, max_bytes, max_files)?),
        };
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        let dropped = metrics.clone();
        std::thread::Builder::new()
            .name("tether-audit".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH_BYTES);
                while let Some(line) = rx.blocking_recv() {
                    let mut lines = 1;
                    batch.extend_from_slice(line.as_bytes());
                    while batch.len() < BATCH_BYTES {
                        let Ok(line) = rx.try_recv() else { break };
                        batch.extend_from_slice(line.as_bytes());
                        lines += 1;
                    }
                    if let Err(e) = out.write(&batch) {
                        tracing::error!(error = %e, "audit log write failed");
                        dropped.audit_dropped.inc_by(lines);
                    }
                    batch.clear();
                    batch.shrink_to(BATCH_BYTES);
                    std::thread::sleep(GATHER);
                }
            })?;
        Ok(Audit {
            tx,
            node: node.into(),
            clock,
            metrics,
        })
    }

    pub fn emit(&self, rec: AuditRecord<'_>) {
        let line = Line {
            ts_ms: self.clock.now_ms(),
            audit: &rec,
            node: &self.node,
        };
        let Ok(mut s) = serde_json::to_string(&line) else {
            return;
        };
        s.push('\n');
        if self.tx.try_send(s).is_err() {
            self.metrics.audit_dropped.inc();
        }
    }
}
