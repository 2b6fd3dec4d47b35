//! The answers of the IdP endpoints, in each standard's own shape: OpenID Connect
//! Back-Channel Logout answers like an OAuth endpoint (`error`, `error_description`,
//! `Cache-Control: no-store`), a Shared Signals push like RFC 8935 §2.3 (`err`,
//! `description`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Oidc,
    Ssf,
}

/// Why a request was refused with 400. OIDC has only `invalid_request`; RFC 8935 tells the
/// transmitter which part was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Request,
    Key,
    Issuer,
    Audience,
}

impl Error {
    fn ssf_code(self) -> &'static str {
        match self {
            Error::Request => "invalid_request",
            Error::Key => "invalid_key",
            Error::Issuer => "invalid_issuer",
            Error::Audience => "invalid_audience",
        }
    }
}

#[derive(Debug)]
pub struct Answer {
    flavor: Flavor,
    status: StatusCode,
    /// (OIDC `error` / SSF `err`, description); `None`: an empty body.
    body: Option<(&'static str, String)>,
}

impl Answer {
    /// 200 (back-channel logout) or 202 (SSF), empty.
    pub fn accepted(flavor: Flavor) -> Answer {
        let status = match flavor {
            Flavor::Oidc => StatusCode::OK,
            Flavor::Ssf => StatusCode::ACCEPTED,
        };
        Answer {
            flavor,
            status,
            body: None,
        }
    }

    pub fn invalid(flavor: Flavor, error: Error, description: &str) -> Answer {
        let code = match flavor {
            Flavor::Oidc => "invalid_request",
            Flavor::Ssf => error.ssf_code(),
        };
        Answer {
            flavor,
            status: StatusCode::BAD_REQUEST,
            body: Some((code, description.to_owned())),
        }
    }

    /// 401 (SSF push bearer): the body says only that.
    pub fn unauthorized(flavor: Flavor) -> Answer {
        Answer {
            flavor,
            status: StatusCode::UNAUTHORIZED,
            body: Some(("authentication_failed", String::new())),
        }
    }

    pub fn not_found(flavor: Flavor, description: &str) -> Answer {
        Answer::status(flavor, StatusCode::NOT_FOUND, description)
    }

    /// 503: the registry could not commit; the IdP retries.
    pub fn unavailable(flavor: Flavor) -> Answer {
        let msg = "the session registry is unavailable; retry";
        Answer::status(flavor, StatusCode::SERVICE_UNAVAILABLE, msg)
    }

    pub fn rate_limited(flavor: Flavor, description: &str) -> Answer {
        Answer::status(flavor, StatusCode::TOO_MANY_REQUESTS, description)
    }

    /// Any other refusal: the body's code is derived from the status.
    pub fn status(flavor: Flavor, status: StatusCode, description: &str) -> Answer {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            _ => "invalid_request",
        };
        Answer {
            flavor,
            status,
            body: Some((code, description.to_owned())),
        }
    }

    /// The `tether_idp_signals_total` outcome of a refusal before any commit.
    pub fn outcome(&self) -> &'static str {
        match self.status {
            StatusCode::OK | StatusCode::ACCEPTED => "applied",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "invalid",
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = match (&self.body, self.flavor) {
            (None, _) => Bytes::new(),
            (Some((code, _)), Flavor::Ssf) if self.status == StatusCode::UNAUTHORIZED => {
                Bytes::from(json!({ "err": code }).to_string())
            }
            (Some((code, d)), Flavor::Oidc) => {
                Bytes::from(json!({ "error": code, "error_description": d }).to_string())
            }
            (Some((code, d)), Flavor::Ssf) => {
                Bytes::from(json!({ "err": code, "description": d }).to_string())
            }
        };
        let has_body = !body.is_empty();
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if has_body {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}
