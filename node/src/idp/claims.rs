//! Reading the verified claims of a logout token or a Security Event Token.

use http::HeaderMap;
use serde_json::Value;

use crate::auth::jwt::Claims;

/// Longest accepted `jti`, `sid`, `sub` or subject id: they are kept in the registry.
pub const MAX_ID_BYTES: usize = 256;

/// An optional non-empty string of bounded length; `Err` names the claim.
pub fn text(claims: &Claims, name: &str) -> Result<Option<String>, String> {
    id(claims.get(name))
        .map_err(|()| format!("{name} must be a string of 1 to {MAX_ID_BYTES} bytes"))
}

/// A non-empty string of bounded length, if present.
pub fn id(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

/// `aud` (a string or an array) names one of `accepted`.
pub fn audience_matches(claims: &Claims, accepted: &[String]) -> bool {
    let ok = |a: &Value| a.as_str().is_some_and(|a| accepted.iter().any(|x| x == a));
    match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(ok),
        Some(single) => ok(single),
        None => false,
    }
}

/// Whether a header `typ` names `media` (`logout+jwt`), with or without `application/`.
pub fn typ_is(typ: &str, media: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == media || typ.strip_prefix("application/") == Some(media)
}

/// Whether the request's `Content-Type` is `media` (parameters such as `charset` aside).
pub fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media))
}
