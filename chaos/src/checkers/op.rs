//! An admin (or IdP) operation as the checkers see it: how it ended, which kinds are
//! registry writes and revocations, and which connections a revocation covers.

use serde_json::Value;

use super::ConnInfo;
use crate::history::Id;

#[derive(Clone, Debug)]
pub enum Done {
    Ok {
        t: u64,
        commit_index: Option<u64>,
        body: Value,
    },
    Fail {
        t: u64,
    },
}

/// Everything about one admin operation.
#[derive(Clone, Debug)]
pub struct OpInfo {
    pub op: Id,
    pub node: u64,
    pub kind: String,
    pub target: String,
    pub n: Option<u64>,
    pub wall_ms: u64,
    pub t_invoke: u64,
    pub done: Option<Done>,
}

/// Kinds of admin operations that are registry writes.
pub const WRITES: [&str; 4] = ["revoke_session", "logout", "revoke_token", "write_probe"];
/// Kinds that revoke something. `idp_logout` (an IdP back-channel logout of the IdP session
/// `idp-<target>` that every token of user `target` carries) and `idp_set` (a SET ending the
/// IdP session of user `a` and logging user `b` out; target `a,b`) are posted by the IdP to
/// the client listener.
pub const REVOCATIONS: [&str; 5] = [
    "revoke_session",
    "logout",
    "revoke_token",
    "idp_logout",
    "idp_set",
];

impl OpInfo {
    /// `(ack time, commit index, body)` when the operation succeeded.
    pub fn ok(&self) -> Option<(u64, Option<u64>, &Value)> {
        match &self.done {
            Some(Done::Ok {
                t,
                commit_index,
                body,
            }) => Some((*t, *commit_index, body)),
            _ => None,
        }
    }

    pub fn is_revocation(&self) -> bool {
        REVOCATIONS.contains(&self.kind.as_str())
    }

    /// Whether connection `c` is covered by this revocation (it names `c`'s session,
    /// `c`'s token, or `c`'s user with a token issued no later than the logout's second).
    pub fn covers(&self, c: &ConnInfo) -> bool {
        let logged_out = |user: &str| c.user == user && c.iat <= self.wall_ms / 1000;
        match self.kind.as_str() {
            "revoke_session" => c.session() == Some(&self.target),
            "revoke_token" => c.jti == self.target,
            "logout" => logged_out(&self.target),
            // The IdP session stays denied: every token of the user, old or new.
            "idp_logout" => c.user == self.target,
            "idp_set" => self
                .target
                .split_once(',')
                .is_some_and(|(ended, out)| c.user == ended || logged_out(out)),
            _ => false,
        }
    }

    /// Users whose sessions from before this operation it ended (a resume of them must be
    /// refused).
    pub fn users_ended(&self) -> Vec<&str> {
        match self.kind.as_str() {
            "logout" | "idp_logout" => vec![self.target.as_str()],
            "idp_set" => self
                .target
                .split_once(',')
                .map(|(a, b)| vec![a, b])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The close code that refuses a connection `c` this operation covers.
    pub fn refusal_code(&self, c: &ConnInfo) -> u16 {
        match self.kind.as_str() {
            "logout" => 4005,
            "idp_set"
                if self
                    .target
                    .split_once(',')
                    .is_some_and(|(_, out)| c.user == out) =>
            {
                4005
            }
            _ => 4004,
        }
    }
}
