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

/// Calls the admin API with a raw (possibly invalid) body sent as JSON.
pub async fn call_raw(
    node: &TestNode,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Resp {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http
        .request(method, node.admin_url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("admin request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("admin body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, body }
}

/// Asserts `r` is an error with `status` and the contract's `{"error":{"code","message"}}`
/// body (both strings, message non-empty).
pub fn assert_error(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let e = &r.body["error"];
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: error.code missing in {}",
        r.body
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error.message missing in {}",
        r.body
    );
    let keys: Vec<&String> = r
        .body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["error"],
        "{what}: extra top-level fields in {}",
        r.body
    );
}

/// The value of one series on `/metrics` (`name{labels}` exactly as rendered), if present.
pub async fn metric(node: &TestNode, series: &str) -> Option<f64> {
    let text = call(node, "GET", "/metrics", None).await.body;
    let text = text.as_str()?.to_owned();
    text.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok()).flatten()
    })
}
