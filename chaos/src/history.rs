//! The history: every event a client observed and every admin operation, with the time it
//! was seen on the test's monotonic clock (µs since the history began). Checkers read it;
//! a failing scenario dumps it as JSON.
//!
//! Recording is append-only behind a std `Mutex` (held for a push, never across an await).
//! The log is bounded by [`MAX_ENTRIES`]; past it entries are counted in `dropped` and the
//! scenario fails, because a checker must never pass on a truncated history.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

/// Most entries one history keeps.
pub const MAX_ENTRIES: usize = 2_000_000;

/// A connection id (one WebSocket connection), an admin operation id, or a logical client.
pub type Id = u64;

/// One recorded event and when it was seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Microseconds since the history began (monotonic).
    pub t_us: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// What the history records. Connection events carry the connection id `conn`; admin
/// events the operation id `op`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A client starts a WebSocket connection to node `node` with a token for `user`
    /// (`jti`, `iat` in Unix seconds). `resume` names the session it resumes, with the
    /// `last_seq` it sent. `probe`: a connection made to check state, expected to be refused.
    Connect {
        conn: Id,
        client: Id,
        node: u64,
        user: String,
        jti: String,
        iat: u64,
        resume: Option<String>,
        last_seq: Option<u64>,
        probe: bool,
    },
    /// The `welcome` frame.
    Welcome {
        conn: Id,
        session_id: String,
        node: String,
        resumed: bool,
        recovered: bool,
        seq: u64,
    },
    /// Any other frame the server sent: `kind` is its `type`; `seq` for sequenced frames;
    /// `channel` and `n` (the `data.n` the publisher numbered) for events.
    Frame {
        conn: Id,
        kind: String,
        seq: Option<u64>,
        channel: Option<String>,
        n: Option<u64>,
    },
    /// The server's close frame.
    Close { conn: Id, code: u16, reason: String },
    /// The connection ended without a close frame (upgrade refused, reset, timeout).
    Dropped { conn: Id, error: String },
    /// An admin call was sent to node `node`. `kind`: `revoke_session`, `logout`,
    /// `revoke_token`, `write_probe` (registry writes), `publish`, `cluster` (reads).
    /// `target`: the session id, user, jti or channel. `wall_ms`: Unix time of the call.
    AdminInvoke {
        op: Id,
        node: u64,
        kind: String,
        target: String,
        n: Option<u64>,
        wall_ms: u64,
    },
    /// The call answered 2xx; `commit_index` when the body had one.
    AdminOk {
        op: Id,
        status: u16,
        commit_index: Option<u64>,
        body: Value,
    },
    /// The call failed: an HTTP error status, or no answer at all (`status` absent).
    AdminFail {
        op: Id,
        status: Option<u16>,
        error: String,
    },
    /// A fault was injected (`kind`: `kill`, `restart`, `stop`, `cont`, `partition`,
    /// `one_way`, `delay`, `reset`, `cut_clients`, ...), with a human description.
    Fault { kind: String, what: String },
    /// Every fault was healed; the liveness checker counts from the last one.
    Heal { what: String },
}

impl Event {
    /// Whether this is an injected fault.
    pub fn is_fault(&self) -> bool {
        matches!(self, Event::Fault { .. })
    }
}

struct Inner {
    start: Instant,
    entries: Mutex<Vec<Entry>>,
    dropped: AtomicU64,
    next_id: AtomicU64,
}

/// A shared, append-only history. Clones share the same log.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            inner: Arc::new(Inner {
                start: Instant::now(),
                entries: Mutex::new(Vec::new()),
                dropped: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A fresh id for a connection, an operation or a client (unique in this history).
    pub fn next_id(&self) -> Id {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Microseconds since the history began.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.inner.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The monotonic instant of `t_us`.
    pub fn instant(&self, t_us: u64) -> Instant {
        self.inner.start + std::time::Duration::from_micros(t_us)
    }

    /// Records `event` now.
    pub fn record(&self, event: Event) {
        let t_us = self.now_us();
        self.push(Entry { t_us, event });
    }

    /// Records an entry with its own time (used by checker tests and by the recorder).
    pub fn push(&self, entry: Entry) {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        entries.push(entry);
    }

    /// Entries that did not fit (must be 0 for a valid run).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// A copy of the entries so far, in recording order.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When connection `conn` ended (close frame or drop), µs.
    pub fn end_of(&self, conn: Id) -> Option<u64> {
        self.snapshot().into_iter().find_map(|e| match e.event {
            Event::Close { conn: c, .. } | Event::Dropped { conn: c, .. } if c == conn => {
                Some(e.t_us)
            }
            _ => None,
        })
    }

    /// The close frame recorded for connection `conn`: `(t_us, code, reason)`.
    pub fn close_of(&self, conn: Id) -> Option<(u64, u16, String)> {
        self.snapshot().into_iter().find_map(|e| match e.event {
            Event::Close {
                conn: c,
                code,
                reason,
            } if c == conn => Some((e.t_us, code, reason)),
            _ => None,
        })
    }

    /// Writes `{"scenario","seed","dropped","entries"}` to `dir/<scenario>-<seed>.json`.
    pub fn save(&self, dir: &Path, scenario: &str, seed: u64) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{scenario}-{seed}.json"));
        let doc = serde_json::json!({
            "scenario": scenario,
            "seed": seed,
            "dropped": self.dropped(),
            "entries": self.snapshot(),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
        Ok(path)
    }
}

/// Unix time in ms (for tokens and admin calls, which the node compares with its clock).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries round-trip through JSON with their tag, and ids are unique.
    #[test]
    fn entries_serialize_and_ids_are_unique() {
        let h = History::new();
        let a = h.next_id();
        let b = h.next_id();
        assert_ne!(a, b);
        h.record(Event::Close {
            conn: a,
            code: 4004,
            reason: "session_revoked".into(),
        });
        let json = serde_json::to_string(&h.snapshot()).expect("json");
        assert!(json.contains("\"ev\":\"close\""), "{json}");
        let back: Vec<Entry> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, h.snapshot());
    }
}
