//! Verification keys (`[[admin.keys]]`, `[[tenants.keys]]`) and their validation.
//!
//! Keys are checked by actually building a `jsonwebtoken::DecodingKey`, so a config that
//! passes `--check-config` cannot fail later on a key that does not parse.

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ConfigError;

/// Shortest accepted HMAC secret, in bytes, for admin and tenant keys alike.
///
/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash (32 bytes). The verifier
/// (`auth::keys`) enforces the same floor, so a config that validates also verifies.
pub const MIN_SECRET_BYTES: usize = 32;

/// The algorithms a key may be pinned to.
pub const ALGORITHMS: [&str; 4] = ["HS256", "RS256", "ES256", "EdDSA"];

/// One key. Exactly one of `secret`, `public_key_pem`, `jwk` is set. `Debug` redacts
/// the secret, so logging a config never leaks it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    pub kid: String,
    /// HS256 | RS256 | ES256 | EdDSA; the only algorithm this key verifies.
    pub alg: String,
    /// HS256 only: the raw shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A public JWK, written as a TOML table or JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Map<String, Value>>,
}

impl fmt::Debug for KeySection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySection")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key_pem", &self.public_key_pem)
            .field("jwk", &self.jwk)
            .finish()
    }
}

impl KeySection {
    /// The registry form of this key: the JWK, if any, becomes JSON text.
    pub fn to_key_spec(&self) -> tether_cluster::tenant::KeySpec {
        tether_cluster::tenant::KeySpec {
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            secret: self.secret.clone(),
            public_key_pem: self.public_key_pem.clone(),
            jwk: self.jwk.clone().map(|m| Value::Object(m).to_string()),
        }
    }
}

/// Checks a key list found at `at` (e.g. `admin.keys`, `tenants[1].keys`): each key valid,
/// kids unique (a token's `kid` must select exactly one key).
pub fn validate_keys(at: &str, keys: &[KeySection]) -> Result<(), ConfigError> {
    for (i, key) in keys.iter().enumerate() {
        let here = format!("{at}[{i}]");
        validate_key(&here, key)?;
        if keys[..i].iter().any(|k| k.kid == key.kid) {
            return Err(ConfigError::new(
                format!("{here}.kid"),
                format!("duplicate kid `{}`", key.kid),
            ));
        }
    }
    Ok(())
}

