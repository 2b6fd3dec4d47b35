//! Close codes. 40xx are terminal (do not reconnect), 41xx/1012/1013 mean reconnect.

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
}
