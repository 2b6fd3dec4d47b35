//! `Admin`: admin API calls recorded in the history (`AdminInvoke`, then `AdminOk` or
//! `AdminFail`). Unlike the test harness's `call`, a call never panics: a node that is down,
//! stopped or cut off is an outcome the checkers need to see.

use std::time::Duration;

use serde_json::{Value, json};
use tether_tests::tokens::{TENANT, admin_token};

use crate::history::{Event, History, wall_ms};

/// Deadline of one admin call (a write may wait for an election).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(12);

/// The outcome of one recorded call.
#[derive(Clone, Debug)]
pub enum Outcome {
    Ok { status: u16, body: Value },
    Fail { status: Option<u16>, error: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    pub fn body(&self) -> Option<&Value> {
        match self {
            Outcome::Ok { body, .. } => Some(body),
            Outcome::Fail { .. } => None,
        }
    }
}

/// Records admin calls into one history.
#[derive(Clone)]
pub struct Admin {
    history: History,
    http: reqwest::Client,
    token: String,
}

/// One call: which node, which verb and path, what it is in the history.
pub struct Call<'a> {
    pub node: u64,
    pub admin_addr: &'a str,
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<Value>,
    pub kind: &'a str,
    pub target: String,
    pub n: Option<u64>,
}

impl Admin {
    pub fn new(history: &History) -> Admin {
        Admin {
            history: history.clone(),
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("http client"),
            token: admin_token("tether:admin"),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Like [`Admin::new`], with an explicit admin bearer token (e.g. one issued in the past,
    /// for a node whose clock is behind).
    pub fn with_token(history: &History, token: String) -> Admin {
        Admin {
            token,
            ..Admin::new(history)
        }
    }

    /// Makes and records one call.
    pub async fn call(&self, c: Call<'_>) -> Outcome {
        let mut req = self
            .http
            .request(c.method, format!("http://{}{}", c.admin_addr, c.path))
            .bearer_auth(&self.token);
        if let Some(b) = c.body {
            req = req.json(&b);
        }
        self.send(c.node, c.kind, c.target, c.n, req).await
    }

    /// Sends `req` and records it as operation `kind` on `target` at `node`.
    pub(crate) async fn send(
        &self,
        node: u64,
        kind: &str,
        target: String,
        n: Option<u64>,
        req: reqwest::RequestBuilder,
    ) -> Outcome {
        let op = self.history.next_id();
        self.history.record(Event::AdminInvoke {
            op,
            node,
            kind: kind.to_owned(),
            target,
            n,
            wall_ms: wall_ms(),
        });
        let outcome = match req.send().await {
            Err(e) => Outcome::Fail {
                status: None,
                error: e.to_string(),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                match r.text().await {
                    Err(e) => Outcome::Fail {
                        status: Some(status),
                        error: e.to_string(),
                    },
                    Ok(text) => {
                        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        if (200..300).contains(&status) {
                            Outcome::Ok { status, body }
                        } else {
                            Outcome::Fail {
                                status: Some(status),
                                error: body.to_string(),
                            }
                        }
                    }
                }
            }
        };
        self.history.record(match &outcome {
            Outcome::Ok { status, body } => Event::AdminOk {
                op,
                status: *status,
                commit_index: body["commit_index"].as_u64(),
                body: body.clone(),
            },
            Outcome::Fail { status, error } => Event::AdminFail {
                op,
                status: *status,
                error: error.clone(),
            },
        });
        outcome
    }

    /// `POST /v1/sessions/{sid}/revoke` (with `?wait=closed` when `wait`).
    pub async fn revoke_session(&self, node: u64, addr: &str, sid: &str, wait: bool) -> Outcome {
        let q = if wait { "?wait=closed" } else { "" };
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::POST,
            path: format!("/v1/sessions/{sid}/revoke{q}"),
            body: Some(json!({"reason": "chaos"})),
            kind: "revoke_session",
            target: sid.to_owned(),
            n: None,
        })
        .await
    }

    /// `POST /v1/tenants/acme/users/{user}/logout`.
    pub async fn logout(&self, node: u64, addr: &str, user: &str, wait: bool) -> Outcome {
        let q = if wait { "?wait=closed" } else { "" };
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::POST,
            path: format!("/v1/tenants/{TENANT}/users/{user}/logout{q}"),
            body: Some(json!({"reason": "chaos"})),
            kind: "logout",
            target: user.to_owned(),
            n: None,
        })
        .await
    }

    /// `POST /v1/tenants/acme/tokens/revoke` for `jti`.
    pub async fn revoke_token(&self, node: u64, addr: &str, jti: &str, exp: u64) -> Outcome {
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::POST,
            path: format!("/v1/tenants/{TENANT}/tokens/revoke"),
            body: Some(json!({"jti": jti, "exp": exp})),
            kind: "revoke_token",
            target: jti.to_owned(),
            n: None,
        })
        .await
    }

    /// A harmless registry write (a permission override for a user nobody uses), to see
    /// whether the cluster commits.
    pub async fn write_probe(&self, node: u64, addr: &str, n: u64) -> Outcome {
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::PUT,
            path: format!("/v1/tenants/{TENANT}/users/chaos-probe/permissions"),
            body: Some(json!({"permissions": [format!("sub:probe.{n}")]})),
            kind: "write_probe",
            target: "chaos-probe".into(),
            n: Some(n),
        })
        .await
    }

    /// `POST /v1/publish` to `channel` with `data.n = n`.
    pub async fn publish(&self, node: u64, addr: &str, channel: &str, n: u64) -> Outcome {
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::POST,
            path: "/v1/publish".into(),
            body: Some(json!({"tenant": TENANT, "channel": channel, "data": {"n": n}})),
            kind: "publish",
            target: channel.to_owned(),
            n: Some(n),
        })
        .await
    }

    /// `GET /v1/cluster`.
    pub async fn cluster(&self, node: u64, addr: &str) -> Outcome {
        self.call(Call {
            node,
            admin_addr: addr,
            method: reqwest::Method::GET,
            path: "/v1/cluster".into(),
            body: None,
            kind: "cluster",
            target: String::new(),
            n: None,
        })
        .await
    }
}
