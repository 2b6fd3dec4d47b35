//! Reconnect backoff for one peer: exponential from `min` to `max`, with jitter so that a
//! whole cluster reconnecting to a restarted node does not arrive in lockstep.

use std::time::Duration;

use tokio::time::Instant;

pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    /// Consecutive failed connection attempts since the last success.
    failures: u32,
    /// Until then, calls fail fast instead of dialing a peer that just refused us.
    retry_at: Option<Instant>,
    last_error: String,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            retry_at: None,
            last_error: String::new(),
        }
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    pub(super) fn failed(&mut self, now: Instant, error: String) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // Doubling from `min`; the shift is capped so it cannot overflow.
        let exp = self.failures.saturating_sub(1).min(20);
        let ceiling = self.min.saturating_mul(1u32 << exp).min(self.max);
        // "Equal jitter": at least half the ceiling, so a dead peer is never retried in a
        // tight loop, and a random rest so retries from many nodes spread out.
        let delay = ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        self.retry_at = Some(now + delay);
        self.last_error = error;
        delay
    }

    /// Failed attempts since the last success (0: the peer was fine until now).
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// `Err(reason)` while still backing off from the last failure.
    pub(super) fn check(&self, now: Instant) -> Result<(), String> {
        match self.retry_at {
            Some(at) if now < at => Err(format!(
                "{} (backing off for {:?})",
                self.last_error,
                at - now
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from `min`, never exceed `max`, and never drop below half the ceiling.
    #[tokio::test]
    async fn delays_grow_with_jitter_and_cap() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max);
        let now = Instant::now();
        for attempt in 0..30u32 {
            let ceiling = min.saturating_mul(1 << attempt.min(20)).min(max);
            let d = b.failed(now, "refused".into());
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
        assert!(b.check(now).is_err());
        assert!(b.check(now + max).is_ok());
        b.succeeded();
        assert!(b.check(now).is_ok());
        assert!(b.failed(now, "x".into()) <= min);
    }
}
