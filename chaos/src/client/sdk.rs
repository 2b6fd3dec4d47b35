//! `SdkClient`: a logical client driven by the Rust SDK (`tether-client`), so the SDK's own
//! reconnect, failover and resume run under the scenario's faults, checked by the same
//! checkers as the hand-driven [`super::Session`].
//!
//! The SDK reports connections, not attempts: each `Connected` is recorded as a new
//! connection (its `Connect` with the welcome, carrying the session and `last_seq` the SDK
//! resumed from), each event as a frame on it, each `Closed` as its end. An attempt that
//! fails before a welcome leaves no trace, which no checker needs: SDK clients are never
//! the target of a revocation, so no admission check depends on when they connected.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Token, snapshot, wait_for};
use crate::history::{Event, History, Id};

/// What an SDK client has seen so far.
#[derive(Clone, Debug, Default)]
pub struct SdkState {
    /// The recorded connection the SDK is on (or was on last).
    pub conn: Option<Id>,
    /// The node of that connection.
    pub node: Option<u64>,
    /// Whether that connection is open.
    pub open: bool,
    /// Welcomes so far (1 after the first connect).
    pub welcomes: u32,
    /// Welcomes that resumed the session (`resumed:true`).
    pub resumes: u32,
    /// Every welcome after the first resumed the first session.
    pub always_resumed: bool,
    /// ... and said `recovered:true` (the missed events were replayed).
    pub always_recovered: bool,
    pub session_id: Option<String>,
    /// Highest `seq` the SDK delivered in the current session.
    pub last_seq: u64,
    /// Events delivered.
    pub events: u64,
    /// The close code that stopped the SDK for good.
    pub terminal: Option<u16>,
}

