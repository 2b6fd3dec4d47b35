//! The JWT attack catalog, end to end: every forged, stale or malformed token is refused with
//! close 4001, the refusal is audited, and no token text reaches the node's output.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tether_tests::DEADLINE;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::node::TestNode;
use tether_tests::tokens::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Extra inline keys of the test tenant: an RS256 and an ES256 public key, the targets of the
/// key-confusion attacks (an HS256 token "signed" with the public key's PEM text).
fn asymmetric_keys_toml() -> String {
    format!(
        r#"
[[tenants.keys]]
kid = "rs-inline"
alg = "RS256"
public_key_pem = '''
{RSA_PUBLIC_PEM}'''

[[tenants.keys]]
kid = "ec-inline"
alg = "ES256"
public_key_pem = '''
{EC_PUBLIC_PEM}'''
"#
    )
}

/// Refusals are many handshakes from one address in a short time; the handshake-rate limit
/// is not what these tests are about.
const LIMITS: &str = "handshakes_per_ip_per_sec = 10000";

/// Claims of an otherwise valid token with `edit` applied.
fn claims_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims("mallory", 600, &["sub:chat.*"]);
    edit(&mut c);
    c
}

fn hs(c: &Value) -> String {
    sign_hs(TENANT_KID, TENANT_SECRET, c)
}

