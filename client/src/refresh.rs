//! [`RefreshTimer`]: when to refresh the token in-band, and the provider call in progress.

use std::time::Duration;

use tokio::time::Instant;

use crate::session::until_unix;
use crate::token::{TokenFuture, TokenProvider};

/// Wait before retrying a failed in-band refresh.
const RETRY: Duration = Duration::from_secs(10);

/// The in-band refresh state of one connection.
#[derive(Default)]
pub(crate) struct RefreshTimer {
    /// When to ask the provider (None: not armed).
    pub at: Option<Instant>,
    fut: Option<TokenFuture>,
    in_flight: bool,
}

impl RefreshTimer {
    /// Arms the timer `before` ahead of `expires_at` (Unix seconds), or disarms it.
    pub fn schedule(&mut self, expires_at: Option<u64>, before: Duration) {
        self.at =
            expires_at.map(|exp| Instant::now() + until_unix(exp.saturating_sub(before.as_secs())));
    }

    /// Starts a provider call, unless one is running or a `refresh` awaits its reply.
    pub fn start(&mut self, provider: &dyn TokenProvider, limit: Duration) {
        self.at = None;
        if self.fut.is_some() || self.in_flight {
            return;
        }
        let fut = provider.token();
        self.fut = Some(Box::pin(async move {
            tokio::time::timeout(limit, fut)
                .await
                .unwrap_or_else(|_| Err("token provider timed out".into()))
        }));
    }

    pub fn fetching(&self) -> bool {
        self.fut.is_some()
    }

    /// The provider's answer (pending forever when no call runs).
    pub async fn token(&mut self) -> Result<String, String> {
        let r = match self.fut.as_mut() {
            Some(f) => f.await,
            None => std::future::pending().await,
        };
        self.fut = None;
        r
    }

    /// A `refresh` frame was sent.
    pub fn sent(&mut self) {
        self.in_flight = true;
    }

    /// The `refresh` was accepted.
    pub fn done(&mut self) {
        self.in_flight = false;
    }

    /// The provider or the server refused: try again a little later.
    pub fn retry_later(&mut self) {
        self.in_flight = false;
        self.at = Some(Instant::now() + RETRY);
    }
}
