//! Reconnect policy: what a close code (or a dropped link) means for the SDK, and the
//! full-jitter exponential [`Backoff`].

use std::time::Duration;

use rand::Rng;

/// What to do after a connection ended: the shared protocol's reaction to each close code.
pub(crate) type Action = tether_protocol::Reconnect;

/// The SDK's reaction to a close `code` sent by the server. `None` (no close frame: the
/// link dropped, 1006) reconnects with backoff.
pub(crate) fn on_close(code: Option<u16>) -> Action {
    tether_protocol::reconnect_after(code)
}

/// Full-jitter exponential backoff: attempt `n` (from 1) waits a uniformly random time in
/// `0..=min(max, min_cap × 2^(n-1))`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// Attempts since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Counts an attempt without waiting (an immediate or advised reconnect).
    pub fn bump(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
    }

    /// The cap for the next attempt, counting it.
    pub fn next_cap(&mut self) -> Duration {
        self.bump();
        let shift = self.attempt.saturating_sub(1).min(30);
        self.min.saturating_mul(1u32 << shift).min(self.max)
    }

    /// The delay for the next attempt, counting it.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.next_cap();
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// A session was established: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_classes() {
        for c in [4000, 4001, 4003, 4004, 4005, 4006, 4009, 1009] {
            assert_eq!(on_close(Some(c)), Action::Never, "{c}");
        }
        for c in [4101, 4102, 4108, 1000, 1011] {
            assert_eq!(on_close(Some(c)), Action::Backoff, "{c}");
        }
        assert_eq!(on_close(None), Action::Backoff);
        assert_eq!(on_close(Some(1012)), Action::BackoffElsewhere);
        assert_eq!(on_close(Some(1013)), Action::BackoffElsewhere);
        assert_eq!(on_close(Some(4100)), Action::WithNewToken);
        assert_eq!(on_close(Some(4111)), Action::NowElsewhere);
    }

    #[test]
    fn backoff_caps_double_up_to_max_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let caps: Vec<u128> = (0..10).map(|_| b.next_cap().as_millis()).collect();
        assert_eq!(
            caps,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay() <= Duration::from_millis(250));
    }

    /// A reconnect storm is spread out: the first delays of 1000 clients cut off at once
    /// cover the whole first window evenly (full jitter), none in a burst at its start.
    #[test]
    fn first_delays_of_1000_clients_spread_over_the_window() {
        let cap = Duration::from_millis(1000);
        let mut buckets = [0u32; 10];
        for _ in 0..1000 {
            let mut b = Backoff::new(cap, Duration::from_secs(30));
            let d = b.next_delay();
            assert!(d <= cap);
            let i = (d.as_millis() as usize / 100).min(9);
            buckets[i] += 1;
        }
        // 100 expected per bucket; 55..=145 fails for a spread this wrong with p < 1e-5.
        assert!(
            buckets.iter().all(|n| (55..=145).contains(n)),
            "{buckets:?}"
        );
    }
}
