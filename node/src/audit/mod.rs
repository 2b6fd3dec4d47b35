//! The audit log: one JSON line per security-relevant event, never containing a token.
//!
//! Lines go through a bounded channel to a writer task, so a slow disk cannot stall a
//! connection; if the channel is full, or the write fails, the line is dropped and counted
//! (`tether_audit_dropped_total`), which the operator sees in `/metrics`. The sink is stdout
//! or a size-rotated file (`[audit]`, `file.rs`).

mod file;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tether_cluster::clock::SharedClock;
use tokio::io::AsyncWriteExt;
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
    Stdout(tokio::io::Stdout),
    File(RotatingFile),
}

impl Out {
    async fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => {
                s.write_all(line).await?;
                s.flush().await
            }
            Out::File(f) => f.write_line(line).await,
        }
    }
}

impl Audit {
    /// Opens the sink (an audit file that cannot be opened is an error: the node does not
    /// start without its audit trail) and starts the writer task on the current runtime.
    pub async fn start(
        sink: AuditSink,
        node: &str,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Audit> {
        let mut out = match sink {
            AuditSink::Stdout => Out::Stdout(tokio::io::stdout()),
            AuditSink::File {
                path,
                max_bytes,
                max_files,
            } => Out::File(RotatingFile::open(&path, max_bytes, max_files).await?),
        };
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        let dropped = metrics.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if let Err(e) = out.write(line.as_bytes()).await {
                    tracing::error!(error = %e, "audit log write failed");
                    dropped.audit_dropped.inc();
                }
            }
        });
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
