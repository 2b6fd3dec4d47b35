//! [`ClientConfig`]: endpoints, identity, timeouts, backoff and buffer bounds.

use crate::session::ResumeState;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ClientError;

/// How a [`crate::Client`] connects and behaves. Start from [`ClientConfig::new`] and
/// change fields as needed; every field has a default except the endpoints.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `ws://` or `wss://` URLs of `/v1/connect` on one or more nodes. The first is tried
    /// first; on a connect failure (or a 4111/1012/1013 close) the next one is used, in a ring.
    pub endpoints: Vec<String>,
    /// Sent in `hello.client.name`; shown by the admin API.
    pub client_name: String,
    /// Sent in `hello.client.version`.
    pub client_version: String,
    /// Smallest backoff cap (the first retry waits a random time in `0..=backoff_min`).
    pub backoff_min: Duration,
    /// Largest backoff cap.
    pub backoff_max: Duration,
    /// Limit for TCP connect, TLS, WebSocket upgrade and `welcome`, each attempt.
    pub connect_timeout: Duration,
    /// Refresh the token this long before its `exp` (or on `token_expiring`, if earlier).
    pub refresh_before: Duration,
    /// How long a request (subscribe, unsubscribe, publish, refresh) waits for its reply,
    /// including the time it may wait in the outbound buffer while reconnecting.
    pub request_timeout: Duration,
    /// Limit for one socket write (a slow or dead peer never blocks the client forever).
    pub write_timeout: Duration,
    /// Without any frame from the server for this long the connection is treated as dead
    /// (the server pings every `welcome.heartbeat_ms`; when that is known the limit is
    /// `max(read_timeout, 2 × heartbeat_ms + 5 s)`).
    pub read_timeout: Duration,
    /// Send an `ack` at most this long after the newest unacknowledged event.
    pub ack_interval: Duration,
    /// Also send an `ack` as soon as this many events are unacknowledged.
    pub ack_every: u64,
    /// Capacity of the outbound request buffer ([`crate::Client`] calls wait when it is full).
    pub outbound_buffer: usize,
    /// Capacity of the event buffer (see [`crate::Events`]).
    pub event_buffer: usize,
    /// Most requests sent and waiting for a reply at once; further requests wait in the
    /// outbound buffer (and fail with [`ClientError::Timeout`] if they wait too long).
    pub max_pending: usize,
    /// Largest frame accepted from the server, in bytes.
    pub max_frame_bytes: usize,
    /// TLS settings for `wss://` endpoints (roots, client auth). Required for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A session persisted by an earlier run ([`Client::resume_state`](crate::Client::resume_state)):
    /// the first connect resumes it.
    pub resume_state: Option<ResumeState>,
}

impl ClientConfig {
    /// A config for `endpoints` with the default settings.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            client_name: "tether-client-rs".to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            refresh_before: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            ack_interval: Duration::from_secs(1),
            ack_every: 64,
            outbound_buffer: 256,
            event_buffer: 1024,
            max_pending: 1024,
            max_frame_bytes: 1 << 20,
            tls: None,
            resume_state: None,
        }
    }

    /// Checks the config; [`crate::Client::connect`] calls this first.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::Config(m));
        if self.endpoints.is_empty() {
            return bad("endpoints is empty".into());
        }
        for e in &self.endpoints {
            let u = url::Url::parse(e).map_err(|err| ClientError::Config(format!("{e}: {err}")))?;
            match u.scheme() {
                "ws" => {}
                "wss" if self.tls.is_some() => {}
                "wss" => return bad(format!("{e}: wss:// needs ClientConfig::tls")),
                s => return bad(format!("{e}: scheme {s} is not ws or wss")),
            }
            if u.host_str().is_none() {
                return bad(format!("{e}: no host"));
            }
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad("need 0 < backoff_min <= backoff_max".into());
        }
        let zero = [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("write_timeout", self.write_timeout),
            ("read_timeout", self.read_timeout),
            ("ack_interval", self.ack_interval),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, d)| d.is_zero()) {
            return bad(format!("{name} must be > 0"));
        }
        if self.outbound_buffer == 0 || self.event_buffer == 0 || self.max_pending == 0 {
            return bad("outbound_buffer, event_buffer and max_pending must be > 0".into());
        }
        if self.ack_every == 0 || self.max_frame_bytes < 1024 {
            return bad("ack_every must be > 0 and max_frame_bytes >= 1024".into());
        }
        Ok(())
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("refresh_before", &self.refresh_before)
            .field("request_timeout", &self.request_timeout)
            .field("outbound_buffer", &self.outbound_buffer)
            .field("event_buffer", &self.event_buffer)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}
