//! The HTTP upgrade: path, subprotocol, token carriers and Origin, read from the request.

use http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::limits::LimitError;
use crate::protocol::{BEARER_SUBPROTOCOL_PREFIX, CONNECT_PATH, SUBPROTOCOL};

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
    match e {
        LimitError::NodeFull => reject(StatusCode::SERVICE_UNAVAILABLE, "node is full"),
        LimitError::PerIp => reject(StatusCode::TOO_MANY_REQUESTS, "too many connections"),
        LimitError::HandshakeRate => reject(StatusCode::TOO_MANY_REQUESTS, "handshake rate"),
    }
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
