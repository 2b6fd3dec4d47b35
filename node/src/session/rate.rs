//! The per-connection message rate: text frames counted in one-second windows.

use std::time::Duration;

use tokio::time::Instant;

/// What to do with one more frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rate {
    /// Within the window's budget.
    Within,
    /// The first frame over the budget in this window: the `strikes`-th such window in a row.
    Over { strikes: u32 },
    /// Over the budget again in a window already counted: dropped without a word.
    StillOver,
}

/// One-second windows of at most `per_sec` frames; a window without excess resets the
/// strike count.
pub(super) struct RateWindow {
    per_sec: u32,
    start: Instant,
    count: u32,
    strikes: u32,
    struck: bool,
}

impl RateWindow {
    pub(super) fn new(per_sec: u32, now: Instant) -> RateWindow {
        RateWindow {
            per_sec,
            start: now,
            count: 0,
            strikes: 0,
            struck: false,
        }
    }

    pub(super) fn offer(&mut self, now: Instant) -> Rate {
        if now.duration_since(self.start) >= Duration::from_secs(1) {
            if !self.struck {
                self.strikes = 0;
            }
            self.start = now;
            self.count = 0;
            self.struck = false;
        }
        self.count += 1;
        if self.count <= self.per_sec {
            return Rate::Within;
        }
        if self.struck {
            return Rate::StillOver;
        }
        self.struck = true;
        self.strikes += 1;
        Rate::Over {
            strikes: self.strikes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames past the budget strike once per window; strikes add up over consecutive windows
    /// and a calm window clears them.
    #[test]
    fn strikes_per_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(2, t0);
        assert_eq!(w.offer(t0), Rate::Within);
        assert_eq!(w.offer(t0), Rate::Within);
        assert_eq!(w.offer(t0), Rate::Over { strikes: 1 });
        assert_eq!(w.offer(t0), Rate::StillOver);
        let t1 = t0 + Duration::from_secs(1);
        w.offer(t1);
        w.offer(t1);
        assert_eq!(w.offer(t1), Rate::Over { strikes: 2 });
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(w.offer(t2), Rate::Within);
        let t3 = t2 + Duration::from_secs(1);
        for _ in 0..2 {
            w.offer(t3);
        }
        assert_eq!(
            w.offer(t3),
            Rate::Over { strikes: 1 },
            "the calm window reset"
        );
    }
}
