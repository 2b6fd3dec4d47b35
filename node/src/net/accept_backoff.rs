//! Backing an accept loop off while accepting fails (EMFILE, ENFILE, ENOBUFS): retrying at
//! once would spin a core on the same error while the process is out of descriptors.

use std::time::Duration;

use crate::metrics::Metrics;

#[derive(Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Counts the failure and sleeps: 5 ms, doubling up to 1 s while failures go on. Logged
    /// once per run of failures, not once per retry.
    pub async fn failed(&mut self, metrics: &Metrics, e: &std::io::Error) {
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        if self.delay.is_none() {
            tracing::warn!(error = %e, "accept failed; backing off");
        }
        metrics.accept_errors.inc();
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }

    /// An accept succeeded: the next failure starts over at the shortest pause.
    pub fn reset(&mut self) {
        self.delay = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each failure doubles the pause up to a second; a success starts over.
    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_and_resets() {
        let m = Metrics::default();
        let e = std::io::Error::other("EMFILE");
        let mut b = AcceptBackoff::default();
        let mut pauses = Vec::new();
        for _ in 0..10 {
            let t = tokio::time::Instant::now();
            b.failed(&m, &e).await;
            pauses.push(t.elapsed().as_millis());
        }
        assert_eq!(&pauses[..4], &[5, 10, 20, 40]);
        assert_eq!(pauses[9], 1000);
        b.reset();
        let t = tokio::time::Instant::now();
        b.failed(&m, &e).await;
        assert_eq!(t.elapsed().as_millis(), 5);
        assert_eq!(m.accept_errors.get(), 11);
    }
}
