//! Admin API calls with a long-lived full-scope admin token (a run can outlast the test
//! harness's 10-minute tokens).

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tether_tests::tokens::{ADMIN_KID, ADMIN_SECRET, now, sign_hs};

pub fn admin_token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let now = now();
        let c =
            json!({"sub": "bench", "scope": "tether:admin", "iat": now, "exp": now + 24 * 3600});
        sign_hs(ADMIN_KID, ADMIN_SECRET, &c)
    })
}

pub async fn get(http: &reqwest::Client, addr: &str, path: &str) -> anyhow::Result<Value> {
    let r = http
        .get(format!("http://{addr}{path}"))
        .bearer_auth(admin_token())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    Ok(r.json().await?)
}

/// POST; returns the status and the JSON body (`Null` if it was not JSON).
pub async fn post(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let r = http
        .post(format!("http://{addr}{path}"))
        .bearer_auth(admin_token())
        .json(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
