//! The audit log: one JSON line per security-relevant event, never containing a token.
//!
//! Lines go through a bounded channel to a writer task, so a slow disk cannot stall a
//! connection; if the channel is full the line is dropped and counted (`audit_dropped`),
//! which the operator sees in `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use tether_cluster::clock::SharedClock;

const QUEUE: usize = 4096;

/// One audit record. `kind` is one of: auth_ok, auth_fail, refresh_ok, refresh_fail, revoke,
/// logout, token_revoke, permissions, tenant, impersonation.
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
    File(PathBuf),
}

impl Audit {
    /// Starts the writer task on the current runtime.
    pub fn start(sink: AuditSink, node: &str, clock: SharedClock, metrics: Arc<Metrics>) -> Audit {
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        tokio::spawn(async move {
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match sink {
                AuditSink::Stdout => Box::new(tokio::io::stdout()),
                AuditSink::File(p) => {
                    match tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .await
                    {
                        Ok(f) => Box::new(f),
                        Err(e) => {
                            tracing::error!(path = %p.display(), error = %e, "cannot open audit log; writing to stdout");
                            Box::new(tokio::io::stdout())
                        }
                    }
                }
            };
            while let Some(line) = rx.recv().await {
                if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    tracing::error!("audit log write failed");
                }
            }
        });
        Audit {
            tx,
            node: node.into(),
            clock,
            metrics,
        }
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
            self.metrics.inc("tether_audit_dropped_total", &[]);
        }
    }
}
