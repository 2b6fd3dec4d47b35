//! The identity-provider endpoints (PROTOCOL.md, "Identity-provider signals"), served on the
//! client listener because the IdP must reach them: `POST /v1/idp/{tenant}/backchannel-logout`
//! (OpenID Connect Back-Channel Logout 1.0) and `POST /v1/idp/{tenant}/ssf` (Shared Signals
//! push, RFC 8935).
//!
//! The Internet reaches these, so each request is bounded before anything is looked at: it
//! holds the connection slot it came in on (the per-IP connection, pending and rate limits
//! of the client listener), its headers must arrive within the upgrade timeout, its body is
//! at most [`MAX_BODY`], the whole exchange ends within [`REQUEST_TIMEOUT`], and one
//! connection serves one request. The token's signature is verified before any registry
//! state is read for it, and the answer comes only after the effect is committed.

mod answer;
mod claims;
mod logout;
mod ssf;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tether_cluster::command::{Command, IdpSignal, RegistryEvent};

use crate::audit::AuditRecord;
use crate::gateway::{ClientStream, Gateway};
use crate::limits::ConnSlot;
use crate::metrics::IdpSignal as SignalLabel;
use answer::{Answer, Flavor};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// The whole exchange, commit included, ends within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Room for the request line and headers (hyper's smallest buffer).
const MAX_HEAD: usize = 8 * 1024;

/// What kind of signal a request carries (its metrics label and audit `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BackchannelLogout,
    Ssf,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::BackchannelLogout => "backchannel_logout",
            Kind::Ssf => "ssf",
        }
    }

    fn flavor(self) -> Flavor {
        match self {
            Kind::BackchannelLogout => Flavor::Oidc,
            Kind::Ssf => Flavor::Ssf,
        }
    }
}

/// Serves one IdP request on `stream` (the request line was sniffed as `POST /v1/idp/`).
pub async fn serve<S: ClientStream>(
    gw: Arc<Gateway>,
    stream: S,
    client: SocketAddr,
    slot: ConnSlot,
) {
    let slot = Arc::new(std::sync::Mutex::new(slot));
    let service = hyper::service::service_fn(move |req| {
        let gw = gw.clone();
        let slot = slot.clone();
        async move {
            let answer = handle(&gw, client, &slot, req).await;
            Ok::<_, std::convert::Infallible>(answer)
        }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(crate::admin::listener::HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn).await;
}

async fn handle(
    gw: &Gateway,
    client: SocketAddr,
    slot: &std::sync::Mutex<ConnSlot>,
    req: Request<Incoming>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let Some((tenant, kind)) = route(req.uri().path()) else {
        return Answer::not_found(Flavor::Oidc, "no such endpoint").into_response();
    };
    let (answer, outcome) = handle_signal(gw, client, slot, req, &tenant, kind).await;
    gw.ctx
        .metrics
        .idp_signals
        .get_or_create(&SignalLabel {
            kind: kind.label(),
            outcome,
        })
        .inc();
    answer.into_response()
}

/// `/v1/idp/{tenant}/backchannel-logout` or `/v1/idp/{tenant}/ssf`.
fn route(path: &str) -> Option<(String, Kind)> {
    let rest = path.strip_prefix("/v1/idp/")?;
    let (tenant, endpoint) = rest.split_once('/')?;
    let kind = match endpoint {
        "backchannel-logout" => Kind::BackchannelLogout,
        "ssf" => Kind::Ssf,
        _ => return None,
    };
    (!tenant.is_empty()).then(|| (tenant.to_owned(), kind))
}

/// The request's answer and its `outcome` label.
async fn handle_signal(
    gw: &Gateway,
    client: SocketAddr,
    slot: &std::sync::Mutex<ConnSlot>,
    req: Request<Incoming>,
    tenant: &str,
    kind: Kind,
) -> (Answer, &'static str) {
    let flavor = kind.flavor();
    if req.method() != Method::POST {
        return (
            Answer::status(flavor, StatusCode::METHOD_NOT_ALLOWED, "use POST"),
            "invalid",
        );
    }
    // Behind a trusted proxy the slot is charged to the client its headers name, as an
    // upgrade's is.
    let trusted = &gw.edge.trusted_proxies;
    if trusted.contains(client.ip())
        && let Some(ip) = crate::net::forwarded_client(req.headers(), trusted)
    {
        let charged = slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .attribute(ip, false);
        if let Err(e) = charged {
            gw.ctx.metrics.refused(e.reason());
            return (Answer::rate_limited(flavor, &e.to_string()), "rate_limited");
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let msg = format!("the body is larger than {MAX_BODY} bytes, or was cut off");
            return (
                Answer::status(flavor, StatusCode::PAYLOAD_TOO_LARGE, &msg),
                "too_large",
            );
        }
    };
    let verified = match kind {
        Kind::BackchannelLogout => logout::verify(&gw.ctx, tenant, &parts.headers, &body).await,
        Kind::Ssf => ssf::verify(&gw.ctx, tenant, &parts.headers, &body).await,
    };
    let signal = match verified {
        Ok(s) => s,
        Err(answer) => {
            let outcome = answer.outcome();
            return (answer, outcome);
        }
    };
    commit(gw, kind, signal).await
}

/// A verified signal: what to commit, and what the audit line says about it.
pub(crate) struct Verified {
    pub signal: IdpSignal,
    pub user: Option<String>,
    pub sid: Option<String>,
    pub issuer: String,
    /// The events, as the audit line's `event`.
    pub event: String,
}

async fn commit(gw: &Gateway, kind: Kind, v: Verified) -> (Answer, &'static str) {
    let ctx = &gw.ctx;
    let flavor = kind.flavor();
    let tenant = v.signal.tenant.clone();
    let jti = v.signal.jti.clone();
    let committed = ctx.registry.propose(Command::IdpSignal(v.signal)).await;
    let c = match committed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%tenant, %jti, error = %e, "IdP signal not committed");
            return (Answer::unavailable(flavor), "unavailable");
        }
    };
    let (answer, outcome, reason) = if c
        .events
        .iter()
        .any(|e| matches!(e, RegistryEvent::NotFound { .. }))
    {
        (
            Answer::not_found(flavor, "unknown tenant"),
            "not_found",
            "unknown_tenant",
        )
    } else if c
        .events
        .iter()
        .any(|e| matches!(e, RegistryEvent::IdpSignalReplayed { .. }))
    {
        let msg = "this jti was already used";
        (
            Answer::invalid(flavor, answer::Error::Request, msg),
            "replayed",
            "replayed",
        )
    } else {
        (Answer::accepted(flavor), "applied", "applied")
    };
    ctx.audit.emit(AuditRecord {
        kind: "idp_signal",
        tenant: Some(&tenant),
        user: v.user.as_deref(),
        sid: v.sid.as_deref(),
        event: Some(&v.event),
        issuer: Some(&v.issuer),
        jti: Some(&jti),
        reason: Some(reason),
        commit_index: Some(c.index),
        ..Default::default()
    });
    (answer, outcome)
}
