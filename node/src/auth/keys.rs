//! A configured [`KeySpec`] (or a JWKS entry) → a verifying key with exactly one pinned algorithm.
//!
//! Pinning is the defence against algorithm confusion: a key made for RS256/ES256/EdDSA never
//! becomes an HMAC secret, whatever a token's header says. The same checks validate config, so a
//! bad key is reported at load time with a message naming it rather than at the first connect.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tether_cluster::tenant::KeySpec;

use super::AuthError;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;
/// Real IdPs use short ids (thumbprints, UUIDs); a longer `kid` is noise or an attack.
const MAX_KID_BYTES: usize = 256;
/// aws-lc refuses smaller RSA keys at verify time; refusing them here gives a clear message.
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// A key ready to verify signatures, and the one algorithm it may verify.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    key: DecodingKey,
}

impl VerifyingKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The pinned algorithm: a token whose header names another one is refused.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// Parses one of the four supported algorithm names, exactly as spelled (case-sensitive).
pub fn parse_alg(name: &str) -> Result<Algorithm, AuthError> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        _ => Err(AuthError::AlgorithmNotAllowed),
    }
}

/// The name of a supported algorithm (the inverse of [`parse_alg`]).
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

/// Whether a `kid` is worth looking up at all. Used before a JWKS refetch so that junk ids
/// (control characters, kilobytes of padding) are refused without touching the network.
pub(crate) fn is_plausible_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_BYTES && !kid.chars().any(char::is_control)
}

/// Builds the verifying key for one configured key, enforcing its pinned algorithm.
pub fn build_key(spec: &KeySpec) -> Result<VerifyingKey, AuthError> {
    let kid = &spec.kid;
    if !is_plausible_kid(kid) {
        return Err(bad(format!(
            "kid must be 1..={MAX_KID_BYTES} bytes without control characters"
        )));
    }
    let alg = parse_alg(&spec.alg).map_err(|_| {
        bad(format!(
            "key `{kid}`: alg must be HS256, RS256, ES256 or EdDSA (case-sensitive)"
        ))
    })?;
    let key = match (&spec.secret, &spec.public_key_pem, &spec.jwk) {
        (Some(secret), None, None) => from_secret(kid, alg, secret)?,
        (None, Some(pem), None) => from_pem(kid, alg, pem)?,
        (None, None, Some(jwk_text)) => {
            let jwk: Jwk = serde_json::from_str(jwk_text)
                .map_err(|e| bad(format!("key `{kid}`: jwk is not a valid JWK: {e}")))?;
            if jwk
                .common
                .key_id
                .as_deref()
                .is_some_and(|jwk_kid| jwk_kid != kid)
            {
                return Err(bad(format!("key `{kid}`: the jwk's own kid differs")));
            }
            key_from_jwk(&jwk, alg).map_err(|e| prefix(kid, e))?
        }
        _ => {
            return Err(bad(format!(
                "key `{kid}`: set exactly one of secret, public_key_pem, jwk"
            )));
        }
    };
    Ok(VerifyingKey {
        kid: kid.clone(),
        alg,
        key,
    })
}

/// Validates a key list as config: every key builds and no `kid` repeats.
pub fn validate_keys(keys: &[KeySpec]) -> Result<(), AuthError> {
    let mut seen = HashSet::new();
    for spec in keys {
        build_key(spec)?;
        if !seen.insert(spec.kid.as_str()) {
            return Err(bad(format!("duplicate kid `{}`", spec.kid)));
        }
    }
    Ok(())
}

/// Rejects HS256 secrets too short to resist brute force (also used when minting).
pub(crate) fn check_hs_secret(secret: &[u8]) -> Result<(), AuthError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(bad(format!(
            "HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518 §3.2)"
        )));
    }
    Ok(())
}

fn from_secret(kid: &str, alg: Algorithm, secret: &str) -> Result<DecodingKey, AuthError> {
    if alg != Algorithm::HS256 {
        // A shared secret for an asymmetric algorithm is a config mistake that would let
        // anyone holding "the public key" forge tokens if it were ever used as an HMAC key.
        return Err(bad(format!(
            "key `{kid}`: {} needs public_key_pem or jwk, not a secret",
            alg_name(alg)
        )));
    }
    check_hs_secret(secret.as_bytes()).map_err(|e| prefix(kid, e))?;
    Ok(DecodingKey::from_secret(secret.as_bytes()))
}

