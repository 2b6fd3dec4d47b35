//! Shared Signals push (RFC 8935) of one Security Event Token (RFC 8417) carrying CAEP and
//! RISC events: the push bearer, the SET's checks, its subject (RFC 9493) and what each
//! event asks for. Nothing in the registry is read until the signature holds.

use http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tether_cluster::command::{IdpAction, IdpSignal};
use tether_cluster::tenant::{IdpConfig, SsfConfig, TenantConfig};

use super::Verified;
use super::answer::{Answer, Error, Flavor};
use super::claims::{audience_matches, content_type_is, id, text, typ_is};
use crate::auth::jwt::{Claims, numeric_date};
use crate::auth::{AuthError, KeySource};
use crate::context::NodeCtx;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
/// How long a SET's jti is kept at least (a SET rarely has `exp`; transmitters retry).
const KEEP_SECS: u64 = 3600;

fn invalid(error: Error, description: &str) -> Answer {
    Answer::invalid(Flavor::Ssf, error, description)
}

fn bad_request(description: &str) -> Answer {
    invalid(Error::Request, description)
}

pub(super) async fn verify(
    ctx: &NodeCtx,
    tenant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Answer> {
    let Some(tenant) = ctx.registry.read(|s| s.tenant(tenant_id).cloned()) else {
        return Err(Answer::not_found(Flavor::Ssf, "unknown tenant"));
    };
    let tenant = tenant.config;
    let Some((idp, ssf)) = tenant
        .idp
        .clone()
        .and_then(|i| i.ssf.clone().map(|s| (i, s)))
    else {
        return Err(Answer::not_found(
            Flavor::Ssf,
            "Shared Signals are not configured for this tenant",
        ));
    };
    if let Some(want) = &ssf.push_bearer
        && !bearer_matches(headers, want)
    {
        return Err(Answer::unauthorized(Flavor::Ssf));
    }
    if !content_type_is(headers, "application/secevent+jwt") {
        return Err(bad_request(
            "the content type must be application/secevent+jwt",
        ));
    }
    let token = std::str::from_utf8(body)
        .map(str::trim)
        .map_err(|_| bad_request("the body is not a JWT"))?;
    let claims = verified_claims(ctx, &tenant, &ssf, token).await?;
    let issuer = match text(&claims, "iss").map_err(|e| bad_request(&e))? {
        Some(iss) if iss == ssf.issuer => iss,
        _ => {
            return Err(invalid(Error::Issuer, "iss is not the transmitter's"));
        }
    };
    if !audience_matches(&claims, std::slice::from_ref(&ssf.audience)) {
        return Err(invalid(Error::Audience, "aud does not name this receiver"));
    }
    let now = ctx.clock.now_secs();
    let leeway = ctx.auth.leeway_secs();
    let date = |name| numeric_date(&claims, name).map_err(|_| bad_request("a date is malformed"));
    let iat = date("iat")?.ok_or_else(|| bad_request("no iat"))?;
    if iat > now.saturating_add(leeway) {
        return Err(bad_request("iat is in the future"));
    }
    let exp = date("exp")?;
    if exp.is_some_and(|e| e.saturating_add(leeway) <= now) {
        return Err(bad_request("the SET has expired"));
    }
    let jti = text(&claims, "jti")
        .map_err(|e| bad_request(&e))?
        .ok_or_else(|| bad_request("no jti"))?;
    let (actions, subject, names) = actions(&claims, &tenant, &idp)?;
    if ctx.registry.read(|s| s.is_idp_jti_used(&tenant.id, &jti)) {
        return Err(bad_request("this jti was already used"));
    }
    let keep_until = exp
        .unwrap_or(iat.saturating_add(KEEP_SECS))
        .max(now.saturating_add(KEEP_SECS))
        .saturating_add(leeway);
    Ok(Verified {
        signal: IdpSignal {
            tenant: tenant.id.clone(),
            jti,
            keep_until,
            actions,
        },
        user: subject.user,
        sid: subject.sid,
        issuer,
        event: names.join(","),
    })
}

/// The bearer compared by digest, so the comparison's time says nothing about the secret.
fn bearer_matches(headers: &HeaderMap, want: &str) -> bool {
    let got = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    Sha256::digest(got.as_bytes()) == Sha256::digest(want.as_bytes())
}

/// The signature, by the transmitter's keys (inline or its JWKS; else the tenant's own).
async fn verified_claims(
    ctx: &NodeCtx,
    tenant: &TenantConfig,
    ssf: &SsfConfig,
    token: &str,
) -> Result<Claims, Answer> {
    let cache_id = format!("{}/ssf", tenant.id);
    let source = if ssf.keys.is_empty() && ssf.jwks_uri.is_none() {
        KeySource::tenant(tenant)
    } else {
        KeySource {
            cache_id: &cache_id,
            keys: &ssf.keys,
            jwks_uri: ssf.jwks_uri.as_deref(),
        }
    };
    let (_, header, claims) = match ctx.auth.verify_signed(token, &source).await {
        Ok(v) => v,
        Err(AuthError::Jwks(e)) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "SET: transmitter JWKS unavailable");
            return Err(Answer::unavailable(Flavor::Ssf));
        }
        Err(e @ (AuthError::Malformed | AuthError::TooLarge)) => {
            return Err(bad_request(&e.client_message()));
        }
        Err(e) => return Err(invalid(Error::Key, &e.client_message())),
    };
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !typ_is(t, "secevent+jwt"))
    {
        return Err(bad_request("typ must be secevent+jwt"));
    }
    Ok(claims)
}

/// Who an event is about.
#[derive(Debug, Default, Clone)]
struct Subject {
    user: Option<String>,
    sid: Option<String>,
}

