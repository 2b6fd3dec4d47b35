//! `Conn`: one recorded WebSocket connection. A task owns the socket, records every frame
//! the server sends (and the close, or how it ended) in the history, and sends what the
//! test queues. `Session` keeps what a client needs to resume across connections;
//! `SdkClient` is a client driven by the Rust SDK, recorded the same way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tether_protocol::{ClientFrame, ResumeRequest, ServerMessage, Welcome};
use tether_tests::client::request;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::history::{Event, History, Id};

mod sdk;
mod session;
pub use sdk::{SdkClient, SdkState};
pub use session::Session;

/// Frames the test may queue to one connection before `send` waits.
const SEND_QUEUE: usize = 64;
/// Upgrade deadline (TCP + HTTP upgrade).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that hears nothing for this long is given up (the node pings every second).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A token and the claims the checkers need.
#[derive(Clone, Debug)]
pub struct Token {
    pub user: String,
    pub jwt: String,
    pub jti: String,
    pub iat: u64,
}

/// The IdP session id every token of `user` carries.
pub fn idp_sid(user: &str) -> String {
    format!("idp-{user}")
}

impl Token {
    /// A valid token for `user` in the test tenant with `perms`, valid 10 minutes. Every
    /// token of a user carries the IdP session id `idp-<user>` (read only by a tenant with
    /// an `idp` section), so an IdP logout of that session covers all of them.
    pub fn new(user: &str, perms: &[&str]) -> Token {
        use tether_tests::tokens::{TENANT_KID, TENANT_SECRET, claims, sign_hs};
        let mut c = claims(user, 600, perms);
        c["sid"] = serde_json::Value::String(idp_sid(user));
        Token {
            user: user.to_owned(),
            jwt: sign_hs(TENANT_KID, TENANT_SECRET, &c),
            jti: c["jti"].as_str().unwrap_or_default().to_owned(),
            iat: c["iat"].as_u64().unwrap_or_default(),
        }
    }

    /// The token's `exp` (10 minutes after `iat`).
    pub fn exp(&self) -> u64 {
        self.iat + 600
    }
}

/// What the connection has seen so far.
#[derive(Clone, Debug, Default)]
pub struct ConnState {
    pub welcome: Option<Welcome>,
    /// Highest `seq` received.
    pub last_seq: u64,
    /// Replies by request id (`ok`).
    pub replies: Vec<(u64, bool)>,
    /// Close code, or `None` when it ended without one; set once the connection is over.
    pub ended: Option<Option<u16>>,
    /// The client let go of the connection: nothing more is recorded for it.
    pub detached: bool,
}

/// One connection; dropping it drops the socket (no close frame, like a network drop).
pub struct Conn {
    pub id: Id,
    pub node: u64,
    tx: mpsc::Sender<ClientFrame>,
    state: Arc<Mutex<ConnState>>,
    changed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

/// Where and how to connect.
pub struct Dial<'a> {
    pub history: &'a History,
    pub client: Id,
    pub node: u64,
    pub url: &'a str,
    pub token: &'a Token,
    /// `(session_id, resume_token, last_seq)`.
    pub resume: Option<(String, String, u64)>,
    pub probe: bool,
}

impl Conn {
    /// Starts a connection: records `Connect`, upgrades, sends `hello`. Never panics on
    /// network errors: a failed upgrade is recorded as `Dropped` and the connection is over.
    pub async fn open(d: Dial<'_>) -> Conn {
        let h = d.history.clone();
        let id = h.next_id();
        h.record(Event::Connect {
            conn: id,
            client: d.client,
            node: d.node,
            user: d.token.user.clone(),
            jti: d.token.jti.clone(),
            iat: d.token.iat,
            resume: d.resume.as_ref().map(|r| r.0.clone()),
            last_seq: d.resume.as_ref().map(|r| r.2),
            probe: d.probe,
        });
        let state = Arc::new(Mutex::new(ConnState {
            last_seq: d.resume.as_ref().map_or(0, |r| r.2),
            ..Default::default()
        }));
        let (changed_tx, changed) = watch::channel(0u64);
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let hello = ClientFrame::hello(d.resume.as_ref().map(|(sid, rt, last)| ResumeRequest {
            session_id: sid.clone(),
            resume_token: rt.clone(),
            last_seq: *last,
        }));
        let req = request(d.url, Some(&d.token.jwt), None, None);
        let task = tokio::spawn(run(h, id, req, hello, rx, state.clone(), changed_tx));
        Conn {
            id,
            node: d.node,
            tx,
            state,
            changed,
            task,
        }
    }

    /// A copy of what the connection has seen.
    pub fn state(&self) -> ConnState {
        snapshot(&self.state)
    }

    /// Waits until `f` holds on the state or `within` passes; returns the last state.
    pub async fn wait(&mut self, within: Duration, f: impl Fn(&ConnState) -> bool) -> ConnState {
        wait_for(&self.state, &mut self.changed, within, f).await
    }

    /// Waits for the welcome or the end: `Ok(welcome)`, or `Err(close code)`.
    pub async fn welcomed(&mut self, within: Duration) -> Result<Welcome, Option<u16>> {
        let s = self
            .wait(within, |s| s.welcome.is_some() || s.ended.is_some())
            .await;
        match (s.welcome, s.ended) {
            (Some(w), _) => Ok(w),
            (None, Some(code)) => Err(code),
            (None, None) => Err(None),
        }
    }

    /// Waits for the end: `Some(code)` (inner `None`: no close frame) or `None` if open.
    pub async fn ended(&mut self, within: Duration) -> Option<Option<u16>> {
        self.wait(within, |s| s.ended.is_some()).await.ended
    }

