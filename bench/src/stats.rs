//! Latency summaries: nearest-rank percentiles over samples in milliseconds.

use serde::{Deserialize, Serialize};

/// p50/p95/p99/max (and mean) of one set of samples, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentile of `sorted` (ascending): the smallest sample with at least
/// `p` of the samples at or below it. `None` for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    /// Summarises `samples` (any order; NaNs are dropped). `None` when nothing is left.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Some(Summary {
            n: v.len(),
            p50: percentile(&v, 0.50)?,
            p95: percentile(&v, 0.95)?,
            p99: percentile(&v, 0.99)?,
            max: v[v.len() - 1],
            mean,
        })
    }
}

/// The largest number of events in any window of `window_ms` starting at an event, divided
/// by the window in seconds: a peak rate per second from event times in milliseconds.
pub fn peak_rate(times_ms: &[f64], window_ms: f64) -> f64 {
    let mut t: Vec<f64> = times_ms.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    let mut best = 0usize;
    let mut lo = 0usize;
    for hi in 0..t.len() {
        while t[hi] - t[lo] >= window_ms {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 / (window_ms / 1000.0)
}

/// Time (same unit as `times`) at which `fraction` of `total` events had happened, if they did.
pub fn time_to_fraction(times: &[f64], total: usize, fraction: f64) -> Option<f64> {
    let mut t: Vec<f64> = times.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    let need = (fraction * total as f64).ceil() as usize;
    if need == 0 {
        return Some(0.0);
    }
    t.get(need - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank: p99 of 1..=100 is 99, p50 is 50, p100 the max.
    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    /// A summary sorts its input and ignores NaN.
    #[test]
    fn summary_sorts_and_drops_nan() {
        let s = Summary::of(&[5.0, f64::NAN, 1.0, 3.0, 2.0, 4.0]).expect("samples");
        assert_eq!(s.n, 5);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 5.0);
        assert_eq!(s.max, 5.0);
        assert!((s.mean - 3.0).abs() < 1e-9);
        assert!(Summary::of(&[f64::NAN]).is_none());
    }

    /// Ten events within 100 ms then one late one: the peak over a 1 s window is 10/s, over
    /// 100 ms it is 100/s.
    #[test]
    fn peak_rate_windows() {
        let mut t: Vec<f64> = (0..10).map(|i| f64::from(i) * 10.0).collect();
        t.push(5000.0);
        assert_eq!(peak_rate(&t, 1000.0), 10.0);
        assert_eq!(peak_rate(&t, 100.0), 100.0);
        assert_eq!(peak_rate(&[], 1000.0), 0.0);
    }

    /// 99% of 100 needs the 99th event; a missing event gives None.
    #[test]
    fn fraction_times() {
        let t: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(time_to_fraction(&t, 100, 0.99), Some(99.0));
        assert_eq!(time_to_fraction(&t[..50], 100, 0.99), None);
        assert_eq!(time_to_fraction(&t, 100, 1.0), Some(100.0));
    }
}