fn from_pem(kid: &str, alg: Algorithm, pem: &str) -> Result<DecodingKey, AuthError> {
    if pem.contains("PRIVATE KEY") {
        return Err(bad(format!(
            "key `{kid}`: expected a public key PEM, got a private key (never configure one here)"
        )));
    }
    let parsed = match alg {
        // Never build an HMAC key from PEM text: that is exactly the RS/ES→HS confusion attack.
        Algorithm::HS256 => {
            return Err(bad(format!("key `{kid}`: HS256 takes a secret, not a PEM")));
        }
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
        _ => DecodingKey::from_ed_pem(pem.as_bytes()),
    };
    let key = parsed.map_err(|e| {
        bad(format!(
            "key `{kid}`: public_key_pem is not a {} public key: {e}",
            alg_name(alg)
        ))
    })?;
    // from_ec_pem/from_ed_pem accept any curve of their family; the point length tells P-256
    // (uncompressed 0x04‖x‖y, 65 bytes) and Ed25519 (32 bytes) apart from the rest.
    let point_ok = match alg {
        Algorithm::ES256 => key.as_bytes().len() == 65 && key.as_bytes().first() == Some(&0x04),
        Algorithm::EdDSA => key.as_bytes().len() == 32,
        _ => true,
    };
    if !point_ok {
        return Err(bad(format!(
            "key `{kid}`: {} needs a {} public key",
            alg_name(alg),
            if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "Ed25519"
            }
        )));
    }
    Ok(key)
}

/// The algorithm a JWKS entry is pinned to: its `alg`, or derived from `kty`/`crv`.
///
/// Symmetric (`oct`) keys are refused: a JWKS is a public document, never a place for secrets.
pub(crate) fn jwk_pinned_alg(jwk: &Jwk) -> Result<Algorithm, AuthError> {
    if let AlgorithmParameters::OctetKey(_) = jwk.algorithm {
        return Err(bad(
            "symmetric (oct) keys are not accepted from a JWKS".to_owned()
        ));
    }
    if let Some(declared) = jwk.common.key_algorithm {
        return parse_alg(&declared.to_string())
            .map_err(|_| bad(format!("unsupported JWK alg {declared}")));
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Ok(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Ok(Algorithm::EdDSA)
        }
        _ => Err(bad("JWK curve is not P-256 or Ed25519".to_owned())),
    }
}

/// Builds a key from a JWK that must agree with the pinned algorithm in `kty`, `crv` and `alg`.
pub(crate) fn key_from_jwk(jwk: &Jwk, pinned: Algorithm) -> Result<DecodingKey, AuthError> {
    if let Some(declared) = jwk.common.key_algorithm
        && declared.to_string() != alg_name(pinned)
    {
        return Err(bad(format!(
            "JWK alg {declared} disagrees with pinned {}",
            alg_name(pinned)
        )));
    }
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return Err(bad("JWK `use` is not sig".to_owned()));
    }
    let mismatch = || bad(format!("JWK kty/crv cannot verify {}", alg_name(pinned)));
    match (pinned, &jwk.algorithm) {
        (Algorithm::HS256, AlgorithmParameters::OctetKey(p)) => {
            let secret = b64(&p.value, "k")?;
            check_hs_secret(&secret)?;
            Ok(DecodingKey::from_secret(&secret))
        }
        (Algorithm::RS256, AlgorithmParameters::RSA(p)) => {
            let n = b64(&p.n, "n")?;
            let e = b64(&p.e, "e")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(bad("RSA modulus must be at least 2048 bits".to_owned()));
            }
            Ok(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        (Algorithm::ES256, AlgorithmParameters::EllipticCurve(p)) => {
            if p.curve != EllipticCurve::P256 {
                return Err(mismatch());
            }
            if b64(&p.x, "x")?.len() != 32 || b64(&p.y, "y")?.len() != 32 {
                return Err(bad("P-256 coordinates must be 32 bytes".to_owned()));
            }
            DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("JWK rejected: {e}")))
        }
        (Algorithm::EdDSA, AlgorithmParameters::OctetKeyPair(p)) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(mismatch());
            }
            if b64(&p.x, "x")?.len() != 32 {
                return Err(bad("Ed25519 public key must be 32 bytes".to_owned()));
            }
            DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("JWK rejected: {e}")))
        }
        _ => Err(mismatch()),
    }
}

