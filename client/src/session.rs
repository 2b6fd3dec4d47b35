//! [`SessionState`]: what survives from one connection to the next: the session to resume,
//! the highest `seq` seen (duplicate filter), the last `ack`, the channels to re-subscribe,
//! and the cached access token.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_protocol::{ResumeRequest, Welcome};

use crate::token::jwt_exp;

/// Now as Unix seconds (wall clock: token `exp` values are wall-clock times).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long from now until the Unix time `at` (zero if it has passed).
pub(crate) fn until_unix(at: u64) -> Duration {
    Duration::from_secs(at.saturating_sub(unix_now()))
}

/// What an app persists to resume its session after a restart: pass it back in
/// [`ClientConfig::resume_state`](crate::ClientConfig::resume_state). `last_seq` is the last
/// event the app received from [`Events`](crate::Events).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumeState {
    /// The session to resume.
    pub session_id: String,
    /// Its current resume token (rotated at every resume, so persist it after each).
    pub resume_token: String,
    /// The last event the app received: the server replays what came after it.
    pub last_seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// From the last `welcome`.
    pub session_id: Option<String>,
    resume_token: String,
    /// Highest `seq` delivered to the application in the current session.
    pub last_seq: u64,
    /// Highest `seq` acknowledged to the server.
    pub last_acked: u64,
    /// Channels the server confirmed (re-subscribed after a non-resumed reconnect).
    pub subscriptions: BTreeSet<String>,
    token: Option<String>,
    token_exp: Option<u64>,
    /// `exp` announced by the server in the last `welcome`.
    pub welcome_exp: Option<u64>,
    /// The server's ping interval from the last `welcome`.
    pub heartbeat_ms: Option<u64>,
}

impl SessionState {
    /// The state of a session persisted by an earlier run of the app: the first connect
    /// resumes it.
    pub fn restored(r: &ResumeState) -> SessionState {
        SessionState {
            session_id: Some(r.session_id.clone()),
            resume_token: r.resume_token.clone(),
            last_seq: r.last_seq,
            last_acked: r.last_seq,
            ..SessionState::default()
        }
    }

    /// The `hello.resume` to send, if there is a session to resume.
    pub fn resume(&self) -> Option<ResumeRequest> {
        let session_id = self.session_id.clone()?;
        Some(ResumeRequest {
            session_id,
            resume_token: self.resume_token.clone(),
            last_seq: self.last_seq,
        })
    }

    /// Records a `welcome`. Returns `true` when the session is new (not resumed), so the
    /// subscriptions must be sent again.
    pub fn on_welcome(&mut self, w: &Welcome) -> bool {
        let fresh = !w.resumed || self.session_id.as_deref() != Some(w.session_id.as_str());
        self.session_id = Some(w.session_id.clone());
        self.resume_token = w.resume_token.clone();
        self.welcome_exp = w.expires_at;
        self.heartbeat_ms = w.heartbeat_ms;
        if fresh {
            // A new session numbers its events from `welcome.seq` again.
            self.last_seq = w.seq;
            self.last_acked = w.seq;
        }
        fresh
    }

    /// `true` if `seq` is new (and records it); `false` for a duplicate or a replay.
    pub fn accept_seq(&mut self, seq: u64) -> bool {
        if seq <= self.last_seq {
            return false;
        }
        self.last_seq = seq;
        true
    }

    /// The cached token, unless it expires within `margin`.
    pub fn usable_token(&self, margin: Duration) -> Option<&str> {
        let t = self.token.as_deref()?;
        match self.token_exp {
            Some(exp) if exp <= unix_now().saturating_add(margin.as_secs()) => None,
            _ => Some(t),
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn set_token(&mut self, token: String) {
        self.token_exp = jwt_exp(&token);
        self.token = Some(token);
    }

    /// Forget the cached token (after 4100): the next connect asks the provider.
    pub fn drop_token(&mut self) {
        self.token = None;
        self.token_exp = None;
    }

    /// When the current token expires: its own `exp`, else the server's `expires_at`.
    pub fn expires_at(&self) -> Option<u64> {
        self.token_exp.or(self.welcome_exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(sid: &str, resumed: bool, seq: u64) -> Welcome {
        Welcome {
            session_id: sid.into(),
            resume_token: format!("rt-{sid}"),
            resumed,
            recovered: resumed,
            seq,
            node: "n1".into(),
            ..Welcome::default()
        }
    }

    #[test]
    fn seq_filter_survives_resume_and_restarts_on_a_new_session() {
        let mut s = SessionState::default();
        assert!(s.resume().is_none());
        assert!(s.on_welcome(&welcome("a", false, 0)));
        assert!(s.accept_seq(1) && s.accept_seq(2));
        assert!(!s.accept_seq(2) && !s.accept_seq(1));
        assert_eq!(s.resume().map(|r| r.last_seq), Some(2));
        assert!(!s.on_welcome(&welcome("a", true, 2)));
        assert!(!s.accept_seq(2) && s.accept_seq(3));
        assert!(s.on_welcome(&welcome("b", false, 0)));
        assert!(s.accept_seq(1));
    }
}
