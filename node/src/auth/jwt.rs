//! The mechanics of a compact JWS shared by tenant and admin tokens: the size cap, the header
//! (only four algorithms, never `none`), signature verification, and the registered claims.
//!
//! jsonwebtoken checks only the signature here; the time claims are checked against the
//! injected clock, not the system clock its own checks would read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::AuthError;
use super::keys::{VerifyingKey, parse_alg};

pub(crate) type Claims = Map<String, Value>;

/// What the (unverified) header says: which algorithm, which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The media type (`logout+jwt`, `secevent+jwt`), when the token says.
    pub typ: Option<String>,
}

/// Splits `token` into its three base64url parts, after the size cap.
fn parts(token: &str, max_bytes: usize) -> Result<[&str; 3], AuthError> {
    // The cap comes before any decoding so an oversized token costs nothing.
    if token.len() > max_bytes {
        return Err(AuthError::TooLarge);
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok([h, p, s]),
        _ => Err(AuthError::Malformed),
    }
}

fn decode_json(part: &str) -> Result<Claims, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Parses the header. Any `alg` other than HS256/RS256/ES256/EdDSA (so `none` in any spelling)
/// is refused before a key is even chosen.
pub(crate) fn parse_header(token: &str, max_bytes: usize) -> Result<Header, AuthError> {
    let [header, _, signature] = parts(token, max_bytes)?;
    let header = decode_json(header)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => parse_alg(name)?,
        _ => return Err(AuthError::Malformed),
    };
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we implement none.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    // An unsigned token (empty signature part) is checked after `alg` so `none` reports as
    // an algorithm problem. Header-supplied keys (`jwk`, `jku`, `x5u`) are never consulted.
    if signature.is_empty() {
        return Err(AuthError::Malformed);
    }
    let text = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(AuthError::Malformed),
    };
    Ok(Header {
        alg,
        kid: text("kid")?,
        typ: text("typ")?,
    })
}

/// The payload WITHOUT signature verification: only for choosing which tenant's keys to try.
pub(crate) fn unverified_claims(token: &str, max_bytes: usize) -> Result<Claims, AuthError> {
    let [_, payload, _] = parts(token, max_bytes)?;
    decode_json(payload)
}

/// Verifies the signature with `key` (whose pinned algorithm must be the header's) and returns
/// the now trustworthy claims. Only the signature goes through jsonwebtoken: its `decode`
/// would parse the header and the claims once more (about 1% of a node's CPU under connect
/// churn, docs/performance.md).
pub(crate) fn verify_signature(token: &str, key: &VerifyingKey) -> Result<Claims, AuthError> {
    // `parts` has run on this token already (header checks); no size cap is due twice.
    let [_, payload, signature] = parts(token, usize::MAX)?;
    let signed = &token[..token.len() - signature.len() - 1];
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), key.decoding_key(), key.alg())
    {
        Ok(true) => decode_json(payload),
        Ok(false) => Err(AuthError::BadSignature),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::AlgorithmNotAllowed
            }
            ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey => {
                AuthError::BadKey(format!("key `{}` cannot verify: {e}", key.kid()))
            }
            // The signature part is not base64url, or the like.
            _ => AuthError::Malformed,
        }),
    }
}

/// The time claims, checked against `now` with `leeway` for clock skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub iat: Option<u64>,
    pub exp: u64,
    pub nbf: Option<u64>,
}