/// One SDK client, recorded in the history.
pub struct SdkClient {
    pub client: Id,
    pub sdk: Client,
    state: Arc<Mutex<SdkState>>,
    changed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl SdkClient {
    /// Connects through `endpoints` (`(node, url)`, tried in order, then in turn on every
    /// reconnect), subscribes to `channel` if given, and records everything it sees. Retries
    /// the first connect (every endpoint once per try) for up to `within`.
    pub async fn start(
        history: &History,
        token: &Token,
        endpoints: &[(u64, String)],
        channel: Option<&str>,
        within: Duration,
    ) -> Result<SdkClient, String> {
        let mut cfg = ClientConfig::new(endpoints.iter().map(|e| e.1.clone()));
        cfg.backoff_min = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_secs(2);
        cfg.connect_timeout = Duration::from_secs(10);
        cfg.request_timeout = Duration::from_secs(30);
        cfg.client_name = "chaos-sdk".into();
        let end = tokio::time::Instant::now() + within;
        let sdk = loop {
            match Client::connect(cfg.clone(), StaticToken(token.jwt.clone())).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() >= end => {
                    return Err(format!("{}: {e}", token.user));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let client = history.next_id();
        let state = Arc::new(Mutex::new(SdkState {
            always_resumed: true,
            always_recovered: true,
            ..SdkState::default()
        }));
        let (changed_tx, changed) = watch::channel(0u64);
        let events = sdk.events().ok_or("the SDK's events were taken")?;
        let recorder = Recorder {
            history: history.clone(),
            client,
            token: token.clone(),
            state: state.clone(),
            changed: changed_tx,
        };
        let task = tokio::spawn(recorder.run(events));
        let mut me = SdkClient {
            client,
            sdk,
            state,
            changed,
            task,
        };
        // `connect` returns at the welcome; the recorder sees `Connected` just after.
        me.wait(within, |s| s.welcomes > 0).await;
        if let Some(ch) = channel {
            me.sdk
                .subscribe(ch)
                .await
                .map_err(|e| format!("{}: subscribe {ch}: {e}", token.user))?;
        }
        Ok(me)
    }

    /// A copy of what the client has seen.
    pub fn state(&self) -> SdkState {
        snapshot(&self.state)
    }

    /// Waits until `f` holds on the state or `within` passes; returns the last state.
    pub async fn wait(&mut self, within: Duration, f: impl Fn(&SdkState) -> bool) -> SdkState {
        wait_for(&self.state, &mut self.changed, within, f).await
    }

    /// Closes the client (1000) and stops recording.
    pub async fn close(self) {
        self.sdk.close().await;
        self.task.abort();
    }
}

impl Drop for SdkClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns the SDK's events into history entries.
struct Recorder {
    history: History,
    client: Id,
    token: Token,
    state: Arc<Mutex<SdkState>>,
    changed: watch::Sender<u64>,
}

impl Recorder {
    async fn run(self, mut events: tether_client::Events) {
        while let Some(ev) = events.recv().await {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            self.record(&mut s, ev);
            drop(s);
            self.changed.send_modify(|g| *g += 1);
        }
    }

    fn record(&self, s: &mut SdkState, ev: ClientEvent) {
        let h = &self.history;
        match ev {
            ClientEvent::Connected {
                session_id,
                resumed,
                recovered,
                node,
            } => {
                let conn = h.next_id();
                let node_id = node.trim_start_matches('n').parse().unwrap_or(0);
                // The SDK resumes whenever it has a session, from the last seq it delivered.
                let resume = s.session_id.clone();
                h.record(Event::Connect {
                    conn,
                    client: self.client,
                    node: node_id,
                    user: self.token.user.clone(),
                    jti: self.token.jti.clone(),
                    iat: self.token.iat,
                    last_seq: resume.as_ref().map(|_| s.last_seq),
                    resume,
                    probe: false,
                });
                h.record(Event::Welcome {
                    conn,
                    session_id: session_id.clone(),
                    node,
                    resumed,
                    recovered,
                    // The SDK does not report the welcome's seq; a resume starts from the
                    // client's own, and a new session from 0.
                    seq: if resumed { s.last_seq } else { 0 },
                });
                if !resumed {
                    s.last_seq = 0;
                }
                s.always_resumed &= s.welcomes == 0 || resumed;
                s.always_recovered &= s.welcomes == 0 || (resumed && recovered);
                s.welcomes += 1;
                s.resumes += u32::from(resumed);
                s.conn = Some(conn);
                s.node = Some(node_id);
                s.open = true;
                s.session_id = Some(session_id);
            }
            ClientEvent::Event { seq, channel, data } => {
                s.last_seq = s.last_seq.max(seq);
                s.events += 1;
                if let Some(conn) = s.conn {
                    h.record(Event::Frame {
                        conn,
                        kind: "event".into(),
                        seq: Some(seq),
                        channel: Some(channel),
                        n: data.get("n").and_then(Value::as_u64),
                    });
                }
            }
            ClientEvent::Permissions { seq, .. } => {
                s.last_seq = s.last_seq.max(seq);
                if let Some(conn) = s.conn {
                    h.record(Event::Frame {
                        conn,
                        kind: "permissions".into(),
                        seq: Some(seq),
                        channel: None,
                        n: None,
                    });
                }
            }
            ClientEvent::Closed {
                code,
                reason,
                terminal,
            } => {
                if let Some(conn) = s.conn.filter(|_| s.open) {
                    h.record(if code == 1006 {
                        Event::Dropped {
                            conn,
                            error: reason,
                        }
                    } else {
                        Event::Close { conn, code, reason }
                    });
                }
                s.open = false;
                if terminal {
                    s.terminal = Some(code);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::{Params, check_all};

    fn recorder(h: &History) -> (Recorder, Arc<Mutex<SdkState>>) {
        let state = Arc::new(Mutex::new(SdkState {
            always_resumed: true,
            always_recovered: true,
            ..SdkState::default()
        }));
        let rec = Recorder {
            history: h.clone(),
            client: h.next_id(),
            token: Token::new("u", &[]),
            state: state.clone(),
            changed: watch::channel(0).0,
        };
        (rec, state)
    }

    fn connected(resumed: bool, node: &str) -> ClientEvent {
        ClientEvent::Connected {
            session_id: "s".into(),
            resumed,
            recovered: resumed,
            node: node.into(),
        }
    }

    fn event(seq: u64) -> ClientEvent {
        ClientEvent::Event {
            seq,
            channel: "feed.a".into(),
            data: serde_json::json!({ "n": seq }),
        }
    }

    /// Feeds the SDK's events through the recorder and returns the resume checker's
    /// violations over the history.
    fn violations(events: Vec<ClientEvent>) -> (Vec<String>, SdkState) {
        let h = History::new();
        let (rec, state) = recorder(&h);
        for ev in events {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            rec.record(&mut s, ev);
        }
        let report = check_all(&h.snapshot(), &Params::default());
        let found = report
            .violations
            .iter()
            .map(|v| v.message.clone())
            .collect();
        let st = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (found, st)
    }

    /// A drop and a resume on another node, numbering kept: recorded as two connections of
    /// one session, and the checkers find nothing.
    #[test]
    fn resumed_stream_is_recorded_per_connection() {
        let closed = ClientEvent::Closed {
            code: 1006,
            reason: "reset".into(),
            terminal: false,
        };
        let (found, st) = violations(vec![
            connected(false, "n1"),
            event(1),
            event(2),
            closed,
            connected(true, "n2"),
            event(3),
        ]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(
            (st.welcomes, st.resumes, st.node, st.last_seq),
            (2, 1, Some(2), 3)
        );
        assert!(st.open && st.always_resumed && st.always_recovered);
    }

    /// An SDK that skipped an event after a recovered resume is caught by the checkers.
    #[test]
    fn a_gap_after_resume_is_a_violation() {
        let closed = ClientEvent::Closed {
            code: 1012,
            reason: "service_restart".into(),
            terminal: false,
        };
        let (found, _) = violations(vec![
            connected(false, "n1"),
            event(1),
            closed,
            connected(true, "n3"),
            event(3),
        ]);
        assert!(found.iter().any(|m| m.contains("gap")), "{found:?}");
    }
}
