//! OpenID Connect Back-Channel Logout 1.0 (§2.4–2.6): the logout token's checks, in order,
//! and what it asks for. Nothing in the registry is read until the signature holds.

use http::HeaderMap;
use serde_json::Value;
use tether_cluster::command::{IdpAction, IdpSignal};

use super::Verified;
use super::answer::{Answer, Error, Flavor};
use super::claims::{audience_matches, content_type_is, typ_is};
use crate::auth::jwt::{Claims, numeric_date};
use crate::auth::{AuthError, KeySource};
use crate::context::NodeCtx;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token without `exp` counts as current (and its jti is kept).
pub(super) const NO_EXP_LIFETIME_SECS: u64 = 3600;

fn invalid(description: &str) -> Answer {
    Answer::invalid(Flavor::Oidc, Error::Request, description)
}

pub(super) async fn verify(
    ctx: &NodeCtx,
    tenant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Answer> {
    if !content_type_is(headers, "application/x-www-form-urlencoded") {
        return Err(invalid(
            "the content type must be application/x-www-form-urlencoded",
        ));
    }
    let token = logout_token(body)?;
    let Some(tenant) = ctx.registry.read(|s| s.tenant(tenant_id).cloned()) else {
        return Err(Answer::not_found(Flavor::Oidc, "unknown tenant"));
    };
    let tenant = tenant.config;
    let Some(idp) = tenant
        .idp
        .clone()
        .filter(|i| !i.backchannel_logout_audiences.is_empty())
    else {
        return Err(Answer::not_found(
            Flavor::Oidc,
            "back-channel logout is not configured for this tenant",
        ));
    };
    let (_, header, claims) = match ctx
        .auth
        .verify_signed(&token, &KeySource::tenant(&tenant))
        .await
    {
        Ok(v) => v,
        // The IdP's keys could not be fetched: it is worth a retry.
        Err(AuthError::Jwks(e)) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "logout token: JWKS unavailable");
            return Err(Answer::unavailable(Flavor::Oidc));
        }
        Err(e) => return Err(invalid(&format!("logout token: {}", e.client_message()))),
    };
    // Everything below reads verified claims.
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !typ_is(t, "logout+jwt"))
    {
        return Err(invalid("logout token: typ must be logout+jwt"));
    }
    let issuer = text(&claims, "iss")?.ok_or_else(|| invalid("logout token: no iss"))?;
    if tenant.issuer.as_ref().is_some_and(|want| *want != issuer) {
        return Err(invalid("logout token: iss is not the tenant's issuer"));
    }
    if !audience_matches(&claims, &idp.backchannel_logout_audiences) {
        return Err(invalid(
            "logout token: aud names none of the tenant's backchannel_logout_audiences",
        ));
    }
    let now = ctx.clock.now_secs();
    let leeway = ctx.auth.leeway_secs();
    let date = |name| numeric_date(&claims, name).map_err(|_| invalid("logout token: bad date"));
    let iat = date("iat")?.ok_or_else(|| invalid("logout token: no iat"))?;
    if iat > now.saturating_add(leeway) {
        return Err(invalid("logout token: iat is in the future"));
    }
    let keep_until = date("exp")?.unwrap_or(iat.saturating_add(NO_EXP_LIFETIME_SECS));
    if keep_until.saturating_add(leeway) <= now {
        return Err(invalid("logout token: expired"));
    }
    let jti = text(&claims, "jti")?.ok_or_else(|| invalid("logout token: no jti"))?;
    match claims.get("events") {
        Some(Value::Object(events)) if events.get(EVENT).is_some_and(Value::is_object) => {}
        _ => {
            return Err(invalid(
                "logout token: events must hold the back-channel logout event as an object",
            ));
        }
    }
    if claims.contains_key("nonce") {
        return Err(invalid("logout token: nonce is not allowed"));
    }
    let sid = text(&claims, "sid")?;
    let sub = text(&claims, "sub")?;
    let action = match (&sid, &sub) {
        (Some(sid), user) => IdpAction::EndIdpSession {
            sid: sid.clone(),
            user: user.clone(),
            deny_secs: idp.sid_ttl_secs,
        },
        (None, Some(user)) => IdpAction::LogoutUser { user: user.clone() },
        (None, None) => return Err(invalid("logout token: neither sid nor sub")),
    };
    // A replay answers at once; the log checks again, for two copies arriving together.
    if ctx.registry.read(|s| s.is_idp_jti_used(&tenant.id, &jti)) {
        return Err(invalid("logout token: this jti was already used"));
    }
    Ok(Verified {
        signal: IdpSignal {
            tenant: tenant.id.clone(),
            jti,
            keep_until: keep_until.saturating_add(leeway),
            actions: vec![action],
        },
        user: sub,
        sid,
        issuer,
        event: "backchannel_logout".to_owned(),
    })
}

/// The single `logout_token` form parameter.
fn logout_token(body: &[u8]) -> Result<String, Answer> {
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(body) {
        if name == "logout_token" {
            if found.is_some() {
                return Err(invalid("logout_token is given more than once"));
            }
            found = Some(value.into_owned());
        }
    }
    found
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("the body has no logout_token"))
}

/// An optional string claim, refused as the contract says when it is not a sane string.
fn text(claims: &Claims, name: &str) -> Result<Option<String>, Answer> {
    super::claims::text(claims, name).map_err(|e| invalid(&format!("logout token: {e}")))
}
