//! Tenant tokens for load clients, HS256 (`k1`) or ES256 (`ec1`), valid for an hour.

use serde::{Deserialize, Serialize};
use tether_tests::tokens::{EC_KID, TENANT_KID, TENANT_SECRET, claims, sign_es, sign_hs};

/// A run can take longer than the harness's 10-minute tokens.
const TTL_SECS: u64 = 3600;

/// The IdP session id of `user`'s tokens.
pub fn idp_sid(user: &str) -> String {
    format!("idp-{user}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    Hs256,
    Es256,
}

impl Alg {
    /// Every token carries the IdP session id `idp-<user>`: read only where the tenant has
    /// an `idp` section (the `idp` scenario), so the other scenarios measure as before.
    pub fn token(self, user: &str, perms: &[&str]) -> String {
        let mut c = claims(user, TTL_SECS, perms);
        c["sid"] = serde_json::Value::String(idp_sid(user));
        match self {
            Alg::Hs256 => sign_hs(TENANT_KID, TENANT_SECRET, &c),
            Alg::Es256 => sign_es(EC_KID, &c),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
        }
    }
}