    /// Queues a frame; `false` if the connection is over or the queue stayed full for 5 s.
    pub async fn send(&self, frame: ClientFrame) -> bool {
        tokio::time::timeout(Duration::from_secs(5), self.tx.send(frame))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Subscribes to `channel` with request id `id` and waits for the reply.
    pub async fn subscribe(&mut self, channel: &str, id: u64, within: Duration) -> bool {
        if !self
            .send(ClientFrame::Subscribe {
                id,
                channel: channel.to_owned(),
            })
            .await
        {
            return false;
        }
        let s = self
            .wait(within, |s| {
                s.replies.iter().any(|r| r.0 == id) || s.ended.is_some()
            })
            .await;
        s.replies.contains(&(id, true))
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.state().ended.is_none()
    }

    /// Lets go of the connection: from now on nothing it receives is recorded (the client
    /// has dropped it), and the returned state holds everything that was.
    pub fn detach(&self) -> ConnState {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.detached = true;
        s.clone()
    }
}

/// A copy of a recorded client's state.
fn snapshot<T: Clone>(state: &Mutex<T>) -> T {
    state.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Waits until `f` holds on `state` or `within` passes; returns the last state. The
/// recorder ticks `changed` after every update.
async fn wait_for<T: Clone>(
    state: &Mutex<T>,
    changed: &mut watch::Receiver<u64>,
    within: Duration,
    f: impl Fn(&T) -> bool,
) -> T {
    let end = tokio::time::Instant::now() + within;
    loop {
        let s = snapshot(state);
        if f(&s) {
            return s;
        }
        if tokio::time::timeout_at(end, changed.changed())
            .await
            .map_or(true, |r| r.is_err())
        {
            return snapshot(state);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    h: History,
    conn: Id,
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    hello: ClientFrame,
    mut rx: mpsc::Receiver<ClientFrame>,
    state: Arc<Mutex<ConnState>>,
    changed: watch::Sender<u64>,
) {
    // Records into the history and updates the state under one lock, so a client that
    // detaches (and takes its last seq) never misses a frame the history says it saw, and
    // nothing is recorded after it let go. `false` once detached.
    let observe = |f: &mut dyn FnMut(&mut ConnState)| -> bool {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.detached {
            return false;
        }
        f(&mut s);
        drop(s);
        changed.send_modify(|g| *g += 1);
        true
    };
    let end = |code: Option<u16>, why: String| {
        observe(&mut |s| {
            match code {
                Some(code) => h.record(Event::Close {
                    conn,
                    code,
                    reason: why.clone(),
                }),
                None => h.record(Event::Dropped {
                    conn,
                    error: why.clone(),
                }),
            }
            s.ended = Some(code);
        });
    };
    let ws =
        match tokio::time::timeout(UPGRADE_TIMEOUT, tokio_tungstenite::connect_async(req)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return end(None, format!("upgrade: {e}")),
            Err(_) => return end(None, "upgrade timed out".into()),
        };
    let (mut sink, mut stream) = ws.split();
    if sink.send(Message::text(hello.to_json())).await.is_err() {
        return end(None, "send hello failed".into());
    }
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(frame) = out else { return };
                if sink.send(Message::text(frame.to_json())).await.is_err() {
                    // The read side tells how it ended.
                    continue;
                }
            }
            m = tokio::time::timeout(READ_TIMEOUT, stream.next()) => {
                let m = match m {
                    Err(_) => return end(None, "nothing received for 30 s".into()),
                    Ok(None) => return end(None, "socket ended".into()),
                    Ok(Some(Err(e))) => return end(None, format!("socket error: {e}")),
                    Ok(Some(Ok(m))) => m,
                };
                match m {
                    Message::Text(t) => {
                        let m = ServerMessage::parse(&t);
                        let seen = observe(&mut |s| {
                            record_frame(&h, conn, m.as_ref());
                            match &m {
                                Some(ServerMessage::Welcome(w)) => {
                                    // A resume keeps the client's own last_seq (the replay
                                    // follows); a new session starts at 0.
                                    if !w.resumed {
                                        s.last_seq = 0;
                                    }
                                    s.welcome = Some(w.clone());
                                }
                                Some(ServerMessage::Reply { id, ok, .. }) => s.replies.push((*id, *ok)),
                                _ => {}
                            }
                            if let Some(seq) = m.as_ref().and_then(ServerMessage::seq) {
                                s.last_seq = s.last_seq.max(seq);
                            }
                        });
                        if !seen {
                            return;
                        }
                    }
                    Message::Close(Some(CloseFrame { code, reason })) => {
                        return end(Some(code.into()), reason.to_string());
                    }
                    Message::Close(None) => return end(Some(1005), String::new()),
                    _ => {}
                }
            }
        }
    }
}

/// Records a frame the server sent; one that is not a frame of the protocol is kept as `?`.
fn record_frame(h: &History, conn: Id, m: Option<&ServerMessage>) {
    let event = match m {
        Some(ServerMessage::Welcome(w)) => Event::Welcome {
            conn,
            session_id: w.session_id.clone(),
            node: w.node.clone(),
            resumed: w.resumed,
            recovered: w.recovered,
            seq: w.seq,
        },
        Some(ServerMessage::Event {
            seq, channel, data, ..
        }) => Event::Frame {
            conn,
            seq: Some(*seq),
            channel: Some(channel.clone()),
            n: data.get("n").and_then(Value::as_u64),
            kind: "event".into(),
        },
        other => Event::Frame {
            conn,
            seq: other.and_then(ServerMessage::seq),
            channel: None,
            n: None,
            kind: other.map_or("?", ServerMessage::kind).into(),
        },
    };
    h.record(event);
}
