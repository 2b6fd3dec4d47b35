//! Label sets, and the values created when the node starts so that dashboards and alerts
//! see zeros rather than missing series.

use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;
use crate::limits::LimitError;

/// `outcome` (`ok`, `fail`) and `reason` (`ok`, or why the handshake failed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
    pub reason: &'static str,
}

impl Outcome {
    pub const OK: Outcome = Outcome {
        outcome: "ok",
        reason: "ok",
    };

    pub fn fail(reason: &'static str) -> Outcome {
        Outcome {
            outcome: "fail",
            reason,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// What was revoked: `session`, `logout`, `token`, `tenant`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

/// Where a resumed session came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Where {
    pub r#where: &'static str,
}

/// A WebSocket close code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Event {
    pub event: &'static str,
}

/// An admin request: its route pattern (never the path with ids) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdminRequest {
    pub route: String,
    pub status: u16,
}

/// An identity-provider signal: `kind` (`backchannel_logout`, `ssf`) and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdpSignal {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// Every `tether_idp_signals_total` outcome: `applied` (committed), `invalid` (refused
/// with 400 before anything was committed), `replayed` (its jti was used), `unauthorized`
/// (SSF push bearer), `not_found`, `too_large`, `rate_limited` (the client listener's per-IP
/// limits), `unavailable` (no commit, 503).
pub const IDP_OUTCOMES: [&str; 8] = [
    "applied",
    "invalid",
    "replayed",
    "unauthorized",
    "not_found",
    "too_large",
    "rate_limited",
    "unavailable",
];

/// A certificate reload: which TLS config (`client`, `admin`, `peer`) and `ok` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsReload {
    pub listener: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rpc {
    pub rpc: &'static str,
}

/// Refusal reasons besides the limits'.
pub const REFUSED_REASONS: [&str; 3] = ["proxy_header", "admin_full", "per_user"];
const REVOCATION_KINDS: [&str; 4] = ["session", "logout", "token", "tenant"];
const PEER_RPCS: [&str; 5] = ["wait_closed", "status", "handover", "deliver", "flush"];
const RESUME_WHERES: [&str; 5] = [
    "same_node",
    "other_node",
    "other_node_lost",
    "handover",
    "fresh",
];

pub(super) fn create_known(m: &Metrics) {
    let limits = LimitError::ALL.map(LimitError::reason);
    for reason in limits.iter().chain(&REFUSED_REASONS) {
        drop(m.refused.get_or_create(&Reason { reason }));
    }
    drop(m.handshakes.get_or_create(&Outcome::OK));
    drop(m.handshake_seconds.get_or_create(&Outcome::OK));
    for kind in REVOCATION_KINDS {
        drop(m.revocations.get_or_create(&Kind { kind }));
        drop(
            m.revocation_propagation_seconds
                .get_or_create(&Kind { kind }),
        );
    }
    for rpc in PEER_RPCS {
        drop(m.peer_rpc_seconds.get_or_create(&Rpc { rpc }));
    }
    for r#where in RESUME_WHERES {
        drop(m.resumes.get_or_create(&Where { r#where }));
    }
    for code in tether_protocol::CloseCode::ALL {
        drop(m.closes.get_or_create(&Code { code: code.code() }));
    }
    for event in ["isolated", "recovered"] {
        drop(m.isolation_changes.get_or_create(&Event { event }));
    }
    for listener in ["client", "admin", "peer"] {
        for outcome in ["ok", "failed"] {
            drop(
                m.tls_reloads
                    .get_or_create(&TlsReload { listener, outcome }),
            );
        }
    }
    for kind in ["backchannel_logout", "ssf"] {
        for outcome in IDP_OUTCOMES {
            drop(m.idp_signals.get_or_create(&IdpSignal { kind, outcome }));
        }
    }
}
