//! Close codes. 40xx are terminal (do not reconnect), 41xx/1012/1013 mean reconnect; the
//! exact reaction to each is [`reconnect_after`].

/// A close code with its fixed reason string (the reason is the code's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    Normal,
    MessageTooBig,
    ServiceRestart,
    TryAgainLater,
    ProtocolError,
    Unauthorized,
    ForbiddenOrigin,
    SessionRevoked,
    LoggedOut,
    TenantDisabled,
    SessionTakenOver,
    TokenExpired,
    AuthTimeout,
    IdleTimeout,
    RateLimited,
    RegistryUnavailable,
}

impl CloseCode {
    pub const ALL: [CloseCode; 16] = [
        CloseCode::Normal,
        CloseCode::MessageTooBig,
        CloseCode::ServiceRestart,
        CloseCode::TryAgainLater,
        CloseCode::ProtocolError,
        CloseCode::Unauthorized,
        CloseCode::ForbiddenOrigin,
        CloseCode::SessionRevoked,
        CloseCode::LoggedOut,
        CloseCode::TenantDisabled,
        CloseCode::SessionTakenOver,
        CloseCode::TokenExpired,
        CloseCode::AuthTimeout,
        CloseCode::IdleTimeout,
        CloseCode::RateLimited,
        CloseCode::RegistryUnavailable,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::MessageTooBig => 1009,
            CloseCode::ServiceRestart => 1012,
            CloseCode::TryAgainLater => 1013,
            CloseCode::ProtocolError => 4000,
            CloseCode::Unauthorized => 4001,
            CloseCode::ForbiddenOrigin => 4003,
            CloseCode::SessionRevoked => 4004,
            CloseCode::LoggedOut => 4005,
            CloseCode::TenantDisabled => 4006,
            CloseCode::SessionTakenOver => 4009,
            CloseCode::TokenExpired => 4100,
            CloseCode::AuthTimeout => 4101,
            CloseCode::IdleTimeout => 4102,
            CloseCode::RateLimited => 4108,
            CloseCode::RegistryUnavailable => 4111,
        }
    }

    /// The close reason string sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::ServiceRestart => "service_restart",
            CloseCode::TryAgainLater => "try_again_later",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::ForbiddenOrigin => "forbidden_origin",
            CloseCode::SessionRevoked => "session_revoked",
            CloseCode::LoggedOut => "logged_out",
            CloseCode::TenantDisabled => "tenant_disabled",
            CloseCode::SessionTakenOver => "session_taken_over",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::AuthTimeout => "auth_timeout",
            CloseCode::IdleTimeout => "idle_timeout",
            CloseCode::RateLimited => "rate_limited",
            CloseCode::RegistryUnavailable => "registry_unavailable",
        }
    }

    /// Whether the session ends for good (the registry no longer keeps it).
    pub fn is_terminal(self) -> bool {
        (4000..4100).contains(&self.code())
    }
}

/// What a client does after its connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Stop for good (40xx, protocol misuse): the app is told the close is terminal.
    Never,
    /// Reconnect and resume after a full-jitter backoff, on the same endpoint.
    Backoff,
    /// Reconnect and resume after a backoff, on the next endpoint (the node is restarting
    /// or overloaded: 1012, 1013).
    BackoffElsewhere,
    /// Reconnect at once to another endpoint and resume (4111: node cut off from quorum).
    NowElsewhere,
    /// Get a fresh token, then reconnect and resume (4100).
    WithNewToken,
}

/// The reaction to a close `code` sent by the server; `None` (no close frame: the link
/// dropped, 1006) reconnects with backoff.
pub fn reconnect_after(code: Option<u16>) -> Reconnect {
    match code {
        None | Some(1006) => Reconnect::Backoff,
        Some(4100) => Reconnect::WithNewToken,
        Some(4111) => Reconnect::NowElsewhere,
        Some(1012 | 1013) => Reconnect::BackoffElsewhere,
        Some(4000..=4099) => Reconnect::Never,
        // 41xx: reconnect. Unknown application codes above are treated the same way: the
        // backoff bounds the cost, and a newer server may add reconnectable codes.
        Some(4100..=4999) => Reconnect::Backoff,
        // 1002 protocol error, 1003 unsupported data, 1007 bad payload, 1008 policy,
        // 1009 too big, 1010 extension: the client is at fault; reconnecting would repeat it.
        Some(1002 | 1003 | 1007 | 1008 | 1009 | 1010) => Reconnect::Never,
        // 1000/1001 from the server, 1011 internal error, anything else: try again.
        Some(_) => Reconnect::Backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are unique and 40xx are exactly the terminal ones.
    #[test]
    fn codes_unique_and_classed() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CloseCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert_eq!(c.is_terminal(), (4000..4100).contains(&c.code()));
        }
        assert!(CloseCode::SessionRevoked.is_terminal());
        assert!(!CloseCode::RegistryUnavailable.is_terminal());
        assert_eq!(CloseCode::LoggedOut.name(), "logged_out");
    }

    /// Every code the node sends has the documented reaction: 40xx never, 4100 a new
    /// token, 4111 at once elsewhere, 1012/1013 elsewhere with backoff, the rest backoff.
    #[test]
    fn every_node_code_has_its_reaction() {
        for c in CloseCode::ALL {
            let want = match c.code() {
                4000..=4099 | 1009 => Reconnect::Never,
                4100 => Reconnect::WithNewToken,
                4111 => Reconnect::NowElsewhere,
                1012 | 1013 => Reconnect::BackoffElsewhere,
                _ => Reconnect::Backoff,
            };
            assert_eq!(reconnect_after(Some(c.code())), want, "{c:?}");
        }
        assert_eq!(reconnect_after(None), Reconnect::Backoff);
        assert_eq!(reconnect_after(Some(4199)), Reconnect::Backoff);
    }
}
