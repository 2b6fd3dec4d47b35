//! Wall-clock time behind a trait, so JWT checks and proposed entry times can be driven by tests.
//!
//! Timers never use this: they use `tokio::time`. The clock is only for *wall* time that leaves
//! the process (token `exp`/`iat`, the time stamped into a Raft entry by its proposer).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken host; treat it as the epoch rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests (and for skewing one node in chaos runs).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    pub fn new(ms: u64) -> Self {
        Self {
            ms: AtomicU64::new(ms),
        }
    }

    pub fn set_ms(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, delta: u64) {
        self.ms.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// A clock offset from another clock by a fixed skew (chaos: clock skew on one node).
pub struct SkewedClock<C> {
    pub inner: C,
    pub skew_ms: i64,
}

impl<C: Clock> Clock for SkewedClock<C> {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms().saturating_add_signed(self.skew_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manual clocks move only when told, and skew applies in both directions.
    #[test]
    fn manual_and_skewed() {
        let c = ManualClock::new(1_000);
        c.advance_ms(500);
        assert_eq!(c.now_ms(), 1_500);
        assert_eq!(c.now_secs(), 1);
        let s = SkewedClock {
            inner: ManualClock::new(10_000),
            skew_ms: -2_500,
        };
        assert_eq!(s.now_ms(), 7_500);
    }
}
