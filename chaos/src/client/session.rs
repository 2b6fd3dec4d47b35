//! `Session`: a logical client across connections: its token and, after a welcome, what it
//! needs to resume.

use std::time::Duration;

use tether_protocol::Welcome;

use super::{Conn, Dial, Token};
use crate::history::{History, Id};

/// A logical client: its token and, after a welcome, what it needs to resume.
pub struct Session {
    pub client: Id,
    pub token: Token,
    pub session_id: Option<String>,
    pub resume_token: Option<String>,
    pub last_seq: u64,
    pub conn: Option<Conn>,
}

impl Session {
    pub fn new(history: &History, token: Token) -> Session {
        Session {
            client: history.next_id(),
            token,
            session_id: None,
            resume_token: None,
            last_seq: 0,
            conn: None,
        }
    }

    /// Connects (resuming when there is a session) to `node` at `url` and waits for the
    /// welcome; `Ok` keeps the resume state up to date, `Err` gives the close code.
    pub async fn connect(
        &mut self,
        history: &History,
        node: u64,
        url: &str,
        within: Duration,
    ) -> Result<Welcome, Option<u16>> {
        self.take_progress();
        let resume = self
            .session_id
            .clone()
            .zip(self.resume_token.clone())
            .map(|(s, r)| (s, r, self.last_seq));
        let mut c = Conn::open(Dial {
            history,
            client: self.client,
            node,
            url,
            token: &self.token,
            resume,
            probe: false,
        })
        .await;
        let r = c.welcomed(within).await;
        if let Ok(w) = &r {
            self.session_id = Some(w.session_id.clone());
            self.resume_token = Some(w.resume_token.clone());
            if !w.resumed {
                self.last_seq = 0;
            }
        }
        self.conn = Some(c);
        r
    }

    /// Lets go of the current connection (no close frame, like a network drop) and takes
    /// its highest seq into the resume state.
    fn take_progress(&mut self) {
        if let Some(c) = self.conn.take() {
            let s = c.detach();
            if s.welcome.is_some() {
                self.last_seq = self.last_seq.max(s.last_seq);
            }
        }
    }

    /// Drops the current connection without a close frame.
    pub fn drop_conn(&mut self) {
        self.take_progress();
    }
}