/// Builds a JWKS entry's key: it needs a plausible `kid` and a pinned algorithm.
pub(crate) fn jwks_entry(jwk: &Jwk) -> Result<VerifyingKey, AuthError> {
    let kid = match jwk.common.key_id.as_deref() {
        Some(kid) if is_plausible_kid(kid) => kid.to_owned(),
        _ => return Err(bad("JWKS entry has no usable kid".to_owned())),
    };
    let alg = jwk_pinned_alg(jwk)?;
    let key = key_from_jwk(jwk, alg)?;
    Ok(VerifyingKey { kid, alg, key })
}

fn b64(value: &str, member: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| bad(format!("JWK member `{member}` is not base64url")))
}

fn bad(message: String) -> AuthError {
    AuthError::BadKey(message)
}

fn prefix(kid: &str, err: AuthError) -> AuthError {
    match err {
        AuthError::BadKey(m) => AuthError::BadKey(format!("key `{kid}`: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_keys::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn spec(alg: &str) -> KeySpec {
        KeySpec {
            kid: "k1".into(),
            alg: alg.into(),
            ..KeySpec::default()
        }
    }

    fn with_pem(alg: &str, pem: &str) -> KeySpec {
        KeySpec {
            public_key_pem: Some(pem.into()),
            ..spec(alg)
        }
    }

    fn with_jwk(alg: &str, jwk: serde_json::Value) -> KeySpec {
        KeySpec {
            jwk: Some(jwk.to_string()),
            ..spec(alg)
        }
    }

    fn rsa_jwk() -> serde_json::Value {
        serde_json::json!({"kty": "RSA", "n": RSA_JWK_N, "e": RSA_JWK_E})
    }

    fn ec_jwk() -> serde_json::Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": EC_JWK_X, "y": EC_JWK_Y})
    }

    fn ed_jwk() -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ED_JWK_X})
    }

    fn err_text(r: Result<VerifyingKey, AuthError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// Each of the four algorithms builds from its natural material and keeps its pin.
    #[test]
    fn builds_all_four_algorithms() {
        let hs = KeySpec {
            secret: Some(SECRET.into()),
            ..spec("HS256")
        };
        let cases = [
            (hs, Algorithm::HS256),
            (with_pem("RS256", RSA_PUBLIC_PEM), Algorithm::RS256),
            (with_pem("ES256", EC_PUBLIC_PEM), Algorithm::ES256),
            (with_pem("EdDSA", ED_PUBLIC_PEM), Algorithm::EdDSA),
            (with_jwk("RS256", rsa_jwk()), Algorithm::RS256),
            (with_jwk("ES256", ec_jwk()), Algorithm::ES256),
            (with_jwk("EdDSA", ed_jwk()), Algorithm::EdDSA),
        ];
        for (s, alg) in cases {
            let key = build_key(&s).unwrap_or_else(|e| panic!("{}: {e}", s.alg));
            assert_eq!(key.alg(), alg);
            assert_eq!(key.kid(), "k1");
        }
    }

    /// Only the four names, exactly spelled, are algorithms; `none` in any case is not.
    #[test]
    fn parse_alg_is_strict() {
        for bad in [
            "none", "None", "NONE", "nOnE", "hs256", "HS384", "PS256", "ES384", "",
        ] {
            assert_eq!(parse_alg(bad), Err(AuthError::AlgorithmNotAllowed), "{bad}");
        }
    }

    /// HS256 never accepts a PEM or an asymmetric JWK: no HMAC key from a public key.
    #[test]
    fn hs256_refuses_public_key_material() {
        assert!(err_text(build_key(&with_pem("HS256", RSA_PUBLIC_PEM))).contains("not a PEM"));
        assert!(err_text(build_key(&with_jwk("HS256", rsa_jwk()))).contains("cannot verify"));
        assert!(err_text(build_key(&with_jwk("HS256", ec_jwk()))).contains("cannot verify"));
    }

    /// Asymmetric algorithms refuse a shared secret.
    #[test]
    fn asymmetric_refuses_secret() {
        for alg in ["RS256", "ES256", "EdDSA"] {
            let s = KeySpec {
                secret: Some(SECRET.into()),
                ..spec(alg)
            };
            assert!(err_text(build_key(&s)).contains("not a secret"), "{alg}");
        }
    }

    /// A PEM of the wrong family or curve is refused with a message naming the key.
    #[test]
    fn pem_family_and_curve_checked() {
        assert!(err_text(build_key(&with_pem("RS256", EC_PUBLIC_PEM))).contains("key `k1`"));
        assert!(build_key(&with_pem("ES256", RSA_PUBLIC_PEM)).is_err());
        assert!(build_key(&with_pem("EdDSA", EC_PUBLIC_PEM)).is_err());
        assert!(err_text(build_key(&with_pem("ES256", EC_P384_PUBLIC_PEM))).contains("P-256"));
        assert!(build_key(&with_pem("RS256", "not a pem")).is_err());
    }

    /// Private keys are never accepted as verification keys.
    #[test]
    fn private_pem_refused() {
        assert!(err_text(build_key(&with_pem("RS256", RSA_PRIVATE_PEM))).contains("private"));
    }

    /// A JWK whose kty, crv or alg disagrees with the pinned algorithm is refused.
    #[test]
    fn jwk_must_agree_with_pin() {
        assert!(build_key(&with_jwk("ES256", rsa_jwk())).is_err());
        assert!(build_key(&with_jwk("RS256", ed_jwk())).is_err());
        let mut ec = ec_jwk();
        ec["alg"] = "RS256".into();
        assert!(err_text(build_key(&with_jwk("ES256", ec))).contains("disagrees"));
        let mut ec_enc = ec_jwk();
        ec_enc["use"] = "enc".into();
        assert!(err_text(build_key(&with_jwk("ES256", ec_enc))).contains("not sig"));
        let mut other_kid = ed_jwk();
        other_kid["kid"] = "k2".into();
        assert!(err_text(build_key(&with_jwk("EdDSA", other_kid))).contains("kid differs"));
    }

    /// Short HS secrets, missing or doubled material, bad kids and unknown algs are refused.
    #[test]
    fn config_mistakes_refused() {
        let short = KeySpec {
            secret: Some("short".into()),
            ..spec("HS256")
        };
        assert!(err_text(build_key(&short)).contains("at least 32 bytes"));
        assert!(err_text(build_key(&spec("HS256"))).contains("exactly one"));
        let both = KeySpec {
            secret: Some(SECRET.into()),
            public_key_pem: Some("x".into()),
            ..spec("HS256")
        };
        assert!(err_text(build_key(&both)).contains("exactly one"));
        let no_kid = KeySpec {
            kid: String::new(),
            secret: Some(SECRET.into()),
            ..spec("HS256")
        };
        assert!(build_key(&no_kid).is_err());
        let none = KeySpec {
            secret: Some(SECRET.into()),
            ..spec("none")
        };
        assert!(err_text(build_key(&none)).contains("alg must be"));
        let oct = serde_json::json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)});
        assert!(build_key(&with_jwk("HS256", oct)).is_ok());
    }

    /// Duplicate kids in one key list are a config error.
    #[test]
    fn validate_keys_finds_duplicates() {
        let a = KeySpec {
            secret: Some(SECRET.into()),
            ..spec("HS256")
        };
        assert!(validate_keys(std::slice::from_ref(&a)).is_ok());
        let dup = validate_keys(&[a.clone(), a]);
        assert!(matches!(dup, Err(AuthError::BadKey(m)) if m.contains("duplicate kid")));
    }

    /// JWKS entries derive their pin from kty/crv when `alg` is absent, and refuse oct keys.
    #[test]
    fn jwks_pin_derivation() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Jwk>(v).ok();
        let derive = |v| parse(v).map(|j| jwk_pinned_alg(&j));
        assert_eq!(derive(rsa_jwk()), Some(Ok(Algorithm::RS256)));
        assert_eq!(
            derive(ec_jwk()).map(|r| r.ok()),
            Some(Some(Algorithm::ES256))
        );
        assert_eq!(
            derive(ed_jwk()).map(|r| r.ok()),
            Some(Some(Algorithm::EdDSA))
        );
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(derive(oct).is_some_and(|r| r.is_err()));
        let mut ps = rsa_jwk();
        ps["alg"] = "PS256".into();
        assert!(derive(ps).is_some_and(|r| r.is_err()));
    }
}
