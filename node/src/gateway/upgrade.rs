//! The HTTP upgrade: path, subprotocol, token carriers and Origin, read from the request.

use http::{HeaderValue, StatusCode};
use tether_protocol::{BEARER_SUBPROTOCOL_PREFIX, CONNECT_PATH, SUBPROTOCOL};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::limits::LimitError;

/// What the upgrade request carried. Tokens are held, never logged.
#[derive(Default)]
pub struct UpgradeInfo {
    pub bearer_header: Option<String>,
    pub bearer_subprotocol: Option<String>,
    pub query_token: Option<String>,
    pub origin: Option<String>,
}

impl std::fmt::Debug for UpgradeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeInfo")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn reject(status: StatusCode, msg: &str) -> ErrorResponse {
    let body = format!(
        "{{\"error\":{{\"code\":\"{}\",\"message\":\"{msg}\"}}}}",
        status.as_u16()
    );
    let mut r = ErrorResponse::new(Some(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Refuses an upgrade because a limit was hit before it.
pub fn reject_limit(e: LimitError) -> ErrorResponse {
    let status = match e {
        LimitError::NodeFull => StatusCode::SERVICE_UNAVAILABLE,
        LimitError::PerIp | LimitError::HandshakeRate | LimitError::PendingUpgrades => {
            StatusCode::TOO_MANY_REQUESTS
        }
    };
    let mut r = reject(status, &e.to_string());
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

/// The same refusal as raw HTTP/1.1 bytes, written before the request is read.
pub fn limit_response_bytes(e: LimitError) -> Vec<u8> {
    let r = reject_limit(e);
    let body = r.body().as_deref().unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        r.status().as_u16(),
        r.status().canonical_reason().unwrap_or("")
    );
    for (name, value) in r.headers() {
        out.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// Checks the upgrade request and extracts what the handshake needs.
// The error type is tungstenite's callback contract; it is built once per refused upgrade.
#[allow(clippy::result_large_err)]
pub fn inspect(
    req: &Request,
    mut resp: Response,
    allow_query_token: bool,
) -> Result<(Response, UpgradeInfo), ErrorResponse> {
    if req.uri().path() != CONNECT_PATH {
        return Err(reject(
            StatusCode::NOT_FOUND,
            "unknown path; connect to /v1/connect",
        ));
    }
    let mut info = UpgradeInfo::default();
    let mut offered = false;
    for value in req.headers().get_all("sec-websocket-protocol") {
        let Ok(v) = value.to_str() else { continue };
        for proto in v.split(',').map(str::trim) {
            if proto == SUBPROTOCOL {
                offered = true;
            } else if let Some(t) = proto.strip_prefix(BEARER_SUBPROTOCOL_PREFIX) {
                info.bearer_subprotocol = Some(t.to_owned());
            }
        }
    }
    if !offered {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "subprotocol tether.v1 is required",
        ));
    }
    if let Some(v) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = v.splitn(2, ' ');
        if let (Some(scheme), Some(tok)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            info.bearer_header = Some(tok.trim().to_owned());
        }
    }
    if allow_query_token && let Some(q) = req.uri().query() {
        info.query_token = url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
    }
    info.origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Only `tether.v1` is echoed: echoing the bearer subprotocol would reflect the token.
    resp.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok((resp, info))
}

/// Whether `origin` may connect to a tenant with this allow-list. Empty list: any origin.
/// Requests without `Origin` come from non-browser clients, which Origin checks do not
/// protect against anyway, so they are allowed.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(_) if allowed.is_empty() => true,
        Some(o) => {
            let o = o.trim_end_matches('/');
            allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    /// The three carriers are read; only tether.v1 is echoed back.
    #[test]
    fn carriers_and_echo() {
        let r = req(
            "/v1/connect?token=q",
            &[
                ("sec-websocket-protocol", "tether.v1, tether.bearer.abc"),
                ("authorization", "Bearer hdr"),
                ("origin", "https://app.example"),
            ],
        );
        let (resp, info) = inspect(&r, Response::new(()), true).unwrap();
        assert_eq!(info.bearer_header.as_deref(), Some("hdr"));
        assert_eq!(info.bearer_subprotocol.as_deref(), Some("abc"));
        assert_eq!(info.query_token.as_deref(), Some("q"));
        assert_eq!(resp.headers()["sec-websocket-protocol"], "tether.v1");
        let (_, info) = inspect(&r, Response::new(()), false).unwrap();
        assert_eq!(info.query_token, None);
    }

    /// Wrong path or a missing subprotocol is refused.
    #[test]
    fn refuses_bad_upgrades() {
        let r = req("/other", &[("sec-websocket-protocol", "tether.v1")]);
        assert_eq!(
            inspect(&r, Response::new(()), false).unwrap_err().status(),
            404
        );
        let r = req("/v1/connect", &[("sec-websocket-protocol", "chat")]);
        assert_eq!(
            inspect(&r, Response::new(()), false).unwrap_err().status(),
            400
        );
    }

    /// A refusal written before the request is a complete HTTP response with the JSON body.
    #[test]
    fn limit_response_is_complete_http() {
        let bytes = limit_response_bytes(LimitError::PendingUpgrades);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("retry-after: 1") && head.contains("connection: close"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "429");
        let full = String::from_utf8(limit_response_bytes(LimitError::NodeFull)).unwrap();
        assert!(full.starts_with("HTTP/1.1 503 "), "{full}");
    }

    /// Origins match exactly (ignoring case and a trailing slash); no list allows all.
    #[test]
    fn origins() {
        let list = vec!["https://app.acme.example".to_owned()];
        assert!(origin_allowed(&list, Some("https://app.acme.example/")));
        assert!(!origin_allowed(&list, Some("https://evil.example")));
        assert!(origin_allowed(&list, None));
        assert!(origin_allowed(&[], Some("https://anything")));
    }
}