/// The actions of every event, in order, with the subject of the last one and the events'
/// short names.
fn actions(
    claims: &Claims,
    tenant: &TenantConfig,
    idp: &IdpConfig,
) -> Result<(Vec<IdpAction>, Subject, Vec<String>), Answer> {
    let events = match claims.get("events") {
        Some(Value::Object(e)) if !e.is_empty() => e,
        _ => return Err(bad_request("events must be a non-empty object")),
    };
    let top = claims.get("sub_id");
    let mut actions = Vec::new();
    let mut last = Subject::default();
    let mut names = Vec::new();
    for (uri, event) in events {
        let Value::Object(event) = event else {
            return Err(bad_request("each event must be an object"));
        };
        let short = uri
            .strip_prefix(CAEP)
            .or_else(|| uri.strip_prefix(RISC))
            .unwrap_or(uri);
        names.push(short.to_owned());
        let known = uri.starts_with(CAEP) || uri.starts_with(RISC);
        let Some(action) = known.then(|| effect(short)).flatten() else {
            // Accepted, ignored, audited.
            continue;
        };
        let raw = event.get("subject").or(top);
        let subject = raw
            .map(|s| subject(s, tenant))
            .transpose()?
            .ok_or_else(|| bad_request(&format!("{short}: no subject")))?;
        actions.extend(to_actions(action, &subject, event, idp, short)?);
        last = subject;
    }
    Ok((actions, last, names))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    SessionRevoked,
    Logout,
    Claims,
}

fn effect(short: &str) -> Option<Effect> {
    match short {
        "session-revoked" => Some(Effect::SessionRevoked),
        "credential-change"
        | "account-disabled"
        | "account-purged"
        | "sessions-revoked"
        | "credential-compromise" => Some(Effect::Logout),
        "token-claims-change" => Some(Effect::Claims),
        _ => None,
    }
}

fn to_actions(
    effect: Effect,
    subject: &Subject,
    event: &Map<String, Value>,
    idp: &IdpConfig,
    short: &str,
) -> Result<Vec<IdpAction>, Answer> {
    let need_user = || {
        subject
            .user
            .clone()
            .ok_or_else(|| bad_request(&format!("{short}: the subject names no user")))
    };
    Ok(match effect {
        Effect::SessionRevoked => match &subject.sid {
            Some(sid) => vec![IdpAction::EndIdpSession {
                sid: sid.clone(),
                user: subject.user.clone(),
                deny_secs: idp.sid_ttl_secs,
            }],
            None => vec![IdpAction::LogoutUser { user: need_user()? }],
        },
        Effect::Logout => vec![IdpAction::LogoutUser { user: need_user()? }],
        Effect::Claims => match permissions(event)? {
            Some(permissions) => vec![IdpAction::SetPermissions {
                user: need_user()?,
                permissions,
            }],
            None => Vec::new(),
        },
    })
}

/// `claims.permissions` (array of strings) or `claims.scope` (space-separated); neither:
/// nothing to set.
fn permissions(event: &Map<String, Value>) -> Result<Option<Vec<String>>, Answer> {
    let Some(claims) = event.get("claims") else {
        return Ok(None);
    };
    let bad = || {
        bad_request(
            "token-claims-change: claims.permissions must be an array of strings, claims.scope a string",
        )
    };
    let Value::Object(claims) = claims else {
        return Err(bad());
    };
    match (claims.get("permissions"), claims.get("scope")) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|p| p.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        (Some(_), _) | (None, Some(Value::Number(_) | Value::Array(_) | Value::Object(_))) => {
            Err(bad())
        }
        (None, Some(Value::String(scope))) => {
            Ok(Some(scope.split_whitespace().map(str::to_owned).collect()))
        }
        _ => Ok(None),
    }
}

/// RFC 9493 subject identifiers: `iss_sub` (whose `iss` must be the tenant's issuer),
/// `opaque` (a user), `complex` with `user` and/or `session` (`opaque`: the IdP sid).
fn subject(value: &Value, tenant: &TenantConfig) -> Result<Subject, Answer> {
    let bad = |what: &str| bad_request(&format!("subject: {what}"));
    let Value::Object(s) = value else {
        return Err(bad("not an object"));
    };
    let field = |name: &str| id(s.get(name)).map_err(|()| bad(&format!("{name} is not an id")));
    match s.get("format").and_then(Value::as_str) {
        Some("iss_sub") => {
            let iss = field("iss")?.ok_or_else(|| bad("iss_sub without iss"))?;
            if tenant.issuer.as_ref().is_some_and(|want| *want != iss) {
                return Err(bad("iss is not the tenant's issuer"));
            }
            let user = field("sub")?.ok_or_else(|| bad("iss_sub without sub"))?;
            Ok(Subject {
                user: Some(user),
                sid: None,
            })
        }
        Some("opaque") => Ok(Subject {
            user: Some(field("id")?.ok_or_else(|| bad("opaque without id"))?),
            sid: None,
        }),
        Some("complex") => {
            let user = match s.get("user") {
                Some(u) => subject(u, tenant)?.user,
                None => None,
            };
            let sid = match s.get("session") {
                Some(Value::Object(session))
                    if session.get("format").and_then(Value::as_str) == Some("opaque") =>
                {
                    id(session.get("id")).map_err(|()| bad("session id"))?
                }
                Some(_) => return Err(bad("session must be an opaque identifier")),
                None => None,
            };
            if user.is_none() && sid.is_none() {
                return Err(bad("complex without user or session"));
            }
            Ok(Subject { user, sid })
        }
        _ => Err(bad("format must be iss_sub, opaque or complex")),
    }
}