fn validate_key(at: &str, key: &KeySection) -> Result<(), ConfigError> {
    let err = |field: &str, msg: String| ConfigError::new(format!("{at}.{field}"), msg);
    if key.kid.is_empty() {
        return Err(err("kid", "must not be empty".into()));
    }
    let family = match key.alg.as_str() {
        "HS256" => AlgorithmFamily::Hmac,
        "RS256" => AlgorithmFamily::Rsa,
        "ES256" => AlgorithmFamily::Ec,
        "EdDSA" => AlgorithmFamily::Ed,
        other => {
            return Err(err(
                "alg",
                format!("unsupported algorithm `{other}`, expected one of {ALGORITHMS:?}"),
            ));
        }
    };
    let given = [
        key.secret.is_some(),
        key.public_key_pem.is_some(),
        key.jwk.is_some(),
    ];
    let count = given.iter().filter(|g| **g).count();
    if count != 1 {
        return Err(ConfigError::new(
            at,
            format!("exactly one of secret, public_key_pem, jwk must be set (found {count})"),
        ));
    }
    match (&key.secret, &key.public_key_pem, &key.jwk) {
        (Some(secret), _, _) if family == AlgorithmFamily::Hmac => {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(err(
                    "secret",
                    format!("HS256 secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            Ok(())
        }
        (Some(_), _, _) => Err(err(
            "secret",
            format!(
                "{} is asymmetric: use public_key_pem or jwk, never secret",
                key.alg
            ),
        )),
        (None, Some(_), _) if family == AlgorithmFamily::Hmac => Err(err(
            "public_key_pem",
            "HS256 keys take a `secret`, not a public key".into(),
        )),
        (None, _, Some(_)) if family == AlgorithmFamily::Hmac => {
            Err(err("jwk", "HS256 keys take a `secret`, not a JWK".into()))
        }
        (None, Some(pem), _) => {
            check_pem(&key.alg, family, pem).map_err(|m| err("public_key_pem", m))
        }
        (None, None, Some(jwk)) => check_jwk(&key.alg, family, jwk).map_err(|m| err("jwk", m)),
        (None, None, None) => Err(ConfigError::new(at, "no key material")),
    }
}

/// Parses a public-key PEM for `alg`. Private keys are refused outright: the node only
/// verifies, and a private key in a config file is a leak waiting to happen.
fn check_pem(alg: &str, family: AlgorithmFamily, pem: &str) -> Result<(), String> {
    if pem.contains("PRIVATE KEY") {
        return Err("holds a private key; give the public key only".into());
    }
    let parsed = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem.as_bytes()),
        AlgorithmFamily::Hmac => return Err("HS256 keys take a `secret`, not a PEM".into()),
    };
    let key = parsed.map_err(|e| format!("not a public key PEM for {alg}: {e}"))?;
    check_point_size(alg, &key)
}

/// Parses a JWK and checks it fits `alg`: key type, curve, and its own `alg` if present.
fn check_jwk(alg: &str, family: AlgorithmFamily, jwk: &Map<String, Value>) -> Result<(), String> {
    let parsed: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|e| format!("not a valid JWK: {e}"))?;
    if let Some(own) = parsed.common.key_algorithm
        && own.to_string() != alg
    {
        return Err(format!("JWK says alg {own} but the key is pinned to {alg}"));
    }
    if let AlgorithmParameters::OctetKey(_) = parsed.algorithm {
        return Err(format!("symmetric JWK (kty oct) cannot verify {alg}"));
    }
    let key = DecodingKey::from_jwk(&parsed).map_err(|e| format!("unusable JWK: {e}"))?;
    if key.family() != family {
        return Err(format!("JWK key type does not fit {alg}"));
    }
    check_point_size(alg, &key)
}

/// Key sizes the verifier accepts: ES256 needs a P-256 point (65 bytes uncompressed),
/// EdDSA an Ed25519 key (32 bytes), RS256 a 2048..=8192-bit modulus (aws-lc's limits).
/// Anything else would parse here and then fail every signature check.
fn check_point_size(alg: &str, key: &DecodingKey) -> Result<(), String> {
    let ok = match (alg, key.kind()) {
        ("ES256", DecodingKeyKind::SecretOrDer(point)) => point.len() == 65,
        ("EdDSA", DecodingKeyKind::SecretOrDer(point)) => point.len() == 32,
        ("RS256", DecodingKeyKind::SecretOrDer(der)) => {
            rsa_modulus_bits(der).is_some_and(|b| (2048..=8192).contains(&b))
        }
        ("RS256", DecodingKeyKind::RsaModulusExponent { n, .. }) => {
            (2048..=8192).contains(&unsigned_bits(n))
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match alg {
        "ES256" => "ES256 needs a P-256 key".into(),
        "EdDSA" => "EdDSA needs an Ed25519 key".into(),
        _ => format!("{alg} needs an RSA key of 2048 to 8192 bits"),
    })
}

/// Bit length of the modulus in a DER `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (tag, body, _) = der_item(der)?;
    let (int_tag, n, _) = der_item(body).filter(|_| tag == 0x30)?;
    (int_tag == 0x02).then(|| unsigned_bits(n))
}

/// One DER item: (tag, contents, rest). Only what `rsa_modulus_bits` needs.
fn der_item(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let width = usize::from(first & 0x7f);
        if width == 0 || width > 4 || rest.len() < width {
            return None;
        }
        let (bytes, rest) = rest.split_at(width);
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Bit length of a big-endian unsigned integer, ignoring leading zero bytes.
fn unsigned_bits(bytes: &[u8]) -> usize {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(top) => trimmed.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}