/// A valid token with one character of its signature changed. The first character is
/// changed, not the last: the last base64 character carries padding bits, and changing only
/// those can leave the decoded signature intact.
fn flip_signature(t: &str) -> String {
    let (head, sig) = t.rsplit_once('.').expect("three segments");
    let mut sig: Vec<char> = sig.chars().collect();
    sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

/// `alg: none` with an empty signature, header spelled by hand.
fn alg_none(alg: &str, kid: Option<&str>) -> String {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(k) = kid {
        h["kid"] = json!(k);
    }
    hand_built(&h, &claims_with(|_| {}), "")
}

/// The catalog: (what, token).
fn attacks() -> Vec<(String, String)> {
    let now = now();
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |what: &str, t: String| v.push((what.to_owned(), t));
    for alg in ["none", "None", "NONE", "nOnE"] {
        add(
            &format!("alg {alg} with kid"),
            alg_none(alg, Some(TENANT_KID)),
        );
        add(&format!("alg {alg} without kid"), alg_none(alg, None));
    }
    let c = claims_with(|_| {});
    add(
        "RS256 key used as HS256 secret",
        sign_hs("rs-inline", RSA_PUBLIC_PEM, &c),
    );
    add(
        "RS256 key used as HS256 secret (trimmed PEM)",
        sign_hs("rs-inline", RSA_PUBLIC_PEM.trim(), &c),
    );
    add(
        "ES256 key used as HS256 secret",
        sign_hs("ec-inline", EC_PUBLIC_PEM, &c),
    );
    add(
        "ES256 key used as HS256 secret (trimmed PEM)",
        sign_hs("ec-inline", EC_PUBLIC_PEM.trim(), &c),
    );
    add(
        "ES256 signature under the HS256 kid",
        sign_es(TENANT_KID, &c),
    );
    add("unknown kid", sign_hs("k999", TENANT_SECRET, &c));
    add(
        "kid path traversal",
        sign_hs("../../etc/passwd", TENANT_SECRET, &c),
    );
    add(
        "kid SQL injection",
        sign_hs("' OR '1'='1", TENANT_SECRET, &c),
    );
    add("kid 1 KB", sign_hs(&"k".repeat(1024), TENANT_SECRET, &c));
    add(
        "kid 10 KB",
        sign_hs(&"k".repeat(10 * 1024), TENANT_SECRET, &c),
    );
    add(
        "expired",
        hs(&claims_with(|c| {
            c["iat"] = json!(now - 120);
            c["exp"] = json!(now - 60);
        })),
    );
    add(
        "nbf in the future",
        hs(&claims_with(|c| c["nbf"] = json!(now + 600))),
    );
    add(
        "iat in the future",
        hs(&claims_with(|c| c["iat"] = json!(now + 600))),
    );
    add(
        "wrong issuer",
        hs(&claims_with(|c| c["iss"] = json!("https://evil.test/"))),
    );
    add(
        "wrong audience",
        hs(&claims_with(|c| c["aud"] = json!("someone-else"))),
    );
    add(
        "unknown tenant",
        hs(&claims_with(|c| c["tid"] = json!("nope"))),
    );
    add(
        "missing exp",
        hs(&claims_with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
    );
    add(
        "missing sub",
        hs(&claims_with(|c| {
            c.as_object_mut().unwrap().remove("sub");
        })),
    );
    add(
        "wrong secret",
        sign_hs(TENANT_KID, WRONG_SECRET, &claims_with(|_| {})),
    );
    add("bad signature", flip_signature(&hs(&claims_with(|_| {}))));
    add("garbage abc", "abc".to_owned());
    add("garbage a.b.c", "a.b.c".to_owned());
    add("empty token", String::new());
    add(
        "oversized token (20 KB)",
        hs(&claims_with(|c| c["pad"] = json!("p".repeat(20 * 1024)))),
    );
    v
}

/// Carriers a token is tried on. Big tokens and the empty one only go in `hello`: an HTTP
/// header of that size (or an empty bearer) is a different test than the token check.
fn carriers(t: &str) -> &'static [Carrier] {
    if t.is_empty() || t.len() > 4096 {
        &[Carrier::Hello]
    } else {
        &[Carrier::Header, Carrier::Subprotocol, Carrier::Hello]
    }
}

/// Every entry of the attack catalog (alg none in any case, RS/ES→HS key confusion, kid
/// injection, stale or premature times, wrong iss/aud/tenant, missing claims, forged
/// signatures, garbage, oversized) is refused with 4001 on every carrier, each refusal is
/// audited as `auth_fail`, and no token text appears in the node's output.
#[tokio::test]
async fn attack_catalog_refused_4001() {
    let node = TestNode::start_with(LIMITS, &asymmetric_keys_toml()).await;
    // Positive controls: the keys under attack are configured and work when used properly,
    // so each refusal below is the attack's doing, not a broken config.
    let good = claims_with(|_| {});
    for (what, t) in [
        ("HS256", hs(&good)),
        ("RS256", sign_rs("rs-inline", &good)),
        ("ES256", sign_es("ec-inline", &good)),
    ] {
        let mut c = WsClient::connect_with(&node.ws_url(), &t, Carrier::Header).await;
        let w = c.next_json().await;
        assert_eq!(w["type"], "welcome", "control {what}: {w}");
    }

    let attacks = attacks();
    let mut attempts = 0;
    for (what, t) in &attacks {
        for &carrier in carriers(t) {
            let mut c = WsClient::connect_with(&node.ws_url(), t, carrier).await;
            let (closed, frames) = c.closed_within(DEADLINE).await;
            assert_eq!(
                (closed.code, closed.reason.as_str()),
                (4001, "unauthorized"),
                "{what} over {carrier:?}; frames before close: {frames:?}"
            );
            assert!(
                frames.iter().all(|f| f["type"] != "welcome"),
                "{what} over {carrier:?} got a welcome"
            );
            attempts += 1;
        }
    }

    let fails = tether_tests::wait_for("auth_fail audit lines", DEADLINE, || {
        let lines = node.audit_lines("auth_fail");
        async move { (lines.len() >= attempts).then_some(lines) }
    })
    .await;
    for a in &fails {
        assert!(
            a["audit"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "auth_fail without a reason: {a}"
        );
        assert_eq!(a["audit"]["remote"], "127.0.0.1", "{a}");
    }
    let out = node.stdout.lock().unwrap().clone();
    for (what, t) in &attacks {
        // The whole token and each of its segments: a log that printed only the signature or
        // the payload would leak as much.
        let needles = std::iter::once(t.as_str())
            .chain(t.split('.'))
            .filter(|s| s.len() >= 16);
        for needle in needles {
            if let Some(line) = out.iter().find(|l| l.contains(needle)) {
                panic!("{what}: token text in the node's output: {line:.200}");
            }
        }
    }
}

/// Serves `tokens::ec_jwks()` at `/jwks.json` over plain HTTP/1.1, one request per
/// connection, counting the fetches.
async fn serve_jwks(listener: TcpListener, hits: Arc<AtomicUsize>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let hits = hits.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let (status, body) = if buf.starts_with(b"GET /jwks.json ") {
                hits.fetch_add(1, Ordering::SeqCst);
                ("200 OK", ec_jwks().to_string())
            } else {
                ("404 Not Found", "{}".to_owned())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

/// An ES256 token whose key the node fetches from the tenant's `jwks_uri` (a real HTTP server)
/// is admitted; a token with a kid the JWKS does not have is refused with 4001.
#[tokio::test]
async fn jwks_uri_key_accepted_unknown_kid_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
    let addr = listener.local_addr().expect("jwks addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(serve_jwks(listener, hits.clone()));
    let extra = format!("jwks_uri = \"http://{addr}/jwks.json\"");
    let node = TestNode::start_with(LIMITS, &extra).await;

    let good = claims("alice", 600, &["sub:chat.*"]);
    let (_c, w) = WsClient::connect(&node.ws_url(), &sign_es(EC_KID, &good)).await;
    assert_eq!(w["permissions"], json!(["sub:chat.*"]));
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "the key did not come from the JWKS server"
    );

    let forged = sign_es("ec-unknown", &claims("alice", 600, &[]));
    let mut c = WsClient::connect_with(&node.ws_url(), &forged, Carrier::Header).await;
    let closed = c.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4001, "unauthorized")
    );
    // An ES256 token of the JWKS key under an inline HS256 kid is refused too.
    let mut c = WsClient::connect_with(
        &node.ws_url(),
        &sign_es(TENANT_KID, &claims("alice", 600, &[])),
        Carrier::Header,
    )
    .await;
    assert_eq!(c.closed().await.code, 4001);
    server.abort();
}

/// A refresh whose key must come from an unreachable `jwks_uri` is answered `unauthorized`
/// without the fetch error's text (which names the operator's JWKS address); the session
/// stays up on its current token.
#[tokio::test]
async fn refresh_with_unreachable_jwks_hides_the_fetch_error() {
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let extra = format!("jwks_uri = \"http://{addr}/jwks.json\"");
    let node = TestNode::start_with(LIMITS, &extra).await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &["sub:x.*"])).await;
    let es = sign_es(EC_KID, &claims("alice", 600, &[]));
    let reply = c.refresh(&es, 1).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains(&addr.port().to_string()) && !message.contains("127.0.0.1"),
        "{message}"
    );
    assert_eq!(c.subscribe("x.y", 2).await["ok"], true);
}