/// `exp` is required; `iat` when `require_iat`; `nbf` is optional.
pub(crate) fn check_times(
    claims: &Claims,
    now: u64,
    leeway: u64,
    require_iat: bool,
) -> Result<Times, AuthError> {
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    let iat = numeric_date(claims, "iat")?;
    if require_iat && iat.is_none() {
        return Err(AuthError::MissingClaim("iat"));
    }
    let nbf = numeric_date(claims, "nbf")?;
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    let horizon = now.saturating_add(leeway);
    if nbf.is_some_and(|nbf| nbf > horizon) {
        return Err(AuthError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > horizon) {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(Times { iat, exp, nbf })
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; negative or non-numeric is junk.
pub(crate) fn numeric_date(claims: &Claims, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(AuthError::Malformed),
        },
        Some(_) => Err(AuthError::Malformed),
    }
}

/// An optional string claim; present with another type is malformed.
pub(crate) fn string_claim(claims: &Claims, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// A required, non-empty string claim.
pub(crate) fn required_string(claims: &Claims, name: &'static str) -> Result<String, AuthError> {
    match string_claim(claims, name)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(AuthError::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value) -> String {
        format!("{}.{}.c2ln", enc(&header), enc(&json!({"sub": "a"})))
    }

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The header yields alg and kid; `none` in any case, unknown algs and `crit` are refused.
    #[test]
    fn header_rules() {
        let h = parse_header(
            &token(json!({"alg": "ES256", "kid": "k", "typ": "logout+jwt"})),
            8192,
        );
        assert_eq!(
            h,
            Ok(Header {
                alg: Algorithm::ES256,
                kid: Some("k".into()),
                typ: Some("logout+jwt".into()),
            })
        );
        let typ = parse_header(&token(json!({"alg": "ES256", "typ": 7})), 8192);
        assert_eq!(typ, Err(AuthError::Malformed));
        for alg in ["none", "None", "NONE", "nOnE", "HS512", "PS256"] {
            let r = parse_header(&token(json!({"alg": alg})), 8192);
            assert_eq!(r, Err(AuthError::AlgorithmNotAllowed), "{alg}");
        }
        let crit = json!({"alg": "HS256", "crit": ["b64"], "b64": false});
        assert_eq!(parse_header(&token(crit), 8192), Err(AuthError::Malformed));
        let kid_num = json!({"alg": "HS256", "kid": 7});
        assert_eq!(
            parse_header(&token(kid_num), 8192),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            parse_header(&token(json!({"typ": "JWT"})), 8192),
            Err(AuthError::Malformed)
        );
    }

    /// Wrong part counts, empty signatures, bad base64 and oversize input are refused.
    #[test]
    fn shape_rules() {
        let good = token(json!({"alg": "HS256"}));
        assert_eq!(
            parse_header(&good, good.len() - 1),
            Err(AuthError::TooLarge)
        );
        let unsigned = good.trim_end_matches("c2ln");
        assert_eq!(parse_header(unsigned, 8192), Err(AuthError::Malformed));
        for junk in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "..",
            "!!!.e30.c2ln",
            "e30.e30.c2ln",
        ] {
            assert_eq!(
                parse_header(junk, 8192),
                Err(AuthError::Malformed),
                "{junk}"
            );
        }
    }

    /// exp is required and enforced with leeway; nbf and iat may not lie beyond the leeway.
    #[test]
    fn time_rules() {
        let now = 1_000_000;
        let c = |v| claims(v);
        let ok = check_times(&c(json!({"exp": now + 60, "iat": now})), now, 30, true);
        assert_eq!(
            ok,
            Ok(Times {
                iat: Some(now),
                exp: now + 60,
                nbf: None
            })
        );
        // Inside the leeway an expired token still passes; at its edge it does not.
        assert!(check_times(&c(json!({"exp": now - 29, "iat": 1})), now, 30, true).is_ok());
        let edge = check_times(&c(json!({"exp": now - 30, "iat": 1})), now, 30, true);
        assert_eq!(edge, Err(AuthError::Expired));
        let nbf = check_times(
            &c(json!({"exp": now + 99, "nbf": now + 31})),
            now,
            30,
            false,
        );
        assert_eq!(nbf, Err(AuthError::NotYetValid));
        let iat = check_times(&c(json!({"exp": now + 99, "iat": now + 31})), now, 30, true);
        assert_eq!(iat, Err(AuthError::IssuedInFuture));
        let no_exp = check_times(&c(json!({"iat": now})), now, 30, true);
        assert_eq!(no_exp, Err(AuthError::MissingClaim("exp")));
        let no_iat = check_times(&c(json!({"exp": now + 9})), now, 30, true);
        assert_eq!(no_iat, Err(AuthError::MissingClaim("iat")));
        assert!(check_times(&c(json!({"exp": now + 9})), now, 30, false).is_ok());
        let junk = check_times(&c(json!({"exp": "soon", "iat": now})), now, 30, true);
        assert_eq!(junk, Err(AuthError::Malformed));
        let negative = check_times(&c(json!({"exp": -5, "iat": now})), now, 30, true);
        assert_eq!(negative, Err(AuthError::Malformed));
        let fractional = check_times(&c(json!({"exp": now as f64 + 9.5})), now, 0, false);
        assert_eq!(fractional.map(|t| t.exp), Ok(now + 9));
    }

    /// Required strings must be present, strings, and non-empty.
    #[test]
    fn string_claims() {
        let c = claims(json!({"sub": "alice", "empty": "", "num": 3}));
        assert_eq!(required_string(&c, "sub"), Ok("alice".into()));
        assert_eq!(
            required_string(&c, "empty"),
            Err(AuthError::MissingClaim("empty"))
        );
        assert_eq!(
            required_string(&c, "jti"),
            Err(AuthError::MissingClaim("jti"))
        );
        assert_eq!(string_claim(&c, "num"), Err(AuthError::Malformed));
        assert_eq!(string_claim(&c, "jti"), Ok(None));
    }
}
