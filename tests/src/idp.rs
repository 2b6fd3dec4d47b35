//! The test harness as an identity provider: its signing keys (the EC key of
//! `tokens::ec_jwks`), a real JWKS server the node fetches them from, access tokens that carry
//! an IdP session id, logout tokens and Security Event Tokens, and the posts to the node's
//! IdP endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::tokens::*;

pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The client id at the IdP that logout tokens are addressed to.
pub const LOGOUT_AUD: &str = "tether-web";
/// The Shared Signals receiver's audience, and the push bearer the transmitter presents.
pub const SSF_AUD: &str = "https://tether.acme.test/";
pub const PUSH_BEARER: &str = "push-bearer-0123456789";
pub const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
pub const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";

/// Serves `tokens::ec_jwks()` at `/jwks.json`, counting the fetches.
pub struct JwksServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start() -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS server");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(ec_jwks()) }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, hits, task }
    }

    pub fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `[[tenants]]` lines giving the test tenant this JWKS and an `[tenants.idp]` section
/// (the SSF transmitter signs with the same key, fetched from the same JWKS).
pub fn tenant_idp_toml(jwks: &JwksServer, sid_ttl_secs: u64) -> String {
    format!(
        "jwks_uri = \"{uri}\"\n[tenants.idp]\nbackchannel_logout_audiences = [\"{LOGOUT_AUD}\"]\n\
         sid_ttl_secs = {sid_ttl_secs}\n[tenants.idp.ssf]\nissuer = \"{ISSUER}\"\n\
         audience = \"{SSF_AUD}\"\njwks_uri = \"{uri}\"\npush_bearer = \"{PUSH_BEARER}\"\n",
        uri = jwks.uri()
    )
}

/// The test tenant as `PUT /v1/tenants/acme` JSON, with the JWKS and the idp section.
pub fn tenant_idp_json(jwks: &JwksServer, sid_ttl_secs: u64) -> Value {
    json!({
        "id": TENANT, "issuer": ISSUER, "audiences": [AUDIENCE],
        "allowed_origins": [ORIGIN], "jwks_uri": jwks.uri(),
        "keys": [{"kid": TENANT_KID, "alg": "HS256", "secret": TENANT_SECRET}],
        "idp": {"backchannel_logout_audiences": [LOGOUT_AUD], "sid_ttl_secs": sid_ttl_secs,
                "ssf": {"issuer": ISSUER, "audience": SSF_AUD, "jwks_uri": jwks.uri(),
                        "push_bearer": PUSH_BEARER}},
    })
}

/// An access token of `sub` in IdP session `sid`, signed by the IdP's EC key.
pub fn access_token_in(sub: &str, sid: &str) -> String {
    let mut c = claims(sub, 600, &[]);
    c["sid"] = json!(sid);
    sign_es(EC_KID, &c)
}

/// A valid logout token's claims (a fresh jti) for `sid` and/or `sub`.
pub fn logout_claims(sid: Option<&str>, sub: Option<&str>) -> Value {
    let now = now();
    let mut c = json!({
        "iss": ISSUER, "aud": LOGOUT_AUD, "iat": now, "exp": now + 120,
        "jti": format!("{:032x}", rand::random::<u128>()),
        "events": {BACKCHANNEL_EVENT: {}},
    });
    if let Some(sid) = sid {
        c["sid"] = json!(sid);
    }
    if let Some(sub) = sub {
        c["sub"] = json!(sub);
    }
    c
}

/// Signs `claims` with the IdP's EC key, with header `typ` (none when `None`).
pub fn sign_typed(typ: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(EC_KID.to_owned());
    h.typ = typ.map(str::to_owned);
    let key = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("test EC key");
    jsonwebtoken::encode(&h, claims, &key).expect("signing a test token")
}

/// Signs `claims` with the tenant's HS256 key `k1` and header `typ` (an IdP sharing the
/// tenant's secret; `sign_hs` says `typ: JWT`, which an IdP endpoint refuses).
pub fn sign_hs_typed(typ: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(TENANT_KID.to_owned());
    h.typ = Some(typ.to_owned());
    let key = EncodingKey::from_secret(TENANT_SECRET.as_bytes());
    jsonwebtoken::encode(&h, claims, &key).expect("signing a test token")
}

/// A logout token as an IdP sends it (`typ: logout+jwt`).
pub fn logout_token(claims: &Value) -> String {
    sign_typed(Some("logout+jwt"), claims)
}

/// What an IdP endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub cache_control: Option<String>,
    pub body: Value,
}

/// POSTs `body` with `content_type` to `path` on the client listener at `client_addr`.
pub async fn post(client_addr: &str, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
    let req = reqwest::Client::new()
        .post(format!("http://{client_addr}{path}"))
        .header("content-type", content_type)
        .body(body);
    send(req).await
}

/// Sends `req` (within the deadline) and reads the answer.
async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req
        .timeout(crate::DEADLINE)
        .send()
        .await
        .expect("a request to an IdP endpoint");
    let status = r.status().as_u16();
    let cache_control = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        cache_control,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// POSTs a back-channel logout with `token` for `tenant`.
pub async fn post_logout(client_addr: &str, tenant: &str, token: &str) -> Answer {
    let body = format!("logout_token={}", urlencode(token));
    post(
        client_addr,
        &format!("/v1/idp/{tenant}/backchannel-logout"),
        "application/x-www-form-urlencoded",
        body.into_bytes(),
    )
    .await
}

/// A JWT needs no escaping beyond `=` and `+`, but a test of the form parser should not
/// rely on that.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A SET's claims (a fresh jti) carrying `events`, with the top-level subject `sub_id`.
pub fn set_claims(events: Value, sub_id: Option<Value>) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": SSF_AUD, "iat": now(),
        "jti": format!("{:032x}", rand::random::<u128>()),
        "events": events,
    });
    if let Some(s) = sub_id {
        c["sub_id"] = s;
    }
    c
}

/// A Security Event Token as a transmitter sends it (`typ: secevent+jwt`).
pub fn set_token(claims: &Value) -> String {
    sign_typed(Some("secevent+jwt"), claims)
}

/// RFC 9493 subjects.
pub fn iss_sub(user: &str) -> Value {
    json!({"format": "iss_sub", "iss": ISSUER, "sub": user})
}

pub fn user_and_session(user: &str, sid: &str) -> Value {
    json!({"format": "complex", "user": iss_sub(user),
           "session": {"format": "opaque", "id": sid}})
}

/// Pushes `token` to the tenant's SSF endpoint with `bearer` (none when `None`).
pub async fn push_set(
    client_addr: &str,
    tenant: &str,
    token: &str,
    bearer: Option<&str>,
) -> Answer {
    push_set_as(
        client_addr,
        tenant,
        token,
        bearer,
        "application/secevent+jwt",
    )
    .await
}

/// [`push_set`] with another content type.
pub async fn push_set_as(
    client_addr: &str,
    tenant: &str,
    token: &str,
    bearer: Option<&str>,
    content_type: &str,
) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!("http://{client_addr}/v1/idp/{tenant}/ssf"))
        .header("content-type", content_type)
        .body(token.to_owned());
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    send(req).await
}

/// Waits until `node` has written `n` `idp_signal` audit lines, and returns them.
pub async fn idp_audit(node: &crate::node::TestNode, n: usize) -> Vec<Value> {
    crate::wait_for("idp_signal audit lines", crate::DEADLINE, || async {
        let lines = node.audit_lines("idp_signal");
        (lines.len() >= n).then_some(lines)
    })
    .await
}
