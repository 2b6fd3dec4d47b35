//! Admin API calls against a `TestNode`.

use std::time::Duration;

use serde_json::Value;

use crate::node::TestNode;
use crate::tokens::admin_token;

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

/// Calls the admin API with a full-scope admin token.
pub async fn call(node: &TestNode, method: &str, path: &str, body: Option<Value>) -> Resp {
    call_as(node, Some(&admin_token("tether:admin")), method, path, body).await
}

/// Calls the admin API with `token` (or none).
pub async fn call_as(
    node: &TestNode,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http
        .request(method, node.admin_url(path))
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("admin body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, body }
}
