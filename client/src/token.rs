//! [`TokenProvider`]: where the SDK gets access tokens, plus [`StaticToken`] and
//! [`token_fn`], and a small reader for a JWT's `exp` (no signature check: the server does it).

use std::future::Future;
use std::pin::Pin;

/// The boxed future a [`TokenProvider`] returns: a JWT, or a message saying why not.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Supplies access tokens (JWTs). Called before the first connect, when the cached token is
/// close to expiry, before reconnecting after a 4100 `token_expired` close, and for in-band
/// refresh (`token_expiring`). Return a token that is valid now; caching is up to you.
pub trait TokenProvider: Send + Sync + 'static {
    /// Fetches a token.
    fn token(&self) -> TokenFuture;
}

/// A fixed token (tests, tools). It cannot be refreshed: the session ends at its `exp`.
#[derive(Clone)]
pub struct StaticToken(pub String);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// A [`TokenProvider`] made from a closure returning a future; see [`token_fn`].
pub struct FnToken<F>(F);

impl<F, Fut> TokenProvider for FnToken<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    fn token(&self) -> TokenFuture {
        Box::pin((self.0)())
    }
}

/// Wraps an async closure as a [`TokenProvider`]:
/// `token_fn(|| async { fetch_token_from_my_backend().await })`.
pub fn token_fn<F, Fut>(f: F) -> FnToken<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    FnToken(f)
}

/// The `exp` claim (Unix seconds) of a JWT, read without verifying it; `None` if the token
/// is not a JWT with a numeric `exp`.
pub(crate) fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 16 * 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_of_a_jwt() {
        // {"alg":"HS256"} . {"sub":"a","exp":1790000000}
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxNzkwMDAwMDAwfQ.c2ln";
        assert_eq!(jwt_exp(t), Some(1_790_000_000));
        assert_eq!(jwt_exp("opaque"), None);
        assert_eq!(jwt_exp("a.!!.c"), None);
    }
}
